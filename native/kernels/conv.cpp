// Convolution helpers: im2col/col2im (so Conv2d is one GEMM for the whole batch), the layout of
// that GEMM's output, and 2-D max pooling.
// x, dx are (N, C, H, W); col is (C*KH*KW, N*OH*OW): row (c*KH + kh)*KW + kw holds, at column
// n*OH*OW + oh*OW + ow, x[n, c, oh*SH - PH + kh, ow*SW - PW + kw], or 0 in the padding.
// Work is split over the (c, n) planes, so no two threads ever write the same element.
#include "kernels.h"
#include "simd.h"

namespace sg {
namespace SG_NS {
namespace {

// [lo, hi): the output columns ow whose input column ow*S - P + k lies inside [0, W)
inline void inside(int64_t OW, int64_t W, int64_t S, int64_t P, int64_t k, int64_t& lo, int64_t& hi) {
  lo = P > k ? (P - k + S - 1) / S : 0;
  hi = W - 1 + P - k >= 0 ? imin(OW, (W - 1 + P - k) / S + 1) : 0;
  lo = imin(lo, hi);
}

// For every (kh, kw, oh) of plane (c, n): row(in, at, lo, hi) when its input row is inside the
// image, pad(at) when it lies wholly in the padding. at is the offset in col of its OW outputs (row
// (c, kh, kw), column n*OH*OW + oh*OW); outputs [lo, hi) are inside the image, and in is the offset
// in the plane of output lo's element (output ow's is SW*(ow - lo) further).
template <class Row, class Pad>
void walk_plane(int64_t c, int64_t n, int64_t N, int64_t H, int64_t W, int64_t KH, int64_t KW, int64_t SH, int64_t SW,
                int64_t PH, int64_t PW, int64_t OH, int64_t OW, const Row& row, const Pad& pad) {
  const int64_t P = OH * OW;
  for (int64_t kh = 0; kh < KH; kh++)
    for (int64_t kw = 0; kw < KW; kw++) {
      int64_t lo, hi;
      inside(OW, W, SW, PW, kw, lo, hi);
      const int64_t base = ((c * KH + kh) * KW + kw) * N * P + n * P;
      for (int64_t oh = 0; oh < OH; oh++) {
        const int64_t ih = oh * SH - PH + kh;
        if (ih < 0 || ih >= H)
          pad(base + oh * OW);
        else
          row(ih * W + (lo < hi ? lo * SW - PW + kw : 0), base + oh * OW, lo, hi);
      }
    }
}

}  // namespace

void im2col(float* col, const float* x, int64_t N, int64_t C, int64_t H, int64_t W, int64_t KH, int64_t KW, int64_t SH,
            int64_t SW, int64_t PH, int64_t PW) {
  const int64_t OH = conv_out_size(H, KH, SH, PH), OW = conv_out_size(W, KW, SW, PW);
  if (N * C * KH * KW * OH * OW == 0) return;  // col is empty: work in proportion to the data
  // planes in (c, n) order: consecutive planes write consecutive stretches of each row of col
  parallel(C * N, imax(1, 4096 / imax(1, KH * KW * OH * OW)), [&](int64_t p0, int64_t p1, int) {
    for (int64_t p = p0; p < p1; p++) {
      const int64_t c = p / N, n = p % N;
      const float* plane = x + (n * C + c) * H * W;
      walk_plane(
          c, n, N, H, W, KH, KW, SH, SW, PH, PW, OH, OW,
          [&](int64_t src, int64_t dst, int64_t lo, int64_t hi) {
            float* out = col + dst;
            const float* in = plane + src;
            for (int64_t ow = 0; ow < lo; ow++) out[ow] = 0.0f;
            if (SW == 1)
              for (int64_t ow = lo; ow < hi; ow++) out[ow] = in[ow - lo];
            else
              for (int64_t ow = lo; ow < hi; ow++) out[ow] = in[(ow - lo) * SW];
            for (int64_t ow = hi; ow < OW; ow++) out[ow] = 0.0f;
          },
          [&](int64_t dst) {
            for (int64_t ow = 0; ow < OW; ow++) col[dst + ow] = 0.0f;
          });
    }
  });
}

void col2im(float* dx, const float* col, int64_t N, int64_t C, int64_t H, int64_t W, int64_t KH, int64_t KW,
            int64_t SH, int64_t SW, int64_t PH, int64_t PW) {
  const int64_t OH = conv_out_size(H, KH, SH, PH), OW = conv_out_size(W, KW, SW, PW);
  if (N * C * H * W == 0) return;  // dx is empty
  parallel(C * N, imax(1, 4096 / imax(1, KH * KW * OH * OW)), [&](int64_t p0, int64_t p1, int) {
    for (int64_t p = p0; p < p1; p++) {
      const int64_t c = p / N, n = p % N;
      float* plane = dx + (n * C + c) * H * W;
      for (int64_t i = 0; i < H * W; i++) plane[i] = 0.0f;
      walk_plane(
          c, n, N, H, W, KH, KW, SH, SW, PH, PW, OH, OW,
          [&](int64_t dst, int64_t src, int64_t lo, int64_t hi) {
            float* out = plane + dst;
            const float* in = col + src;
            if (SW == 1)
              for (int64_t ow = lo; ow < hi; ow++) out[ow - lo] += in[ow];
            else
              for (int64_t ow = lo; ow < hi; ow++) out[(ow - lo) * SW] += in[ow];
          },
          [](int64_t) {});
    }
  });
}

#if defined(__AVX2__)
namespace {

// The window element v (at index vi) against the running max m (at index at), as the general loop's
// `take`: a larger v, or a NaN v, replaces m unless m is already NaN; a tie keeps the earlier one.
inline void take_larger(__m256& m, __m256& at, __m256 v, __m256i vi) {
  const __m256 take = _mm256_and_ps(_mm256_cmp_ps(m, m, _CMP_ORD_Q),
                                    _mm256_or_ps(_mm256_cmp_ps(v, m, _CMP_GT_OQ), _mm256_cmp_ps(v, v, _CMP_UNORD_Q)));
  m = _mm256_blendv_ps(m, v, take);
  at = _mm256_blendv_ps(at, _mm256_castsi256_ps(vi), take);
}

// 16 consecutive floats from p, the first `valid` of them read (the rest 0), split into the even
// ones (a window's left column) and the odd ones (its right column), in order.
inline void load_pairs(const float* p, int valid, __m256& even, __m256& odd) {
  __m256 lo, hi;
  if (valid == 16) {
    lo = _mm256_loadu_ps(p);
    hi = _mm256_loadu_ps(p + 8);
  } else {
    lo = _mm256_maskload_ps(p, tail_mask(valid));
    hi = _mm256_maskload_ps(p + 8, tail_mask(valid - 8));
  }
  // shuffle gives [lo0 lo2 hi0 hi2 | lo4 lo6 hi4 hi6]; the 64-bit permute puts the halves in order
  even = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(lo, hi, 0x88)), 0xD8));
  odd = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(lo, hi, 0xDD)), 0xD8));
}

// MaxPool2d(2): 2x2 windows, stride 2, no padding, eight outputs of a row at a time, with the same
// window order, comparisons and indices as the general loop (whose first element needs no
// comparison: against -inf it is taken unless it is -inf itself, and then m and the index are the
// same either way). plane is (H, W); y and at are (OH, OW).
void max_pool_2x2_plane(float* y, int32_t* at, const float* plane, int64_t W, int64_t OH, int64_t OW) {
  const __m256i pairs = _mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14);
  const __m256i right = _mm256_set1_epi32(1), below = _mm256_set1_epi32((int32_t)W);
  for (int64_t oh = 0; oh < OH; oh++) {
    const float* top = plane + 2 * oh * W;
    for (int64_t ow = 0; ow < OW; ow += 8) {
      const int n = (int)imin(8, OW - ow);
      __m256 t0, t1, b0, b1;
      load_pairs(top + 2 * ow, 2 * n, t0, t1);
      load_pairs(top + W + 2 * ow, 2 * n, b0, b1);
      const __m256i i00 = _mm256_add_epi32(_mm256_set1_epi32((int32_t)(2 * oh * W + 2 * ow)), pairs);
      __m256 m = t0, idx = _mm256_castsi256_ps(i00);
      take_larger(m, idx, t1, _mm256_add_epi32(i00, right));
      take_larger(m, idx, b0, _mm256_add_epi32(i00, below));
      take_larger(m, idx, b1, _mm256_add_epi32(_mm256_add_epi32(i00, below), right));
      float* ym = y + oh * OW + ow;
      int32_t* ya = at + oh * OW + ow;
      if (n == 8) {
        _mm256_storeu_ps(ym, m);
        _mm256_storeu_si256((__m256i*)ya, _mm256_castps_si256(idx));
      } else {
        const __m256i mask = tail_mask(n);
        _mm256_maskstore_ps(ym, mask, m);
        _mm256_maskstore_epi32(ya, mask, _mm256_castps_si256(idx));
      }
    }
  }
}

}  // namespace
#elif SG_ISA_NEON
namespace {

// As the AVX2 version above, four outputs of a row at a time: vld2q splits 8 floats into the
// windows' left (even) and right (odd) columns; a partial group is read from a copy padded with 0.
void max_pool_2x2_plane(float* y, int32_t* at, const float* plane, int64_t W, int64_t OH, int64_t OW) {
  const int32_t pair_offsets[4] = {0, 2, 4, 6};
  const int32x4_t pairs = vld1q_s32(pair_offsets);
  // the element v at index vi against the running max m at index idx: as take_larger above
  auto take = [](float32x4_t& m, int32x4_t& idx, float32x4_t v, int32x4_t vi) {
    const uint32x4_t v_nan = vmvnq_u32(vceqq_f32(v, v));
    const uint32x4_t larger = vandq_u32(vceqq_f32(m, m), vorrq_u32(vcgtq_f32(v, m), v_nan));
    m = vbslq_f32(larger, v, m);
    idx = vbslq_s32(larger, vi, idx);
  };
  for (int64_t oh = 0; oh < OH; oh++) {
    const float* top = plane + 2 * oh * W;
    for (int64_t ow = 0; ow < OW; ow += 4) {
      const int64_t n = imin(4, OW - ow);
      float32x4x2_t t, b;
      if (n == 4) {
        t = vld2q_f32(top + 2 * ow);
        b = vld2q_f32(top + W + 2 * ow);
      } else {
        float tp[8] = {0}, bp[8] = {0};
        for (int64_t i = 0; i < 2 * n; i++) tp[i] = top[2 * ow + i], bp[i] = top[W + 2 * ow + i];
        t = vld2q_f32(tp);
        b = vld2q_f32(bp);
      }
      const int32x4_t i00 = vaddq_s32(vdupq_n_s32((int32_t)(2 * oh * W + 2 * ow)), pairs);
      const int32x4_t below = vdupq_n_s32((int32_t)W), right = vdupq_n_s32(1);
      float32x4_t m = t.val[0];
      int32x4_t idx = i00;
      take(m, idx, t.val[1], vaddq_s32(i00, right));
      take(m, idx, b.val[0], vaddq_s32(i00, below));
      take(m, idx, b.val[1], vaddq_s32(vaddq_s32(i00, below), right));
      float* ym = y + oh * OW + ow;
      int32_t* ya = at + oh * OW + ow;
      if (n == 4) {
        vst1q_f32(ym, m);
        vst1q_s32(ya, idx);
      } else {
        float mv[4];
        int32_t iv[4];
        vst1q_f32(mv, m);
        vst1q_s32(iv, idx);
        for (int64_t i = 0; i < n; i++) ym[i] = mv[i], ya[i] = iv[i];
      }
    }
  }
}

}  // namespace
#endif

// Conv2d's GEMM gives out (OC, N, P), every image's columns side by side; the layer's y is
// (N, OC, P). conv_output swaps the first two dimensions and adds bias (OC) when given, in the same
// pass (filling the bias in first and letting the GEMM add to it cost a write and a read of the
// whole output more); conv_output_backward swaps the gradient g (N, OC, P) into gT (OC, N, P) and
// sums it over N and P into dbias (OC). Split over channels: each channel's sum is one thread's,
// over n in order, so any thread count gives the same result.
void conv_output(float* y, const float* out, const float* bias, int64_t N, int64_t OC, int64_t P) {
  if (N * OC * P == 0) return;
  const bool stream = N * OC * P * (int64_t)sizeof(float) >= kStreamBytes;
  parallel(OC, imax(1, (1 << 15) / imax(1, N * P)), [&](int64_t o0, int64_t o1, int) {
    for (int64_t o = o0; o < o1; o++) {
      const vf b = vset1(bias ? bias[o] : 0.0f);
      for (int64_t n = 0; n < N; n++) {
        const float* src = out + (o * N + n) * P;
        if (bias)
          write_run(y + (n * OC + o) * P, P, stream, {src}, [&](int64_t i, int64_t lanes) { return vadd(vload_n(src + i, lanes), b); });
        else
          write_run(y + (n * OC + o) * P, P, stream, {src}, [&](int64_t i, int64_t lanes) { return vload_n(src + i, lanes); });
      }
    }
    if (stream) stream_fence();  // each task's own streamed stores, before the pool's join (simd.h)
  });
}

void conv_output_backward(float* gT, float* dbias, const float* g, int64_t N, int64_t OC, int64_t P) {
  if (N * OC * P == 0) {  // the bias sums over no values are 0
    if (dbias)
      for (int64_t o = 0; o < OC; o++) dbias[o] = 0.0f;
    return;
  }
  const bool stream = N * OC * P * (int64_t)sizeof(float) >= kStreamBytes;
  parallel(OC, imax(1, (1 << 15) / imax(1, N * P)), [&](int64_t o0, int64_t o1, int) {
    for (int64_t o = o0; o < o1; o++) {
      double total = 0;
      for (int64_t n = 0; n < N; n++) {
        const float* src = g + (n * OC + o) * P;
        float* dst = gT + (o * N + n) * P;
        // float lanes flushed to double every 1024 values, as sum() does
        for (int64_t blk = 0; blk < P; blk += 1024) {
          vf lanes_sum = vzero();
          // no reads named: the lane sums add in index order, so this run never walks down
          write_run(dst + blk, imin(1024, P - blk), stream, {}, [&](int64_t i, int64_t lanes) {
            const vf v = vload_n(src + blk + i, lanes);
            lanes_sum = vadd(lanes_sum, v);
            return v;
          });
          total += (double)vhsum(lanes_sum);
        }
      }
      if (dbias) dbias[o] = (float)total;
    }
    if (stream) stream_fence();  // as in conv_output
  });
}

// y (N, C, OH, OW) = max over each window (padding counts as -inf; NaN wins, as in PyTorch)
void max_pool2d(float* y, int32_t* indices, const float* x, int64_t N, int64_t C, int64_t H, int64_t W, int64_t KH,
                int64_t KW, int64_t SH, int64_t SW, int64_t PH, int64_t PW) {
  const int64_t OH = conv_out_size(H, KH, SH, PH), OW = conv_out_size(W, KW, SW, PW);
#if defined(__AVX2__) || SG_ISA_NEON
  // MaxPool2d(2), the usual pooling: the general loop below spent ~2 ns an input element in
  // instructions (a (64, 32, 28, 28) batch took 3.4 ms on one thread; this 0.55 ms)
  if (KH == 2 && KW == 2 && SH == 2 && SW == 2 && PH == 0 && PW == 0) {
    parallel(N * C, imax(1, 4096 / imax(1, H * W)), [&](int64_t p0, int64_t p1, int) {
      for (int64_t p = p0; p < p1; p++) max_pool_2x2_plane(y + p * OH * OW, indices + p * OH * OW, x + p * H * W, W, OH, OW);
    });
    return;
  }
#endif
  parallel(N * C, imax(1, 4096 / imax(1, OH * OW * KH * KW)), [&](int64_t p0, int64_t p1, int) {
    for (int64_t p = p0; p < p1; p++) {
      const float* plane = x + p * H * W;
      for (int64_t oh = 0; oh < OH; oh++) {
        const int64_t h0 = oh * SH - PH;
        float* m = y + (p * OH + oh) * OW;
        int32_t* at = indices + (p * OH + oh) * OW;
        for (int64_t ow = 0; ow < OW; ow++) {
          m[ow] = -INFINITY;
          at[ow] = (int32_t)(imax(h0, 0) * W + imax(ow * SW - PW, 0));  // the window's first inside element
        }
        // The window's elements in order, each against the whole output row at once. One window
        // at a time, each comparison waited on the one before and mispredicted half the time; here
        // the outputs are independent, and with & and | (not && and ||) GCC compiles the update
        // without branches: a (64, 32, 28, 28) batch went from 8.6 to 3.2 ms on one thread.
        for (int64_t kh = 0; kh < KH; kh++) {
          const int64_t ih = h0 + kh;
          if (ih < 0 || ih >= H) continue;
          for (int64_t kw = 0; kw < KW; kw++) {
            int64_t lo, hi;
            inside(OW, W, SW, PW, kw, lo, hi);
            const int64_t row = ih * W - PW + kw;  // + ow*SW: the element of output ow
            for (int64_t ow = lo; ow < hi; ow++) {
              const float v = plane[row + ow * SW], cur = m[ow];
              const bool take = (cur == cur) & ((v > cur) | (v != v));  // once NaN, it stays
              m[ow] = take ? v : cur;
              at[ow] = take ? (int32_t)(row + ow * SW) : at[ow];
            }
          }
        }
      }
    }
  });
}

// dx (N, C, H, W) = scatter-add of dy into the argmax positions
void max_pool2d_backward(float* dx, const float* dy, const int32_t* indices, int64_t N, int64_t C, int64_t H, int64_t W,
                         int64_t OH, int64_t OW) {
  parallel(N * C, imax(1, 4096 / imax(1, H * W)), [&](int64_t p0, int64_t p1, int) {
    for (int64_t p = p0; p < p1; p++) {
      float* plane = dx + p * H * W;
      for (int64_t i = 0; i < H * W; i++) plane[i] = 0.0f;
      const float* g = dy + p * OH * OW;
      const int32_t* idx = indices + p * OH * OW;
      for (int64_t i = 0; i < OH * OW; i++) plane[idx[i]] += g[i];
    }
  });
}

}  // namespace SG_NS
}  // namespace sg
