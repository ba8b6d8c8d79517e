// Fused optimizer steps over a parameter and its state, each one pass over n floats, following
// PyTorch's single-tensor update rules (torch.optim.SGD / Adam / AdamW) operation for operation.
// param, grad and the state buffers (momentum_buffer, exp_avg, exp_avg_sq) are (n).
#include "kernels.h"
#include "simd.h"

namespace sg {
namespace SG_NS {
namespace {
constexpr int64_t kGrain = 1 << 15;
}

// d = grad + weight_decay*param
// momentum != 0: buf = d on the first step, else buf = momentum*buf + (1 - dampening)*d;
//                d = nesterov ? d + momentum*buf : buf
// param -= lr*d
void sgd_step(float* param, float* momentum_buffer, const float* grad, int64_t n, float lr, float momentum,
              float dampening, float weight_decay, bool nesterov, bool first_step) {
  // in vectors; the options are the same for every element, so the branches below always go the
  // same way (plain SGD is param = param - lr*grad: one FMA per vector)
  const vf vlr = vset1(-lr), vwd = vset1(weight_decay), vm = vset1(momentum), vdamp = vset1(1.0f - dampening);
  const bool use_momentum = momentum != 0.0f;
  auto update = [&](vf p, vf g, float* buf_at, int lanes) {
    vf d = weight_decay != 0.0f ? vfma(vwd, p, g) : g;
    if (use_momentum) {
      const vf buf = first_step ? d : vfma(vm, vload_n(buf_at, lanes), vmul(vdamp, d));
      vstore_n(buf_at, buf, lanes);
      d = nesterov ? vfma(vm, buf, d) : buf;
    }
    return vfma(vlr, d, p);
  };
  parallel(n, kGrain, [&](int64_t b, int64_t e, int) {
    int64_t i = b;
    for (; i + VL <= e; i += VL) {
      float* buf = use_momentum ? momentum_buffer + i : nullptr;
      vstore(param + i, update(vload(param + i), vload(grad + i), buf, VL));
    }
    if (i < e) {
      const int t = (int)(e - i);
      float* buf = use_momentum ? momentum_buffer + i : nullptr;
      vstore_tail(param + i, update(vload_tail(param + i, t), vload_tail(grad + i, t), buf, t), t);
    }
  });
}

// decoupled (AdamW): param *= 1 - lr*weight_decay; otherwise (Adam) g = grad + weight_decay*param.
// m = beta1*m + (1 - beta1)*g; v = beta2*v + (1 - beta2)*g*g
// param -= lr/(1 - beta1^step) * m / (sqrt(v)/sqrt(1 - beta2^step) + eps)
void adam_step(float* param, float* exp_avg, float* exp_avg_sq, const float* grad, int64_t n, float lr, float beta1,
               float beta2, float eps, float weight_decay, int64_t step, bool decoupled) {
  const float step_size = (float)((double)lr / (1.0 - std::pow((double)beta1, (double)step)));
  const float bc2_sqrt = (float)std::sqrt(1.0 - std::pow((double)beta2, (double)step));
  const float decay = decoupled ? 1.0f - lr * weight_decay : 1.0f;
  const float l2 = decoupled ? 0.0f : weight_decay;
  const vf vdecay = vset1(decay), vl2 = vset1(l2), vb1 = vset1(beta1), vb2 = vset1(beta2);
  const vf vg1 = vset1(1.0f - beta1), vg2 = vset1(1.0f - beta2), vstep = vset1(step_size), vbc2 = vset1(bc2_sqrt),
           veps = vset1(eps);
  // the `lanes` floats at i, in vectors (masked at the end of a range)
  auto update = [&](int64_t i, int64_t lanes) {
    const vf p = vmul(vload_n(param + i, lanes), vdecay);
    const vf g = vfma(vl2, p, vload_n(grad + i, lanes));
    const vf m = vfma(vload_n(exp_avg + i, lanes), vb1, vmul(vg1, g));
    const vf v = vfma(vload_n(exp_avg_sq + i, lanes), vb2, vmul(vmul(vg2, g), g));
    vstore_n(exp_avg + i, m, lanes);
    vstore_n(exp_avg_sq + i, v, lanes);
    vstore_n(param + i, vsub(p, vmul(vstep, vdiv(m, vadd(vdiv(vsqrt(v), vbc2), veps)))), lanes);
  };
  parallel(n, kGrain, [&](int64_t b, int64_t e, int) {
    int64_t i = b;
    for (; i + VL <= e; i += VL) update(i, VL);
    if (i < e) update(i, e - i);
  });
}

}  // namespace SG_NS
}  // namespace sg
