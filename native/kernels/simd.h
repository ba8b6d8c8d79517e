// One SIMD mapping that every kernel family is written against.
//
// Each kernel source is compiled once per ISA, in its own translation unit with its own target
// flags (see sources.json): scalar (SSE2, which every x86-64 has), avx2 and avx512 on x86-64;
// scalar (plain C++: SG_PORTABLE, as NEON is always there) and neon on arm64. The flags decide
// which block below is used and which namespace the kernels land in, so the builds never share a
// symbol: a function compiled for AVX-512 can never be picked by the linker for the portable path
// (the classic ODR trap of per-ISA builds).
// This is also why kernels use no STL templates: an inline std:: function instantiated in an
// AVX-512 unit could otherwise be merged with the portable one.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <initializer_list>

#include "threadpool.h"

#if defined(__AVX512F__) && defined(__AVX512DQ__) && defined(__AVX512BW__) && defined(__AVX512VL__) && defined(__FMA__)
#define SG_NS avx512
#define SG_ISA_AVX512 1
#include <immintrin.h>
#elif defined(__AVX2__) && defined(__FMA__)
#define SG_NS avx2
#define SG_ISA_AVX2 1
#include <immintrin.h>
#elif defined(__SSE2__)
#define SG_NS scalar
#define SG_ISA_SSE2 1
#include <emmintrin.h>
#elif defined(__aarch64__) && defined(__ARM_NEON) && !defined(SG_PORTABLE)
#define SG_NS neon
#define SG_ISA_NEON 1
#include <arm_neon.h>
#else
#define SG_NS scalar
#define SG_ISA_GENERIC 1
#endif

namespace sg {
namespace SG_NS {

#if defined(__AVX2__)
// The first n of eight 32-bit lanes (none when n <= 0), for AVX2's masked loads and stores: the
// AVX2 tails below, and AVX2 code in the AVX-512 build (MaxPool2d(2) in conv.cpp)
static inline __m256i tail_mask(int n) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
#endif

#if SG_ISA_AVX512
typedef __m512 vf;
constexpr int VL = 16;
static inline vf vzero() { return _mm512_setzero_ps(); }
static inline vf vset1(float a) { return _mm512_set1_ps(a); }
static inline vf vload(const float* p) { return _mm512_loadu_ps(p); }
static inline void vstore(float* p, vf v) { _mm512_storeu_ps(p, v); }
static inline vf vadd(vf a, vf b) { return _mm512_add_ps(a, b); }
static inline vf vsub(vf a, vf b) { return _mm512_sub_ps(a, b); }
static inline vf vmul(vf a, vf b) { return _mm512_mul_ps(a, b); }
static inline vf vdiv(vf a, vf b) { return _mm512_div_ps(a, b); }
static inline vf vsqrt(vf a) { return _mm512_sqrt_ps(a); }
static inline vf vfma(vf a, vf b, vf c) { return _mm512_fmadd_ps(a, b, c); }  // a*b + c
static inline void vstream(float* p, vf v) { _mm512_stream_ps(p, v); }  // p aligned to the vector
// max(a, b) that returns b when either is NaN (the x86 rule): vmax(zero, x) keeps NaN in x.
static inline vf vmax(vf a, vf b) { return _mm512_max_ps(a, b); }
static inline vf vmin(vf a, vf b) { return _mm512_min_ps(a, b); }
static inline float vhsum(vf v) { return _mm512_reduce_add_ps(v); }
// b where a > 0, else 0 (false for NaN a)
static inline vf vselect_pos(vf a, vf b) {
  return _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(a, _mm512_setzero_ps(), _CMP_GT_OQ), b);
}
// b where a > 0 (or a is NaN, which keeps NaN flowing), else a*slope
static inline vf vleaky(vf a, vf slope) {
  __mmask16 neg = _mm512_cmp_ps_mask(a, _mm512_setzero_ps(), _CMP_LE_OQ);
  return _mm512_mask_mul_ps(a, neg, a, slope);
}
static inline vf vleaky_grad(vf x, vf dy, vf slope) {
  __mmask16 neg = _mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_LE_OQ);
  return _mm512_mask_mul_ps(dy, neg, dy, slope);
}
static inline vf vload_tail(const float* p, int n) { return _mm512_maskz_loadu_ps((__mmask16)((1u << n) - 1), p); }
// VL bytes at p, each as a float
static inline vf vload_u8(const uint8_t* p) {
  return _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))));
}
static inline void vstore_tail(float* p, vf v, int n) { _mm512_mask_storeu_ps(p, (__mmask16)((1u << n) - 1), v); }
// 2^n * x for integral-valued n
static inline vf vscale2(vf x, vf n) { return _mm512_scalef_ps(x, n); }
static inline vf vround(vf x) { return _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
static inline vf vabs(vf x) { return _mm512_abs_ps(x); }
static inline vf vcopysign(vf mag, vf sign) {
  const __m512i m = _mm512_set1_epi32(0x80000000);
  return _mm512_castsi512_ps(_mm512_or_si512(_mm512_andnot_si512(m, _mm512_castps_si512(mag)),
                                             _mm512_and_si512(m, _mm512_castps_si512(sign))));
}
// where(a < t, b, c)
static inline vf vselect_lt(vf a, vf t, vf b, vf c) {
  return _mm512_mask_mov_ps(c, _mm512_cmp_ps_mask(a, t, _CMP_LT_OQ), b);
}

#elif SG_ISA_AVX2
typedef __m256 vf;
constexpr int VL = 8;
static inline vf vzero() { return _mm256_setzero_ps(); }
static inline vf vset1(float a) { return _mm256_set1_ps(a); }
static inline vf vload(const float* p) { return _mm256_loadu_ps(p); }
static inline void vstore(float* p, vf v) { _mm256_storeu_ps(p, v); }
static inline vf vadd(vf a, vf b) { return _mm256_add_ps(a, b); }
static inline vf vsub(vf a, vf b) { return _mm256_sub_ps(a, b); }
static inline vf vmul(vf a, vf b) { return _mm256_mul_ps(a, b); }
static inline vf vdiv(vf a, vf b) { return _mm256_div_ps(a, b); }
static inline vf vsqrt(vf a) { return _mm256_sqrt_ps(a); }
static inline vf vfma(vf a, vf b, vf c) { return _mm256_fmadd_ps(a, b, c); }
static inline void vstream(float* p, vf v) { _mm256_stream_ps(p, v); }
static inline vf vmax(vf a, vf b) { return _mm256_max_ps(a, b); }
static inline vf vmin(vf a, vf b) { return _mm256_min_ps(a, b); }
static inline float vhsum(vf v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}
static inline vf vselect_pos(vf a, vf b) { return _mm256_and_ps(_mm256_cmp_ps(a, _mm256_setzero_ps(), _CMP_GT_OQ), b); }
static inline vf vleaky(vf a, vf slope) {
  return _mm256_blendv_ps(a, _mm256_mul_ps(a, slope), _mm256_cmp_ps(a, _mm256_setzero_ps(), _CMP_LE_OQ));
}
static inline vf vleaky_grad(vf x, vf dy, vf slope) {
  return _mm256_blendv_ps(dy, _mm256_mul_ps(dy, slope), _mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_LE_OQ));
}
static inline vf vload_tail(const float* p, int n) { return _mm256_maskload_ps(p, tail_mask(n)); }
static inline vf vload_u8(const uint8_t* p) {
  return _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))));
}
static inline void vstore_tail(float* p, vf v, int n) { _mm256_maskstore_ps(p, tail_mask(n), v); }
static inline vf vscale2(vf x, vf n) {
  __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(x, _mm256_castsi256_ps(e));
}
static inline vf vround(vf x) { return _mm256_round_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
static inline vf vabs(vf x) { return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), x); }
static inline vf vcopysign(vf mag, vf sign) {
  const vf m = _mm256_set1_ps(-0.0f);
  return _mm256_or_ps(_mm256_andnot_ps(m, mag), _mm256_and_ps(m, sign));
}
static inline vf vselect_lt(vf a, vf t, vf b, vf c) { return _mm256_blendv_ps(c, b, _mm256_cmp_ps(a, t, _CMP_LT_OQ)); }

#elif SG_ISA_SSE2
typedef __m128 vf;
constexpr int VL = 4;
static inline vf vzero() { return _mm_setzero_ps(); }
static inline vf vset1(float a) { return _mm_set1_ps(a); }
static inline vf vload(const float* p) { return _mm_loadu_ps(p); }
static inline void vstore(float* p, vf v) { _mm_storeu_ps(p, v); }
static inline vf vadd(vf a, vf b) { return _mm_add_ps(a, b); }
static inline vf vsub(vf a, vf b) { return _mm_sub_ps(a, b); }
static inline vf vmul(vf a, vf b) { return _mm_mul_ps(a, b); }
static inline vf vdiv(vf a, vf b) { return _mm_div_ps(a, b); }
static inline vf vsqrt(vf a) { return _mm_sqrt_ps(a); }
static inline vf vfma(vf a, vf b, vf c) { return _mm_add_ps(_mm_mul_ps(a, b), c); }
static inline void vstream(float* p, vf v) { _mm_stream_ps(p, v); }
static inline vf vmax(vf a, vf b) { return _mm_max_ps(a, b); }
static inline vf vmin(vf a, vf b) { return _mm_min_ps(a, b); }
static inline float vhsum(vf v) {
  __m128 s = _mm_add_ps(v, _mm_movehl_ps(v, v));
  s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
  return _mm_cvtss_f32(s);
}
static inline vf blendv(vf a, vf b, vf mask) { return _mm_or_ps(_mm_andnot_ps(mask, a), _mm_and_ps(mask, b)); }
static inline vf vselect_pos(vf a, vf b) { return _mm_and_ps(_mm_cmpgt_ps(a, _mm_setzero_ps()), b); }
static inline vf vleaky(vf a, vf slope) { return blendv(a, _mm_mul_ps(a, slope), _mm_cmple_ps(a, _mm_setzero_ps())); }
static inline vf vleaky_grad(vf x, vf dy, vf slope) {
  return blendv(dy, _mm_mul_ps(dy, slope), _mm_cmple_ps(x, _mm_setzero_ps()));
}
static inline vf vload_u8(const uint8_t* p) {
  int32_t four;
  std::memcpy(&four, p, sizeof four);
  const __m128i zero = _mm_setzero_si128();
  return _mm_cvtepi32_ps(_mm_unpacklo_epi16(_mm_unpacklo_epi8(_mm_cvtsi32_si128(four), zero), zero));
}
static inline vf vscale2(vf x, vf n) {
  __m128i e = _mm_slli_epi32(_mm_add_epi32(_mm_cvtps_epi32(n), _mm_set1_epi32(127)), 23);
  return _mm_mul_ps(x, _mm_castsi128_ps(e));
}
static inline vf vround(vf x) { return _mm_cvtepi32_ps(_mm_cvtps_epi32(x)); }  // |x| < 2^31 here
static inline vf vabs(vf x) { return _mm_andnot_ps(_mm_set1_ps(-0.0f), x); }
static inline vf vcopysign(vf mag, vf sign) {
  const vf m = _mm_set1_ps(-0.0f);
  return _mm_or_ps(_mm_andnot_ps(m, mag), _mm_and_ps(m, sign));
}
static inline vf vselect_lt(vf a, vf t, vf b, vf c) { return blendv(c, b, _mm_cmplt_ps(a, t)); }

#elif SG_ISA_NEON
typedef float32x4_t vf;
constexpr int VL = 4;
static inline vf vzero() { return vdupq_n_f32(0.0f); }
static inline vf vset1(float a) { return vdupq_n_f32(a); }
static inline vf vload(const float* p) { return vld1q_f32(p); }
static inline void vstore(float* p, vf v) { vst1q_f32(p, v); }
static inline vf vadd(vf a, vf b) { return vaddq_f32(a, b); }
static inline vf vsub(vf a, vf b) { return vsubq_f32(a, b); }
static inline vf vmul(vf a, vf b) { return vmulq_f32(a, b); }
static inline vf vdiv(vf a, vf b) { return vdivq_f32(a, b); }
static inline vf vsqrt(vf a) { return vsqrtq_f32(a); }
static inline vf vfma(vf a, vf b, vf c) { return vfmaq_f32(c, a, b); }
// NEON has no non-temporal vector store with a cache hint that helps here: plain stores
static inline void vstream(float* p, vf v) { vst1q_f32(p, v); }
// the x86 rule (b when either is NaN), not fmax's: the kernels were written against it
static inline vf vmax(vf a, vf b) { return vbslq_f32(vcgtq_f32(a, b), a, b); }
static inline vf vmin(vf a, vf b) { return vbslq_f32(vcltq_f32(a, b), a, b); }
static inline float vhsum(vf v) { return (vgetq_lane_f32(v, 0) + vgetq_lane_f32(v, 2)) + (vgetq_lane_f32(v, 1) + vgetq_lane_f32(v, 3)); }
static inline vf vselect_pos(vf a, vf b) { return vbslq_f32(vcgtq_f32(a, vzero()), b, vzero()); }
static inline vf vleaky(vf a, vf slope) { return vbslq_f32(vcleq_f32(a, vzero()), vmulq_f32(a, slope), a); }
static inline vf vleaky_grad(vf x, vf dy, vf slope) { return vbslq_f32(vcleq_f32(x, vzero()), vmulq_f32(dy, slope), dy); }
static inline vf vload_u8(const uint8_t* p) {
  uint32_t four;
  std::memcpy(&four, p, sizeof four);  // exactly VL bytes: the 8-byte vld1_u8 could read past the end
  const uint16x4_t h = vget_low_u16(vmovl_u8(vreinterpret_u8_u32(vdup_n_u32(four))));
  return vcvtq_f32_u32(vmovl_u16(h));
}
static inline vf vscale2(vf x, vf n) {
  const int32x4_t e = vshlq_n_s32(vaddq_s32(vcvtq_s32_f32(n), vdupq_n_s32(127)), 23);
  return vmulq_f32(x, vreinterpretq_f32_s32(e));
}
static inline vf vround(vf x) { return vrndnq_f32(x); }  // to nearest, ties to even (as x86's)
static inline vf vabs(vf x) { return vabsq_f32(x); }
static inline vf vcopysign(vf mag, vf sign) { return vbslq_f32(vdupq_n_u32(0x80000000u), sign, mag); }
static inline vf vselect_lt(vf a, vf t, vf b, vf c) { return vbslq_f32(vcltq_f32(a, t), b, c); }

#else  // generic C++: four floats the compiler may map to whatever the target has
struct vf { float v[4]; };
constexpr int VL = 4;
#define SG_LANES(expr) vf r; for (int i = 0; i < 4; i++) r.v[i] = (expr); return r
static inline vf vzero() { SG_LANES(0.0f); }
static inline vf vset1(float a) { SG_LANES(a); }
static inline vf vload(const float* p) { SG_LANES(p[i]); }
static inline void vstore(float* p, vf a) { for (int i = 0; i < 4; i++) p[i] = a.v[i]; }
static inline vf vadd(vf a, vf b) { SG_LANES(a.v[i] + b.v[i]); }
static inline vf vsub(vf a, vf b) { SG_LANES(a.v[i] - b.v[i]); }
static inline vf vmul(vf a, vf b) { SG_LANES(a.v[i] * b.v[i]); }
static inline vf vdiv(vf a, vf b) { SG_LANES(a.v[i] / b.v[i]); }
static inline vf vsqrt(vf a) { SG_LANES(std::sqrt(a.v[i])); }
static inline vf vfma(vf a, vf b, vf c) { SG_LANES(a.v[i] * b.v[i] + c.v[i]); }
static inline void vstream(float* p, vf v) { std::memcpy(p, v.v, sizeof v.v); }
static inline vf vmax(vf a, vf b) { SG_LANES(a.v[i] > b.v[i] ? a.v[i] : b.v[i]); }
static inline vf vmin(vf a, vf b) { SG_LANES(a.v[i] < b.v[i] ? a.v[i] : b.v[i]); }
static inline float vhsum(vf a) { return (a.v[0] + a.v[2]) + (a.v[1] + a.v[3]); }
static inline vf vselect_pos(vf a, vf b) { SG_LANES(a.v[i] > 0.0f ? b.v[i] : 0.0f); }
static inline vf vleaky(vf a, vf s) { SG_LANES(a.v[i] <= 0.0f ? a.v[i] * s.v[i] : a.v[i]); }
static inline vf vleaky_grad(vf x, vf dy, vf s) { SG_LANES(x.v[i] <= 0.0f ? dy.v[i] * s.v[i] : dy.v[i]); }
static inline vf vload_tail(const float* p, int n) { SG_LANES(i < n ? p[i] : 0.0f); }
static inline vf vload_u8(const uint8_t* p) { SG_LANES((float)p[i]); }
static inline void vstore_tail(float* p, vf a, int n) { for (int i = 0; i < n; i++) p[i] = a.v[i]; }
static inline vf vscale2(vf x, vf n) { SG_LANES(std::ldexp(x.v[i], (int)n.v[i])); }
static inline vf vround(vf x) { SG_LANES(std::nearbyint(x.v[i])); }
static inline vf vabs(vf x) { SG_LANES(std::fabs(x.v[i])); }
static inline vf vcopysign(vf m, vf s) { SG_LANES(std::copysign(m.v[i], s.v[i])); }
static inline vf vselect_lt(vf a, vf t, vf b, vf c) { SG_LANES(a.v[i] < t.v[i] ? b.v[i] : c.v[i]); }
#undef SG_LANES
#endif

#if SG_ISA_SSE2 || SG_ISA_NEON
// SSE2 and NEON have no masked loads and stores: a tail goes through four floats on the stack
static inline vf vload_tail(const float* p, int n) {
  float t[4] = {0, 0, 0, 0};
  for (int i = 0; i < n; i++) t[i] = p[i];
  return vload(t);
}
static inline void vstore_tail(float* p, vf v, int n) {
  float t[4];
  vstore(t, v);
  for (int i = 0; i < n; i++) p[i] = t[i];
}
#endif

// exp(x) to ~1 ulp: x = n*ln2 + r with |r| <= ln2/2, e^r by a degree-6 polynomial, then 2^n.
// Inputs are clamped to where the result is representable; NaN passes through the polynomial.
static inline vf vexp(vf x) {
  x = vmin(vset1(88.7228394f), x);   // exp overflows past this: gives +inf via the 2^128 scale
  x = vmax(vset1(-103.972f), x);     // below this exp underflows to 0
  vf n = vround(vmul(x, vset1(1.44269504088896341f)));
  vf r = vfma(n, vset1(-0.693145751953125f), x);     // ln2 split in two for an exact product
  r = vfma(n, vset1(-1.428606765330187045e-06f), r);
  vf p = vset1(1.9875691500e-4f);
  p = vfma(p, r, vset1(1.3981999507e-3f));
  p = vfma(p, r, vset1(8.3334519073e-3f));
  p = vfma(p, r, vset1(4.1665795894e-2f));
  p = vfma(p, r, vset1(1.6666665459e-1f));
  p = vfma(p, r, vset1(5.0000001201e-1f));
  p = vfma(vmul(p, r), r, vadd(r, vset1(1.0f)));
  // 2^n in two halves so that n = 128 (x near the overflow bound) and n < -126 stay exact
  vf h = vround(vmul(n, vset1(0.5f)));
  return vscale2(vscale2(p, h), vsub(n, h));
}

// tanh: a minimax odd polynomial near zero (where 1 - 2/(e^2x + 1) would cancel), the exp form
// elsewhere; the result saturates to +-1 for |x| > 9.
static inline vf vtanh(vf x) {
  vf ax = vabs(x);
  vf z = vmul(x, x);
  vf p = vset1(-5.70498872745e-3f);
  p = vfma(p, z, vset1(2.06390887954e-2f));
  p = vfma(p, z, vset1(-5.37397155531e-2f));
  p = vfma(p, z, vset1(1.33314422036e-1f));
  p = vfma(p, z, vset1(-3.33332819422e-1f));
  vf small = vfma(vmul(p, z), x, x);
  vf e = vexp(vmul(vmin(vset1(9.0f), ax), vset1(2.0f)));  // constant first: NaN in ax survives
  vf big = vcopysign(vsub(vset1(1.0f), vdiv(vset1(2.0f), vadd(e, vset1(1.0f)))), x);
  vf r = vselect_lt(ax, vset1(0.625f), small, big);
  // NaN fails both comparisons above and lands in `big`, whose arithmetic carries it through
  return r;
}

static inline vf vsigmoid(vf x) { return vdiv(vset1(1.0f), vadd(vset1(1.0f), vexp(vsub(vzero(), x)))); }

#if defined(__SSE2__) || SG_ISA_NEON
#define SG_HAVE_TRANSPOSE4 1
// dst[c][r] = src[r][c] for a 4 x 4 block: src rows lds floats apart, dst rows ldd floats apart
static inline void transpose4x4(float* dst, int64_t ldd, const float* src, int64_t lds) {
#if defined(__SSE2__)
  __m128 r0 = _mm_loadu_ps(src), r1 = _mm_loadu_ps(src + lds), r2 = _mm_loadu_ps(src + 2 * lds), r3 = _mm_loadu_ps(src + 3 * lds);
  _MM_TRANSPOSE4_PS(r0, r1, r2, r3);
  _mm_storeu_ps(dst, r0);
  _mm_storeu_ps(dst + ldd, r1);
  _mm_storeu_ps(dst + 2 * ldd, r2);
  _mm_storeu_ps(dst + 3 * ldd, r3);
#else
  // trn interleaves rows pairwise ([a0 b0 a2 b2], [a1 b1 a3 b3]); the 64-bit halves then combine
  const float32x4x2_t ab = vtrnq_f32(vld1q_f32(src), vld1q_f32(src + lds));
  const float32x4x2_t cd = vtrnq_f32(vld1q_f32(src + 2 * lds), vld1q_f32(src + 3 * lds));
  vst1q_f32(dst, vcombine_f32(vget_low_f32(ab.val[0]), vget_low_f32(cd.val[0])));
  vst1q_f32(dst + ldd, vcombine_f32(vget_low_f32(ab.val[1]), vget_low_f32(cd.val[1])));
  vst1q_f32(dst + 2 * ldd, vcombine_f32(vget_high_f32(ab.val[0]), vget_high_f32(cd.val[0])));
  vst1q_f32(dst + 3 * ldd, vcombine_f32(vget_high_f32(ab.val[1]), vget_high_f32(cd.val[1])));
#endif
}
#endif

// dst[c][r] = src[r][c] for an 8 x 8 block: src rows lds floats apart, dst rows ldd floats apart.
// Packing a transposed GEMM operand is a transpose; done one float at a time it took a fifth of a
// batch-64 forward product.
static inline void transpose8x8(float* dst, int64_t ldd, const float* src, int64_t lds) {
#if SG_ISA_AVX512 || SG_ISA_AVX2
  __m256 r0 = _mm256_loadu_ps(src + 0 * lds), r1 = _mm256_loadu_ps(src + 1 * lds);
  __m256 r2 = _mm256_loadu_ps(src + 2 * lds), r3 = _mm256_loadu_ps(src + 3 * lds);
  __m256 r4 = _mm256_loadu_ps(src + 4 * lds), r5 = _mm256_loadu_ps(src + 5 * lds);
  __m256 r6 = _mm256_loadu_ps(src + 6 * lds), r7 = _mm256_loadu_ps(src + 7 * lds);
  // interleave pairs of rows, then pairs of pairs, then swap 128-bit halves
  __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1);
  __m256 t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);
  __m256 t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5);
  __m256 t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
  r0 = _mm256_shuffle_ps(t0, t2, 0x44); r1 = _mm256_shuffle_ps(t0, t2, 0xEE);
  r2 = _mm256_shuffle_ps(t1, t3, 0x44); r3 = _mm256_shuffle_ps(t1, t3, 0xEE);
  r4 = _mm256_shuffle_ps(t4, t6, 0x44); r5 = _mm256_shuffle_ps(t4, t6, 0xEE);
  r6 = _mm256_shuffle_ps(t5, t7, 0x44); r7 = _mm256_shuffle_ps(t5, t7, 0xEE);
  _mm256_storeu_ps(dst + 0 * ldd, _mm256_permute2f128_ps(r0, r4, 0x20));
  _mm256_storeu_ps(dst + 1 * ldd, _mm256_permute2f128_ps(r1, r5, 0x20));
  _mm256_storeu_ps(dst + 2 * ldd, _mm256_permute2f128_ps(r2, r6, 0x20));
  _mm256_storeu_ps(dst + 3 * ldd, _mm256_permute2f128_ps(r3, r7, 0x20));
  _mm256_storeu_ps(dst + 4 * ldd, _mm256_permute2f128_ps(r0, r4, 0x31));
  _mm256_storeu_ps(dst + 5 * ldd, _mm256_permute2f128_ps(r1, r5, 0x31));
  _mm256_storeu_ps(dst + 6 * ldd, _mm256_permute2f128_ps(r2, r6, 0x31));
  _mm256_storeu_ps(dst + 7 * ldd, _mm256_permute2f128_ps(r3, r7, 0x31));
#elif SG_HAVE_TRANSPOSE4
  for (int r = 0; r < 8; r += 4)
    for (int c = 0; c < 8; c += 4) transpose4x4(dst + c * ldd + r, ldd, src + r * lds + c, lds);
#else
  for (int r = 0; r < 8; r++)
    for (int c = 0; c < 8; c++) dst[c * ldd + r] = src[r * lds + c];
#endif
}

// A register tile's accumulators for a loop that a kernel inlines twice (a lambda called for whole
// vectors and for a masked tail): on NEON, GCC kept such a shared array in memory and stored all of
// it at every step (12 stp per 24 fmla in GEMM's tile), so there each copy of the loop works on an
// array of its own: t = own_tile(own, acc) ... loop on t ... return_tile(acc, t). Elsewhere t is acc.
template <int R, int C>
static inline void copy_tile(vf (&dst)[R][C], const vf (&src)[R][C]) {
#pragma GCC unroll 16
  for (int i = 0; i < R; i++)
#pragma GCC unroll 8
    for (int j = 0; j < C; j++) dst[i][j] = src[i][j];
}
template <int R, int C>
static inline vf (&own_tile(vf (&own)[R][C], vf (&acc)[R][C]))[R][C] {
#if SG_ISA_NEON
  copy_tile(own, acc);
  return own;
#else
  return acc;
#endif
}
template <int R, int C>
static inline void return_tile(vf (&acc)[R][C], vf (&t)[R][C]) {
#if SG_ISA_NEON
  copy_tile(acc, t);
#endif
}

// Smallest/largest helpers without <algorithm> (see the note at the top).
static inline int64_t imin(int64_t a, int64_t b) { return a < b ? a : b; }
static inline int64_t imax(int64_t a, int64_t b) { return a > b ? a : b; }

// The `lanes` (1..VL) values at p: a whole vector, or a masked tail (zeros past it when loading).
static inline vf vload_n(const float* p, int64_t lanes) { return lanes == VL ? vload(p) : vload_tail(p, (int)lanes); }
static inline void vstore_n(float* p, vf v, int64_t lanes) {
  if (lanes == VL)
    vstore(p, v);
  else
    vstore_tail(p, v, (int)lanes);
}

// Non-temporal stores write around the caches: for outputs too large to stay cached, they save
// reading each line in before overwriting it (a third of an output's traffic). The stores are
// weakly ordered, so a task that streamed ends with stream_fence() before the pool's join.
static inline void stream_fence() {
#if defined(__SSE2__)
  _mm_sfence();
#endif  // NEON's vstream is a plain store: the pool's join orders it
}
constexpr int64_t kStreamBytes = (int64_t)8 << 20;  // outputs from this size on are streamed
constexpr int64_t kLineBytes = 64;  // a cache line
constexpr int64_t kLineFloats = kLineBytes / (int64_t)sizeof(float);

// A load waits for an earlier store still in the store buffer whose address agrees with it in the
// low 12 bits ("4K aliasing"), even to another array. Walking a run upwards, an output 16-128 bytes
// ahead of an input modulo 4 KiB puts every load just behind such a store: two arrays malloc'd one
// after the other are 16 bytes apart there (glibc's chunk header), and (64, 64, 32, 32) BatchNorm
// train took 5.0 ms on one thread instead of 3.3 (16 bytes ahead; 4.2 ms at 64, 3.56 at 128, none
// from 256). Such a run, when streamed, is walked downwards, which keeps every load below the
// stores before it (on runs that stay in cache, (32, 128, 16, 16), it gained nothing and the
// backward lost 10-25%).
constexpr uintptr_t kAliasBytes = 256;
static inline bool walk_down(const float* out, std::initializer_list<const float*> reads) {
  bool ahead = false, behind = false;
  for (const float* in : reads) {
    if (!in) continue;
    const uintptr_t d = (reinterpret_cast<uintptr_t>(out) - reinterpret_cast<uintptr_t>(in)) & 4095;
    ahead |= d != 0 && d <= kAliasBytes;
    behind |= d >= 4096 - kAliasBytes;
  }
  return ahead && !behind;  // with inputs on both sides, either way one of them waits
}

// out[i : i+lanes] = value(i, lanes) over [0, n) in vectors (masked at the end of a range), where
// value reads `reads` (each indexed like out) at i, and may be called in either order (reads {}:
// always upwards, for a value that accumulates as it goes). With stream, the whole 64-byte lines
// in the middle are written non-temporally and the partial lines at either end plainly: a line
// written both ways (a neighbouring run's head or tail) would be flushed from the cache and the
// write-combining buffers in turn, slower than not streaming at all.
template <class Value>
static inline void write_run(float* out, int64_t n, bool stream, std::initializer_list<const float*> reads,
                             const Value& value) {
  const bool down = stream && walk_down(out, reads);
  // whole vectors with lanes a constant (the loads in value() compile without their tail branch),
  // and the masked tail
  auto plain = [&](int64_t begin, int64_t end) {
    const int64_t whole = begin + (end - begin) / VL * VL;
    if (!down)
      for (int64_t i = begin; i < whole; i += VL) vstore(out + i, value(i, VL));
    if (whole < end) vstore_n(out + whole, value(whole, end - whole), end - whole);
    if (down)
      for (int64_t i = whole - VL; i >= begin; i -= VL) vstore(out + i, value(i, VL));
  };
  if (!stream) return plain(0, n);
  const int64_t misalign = (int64_t)(reinterpret_cast<uintptr_t>(out) % 64) / (int64_t)sizeof(float);
  const int64_t head = imin(n, misalign ? kLineFloats - misalign : 0);
  const int64_t body = head + (n - head) / kLineFloats * kLineFloats;
  if (down) {
    plain(body, n);
    for (int64_t i = body - VL; i >= head; i -= VL) vstream(out + i, value(i, VL));
    plain(0, head);
  } else {
    plain(0, head);
    for (int64_t i = head; i < body; i += VL) vstream(out + i, value(i, VL));
    plain(body, n);
  }
}

// The pool's TaskFn for a callable f(begin, end, tid) passed as the context
template <class F>
static inline void task_call(void* ctx, int64_t b, int64_t e, int tid) {
  (*static_cast<const F*>(ctx))(b, e, tid);
}

// parallel(n, grain, [&](int64_t begin, int64_t end, int tid) { ... }) on the shared pool.
template <class F>
static inline void parallel(int64_t n, int64_t grain, const F& f) {
  parallel_for(n, grain, task_call<F>, const_cast<F*>(&f));
}

// parallel_items(n, [&](int64_t begin, int64_t end, int tid) { ... }): parallel_for_items, where tid is
// the running thread's slot (see threadpool.h)
template <class F>
static inline void parallel_items(int64_t n, const F& f) {
  parallel_for_items(n, task_call<F>, const_cast<F*>(&f));
}

}  // namespace SG_NS
}  // namespace sg
