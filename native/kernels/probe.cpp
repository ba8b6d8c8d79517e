// Machine probes for the benchmark: what this CPU and its memory can do at best, so that kernels
// are reported as fractions of it rather than as bare figures.
//   fma_peak: `iters` rounds of kChains independent vector FMA chains on every pool thread, all in
//             registers; returns the floating-point operations performed (2 per lane per FMA).
//   triad:    a = b + s * c where a, b, c are (n): STREAM's triad, split over the pool in chunks.
#include "kernels.h"
#include "simd.h"

namespace sg {
namespace SG_NS {

// FMA latency 4 x 2 pipes needs >= 8 independent chains in flight; 12 covers latency 6 too and
// leaves registers free on 16-register ISAs.
constexpr int kChains = 12;

double fma_peak(int64_t iters) {
  const int threads = num_threads();
  float sink[kMaxThreads] = {0};
  parallel(threads, 1, [&](int64_t b, int64_t e, int tid) {
    for (int64_t t = b; t < e; t++) {
      vf acc[kChains];
      for (int c = 0; c < kChains; c++) acc[c] = vset1(1.0f + 0.001f * (float)c);
      const vf m = vset1(0.9999999f), a = vset1(1e-7f);
      for (int64_t i = 0; i < iters; i++) {
#pragma GCC unroll 16
        for (int c = 0; c < kChains; c++) acc[c] = vfma(acc[c], m, a);  // stays near 1: no denormals
      }
      vf s = acc[0];
      for (int c = 1; c < kChains; c++) s = vadd(s, acc[c]);
      sink[tid] += vhsum(s);  // keeps the loop live
    }
  });
  float keep = 0;
  for (int t = 0; t < kMaxThreads; t++) keep += sink[t];
  __asm__ volatile("" : : "r"(&keep) : "memory");
  return 2.0 * VL * kChains * (double)iters * threads;
}

void triad(float* a, const float* b, const float* c, float s, int64_t n) {
  const vf vs = vset1(s);
  parallel(n, 1 << 15, [&](int64_t lo, int64_t hi, int) {
    int64_t i = lo;
    for (; i + VL <= hi; i += VL) vstore(a + i, vfma(vs, vload(c + i), vload(b + i)));
    for (; i < hi; i++) a[i] = b[i] + s * c[i];
  });
}

}  // namespace SG_NS
}  // namespace sg
