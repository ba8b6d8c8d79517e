// Every kernel's signature, once. Each ISA build (see simd.h) fills one Kernels table with its own
// functions (table.cpp, from SG_KERNEL_NAMES); dispatch.cpp picks a table at run time from cpuid.
// What JavaScript passes each kernel, and the checks on it, are in lib/backend/schema.ts.
//
// Conventions: outputs first, then inputs, then sizes and scalars. Arrays are float32, row-major,
// contiguous unless a leading dimension says otherwise. Sizes are int64_t and already validated
// (by the binding) against the arrays' lengths. Dimension letters used across the files:
//   M, N, K  GEMM: C is (M, N), op(A) is (M, K), op(B) is (K, N)
//   N, C, S  batch, channels, spatial positions per channel (S = H*W; S = 1 for the (N, C) layout)
//   R, K     rows and classes of a logits matrix
//   H, W, KH, KW, OH, OW  image, kernel and output heights/widths
#pragma once

#include <cstdint>

namespace sg {

struct Kernels {
  const char* isa;

  // C (M, N) = alpha * op(A) (M, K) . op(B) (K, N) + beta * C (+ bias (N) on every row, unless
  // null); op(A) = A^T when trans_a, so A is stored (K, M) with leading dimension lda, else (M, K).
  // beta == 0 never reads C.
  void (*sgemm)(float* C, const float* A, const float* B, int64_t M, int64_t N, int64_t K, bool trans_a,
                bool trans_b, float alpha, float beta, int64_t lda, int64_t ldb, int64_t ldc, const float* bias);
  // sgemm without a bias, returning the sum of the squares of C's M x N values as it leaves them (a
  // weight gradient and its norm for gradient-health monitoring); where the product is blocked and
  // packed the squares are summed as each tile of C is stored, elsewhere in a pass over C after it.
  double (*sgemm_sum_squares)(float* C, const float* A, const float* B, int64_t M, int64_t N, int64_t K,
                              bool trans_a, bool trans_b, float alpha, float beta, int64_t lda, int64_t ldb,
                              int64_t ldc);

  // x, y are (N, C, S); weight, bias, means and variances are (C). weight/bias may be null (affine
  // = false), running_mean/var may be null (no tracked statistics). momentum is the factor of the
  // running update: running = (1 - momentum) * running + momentum * batch statistic, with the
  // unbiased variance for running_var. relu fuses max(0, .) into the output.
  void (*batchnorm_forward_train)(float* y, float* save_mean, float* save_invstd, float* running_mean,
                                  float* running_var, const float* x, const float* weight, const float* bias,
                                  int64_t N, int64_t C, int64_t S, float eps, float momentum, bool relu);
  void (*batchnorm_forward_eval)(float* y, const float* x, const float* running_mean, const float* running_var,
                                 const float* weight, const float* bias, int64_t N, int64_t C, int64_t S, float eps,
                                 bool relu);
  // dx, dy, x, y are (N, C, S); any of dx, dweight, dbias may be null (not needed). mean/invstd are
  // the saved batch statistics when train, else running_mean and 1/sqrt(running_var + eps). y, when
  // given, is the output of a fused BatchNorm+ReLU forward and masks dy where y <= 0.
  void (*batchnorm_backward)(float* dx, float* dweight, float* dbias, const float* dy, const float* x,
                             const float* mean, const float* invstd, const float* weight, const float* y,
                             int64_t N, int64_t C, int64_t S, bool train);

  // BatchNorm in phases (PyTorch's batch_norm_stats, _elemt, _backward_reduce, _backward_elemt), for
  // statistics merged across processes. stats: mean (C) and biased variance (C) of each channel's N*S
  // values (N*S >= 1). apply: y = (x - mean) * invstd * weight + bias (then max(0, .) when relu).
  // backward_reduce: sum_dy (C) = sum(dy'), sum_dy_xmu (C) = sum(dy' * (x - mean)), with dy' = dy
  // masked by y > 0 when y (a fused ReLU's output) is given. backward_apply: dx = weight * invstd *
  // (dy' - sum_dy/count - (x - mean) * invstd^2 * sum_dy_xmu/count), the sums over `count` values.
  void (*batchnorm_stats)(float* mean, float* variance, const float* x, int64_t N, int64_t C, int64_t S);
  void (*batchnorm_apply)(float* y, const float* x, const float* mean, const float* invstd, const float* weight,
                          const float* bias, int64_t N, int64_t C, int64_t S, bool relu);
  void (*batchnorm_backward_reduce)(float* sum_dy, float* sum_dy_xmu, const float* dy, const float* x,
                                    const float* mean, const float* y, int64_t N, int64_t C, int64_t S);
  void (*batchnorm_backward_apply)(float* dx, const float* dy, const float* x, const float* mean, const float* invstd,
                                   const float* weight, const float* sum_dy, const float* sum_dy_xmu, const float* y,
                                   int64_t count, int64_t N, int64_t C, int64_t S);

  // Elementwise over n items; out may alias an input.
  void (*add)(float* out, const float* a, const float* b, int64_t n);
  void (*mul)(float* out, const float* a, const float* b, int64_t n);
  void (*scale)(float* out, const float* x, float alpha, int64_t n);
  void (*axpy)(float* y, const float* x, float alpha, int64_t n);  // y += alpha * x
  void (*relu)(float* out, const float* x, int64_t n);
  void (*relu_backward)(float* dx, const float* dy, const float* x, int64_t n);
  void (*leaky_relu)(float* out, const float* x, float slope, int64_t n);
  void (*leaky_relu_backward)(float* dx, const float* dy, const float* x, float slope, int64_t n);
  void (*sigmoid)(float* out, const float* x, int64_t n);
  void (*sigmoid_backward)(float* dx, const float* dy, const float* y, int64_t n);  // y = sigmoid(x)
  void (*tanh)(float* out, const float* x, int64_t n);
  void (*tanh_backward)(float* dx, const float* dy, const float* y, int64_t n);  // y = tanh(x)
  double (*sum)(const float* x, int64_t n);
  double (*sum_squares)(const float* x, int64_t n);
  // x is (R, K); max and argmax of each row, NaN winning as in PyTorch (first NaN's index).
  void (*max_rows)(float* max, int32_t* argmax, const float* x, int64_t R, int64_t K);
  // out (R, D) = the rows indices[r] of src (rows of D floats); the indices are validated.
  void (*gather_rows)(float* out, const float* src, const int32_t* indices, int64_t R, int64_t D);
  // out (R, D) = (the bytes of row indices[r] of src - offset[c]) * scale[c], c the value's plane of
  // the row's `channels` equal planes, each operation rounded to float; the indices are validated.
  void (*gather_bytes)(float* out, const uint8_t* src, const int32_t* indices, int64_t R, int64_t D,
                       const float* offset, const float* scale, int64_t channels);

  // logits is (R, K), targets (R) in [0, K). losses (R) = logsumexp(row) - (1-ls)*row[t] - ls*mean(row)
  // with ls the label smoothing. dlogits (R, K) = dlosses[r] * (softmax(row) - (1-ls)*onehot(t) - ls/K).
  void (*softmax_xent_forward)(float* losses, const float* logits, const int32_t* targets, int64_t R, int64_t K,
                               float label_smoothing);
  void (*softmax_xent_backward)(float* dlogits, const float* logits, const int32_t* targets, const float* dlosses,
                                int64_t R, int64_t K, float label_smoothing);

  // In-place optimizer steps over n parameters, PyTorch's update rules (see optim.cpp).
  void (*sgd_step)(float* param, float* momentum_buffer, const float* grad, int64_t n, float lr, float momentum,
                   float dampening, float weight_decay, bool nesterov, bool first_step);
  void (*adam_step)(float* param, float* exp_avg, float* exp_avg_sq, const float* grad, int64_t n, float lr,
                    float beta1, float beta2, float eps, float weight_decay, int64_t step, bool decoupled);

  // x is (N, C, H, W), col is (N, C*KH*KW, OH*OW). col2im writes dx as the sum of col's entries.
  void (*im2col)(float* col, const float* x, int64_t N, int64_t C, int64_t H, int64_t W, int64_t KH, int64_t KW,
                 int64_t SH, int64_t SW, int64_t PH, int64_t PW);
  void (*col2im)(float* dx, const float* col, int64_t N, int64_t C, int64_t H, int64_t W, int64_t KH, int64_t KW,
                 int64_t SH, int64_t SW, int64_t PH, int64_t PW);
  // out is (OC, N, P), y (N, OC, P): y[n, o, :] = out[o, n, :] + bias[o] (bias may be null).
  // g is (N, OC, P), gT (OC, N, P): gT[o, n, :] = g[n, o, :]; dbias (may be null) is g summed over N and P.
  void (*conv_output)(float* y, const float* out, const float* bias, int64_t N, int64_t OC, int64_t P);
  void (*conv_output_backward)(float* gT, float* dbias, const float* g, int64_t N, int64_t OC, int64_t P);
  // y, indices are (N, C, OH, OW); indices hold h*W + w of each maximum within its (H, W) plane.
  void (*max_pool2d)(float* y, int32_t* indices, const float* x, int64_t N, int64_t C, int64_t H, int64_t W,
                     int64_t KH, int64_t KW, int64_t SH, int64_t SW, int64_t PH, int64_t PW);
  void (*max_pool2d_backward)(float* dx, const float* dy, const int32_t* indices, int64_t N, int64_t C, int64_t H,
                              int64_t W, int64_t OH, int64_t OW);

  // Machine probes for the benchmark (probe.cpp): FMA throughput in registers on every pool thread
  // (returns the FLOPs done), and STREAM's triad a (n) = b (n) + s * c (n).
  double (*fma_peak)(int64_t iters);
  void (*triad)(float* a, const float* b, const float* c, float s, int64_t n);
};

// Every member of Kernels but isa, in order: table.cpp declares and fills each ISA's table from it.
#define SG_KERNEL_NAMES(X)                                                                                   \
  X(sgemm) X(sgemm_sum_squares) X(batchnorm_forward_train) X(batchnorm_forward_eval) X(batchnorm_backward)          \
  X(batchnorm_stats) X(batchnorm_apply) X(batchnorm_backward_reduce) X(batchnorm_backward_apply) X(add)            \
  X(mul) X(scale) X(axpy) X(relu) X(relu_backward) X(leaky_relu) X(leaky_relu_backward) X(sigmoid)               \
  X(sigmoid_backward) X(tanh) X(tanh_backward) X(sum) X(sum_squares) X(max_rows) X(gather_rows) X(gather_bytes)  \
  X(softmax_xent_forward) X(softmax_xent_backward) X(sgd_step) X(adam_step) X(im2col) X(col2im) X(conv_output)   \
  X(conv_output_backward) X(max_pool2d) X(max_pool2d_backward) X(fma_peak) X(triad)

static inline int64_t conv_out_size(int64_t in, int64_t k, int64_t stride, int64_t pad) {
  return (in + 2 * pad - k) / stride + 1;
}

namespace scalar { extern const Kernels table; }
namespace avx2 { extern const Kernels table; }
namespace avx512 { extern const Kernels table; }
namespace neon { extern const Kernels table; }

}  // namespace sg
