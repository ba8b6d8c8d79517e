// Softmax cross-entropy from logits and integer targets, with label smoothing ls (PyTorch's
// CrossEntropyLoss per row): with lse = log(sum(exp(z))) computed stably as max + log(sum(exp(z - max))),
//   loss = (1 - ls)*(lse - z[t]) + ls * mean_j(lse - z[j]) = lse - (1 - ls)*z[t] - ls*mean(z)
//   dz[j] = dloss * (softmax(z)[j] - (1 - ls)*[j == t] - ls/K)
// logits is (R, K), targets and losses (R). Targets are validated to [0, K) by the caller.
#include "kernels.h"
#include "simd.h"

namespace sg {
namespace SG_NS {
namespace {

struct RowStats {
  float max, lse, sum;  // sum of the row's logits (for the smoothing term)
};

RowStats row_stats(const float* z, int64_t K) {
  float m = z[0];
  double total = 0;
  for (int64_t k = 0; k < K; k++) {
    if (z[k] > m || z[k] != z[k]) m = z[k];  // NaN wins and propagates
    total += (double)z[k];
  }
  const vf vm = vset1(m);
  vf s = vzero();
  int64_t k = 0;
  for (; k + VL <= K; k += VL) s = vadd(s, vexp(vsub(vload(z + k), vm)));
  float e = vhsum(s);
  if (k < K) {  // only the live lanes of the tail: a dead lane would add exp(0 - max)
    float t[VL];
    vstore(t, vexp(vsub(vload_tail(z + k, (int)(K - k)), vm)));
    for (int64_t j = 0; j < K - k; j++) e += t[j];
  }
  return RowStats{m, m + std::log(e), (float)total};
}

}  // namespace

void softmax_xent_forward(float* losses, const float* logits, const int32_t* targets, int64_t R, int64_t K,
                          float label_smoothing) {
  parallel(R, imax(1, 8192 / K), [&](int64_t r0, int64_t r1, int) {
    for (int64_t r = r0; r < r1; r++) {
      const float* z = logits + r * K;
      const RowStats st = row_stats(z, K);
      losses[r] = st.lse - (1.0f - label_smoothing) * z[targets[r]] - label_smoothing * st.sum / (float)K;
    }
  });
}

void softmax_xent_backward(float* dlogits, const float* logits, const int32_t* targets, const float* dlosses, int64_t R,
                           int64_t K, float label_smoothing) {
  parallel(R, imax(1, 8192 / K), [&](int64_t r0, int64_t r1, int) {
    for (int64_t r = r0; r < r1; r++) {
      const float* z = logits + r * K;
      float* dz = dlogits + r * K;
      const RowStats st = row_stats(z, K);
      const vf vlse = vset1(st.lse), vg = vset1(dlosses[r]), vsmooth = vset1(label_smoothing / (float)K);
      int64_t k = 0;
      for (; k + VL <= K; k += VL) vstore(dz + k, vmul(vg, vsub(vexp(vsub(vload(z + k), vlse)), vsmooth)));
      if (k < K) {
        const int t = (int)(K - k);
        vstore_tail(dz + k, vmul(vg, vsub(vexp(vsub(vload_tail(z + k, t), vlse)), vsmooth)), t);
      }
      dz[targets[r]] -= dlosses[r] * (1.0f - label_smoothing);
    }
  });
}

}  // namespace SG_NS
}  // namespace sg
