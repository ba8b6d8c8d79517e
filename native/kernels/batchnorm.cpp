// Batch normalization (Ioffe & Szegedy, 2015) with PyTorch's semantics.
//
// x, y, dx, dy are (N, C, S) with S = H*W (S = 1: the (N, C) layout); per-channel vectors are (C).
// M = N*S values per channel. Statistics are accumulated in double.
//
// Forward (train): mean = sum(x)/M, var = sum((x - mean)^2)/M (biased, to normalise),
//   invstd = 1/sqrt(var + eps); y = x*a + b with the per-channel affine a = invstd*weight,
//   b = bias - mean*a, so the output pass is one FMA per element.
//   running_mean += momentum*(mean - running_mean); running_var likewise with sum(.)/(M - 1).
// Forward (eval): the same affine from running_mean and running_var.
// Backward (train), with xhat = (x - mean)*invstd and y = weight*xhat + bias:
//   dbias = sum(dy), dweight = sum(dy*(x - mean))*invstd, and since mean and invstd depend on x,
//   dx = weight*invstd * (dy - sum(dy)/M - (x - mean) * invstd^2 * sum(dy*(x - mean))/M).
//   The two sums come from one fused pass over (dy, x); dx is a second pass.
// Backward (eval): mean and invstd are constants, so dx = dy*weight*invstd.
// Two layouts, two loop orders: (N, C, S) walks each channel's contiguous planes with vector lanes
// and splits channels over threads; (N, C) is contiguous along C, so it vectorises across channels
// (VL at a time, walked down the rows, float lanes flushed to double) and splits those over threads.
#include <cstdlib>
#include <new>

#include "kernels.h"
#include "simd.h"

namespace sg {
namespace SG_NS {
namespace {

constexpr int64_t kFlush = 1024;  // float lanes are flushed into a double sum every kFlush values

// grain (channels per task) so that each task touches at least ~32K values
inline int64_t channel_grain(int64_t per_channel) { return imax(1, 32768 / imax(1, per_channel)); }

double sum_run(const float* x, int64_t n) {
  double total = 0;
  for (int64_t b = 0; b < n; b += kFlush) {
    const int64_t e = imin(n, b + kFlush);
    vf s0 = vzero(), s1 = vzero();
    int64_t i = b;
    for (; i + 2 * VL <= e; i += 2 * VL) {
      s0 = vadd(s0, vload(x + i));
      s1 = vadd(s1, vload(x + i + VL));
    }
    for (; i + VL <= e; i += VL) s0 = vadd(s0, vload(x + i));
    if (i < e) s0 = vadd(s0, vload_tail(x + i, (int)(e - i)));
    total += (double)vhsum(vadd(s0, s1));
  }
  return total;
}

// sum((x - m)^2)
double centered_squares_run(const float* x, int64_t n, float m) {
  const vf vm = vset1(m);
  double total = 0;
  for (int64_t b = 0; b < n; b += kFlush) {
    const int64_t e = imin(n, b + kFlush);
    vf s0 = vzero(), s1 = vzero();
    int64_t i = b;
    for (; i + 2 * VL <= e; i += 2 * VL) {
      const vf d0 = vsub(vload(x + i), vm), d1 = vsub(vload(x + i + VL), vm);
      s0 = vfma(d0, d0, s0);
      s1 = vfma(d1, d1, s1);
    }
    for (; i + VL <= e; i += VL) {
      const vf d = vsub(vload(x + i), vm);
      s0 = vfma(d, d, s0);
    }
    for (; i < e; i++) {  // a masked load would give (0 - m)^2 in the dead lanes
      const float d = x[i] - m;
      total += (double)(d * d);
    }
    total += (double)vhsum(vadd(s0, s1));
  }
  return total;
}

// y = x*a + b (then max(0, .) when relu) over a run
void affine_run(float* y, const float* x, int64_t n, float a, float b, bool relu) {
  const vf va = vset1(a), vb = vset1(b), zero = vzero();
  int64_t i = 0;
  if (relu) {
    for (; i + VL <= n; i += VL) vstore(y + i, vmax(zero, vfma(vload(x + i), va, vb)));
    if (i < n) vstore_tail(y + i, vmax(zero, vfma(vload_tail(x + i, (int)(n - i)), va, vb)), (int)(n - i));
  } else {
    for (; i + VL <= n; i += VL) vstore(y + i, vfma(vload(x + i), va, vb));
    if (i < n) vstore_tail(y + i, vfma(vload_tail(x + i, (int)(n - i)), va, vb), (int)(n - i));
  }
}

inline vf masked(vf dy, const float* y, int64_t i) { return y ? vselect_pos(vload(y + i), dy) : dy; }
inline vf masked_tail(vf dy, const float* y, int64_t i, int n) { return y ? vselect_pos(vload_tail(y + i, n), dy) : dy; }

// sum(dy') and sum(dy' * (x - m)) over a run, dy' = dy masked by y > 0 when y is given
void grad_sums_run(const float* dy, const float* x, const float* y, int64_t n, float m, double& sum_dy, double& dot) {
  const vf vm = vset1(m);
  for (int64_t b = 0; b < n; b += kFlush) {
    const int64_t e = imin(n, b + kFlush);
    vf s = vzero(), d = vzero();
    int64_t i = b;
    for (; i + VL <= e; i += VL) {
      const vf g = masked(vload(dy + i), y, i);
      s = vadd(s, g);
      d = vfma(g, vsub(vload(x + i), vm), d);
    }
    if (i < e) {
      const int t = (int)(e - i);
      const vf g = masked_tail(vload_tail(dy + i, t), y, i, t);
      s = vadd(s, g);
      d = vfma(g, vsub(vload_tail(x + i, t), vm), d);  // g is 0 past the tail
    }
    sum_dy += (double)vhsum(s);
    dot += (double)vhsum(d);
  }
}

// dx = (dy' - gm - (x - m)*k) * sc over a run (train), dx = dy' * sc (eval: x is not read)
void dx_run(float* dx, const float* dy, const float* x, const float* y, int64_t n, float m, float gm, float k, float sc,
            bool train) {
  const vf vm = vset1(m), vgm = vset1(gm), vk = vset1(k), vsc = vset1(sc);
  int64_t i = 0;
  if (!train) {
    for (; i + VL <= n; i += VL) vstore(dx + i, vmul(masked(vload(dy + i), y, i), vsc));
    if (i < n) vstore_tail(dx + i, vmul(masked_tail(vload_tail(dy + i, (int)(n - i)), y, i, (int)(n - i)), vsc), (int)(n - i));
    return;
  }
  for (; i + VL <= n; i += VL) {
    const vf g = masked(vload(dy + i), y, i);
    vstore(dx + i, vmul(vsub(vsub(g, vgm), vmul(vsub(vload(x + i), vm), vk)), vsc));
  }
  if (i < n) {
    const int t = (int)(n - i);
    const vf g = masked_tail(vload_tail(dy + i, t), y, i, t);
    vstore_tail(dx + i, vmul(vsub(vsub(g, vgm), vmul(vsub(vload_tail(x + i, t), vm), vk)), vsc), t);
  }
}

// The (N, C) layout, VL channels at a time: column groups, and loads/stores of `lanes` channels
int64_t column_groups(int64_t C) { return (C + VL - 1) / VL; }
inline vf load_lanes(const float* p, int lanes) { return lanes == VL ? vload(p) : vload_tail(p, lanes); }
inline void store_lanes(float* p, vf v, int lanes) {
  if (lanes == VL)
    vstore(p, v);
  else
    vstore_tail(p, v, lanes);
}

inline void flush_lanes(vf v, double* total) {
  float lanes[VL];
  vstore(lanes, v);
  for (int l = 0; l < VL; l++) total[l] += (double)lanes[l];
}

// total[l] += sum over rows n of value(n)[l]: float lanes, flushed into double every kFlushRows rows
constexpr int64_t kFlushRows = 64;
template <class Value>
void column_sums(double* total, int64_t N, const Value& value) {
  for (int64_t b = 0; b < N; b += kFlushRows) {
    const int64_t e = imin(N, b + kFlushRows);
    vf s0 = vzero(), s1 = vzero();
    int64_t n = b;
    for (; n + 2 <= e; n += 2) {  // two chains: the adds' latency, not their throughput, bounds one
      s0 = vadd(s0, value(n));
      s1 = vadd(s1, value(n + 1));
    }
    if (n < e) s0 = vadd(s0, value(n));
    flush_lanes(vadd(s0, s1), total);
  }
}

struct ChannelStats {
  double mean, var_sum;  // var_sum = sum((x - mean)^2)
};

// Saves the statistics, updates the running ones and returns the affine (a, b) of channel c.
inline void finish_channel(int64_t c, ChannelStats st, int64_t M, float eps, float momentum, const float* weight,
                           const float* bias, float* save_mean, float* save_invstd, float* running_mean,
                           float* running_var, float& a, float& b) {
  const double invstd = 1.0 / std::sqrt(st.var_sum / (double)M + (double)eps);
  save_mean[c] = (float)st.mean;
  save_invstd[c] = (float)invstd;
  if (running_mean) running_mean[c] = (float)((1.0 - momentum) * running_mean[c] + (double)momentum * st.mean);
  if (running_var)
    running_var[c] = (float)((1.0 - momentum) * running_var[c] + (double)momentum * st.var_sum / (double)(M - 1));
  const double w = weight ? (double)weight[c] : 1.0, bi = bias ? (double)bias[c] : 0.0;
  a = (float)(invstd * w);
  b = (float)(bi - st.mean * invstd * w);
}

}  // namespace

void batchnorm_forward_train(float* y, float* save_mean, float* save_invstd, float* running_mean, float* running_var,
                             const float* x, const float* weight, const float* bias, int64_t N, int64_t C, int64_t S,
                             float eps, float momentum, bool relu) {
  const int64_t M = N * S;
  if (S > 1) {
    parallel(C, channel_grain(M), [&](int64_t c0, int64_t c1, int) {
      for (int64_t c = c0; c < c1; c++) {
        double sum = 0;
        for (int64_t n = 0; n < N; n++) sum += sum_run(x + (n * C + c) * S, S);
        ChannelStats st{sum / (double)M, 0.0};
        const float mean_f = (float)st.mean;
        for (int64_t n = 0; n < N; n++) st.var_sum += centered_squares_run(x + (n * C + c) * S, S, mean_f);
        float a, b;
        finish_channel(c, st, M, eps, momentum, weight, bias, save_mean, save_invstd, running_mean, running_var, a, b);
        for (int64_t n = 0; n < N; n++) affine_run(y + (n * C + c) * S, x + (n * C + c) * S, S, a, b, relu);
      }
    });
    return;
  }
  // (N, C): VL channels at a time, walked down the N rows (rows are C floats apart)
  parallel(column_groups(C), channel_grain(N * VL), [&](int64_t g0, int64_t g1, int) {
    for (int64_t grp = g0; grp < g1; grp++) {
      const int64_t c = grp * VL;
      const int lanes = (int)imin(VL, C - c);
      double sum[VL] = {0}, sq[VL] = {0};
      column_sums(sum, N, [&](int64_t n) { return load_lanes(x + n * C + c, lanes); });
      float mean_f[VL] = {0}, a[VL] = {0}, b[VL] = {0};
      for (int l = 0; l < lanes; l++) mean_f[l] = (float)(sum[l] / (double)N);
      const vf vm = vload(mean_f);
      column_sums(sq, N, [&](int64_t n) {
        const vf d = vsub(load_lanes(x + n * C + c, lanes), vm);  // dead lanes: 0 - 0
        return vmul(d, d);
      });
      for (int l = 0; l < lanes; l++)
        finish_channel(c + l, ChannelStats{sum[l] / (double)N, sq[l]}, N, eps, momentum, weight, bias, save_mean,
                       save_invstd, running_mean, running_var, a[l], b[l]);
      const vf va = vload(a), vb = vload(b), zero = vzero();
      for (int64_t n = 0; n < N; n++) {
        vf v = vfma(load_lanes(x + n * C + c, lanes), va, vb);
        if (relu) v = vmax(zero, v);
        store_lanes(y + n * C + c, v, lanes);
      }
    }
  });
}

void batchnorm_forward_eval(float* y, const float* x, const float* running_mean, const float* running_var,
                            const float* weight, const float* bias, int64_t N, int64_t C, int64_t S, float eps,
                            bool relu) {
  // per-channel affine, folded once: a = weight/sqrt(var + eps), b = bias - mean*a
  float* ab = static_cast<float*>(std::malloc((size_t)(2 * C) * sizeof(float)));
  if (!ab) throw std::bad_alloc();
  float *a = ab, *b = ab + C;
  for (int64_t c = 0; c < C; c++) {
    const double invstd = 1.0 / std::sqrt((double)running_var[c] + (double)eps);
    const double w = weight ? (double)weight[c] : 1.0, bi = bias ? (double)bias[c] : 0.0;
    a[c] = (float)(invstd * w);
    b[c] = (float)(bi - (double)running_mean[c] * invstd * w);
  }
  if (S > 1) {
    parallel(N * C, channel_grain(S), [&](int64_t p0, int64_t p1, int) {
      for (int64_t p = p0; p < p1; p++) affine_run(y + p * S, x + p * S, S, a[p % C], b[p % C], relu);
    });
  } else {
    parallel(N, channel_grain(C), [&](int64_t n0, int64_t n1, int) {
      for (int64_t n = n0; n < n1; n++) {
        const float* row = x + n * C;
        float* out = y + n * C;
        if (relu)
          for (int64_t c = 0; c < C; c++) {
            const float v = row[c] * a[c] + b[c];
            out[c] = v < 0.0f ? 0.0f : v;
          }
        else
          for (int64_t c = 0; c < C; c++) out[c] = row[c] * a[c] + b[c];
      }
    });
  }
  std::free(ab);
}

void batchnorm_backward(float* dx, float* dweight, float* dbias, const float* dy, const float* x, const float* mean,
                        const float* invstd, const float* weight, const float* y, int64_t N, int64_t C, int64_t S,
                        bool train) {
  const int64_t M = N * S;
  // per channel: from the two sums, the dx coefficients dx = (dy' - gm - (x - mean)*k) * sc
  auto coefficients = [&](int64_t c, double sum_dy, double dot, float& gm, float& k, float& sc) {
    if (dweight) dweight[c] = (float)(dot * (double)invstd[c]);
    if (dbias) dbias[c] = (float)sum_dy;
    const double is = (double)invstd[c];
    sc = (float)(is * (weight ? (double)weight[c] : 1.0));
    gm = train ? (float)(sum_dy / (double)M) : 0.0f;
    k = train ? (float)(dot * is * is / (double)M) : 0.0f;
  };
  if (S > 1) {
    parallel(C, channel_grain(M), [&](int64_t c0, int64_t c1, int) {
      for (int64_t c = c0; c < c1; c++) {
        double sum_dy = 0, dot = 0;
        if (dweight || dbias || (dx && train))
          for (int64_t n = 0; n < N; n++) {
            const int64_t off = (n * C + c) * S;
            grad_sums_run(dy + off, x + off, y ? y + off : nullptr, S, mean[c], sum_dy, dot);
          }
        float gm, k, sc;
        coefficients(c, sum_dy, dot, gm, k, sc);
        if (dx)
          for (int64_t n = 0; n < N; n++) {
            const int64_t off = (n * C + c) * S;
            dx_run(dx + off, dy + off, x + off, y ? y + off : nullptr, S, mean[c], gm, k, sc, train);
          }
      }
    });
    return;
  }
  // (N, C): VL channels at a time, walked down the N rows
  parallel(column_groups(C), channel_grain(N * VL), [&](int64_t g0, int64_t g1, int) {
    for (int64_t grp = g0; grp < g1; grp++) {
      const int64_t c = grp * VL;
      const int lanes = (int)imin(VL, C - c);
      float m[VL] = {0}, gm[VL] = {0}, k[VL] = {0}, sc[VL] = {0};
      for (int l = 0; l < lanes; l++) m[l] = mean[c + l];
      const vf vm = vload(m);
      auto grad_at = [&](int64_t n) {  // dy, masked by y > 0 for a fused ReLU
        const vf g = load_lanes(dy + n * C + c, lanes);
        return y ? vselect_pos(load_lanes(y + n * C + c, lanes), g) : g;
      };
      double sum_dy[VL] = {0}, dot[VL] = {0};
      if (dweight || dbias || (dx && train))
        for (int64_t b = 0; b < N; b += kFlushRows) {  // both sums in one pass
          vf s = vzero(), d = vzero();
          for (int64_t n = b; n < imin(N, b + kFlushRows); n++) {
            const vf g = grad_at(n);
            s = vadd(s, g);
            d = vfma(g, vsub(load_lanes(x + n * C + c, lanes), vm), d);
          }
          flush_lanes(s, sum_dy);
          flush_lanes(d, dot);
        }
      for (int l = 0; l < lanes; l++) coefficients(c + l, sum_dy[l], dot[l], gm[l], k[l], sc[l]);
      if (!dx) continue;
      const vf vgm = vload(gm), vk = vload(k), vsc = vload(sc);
      for (int64_t n = 0; n < N; n++) {
        const vf g = grad_at(n);
        const vf r = train ? vmul(vsub(vsub(g, vgm), vmul(vsub(load_lanes(x + n * C + c, lanes), vm), vk)), vsc) : vmul(g, vsc);
        store_lanes(dx + n * C + c, r, lanes);
      }
    }
  });
}

}  // namespace SG_NS
}  // namespace sg
