// Elementwise maps, activations and their backward, and reductions, over n contiguous floats:
// out, a, b, x, y, dx, dy are (n). max_rows: x is (R, K), max and argmax are (R). gather_rows and
// gather_bytes: out is (R, D), src (rows, D), indices (R).
// Large arrays are split over the thread pool in contiguous chunks; each chunk runs full vectors
// and one masked tail.
#include "kernels.h"
#include "simd.h"

namespace sg {
namespace SG_NS {
namespace {

constexpr int64_t kGrain = 1 << 15;  // items per task: below this a second core does not pay
constexpr int64_t kGatherAheadBytes = 32768;  // gather_bytes prefetches the rows this far ahead

// out[i] = op(x[i]) as vectors
template <class Op>
void map1(float* out, const float* x, int64_t n, const Op& op) {
  parallel(n, kGrain, [&](int64_t b, int64_t e, int) {
    int64_t i = b;
    for (; i + VL <= e; i += VL) vstore(out + i, op(vload(x + i)));
    if (i < e) vstore_tail(out + i, op(vload_tail(x + i, (int)(e - i))), (int)(e - i));
  });
}

// out[i] = op(a[i], b[i]) as vectors
template <class Op>
void map2(float* out, const float* a, const float* b, int64_t n, const Op& op) {
  parallel(n, kGrain, [&](int64_t lo, int64_t hi, int) {
    int64_t i = lo;
    for (; i + VL <= hi; i += VL) vstore(out + i, op(vload(a + i), vload(b + i)));
    if (i < hi) {
      const int t = (int)(hi - i);
      vstore_tail(out + i, op(vload_tail(a + i, t), vload_tail(b + i, t)), t);
    }
  });
}

// sum over chunks of op(vector) in float lanes, flushed to double every 1024 values; the per-chunk
// partial sums are added in chunk order, so a given thread count always gives the same result.
// Four vector sums, each added to every fourth vector: one sum would wait on the previous add at
// every vector (3-4 cycles), half the speed of reading the array.
template <class Op>
double reduce(const float* x, int64_t n, const Op& op) {
  double partial[kMaxThreads] = {0};
  parallel(n, kGrain, [&](int64_t b, int64_t e, int tid) {
    double total = 0;
    for (int64_t blk = b; blk < e; blk += 1024) {
      const int64_t end = imin(e, blk + 1024);
      vf s0 = vzero(), s1 = vzero(), s2 = vzero(), s3 = vzero();
      int64_t i = blk;
      for (; i + 4 * VL <= end; i += 4 * VL) {
        s0 = vadd(s0, op(vload(x + i)));
        s1 = vadd(s1, op(vload(x + i + VL)));
        s2 = vadd(s2, op(vload(x + i + 2 * VL)));
        s3 = vadd(s3, op(vload(x + i + 3 * VL)));
      }
      for (; i + VL <= end; i += VL) s0 = vadd(s0, op(vload(x + i)));
      if (i < end) s1 = vadd(s1, op(vload_tail(x + i, (int)(end - i))));  // op(0) == 0 for both uses
      total += (double)vhsum(vadd(vadd(s0, s1), vadd(s2, s3)));
    }
    partial[tid] = total;
  });
  double total = 0;
  for (int t = 0; t < kMaxThreads; t++) total += partial[t];
  return total;
}

}  // namespace

void add(float* out, const float* a, const float* b, int64_t n) { map2(out, a, b, n, [](vf u, vf v) { return vadd(u, v); }); }
void mul(float* out, const float* a, const float* b, int64_t n) { map2(out, a, b, n, [](vf u, vf v) { return vmul(u, v); }); }
void scale(float* out, const float* x, float alpha, int64_t n) {
  const vf va = vset1(alpha);
  map1(out, x, n, [&](vf v) { return vmul(v, va); });
}
void axpy(float* y, const float* x, float alpha, int64_t n) {
  const vf va = vset1(alpha);
  map2(y, x, y, n, [&](vf u, vf v) { return vfma(u, va, v); });
}
// relu keeps NaN (vmax returns its second operand when either is NaN), as PyTorch's relu does
void relu(float* out, const float* x, int64_t n) { map1(out, x, n, [](vf v) { return vmax(vzero(), v); }); }
void relu_backward(float* dx, const float* dy, const float* x, int64_t n) {
  map2(dx, dy, x, n, [](vf g, vf v) { return vselect_pos(v, g); });
}
void leaky_relu(float* out, const float* x, float slope, int64_t n) {
  const vf vs = vset1(slope);
  map1(out, x, n, [&](vf v) { return vleaky(v, vs); });
}
void leaky_relu_backward(float* dx, const float* dy, const float* x, float slope, int64_t n) {
  const vf vs = vset1(slope);
  map2(dx, dy, x, n, [&](vf g, vf v) { return vleaky_grad(v, g, vs); });
}
void sigmoid(float* out, const float* x, int64_t n) { map1(out, x, n, [](vf v) { return vsigmoid(v); }); }
void sigmoid_backward(float* dx, const float* dy, const float* y, int64_t n) {
  const vf one = vset1(1.0f);
  map2(dx, dy, y, n, [&](vf g, vf s) { return vmul(g, vmul(s, vsub(one, s))); });
}
void tanh(float* out, const float* x, int64_t n) { map1(out, x, n, [](vf v) { return vtanh(v); }); }
void tanh_backward(float* dx, const float* dy, const float* y, int64_t n) {
  const vf one = vset1(1.0f);
  map2(dx, dy, y, n, [&](vf g, vf t) { return vmul(g, vsub(one, vmul(t, t))); });
}
double sum(const float* x, int64_t n) { return reduce(x, n, [](vf v) { return v; }); }
double sum_squares(const float* x, int64_t n) { return reduce(x, n, [](vf v) { return vmul(v, v); }); }

void max_rows(float* max, int32_t* argmax, const float* x, int64_t R, int64_t K) {
  parallel(R, imax(1, kGrain / imax(1, K)), [&](int64_t r0, int64_t r1, int) {
    for (int64_t r = r0; r < r1; r++) {
      const float* row = x + r * K;
      float m = row[0];
      int64_t at = 0;
      for (int64_t k = 1; k < K && m == m; k++)  // stops at the first NaN, which wins
        if (row[k] > m || row[k] != row[k]) {
          m = row[k];
          at = k;
        }
      max[r] = m;
      argmax[r] = (int32_t)at;
    }
  });
}

// every line of bytes [p, p + bytes), ahead of a gather's copy of it
inline void prefetch_lines(const void* p, int64_t bytes) {
  for (int64_t i = 0; i < bytes; i += kLineBytes) __builtin_prefetch(static_cast<const char*>(p) + i);
}

// out (R, D) = the rows indices[r] of src. A batch of random dataset rows is bound by memory
// latency (each row on pages of its own), so the rows a few ahead are prefetched while one is copied,
// and the rows are split over the threads.
void gather_rows(float* out, const float* src, const int32_t* indices, int64_t R, int64_t D) {
  constexpr int64_t kAhead = 4;
  parallel(R, imax(1, 8192 / D), [&](int64_t r0, int64_t r1, int) {
    for (int64_t r = r0; r < r1; r++) {
      if (r + kAhead < r1) prefetch_lines(src + (int64_t)indices[r + kAhead] * D, D * (int64_t)sizeof(float));
      std::memcpy(out + r * D, src + (int64_t)indices[r] * D, (size_t)D * sizeof(float));
    }
  });
}

// out (R, D) = (the bytes of row indices[r] of src - offset[c]) * scale[c], where a row is
// `channels` planes of D / channels values and c is a value's plane: a batch of 8-bit images, kept
// as bytes (a quarter of the memory and of the traffic of floats), normalised as it is gathered.
// The difference and the product are each rounded to float (no FMA), so every ISA and the fallback
// give the same bits. As in gather_rows, the rows ahead are prefetched: random rows are bound by
// memory latency.
void gather_bytes(float* out, const uint8_t* src, const int32_t* indices, int64_t R, int64_t D, const float* offset,
                  const float* scale, int64_t channels) {
  const int64_t plane = D / channels, ahead = imax(4, kGatherAheadBytes / D);
  auto prefetch_row = [&](int64_t r) { prefetch_lines(src + (int64_t)indices[r] * D, D); };
  parallel(R, imax(1, 8192 / D), [&](int64_t r0, int64_t r1, int) {
    for (int64_t r = r0; r < imin(r1, r0 + ahead); r++) prefetch_row(r);
    for (int64_t r = r0; r < r1; r++) {
      if (r + ahead < r1) prefetch_row(r + ahead);
      const uint8_t* row = src + (int64_t)indices[r] * D;
      for (int64_t c = 0; c < channels; c++) {
        const uint8_t* in = row + c * plane;
        float* y = out + r * D + c * plane;
        const float off = offset[c], sc = scale[c];
        const vf voff = vset1(off), vsc = vset1(sc);
        int64_t i = 0;
        for (; i + VL <= plane; i += VL) vstore(y + i, vmul(vsub(vload_u8(in + i), voff), vsc));
        for (; i < plane; i++) y[i] = ((float)in[i] - off) * sc;
      }
    }
  });
}

}  // namespace SG_NS
}  // namespace sg
