// Batch normalization (Ioffe & Szegedy, 2015) with PyTorch's semantics.
//
// x, y, dx, dy are (N, C, S) with S = H*W (S = 1: the (N, C) layout); per-channel vectors are (C).
// M = N*S values per channel. Statistics are accumulated in double.
//
// Forward (train): mean = sum(x)/M, var = sum((x - mean)^2)/M (biased, to normalise), both from one
//   pass of shifted sums (see shifted_sums_run),
//   invstd = 1/sqrt(var + eps); y = x*a + b with the per-channel affine a = invstd*weight,
//   b = bias - mean*a, so the output pass is one FMA per element.
//   running_mean += momentum*(mean - running_mean); running_var likewise with sum(.)/(M - 1).
// Forward (eval): the same affine from running_mean and running_var.
// Backward (train), with xhat = (x - mean)*invstd and y = weight*xhat + bias:
//   dbias = sum(dy), dweight = sum(dy*(x - mean))*invstd, and since mean and invstd depend on x,
//   dx = weight*invstd * (dy - sum(dy)/M - (x - mean) * invstd^2 * sum(dy*(x - mean))/M).
//   The two sums come from one fused pass over (dy, x); dx is a second pass.
// Backward (eval): mean and invstd are constants, so dx = dy*weight*invstd.
// In phases (for a BatchNorm whose statistics are merged across processes; PyTorch's
//   batch_norm_stats / _elemt / _backward_reduce / _backward_elemt): stats gives mean and variance, apply
//   y from given mean and invstd, backward_reduce sum(dy) and sum(dy*(x - mean)), backward_apply dx
//   from given sums over `count` values. The one-call kernels above are the same passes; over
//   (N, C, S) with large planes they run both passes channel by channel, the second from L2.
// Two layouts, two loop orders: (N, C, S) walks each channel's contiguous planes with vector lanes
// and splits channels over threads (planes under kSmallPlane values are walked sample by sample
// instead); (N, C) is contiguous along C, so it vectorises across channels and walks whole rows.
// Sums over samples or rows go by blocks fixed by N, added in order: the same for any thread count.
#include <cstdlib>
#include <new>
#include <type_traits>

#include "kernels.h"
#include "simd.h"

namespace sg {
namespace SG_NS {
namespace {

constexpr int64_t kFlush = 1024;  // float lanes are flushed into a double sum every kFlush values

// grain (channels per task) so that each task touches at least ~32K values
inline int64_t channel_grain(int64_t per_channel) { return imax(1, 32768 / imax(1, per_channel)); }

// (N, C, S) with large planes is walked one channel at a time, and a channel's planes are C*S
// values apart, so each plane starts on a page of its own, where the hardware prefetchers stop (and
// which misses the TLB). The first pass over a channel (its sums) therefore prefetches the plane
// kPlanesAhead ahead. The second pass (output, dx) re-reads the channel, last plane first, so it
// starts on those the first pass left in L2 (planes a multiple of 64 KiB apart all fall in the
// same L2 sets, so only the last few stay).
constexpr int64_t kPlanesAhead = 2;

// sum(x - k) and sum((x - k)^2) over a run, in one pass. Shifting by k, a value of the channel,
// keeps sum((x-k)^2) - sum(x-k)^2/M from cancelling when |mean| >> std (the shifted-data
// algorithm); float lanes are flushed into double every kFlush values. ahead > 0: the line `ahead`
// values past each one read is prefetched (see kPlanesAhead).
void shifted_sums_run(const float* x, int64_t n, float k, double& s1, double& s2, int64_t ahead = 0) {
  const vf vk = vset1(k);
  for (int64_t b = 0; b < n; b += kFlush) {
    const int64_t e = imin(n, b + kFlush);
    vf a0 = vzero(), a1 = vzero(), q0 = vzero(), q1 = vzero();
    int64_t i = b;
    for (; i + 2 * VL <= e; i += 2 * VL) {
      if (ahead)
        for (int64_t j = 0; j < 2 * VL; j += kLineFloats) __builtin_prefetch(x + i + j + ahead);
      const vf d0 = vsub(vload(x + i), vk), d1 = vsub(vload(x + i + VL), vk);
      a0 = vadd(a0, d0);
      a1 = vadd(a1, d1);
      q0 = vfma(d0, d0, q0);
      q1 = vfma(d1, d1, q1);
    }
    for (; i + VL <= e; i += VL) {
      const vf d = vsub(vload(x + i), vk);
      a0 = vadd(a0, d);
      q0 = vfma(d, d, q0);
    }
    for (; i < e; i++) {  // a masked load would give 0 - k in the dead lanes
      const float d = x[i] - k;
      s1 += (double)d;
      s2 += (double)(d * d);
    }
    s1 += (double)vhsum(vadd(a0, a1));
    s2 += (double)vhsum(vadd(q0, q1));
  }
}

// y (C) = x (C) * a (C) + b (C) (then max(0, .) when relu): one row of the (N, C) layout
void write_affine_row(float* y, const float* x, const float* a, const float* b, int64_t C, bool relu, bool stream) {
  write_run(y, C, stream, {x, a, b}, [=](int64_t c, int64_t lanes) {
    const vf r = vfma(vload_n(x + c, lanes), vload_n(a + c, lanes), vload_n(b + c, lanes));
    return relu ? vmax(vzero(), r) : r;
  });
}

// y = x*a + b (then max(0, .) when relu) over a run; stream: non-temporal stores (see simd.h)
void affine_run(float* y, const float* x, int64_t n, float a, float b, bool relu, bool stream) {
  const vf va = vset1(a), vb = vset1(b), zero = vzero();
  write_run(y, n, stream, {x}, [&](int64_t i, int64_t lanes) {
    const vf r = vfma(vload_n(x + i, lanes), va, vb);
    return relu ? vmax(zero, r) : r;
  });
}

// The output pass from per-channel affines a (C), b (C): y = x*a[c] + b[c] (then max(0, .) when
// relu) over every plane of (N, C, S), or every row of (N, C) when S = 1
void write_affine(float* y, const float* x, const float* a, const float* b, int64_t N, int64_t C, int64_t S, bool relu,
                  bool stream) {
  // when each run is walked down (simd.h), so are the runs: one descending stream for the prefetchers
  const bool down = stream && walk_down(y, {x});
  if (S > 1)
    parallel(N * C, channel_grain(S), [&](int64_t p0, int64_t p1, int) {
      for (int64_t q = p0; q < p1; q++) {
        const int64_t p = down ? p0 + p1 - 1 - q : q;
        affine_run(y + p * S, x + p * S, S, a[p % C], b[p % C], relu, stream);
      }
      if (stream) stream_fence();
    });
  else
    parallel(N, channel_grain(C), [=](int64_t n0, int64_t n1, int) {
      for (int64_t q = n0; q < n1; q++) {
        const int64_t n = down ? n0 + n1 - 1 - q : q;
        write_affine_row(y + n * C, x + n * C, a, b, C, relu, stream);
      }
      if (stream) stream_fence();
    });
}

// dy' = dy masked by y > 0 when kMasked (y is a fused ReLU's output), for `lanes` values at dy (and y)
template <bool kMasked>
inline vf grad_n(const float* dy, const float* y, int64_t lanes) {
  const vf g = vload_n(dy, lanes);
  return kMasked ? vselect_pos(vload_n(y, lanes), g) : g;
}

// sum(dy') and sum(dy' * (x - m)) over a run; ahead > 0 prefetches as in shifted_sums_run
template <bool kMasked>
void grad_sums_run(const float* dy, const float* x, const float* y, int64_t n, float m, double& sum_dy, double& dot,
                   int64_t ahead = 0) {
  const vf vm = vset1(m);
  for (int64_t b = 0; b < n; b += kFlush) {
    const int64_t e = imin(n, b + kFlush);
    vf s = vzero(), d = vzero();
    auto add = [&](int64_t i, int64_t lanes) {
      const vf g = grad_n<kMasked>(dy + i, kMasked ? y + i : nullptr, lanes);
      s = vadd(s, g);
      d = vfma(g, vsub(vload_n(x + i, lanes), vm), d);  // g is 0 past the tail
    };
    int64_t i = b;
    if (ahead)
      for (; i + kLineFloats <= e; i += kLineFloats) {
        __builtin_prefetch(dy + i + ahead);
        __builtin_prefetch(x + i + ahead);
        if (kMasked) __builtin_prefetch(y + i + ahead);
        for (int64_t j = 0; j < kLineFloats; j += VL) add(i + j, VL);
      }
    for (; i + VL <= e; i += VL) add(i, VL);  // whole vectors, lanes a constant
    if (i < e) add(i, e - i);
    sum_dy += (double)vhsum(s);
    dot += (double)vhsum(d);
  }
}

// dx = (dy' - gm - (x - m)*k) * sc over a run (train), dx = dy' * sc (eval: x is not read)
template <bool kMasked>
void dx_run(float* dx, const float* dy, const float* x, const float* y, int64_t n, float m, float gm, float k, float sc,
            bool train, bool stream) {
  const vf vm = vset1(m), vgm = vset1(gm), vk = vset1(k), vsc = vset1(sc);
  write_run(dx, n, stream, {dy, train ? x : nullptr, kMasked ? y : nullptr}, [&](int64_t i, int64_t lanes) {
    const vf g = grad_n<kMasked>(dy + i, kMasked ? y + i : nullptr, lanes);
    return train ? vmul(vsub(vsub(g, vgm), vmul(vsub(vload_n(x + i, lanes), vm), vk)), vsc) : vmul(g, vsc);
  });
}

// n zeroed values of T, freed when it goes out of scope (also when a kernel throws bad_alloc)
template <class T>
struct Buffer {
  T* data;
  explicit Buffer(int64_t n) : data(static_cast<T*>(std::calloc((size_t)imax(n, 1), sizeof(T)))) {
    if (!data) throw std::bad_alloc();
  }
  ~Buffer() { std::free(data); }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
};

// The (N, C) layout: rows are contiguous along C, so every pass walks whole rows, vectors along C
// (walking a channel down the rows instead strides C floats: with C a power of two every access
// falls in the same L1 set). The rows are cut into blocks fixed by N alone (kFlushRows rows, more
// when N is large, at most kMaxBlocks blocks); each block's per-channel sums are taken in float
// lanes, flushed to double, and the blocks are added in order: threads take whole blocks, so the
// result is the same for any thread count.
constexpr int64_t kFlushRows = 64;
constexpr int64_t kMaxBlocks = 256;

// out0 (C), out1 (C) = the sums of the blocks' partial sums (blocks x (2, C)), added in block order
void add_block_sums(double* out0, double* out1, const double* partial, int64_t blocks, int64_t C) {
  for (int64_t c = 0; c < C; c++) out0[c] = out1[c] = 0.0;
  for (int64_t blk = 0; blk < blocks; blk++)
    for (int64_t c = 0; c < C; c++) {
      out0[c] += partial[blk * 2 * C + c];
      out1[c] += partial[blk * 2 * C + C + c];
    }
}

// out0 (C), out1 (C) = sums over the N rows of the two vectors values(row(n), c, lanes, v0, v1)
// gives for channels [c, c + lanes) of row n, where row(n) is that row's pointers (one per array),
// kRows rows per visit of the float lanes. More rows per visit load and store the lanes less
// often, but when C is a multiple of 1024 the rows are a multiple of 4 KiB apart, so every row's
// line at c falls in one 8-way L1 set: four rows of each of three arrays (the fused-ReLU backward:
// dy, x, y) thrash it, so three arrays go two rows a visit; one or two arrays keep four. A visit's row pointers are taken once, into locals, and the
// channel loop runs on whole vectors with lanes a constant: addressing each row as n * C + c
// inside the loop, through the callers' captures, left GCC reloading spilled pointers and C from
// the stack at every vector.
template <int64_t kRows, class Row, class Values>
void row_sums(double* out0, double* out1, int64_t N, int64_t C, const Row& row, const Values& values) {
  const int64_t block_rows = kFlushRows * imax(1, (N + kFlushRows * kMaxBlocks - 1) / (kFlushRows * kMaxBlocks));
  const int64_t blocks = (N + block_rows - 1) / block_rows;
  // per block: its double sums (2C); per thread: float lanes (2C)
  Buffer<double> partial(blocks * 2 * C);
  Buffer<float> lanes_all(num_threads() * 2 * C);
  parallel(blocks, imax(1, 32768 / imax(C * block_rows, 1)), [&](int64_t b0, int64_t b1, int tid) {
    // local copies: the stores below cannot alias them, so they stay in registers
    const Row row_of = row;
    const Values value_of = values;
    const int64_t cols = C;
    float* f0 = lanes_all.data + (int64_t)tid * 2 * cols;
    float* f1 = f0 + cols;
    for (int64_t blk = b0; blk < b1; blk++) {
      double* d0 = partial.data + blk * 2 * cols;
      double* d1 = d0 + cols;
      const int64_t end = imin(N, (blk + 1) * block_rows);
      for (int64_t r = blk * block_rows; r < end; r += kFlushRows) {
        const int64_t r_end = imin(end, r + kFlushRows);
        // four rows per visit of the float lanes where there are four: a one-row loop is bound by
        // the lanes' loads and stores (two stores per vector on a core that retires one), not the rows'
        auto add_rows = [&](int64_t n, auto rows) {
          constexpr int64_t R = decltype(rows)::value;
          decltype(row_of(n)) at[R];
          for (int64_t q = 0; q < R; q++) at[q] = row_of(n + q);
          auto add_vector = [&](int64_t c, int64_t lanes) {
            vf s0, s1;
            value_of(at[0], c, lanes, s0, s1);
            for (int64_t q = 1; q < R; q++) {
              vf v0, v1;
              value_of(at[q], c, lanes, v0, v1);
              s0 = vadd(s0, v0);
              s1 = vadd(s1, v1);
            }
            vstore_n(f0 + c, vadd(vload_n(f0 + c, lanes), s0), lanes);
            vstore_n(f1 + c, vadd(vload_n(f1 + c, lanes), s1), lanes);
          };
          int64_t c = 0;
          for (; c + VL <= cols; c += VL) add_vector(c, VL);
          if (c < cols) add_vector(c, cols - c);
        };
        int64_t n = r;
        for (; n + kRows <= r_end; n += kRows) add_rows(n, std::integral_constant<int64_t, kRows>());
        for (; n < r_end; n++) add_rows(n, std::integral_constant<int64_t, 1>());
        for (int64_t c = 0; c < cols; c++) {
          d0[c] += (double)f0[c];
          d1[c] += (double)f1[c];
          f0[c] = f1[c] = 0.0f;
        }
      }
    }
  });
  add_block_sums(out0, out1, partial.data, blocks, C);
}

// (N, C, S) with small planes (S < kSmallPlane): a channel's planes are too short for the hardware
// prefetcher to stream, and even asked for kPlanesAhead planes ahead, walking one channel at a time
// waits on memory. The sample-major walk reads all memory in order instead: per-channel sums over
// blocks of samples fixed by N alone (added in block order: the same result for any thread count),
// then the output pass over the planes in order. From 144 values a plane (576 bytes) the channel
// walk with its planes asked for ahead wins, as its second pass (output, dx) reads the channel
// from L2 where the sample-major one reads the whole array again (measured across 28 x 28 to
// 7 x 7 planes; the crossing is near 144).
constexpr int64_t kSmallPlane = 144;

// out0 (C), out1 (C) = the sums that plane(n, c, t0, t1) adds into t0, t1 for every plane (n, c)
template <class Plane>
void plane_sums(double* out0, double* out1, int64_t N, int64_t C, int64_t S, const Plane& plane) {
  const int64_t block_n = imax(1, (N + kMaxBlocks - 1) / kMaxBlocks), blocks = (N + block_n - 1) / block_n;
  Buffer<double> partial(blocks * 2 * C);
  parallel(blocks, imax(1, 32768 / imax(block_n * C * S, 1)), [&](int64_t b0, int64_t b1, int) {
    const Plane plane_of = plane;  // a local copy, as in row_sums
    for (int64_t blk = b0; blk < b1; blk++) {
      double* d = partial.data + blk * 2 * C;
      for (int64_t n = blk * block_n; n < imin(N, (blk + 1) * block_n); n++)
        for (int64_t c = 0; c < C; c++) plane_of(n, c, d[c], d[C + c]);
    }
  });
  add_block_sums(out0, out1, partial.data, blocks, C);
}

struct ChannelStats {
  double mean, var_sum;  // var_sum = sum((x - mean)^2)
};
// from the shifted sums s1 = sum(x - k), s2 = sum((x - k)^2) over M values
inline ChannelStats shifted_stats(double k, double s1, double s2, int64_t M) {
  const double var_sum = s2 - s1 * s1 / (double)M;  // >= 0 but for rounding, NaN from Inf or NaN inputs
  return ChannelStats{k + s1 / (double)M, var_sum < 0.0 ? 0.0 : var_sum};
}

// For channels [0, C), from their shifts k (C) and shifted sums s1 (C), s2 (C) over M values:
// saves the statistics, updates the running ones and returns the affine a (C), b (C). In chunks,
// each step a loop over the chunk that the compiler vectorises (the operations are the same as
// one channel at a time, so are the values): channel by channel, the square roots and divisions
// took a tenth of the (256, 1024) forward.
void finish_channels(int64_t C, const float* k, const double* s1, const double* s2, int64_t M, float eps,
                     float momentum, const float* weight, const float* bias, float* save_mean, float* save_invstd,
                     float* running_mean, float* running_var, float* a, float* b) {
  constexpr int64_t kChunk = 256;
  double mean[kChunk], var_sum[kChunk], invstd[kChunk];
  for (int64_t c0 = 0; c0 < C; c0 += kChunk) {
    const int64_t n = imin(kChunk, C - c0);
    for (int64_t i = 0; i < n; i++) {
      const ChannelStats st = shifted_stats(k[c0 + i], s1[c0 + i], s2[c0 + i], M);
      mean[i] = st.mean;
      var_sum[i] = st.var_sum;
      invstd[i] = 1.0 / std::sqrt(st.var_sum / (double)M + (double)eps);
      save_mean[c0 + i] = (float)st.mean;
      save_invstd[c0 + i] = (float)invstd[i];
    }
    if (running_mean)
      for (int64_t i = 0; i < n; i++)
        running_mean[c0 + i] = (float)((1.0 - momentum) * running_mean[c0 + i] + (double)momentum * mean[i]);
    if (running_var)
      for (int64_t i = 0; i < n; i++)
        running_var[c0 + i] =
            (float)((1.0 - momentum) * running_var[c0 + i] + (double)momentum * var_sum[i] / (double)(M - 1));
    for (int64_t i = 0; i < n; i++) {
      const double w = weight ? (double)weight[c0 + i] : 1.0, bi = bias ? (double)bias[c0 + i] : 0.0;
      a[c0 + i] = (float)(invstd[i] * w);
      b[c0 + i] = (float)(bi - mean[i] * invstd[i] * w);
    }
  }
}

// For channels [0, C), from their sums of dy' and of dy' * (x - mean) over M values: the parameter
// gradients (either may be null) and the dx coefficients, dx = (dy' - gm - (x - mean)*k) * sc, in
// loops the compiler vectorises (see finish_channels). mean and invstd are the saved statistics
// when train, else the running ones (dx = dy' * sc).
void grad_coefficients(int64_t C, const double* sum_dy, const double* dot, const float* invstd, const float* weight,
                       int64_t M, bool train, float* dweight, float* dbias, float* gm, float* k, float* sc) {
  if (dweight)
    for (int64_t c = 0; c < C; c++) dweight[c] = (float)(dot[c] * (double)invstd[c]);
  if (dbias)
    for (int64_t c = 0; c < C; c++) dbias[c] = (float)sum_dy[c];
  for (int64_t c = 0; c < C; c++) sc[c] = (float)((double)invstd[c] * (weight ? (double)weight[c] : 1.0));
  if (!train) {
    for (int64_t c = 0; c < C; c++) gm[c] = k[c] = 0.0f;
    return;
  }
  for (int64_t c = 0; c < C; c++) gm[c] = (float)(sum_dy[c] / (double)M);
  for (int64_t c = 0; c < C; c++) {
    const double is = (double)invstd[c];
    k[c] = (float)(dot[c] * is * is / (double)M);
  }
}

// k (C) = each channel's first value (its shift), s1 (C), s2 (C) = the shifted sums sum(x - k),
// A channel's shifted sums again in double, one value at a time: for the rare channel whose float
// lanes overflowed (finite values beyond about 1.8e19 from the shift) or that holds Inf or NaN,
// where the double sums give what PyTorch gives (a finite variance, or NaN).
void exact_shifted_sums(float k, double& s1, double& s2, const float* x, int64_t N, int64_t C, int64_t S, int64_t c) {
  s1 = s2 = 0.0;
  for (int64_t n = 0; n < N; n++)
    for (int64_t i = 0; i < S; i++) {
      const double d = (double)x[(n * C + c) * S + i] - (double)k;
      s1 += d;
      s2 += d * d;
    }
}

// sum((x - k)^2) of every channel over its N*S values, by the layout's walk (see row_sums,
// plane_sums, kPlanesAhead)
void channel_shifted_sums(float* k, double* s1, double* s2, const float* x, int64_t N, int64_t C, int64_t S) {
  for (int64_t c = 0; c < C; c++) k[c] = x[c * S];
  if (S == 1)
    row_sums<4>(s1, s2, N, C, [=](int64_t n) { return x + n * C; },
                [=](const float* row, int64_t c, int64_t lanes, vf& v0, vf& v1) {
                  v0 = vsub(vload_n(row + c, lanes), vload_n(k + c, lanes));  // dead lanes: 0 - 0
                  v1 = vmul(v0, v0);
                });
  else if (S < kSmallPlane)
    plane_sums(s1, s2, N, C, S, [=](int64_t n, int64_t c, double& t1, double& t2) {
      shifted_sums_run(x + (n * C + c) * S, S, k[c], t1, t2);
    });
  else
    parallel(C, channel_grain(N * S), [&](int64_t c0, int64_t c1, int) {
      for (int64_t c = c0; c < c1; c++) {
        s1[c] = s2[c] = 0.0;
        for (int64_t n = 0; n < N; n++)
          shifted_sums_run(x + (n * C + c) * S, S, k[c], s1[c], s2[c], n + kPlanesAhead < N ? kPlanesAhead * C * S : 0);
      }
    });
  for (int64_t c = 0; c < C; c++)
    if (!std::isfinite(s2[c])) exact_shifted_sums(k[c], s1[c], s2[c], x, N, C, S, c);
}

// sum_dy (C) = sum(dy'), dot (C) = sum(dy' * (x - mean)) of every channel over its N*S values, by
// the layout's walk (three arrays stream with a fused ReLU's y: two rows per visit, see row_sums)
template <bool kMasked>
void grad_channel_sums(double* sum_dy, double* dot, const float* dy, const float* x, const float* mean, const float* y,
                       int64_t N, int64_t C, int64_t S) {
  if (S == 1) {
    struct Rows {
      const float *dy, *x, *y;
    };
    auto rows_at = [=](int64_t n) { return Rows{dy + n * C, x + n * C, kMasked ? y + n * C : nullptr}; };
    auto grad_values = [=](const Rows& r, int64_t c, int64_t lanes, vf& v0, vf& v1) {
      v0 = grad_n<kMasked>(r.dy + c, kMasked ? r.y + c : nullptr, lanes);
      v1 = vmul(v0, vsub(vload_n(r.x + c, lanes), vload_n(mean + c, lanes)));
    };
    if (kMasked)
      row_sums<2>(sum_dy, dot, N, C, rows_at, grad_values);
    else
      row_sums<4>(sum_dy, dot, N, C, rows_at, grad_values);
  } else if (S < kSmallPlane) {
    plane_sums(sum_dy, dot, N, C, S, [=](int64_t n, int64_t c, double& t1, double& t2) {
      const int64_t off = (n * C + c) * S;
      grad_sums_run<kMasked>(dy + off, x + off, kMasked ? y + off : nullptr, S, mean[c], t1, t2);
    });
  } else
    parallel(C, channel_grain(N * S), [&](int64_t c0, int64_t c1, int) {
      for (int64_t c = c0; c < c1; c++) {
        sum_dy[c] = dot[c] = 0.0;
        for (int64_t n = 0; n < N; n++) {
          const int64_t off = (n * C + c) * S;
          grad_sums_run<kMasked>(dy + off, x + off, kMasked ? y + off : nullptr, S, mean[c], sum_dy[c], dot[c],
                                 n + kPlanesAhead < N ? kPlanesAhead * C * S : 0);
        }
      }
    });
}

// The dx pass from per-channel coefficients: dx = (dy' - gm - (x - mean)*k) * sc (train), dy' * sc
// (eval), over every plane of (N, C, S), or every row of (N, C) when S = 1
template <bool kMasked>
void dx_pass(float* dx, const float* dy, const float* x, const float* y, const float* mean, const float* gm,
             const float* k, const float* sc, int64_t N, int64_t C, int64_t S, bool train, bool stream) {
  if (S > 1) {
    parallel(N * C, channel_grain(S), [&](int64_t p0, int64_t p1, int) {
      for (int64_t p = p0; p < p1; p++) {
        const int64_t c = p % C;
        dx_run<kMasked>(dx + p * S, dy + p * S, x + p * S, kMasked ? y + p * S : nullptr, S, mean[c], gm[c], k[c], sc[c],
                        train, stream);
      }
      if (stream) stream_fence();
    });
    return;
  }
  parallel(N, imax(1, 32768 / imax(C, 1)), [=](int64_t n0, int64_t n1, int) {
    for (int64_t n = n0; n < n1; n++) {
      const float *rdy = dy + n * C, *rx = x + n * C, *ry = kMasked ? y + n * C : nullptr;
      write_run(dx + n * C, C, stream, {rdy, rx, ry, sc, mean, gm, k}, [=](int64_t c, int64_t lanes) {
        const vf g = grad_n<kMasked>(rdy + c, kMasked ? ry + c : nullptr, lanes), vsc = vload_n(sc + c, lanes);
        const vf centered = vsub(vload_n(rx + c, lanes), vload_n(mean + c, lanes));
        return train ? vmul(vsub(vsub(g, vload_n(gm + c, lanes)), vmul(centered, vload_n(k + c, lanes))), vsc)
                     : vmul(g, vsc);
      });
    }
    if (stream) stream_fence();
  });
}

}  // namespace

void batchnorm_forward_train(float* y, float* save_mean, float* save_invstd, float* running_mean, float* running_var,
                             const float* x, const float* weight, const float* bias, int64_t N, int64_t C, int64_t S,
                             float eps, float momentum, bool relu) {
  if (N * C * S == 0) return;  // nothing to normalize (training rejects empty channels before this)
  const int64_t M = N * S;
  const bool stream = N * C * S * (int64_t)sizeof(float) >= kStreamBytes;
  if (S >= kSmallPlane) {
    // channel by channel: its shifted sums, then its output pass (from L2, last plane first)
    parallel(C, channel_grain(M), [&](int64_t c0, int64_t c1, int) {
      for (int64_t c = c0; c < c1; c++) {
        const float k = x[c * S];  // the shift: the channel's first value
        double s1 = 0, s2 = 0;
        for (int64_t n = 0; n < N; n++)
          shifted_sums_run(x + (n * C + c) * S, S, k, s1, s2, n + kPlanesAhead < N ? kPlanesAhead * C * S : 0);
        if (!std::isfinite(s2)) exact_shifted_sums(k, s1, s2, x, N, C, S, c);
        float a, b;
        finish_channels(1, &k, &s1, &s2, M, eps, momentum, weight ? weight + c : nullptr, bias ? bias + c : nullptr,
                        save_mean + c, save_invstd + c, running_mean ? running_mean + c : nullptr,
                        running_var ? running_var + c : nullptr, &a, &b);
        for (int64_t n = N - 1; n >= 0; n--)  // last plane first (see kPlanesAhead)
          affine_run(y + (n * C + c) * S, x + (n * C + c) * S, S, a, b, relu, stream);
      }
      if (stream) stream_fence();
    });
    return;
  }
  // the shifted sums of every channel in one pass, then the output pass
  Buffer<float> arrays(3 * C);
  float *k = arrays.data, *a = k + C, *b = a + C;
  Buffer<double> sums(2 * C);
  channel_shifted_sums(k, sums.data, sums.data + C, x, N, C, S);
  finish_channels(C, k, sums.data, sums.data + C, M, eps, momentum, weight, bias, save_mean, save_invstd, running_mean,
                  running_var, a, b);
  write_affine(y, x, a, b, N, C, S, relu, stream);
}

void batchnorm_forward_eval(float* y, const float* x, const float* running_mean, const float* running_var,
                            const float* weight, const float* bias, int64_t N, int64_t C, int64_t S, float eps,
                            bool relu) {
  if (N * C * S == 0) return;
  // per-channel affine, folded once: a = weight/sqrt(var + eps), b = bias - mean*a
  Buffer<float> ab(2 * C);
  float *a = ab.data, *b = a + C;
  for (int64_t c = 0; c < C; c++) {
    const double invstd = 1.0 / std::sqrt((double)running_var[c] + (double)eps);
    const double w = weight ? (double)weight[c] : 1.0, bi = bias ? (double)bias[c] : 0.0;
    a[c] = (float)(invstd * w);
    b[c] = (float)(bi - (double)running_mean[c] * invstd * w);
  }
  const bool stream = N * C * S * (int64_t)sizeof(float) >= kStreamBytes;
  write_affine(y, x, a, b, N, C, S, relu, stream);
}

namespace {

// batchnorm_backward, with kMasked = (y is given): whether dy is masked by a fused ReLU's output is
// a compile-time choice, so no inner loop tests y
template <bool kMasked>
void backward(float* dx, float* dweight, float* dbias, const float* dy, const float* x, const float* mean,
              const float* invstd, const float* weight, const float* y, int64_t N, int64_t C, int64_t S, bool train) {
  const int64_t M = N * S;
  const bool stream = N * C * S * (int64_t)sizeof(float) >= kStreamBytes;
  const bool sums_needed = dweight || dbias || (dx && train);
  if (S >= kSmallPlane) {
    // channel by channel: its sums, then its dx (from L2, last plane first)
    parallel(C, channel_grain(M), [&](int64_t c0, int64_t c1, int) {
      for (int64_t c = c0; c < c1; c++) {
        double sum_dy = 0, dot = 0;
        if (sums_needed)
          for (int64_t n = 0; n < N; n++) {
            const int64_t off = (n * C + c) * S;
            grad_sums_run<kMasked>(dy + off, x + off, kMasked ? y + off : nullptr, S, mean[c], sum_dy, dot,
                                   n + kPlanesAhead < N ? kPlanesAhead * C * S : 0);
          }
        float gm, k, sc;
        grad_coefficients(1, &sum_dy, &dot, invstd + c, weight ? weight + c : nullptr, M, train,
                          dweight ? dweight + c : nullptr, dbias ? dbias + c : nullptr, &gm, &k, &sc);
        if (dx)
          for (int64_t n = N - 1; n >= 0; n--) {  // last plane first (see kPlanesAhead)
            const int64_t off = (n * C + c) * S;
            dx_run<kMasked>(dx + off, dy + off, x + off, kMasked ? y + off : nullptr, S, mean[c], gm, k, sc, train,
                            stream);
          }
      }
      if (stream) stream_fence();
    });
    return;
  }
  // both per-channel sums in one pass, then dx
  Buffer<float> arrays(3 * C);
  float *gm = arrays.data, *k = gm + C, *sc = k + C;
  Buffer<double> sums(2 * C);
  double *sum_dy = sums.data, *dot = sum_dy + C;
  if (sums_needed) grad_channel_sums<kMasked>(sum_dy, dot, dy, x, mean, y, N, C, S);
  grad_coefficients(C, sum_dy, dot, invstd, weight, M, train, dweight, dbias, gm, k, sc);
  if (dx) dx_pass<kMasked>(dx, dy, x, y, mean, gm, k, sc, N, C, S, train, stream);
}

}  // namespace

void batchnorm_backward(float* dx, float* dweight, float* dbias, const float* dy, const float* x, const float* mean,
                        const float* invstd, const float* weight, const float* y, int64_t N, int64_t C, int64_t S,
                        bool train) {
  if (N * C * S == 0) {  // the sums over no values are 0
    for (int64_t c = 0; c < C; c++) {
      if (dweight) dweight[c] = 0.0f;
      if (dbias) dbias[c] = 0.0f;
    }
    return;
  }
  if (y)
    backward<true>(dx, dweight, dbias, dy, x, mean, invstd, weight, y, N, C, S, train);
  else
    backward<false>(dx, dweight, dbias, dy, x, mean, invstd, weight, y, N, C, S, train);
}

void batchnorm_stats(float* mean, float* variance, const float* x, int64_t N, int64_t C, int64_t S) {
  if (N * C * S == 0) return;  // no channels (no values per channel is rejected before this)
  const int64_t M = N * S;
  Buffer<float> k(C);
  Buffer<double> sums(2 * C);
  channel_shifted_sums(k.data, sums.data, sums.data + C, x, N, C, S);
  for (int64_t c = 0; c < C; c++) {
    const ChannelStats st = shifted_stats(k.data[c], sums.data[c], sums.data[C + c], M);
    mean[c] = (float)st.mean;
    variance[c] = (float)(st.var_sum / (double)M);
  }
}

void batchnorm_apply(float* y, const float* x, const float* mean, const float* invstd, const float* weight,
                     const float* bias, int64_t N, int64_t C, int64_t S, bool relu) {
  if (N * C * S == 0) return;
  Buffer<float> ab(2 * C);
  float *a = ab.data, *b = a + C;
  for (int64_t c = 0; c < C; c++) {
    const double sc = (double)invstd[c] * (weight ? (double)weight[c] : 1.0);
    a[c] = (float)sc;
    b[c] = (float)((bias ? (double)bias[c] : 0.0) - (double)mean[c] * sc);
  }
  write_affine(y, x, a, b, N, C, S, relu, N * C * S * (int64_t)sizeof(float) >= kStreamBytes);
}

void batchnorm_backward_reduce(float* sum_dy, float* sum_dy_xmu, const float* dy, const float* x, const float* mean,
                               const float* y, int64_t N, int64_t C, int64_t S) {
  if (N * C * S == 0) {
    for (int64_t c = 0; c < C; c++) sum_dy[c] = sum_dy_xmu[c] = 0.0f;
    return;
  }
  Buffer<double> sums(2 * C);
  if (y)
    grad_channel_sums<true>(sums.data, sums.data + C, dy, x, mean, y, N, C, S);
  else
    grad_channel_sums<false>(sums.data, sums.data + C, dy, x, mean, y, N, C, S);
  for (int64_t c = 0; c < C; c++) {
    sum_dy[c] = (float)sums.data[c];
    sum_dy_xmu[c] = (float)sums.data[C + c];
  }
}

void batchnorm_backward_apply(float* dx, const float* dy, const float* x, const float* mean, const float* invstd,
                              const float* weight, const float* sum_dy, const float* sum_dy_xmu, const float* y,
                              int64_t count, int64_t N, int64_t C, int64_t S) {
  if (N * C * S == 0) return;
  Buffer<float> arrays(3 * C);
  float *gm = arrays.data, *k = gm + C, *sc = k + C;
  Buffer<double> sums(2 * C);
  for (int64_t c = 0; c < C; c++) sums.data[c] = sum_dy[c], sums.data[C + c] = sum_dy_xmu[c];
  grad_coefficients(C, sums.data, sums.data + C, invstd, weight, count, true, nullptr, nullptr, gm, k, sc);
  const bool stream = N * C * S * (int64_t)sizeof(float) >= kStreamBytes;
  if (y)
    dx_pass<true>(dx, dy, x, y, mean, gm, k, sc, N, C, S, true, stream);
  else
    dx_pass<false>(dx, dy, x, y, mean, gm, k, sc, N, C, S, true, stream);
}

}  // namespace SG_NS
}  // namespace sg
