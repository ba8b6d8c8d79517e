// This ISA's kernel table (see kernels.h); compiled once per ISA like every kernel family.
#include "kernels.h"
#include "simd.h"

namespace sg {
namespace SG_NS {

void sgemm(float*, const float*, const float*, int64_t, int64_t, int64_t, bool, bool, float, float, int64_t, int64_t,
           int64_t, const float*);
double sgemm_sum_squares(float*, const float*, const float*, int64_t, int64_t, int64_t, bool, bool, float, float,
                         int64_t, int64_t, int64_t);
void batchnorm_forward_train(float*, float*, float*, float*, float*, const float*, const float*, const float*, int64_t,
                             int64_t, int64_t, float, float, bool);
void batchnorm_forward_eval(float*, const float*, const float*, const float*, const float*, const float*, int64_t,
                            int64_t, int64_t, float, bool);
void batchnorm_backward(float*, float*, float*, const float*, const float*, const float*, const float*, const float*,
                        const float*, int64_t, int64_t, int64_t, bool);
void add(float*, const float*, const float*, int64_t);
void mul(float*, const float*, const float*, int64_t);
void scale(float*, const float*, float, int64_t);
void axpy(float*, const float*, float, int64_t);
void relu(float*, const float*, int64_t);
void relu_backward(float*, const float*, const float*, int64_t);
void leaky_relu(float*, const float*, float, int64_t);
void leaky_relu_backward(float*, const float*, const float*, float, int64_t);
void sigmoid(float*, const float*, int64_t);
void sigmoid_backward(float*, const float*, const float*, int64_t);
void tanh(float*, const float*, int64_t);
void tanh_backward(float*, const float*, const float*, int64_t);
double sum(const float*, int64_t);
double sum_squares(const float*, int64_t);
void max_rows(float*, int32_t*, const float*, int64_t, int64_t);
void gather_rows(float*, const float*, const int32_t*, int64_t, int64_t);
void gather_bytes(float*, const uint8_t*, const int32_t*, int64_t, int64_t, const float*, const float*, int64_t);
void softmax_xent_forward(float*, const float*, const int32_t*, int64_t, int64_t, float);
void softmax_xent_backward(float*, const float*, const int32_t*, const float*, int64_t, int64_t, float);
void sgd_step(float*, float*, const float*, int64_t, float, float, float, float, bool, bool);
void adam_step(float*, float*, float*, const float*, int64_t, float, float, float, float, float, int64_t, bool);
void im2col(float*, const float*, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t,
            int64_t);
void col2im(float*, const float*, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t,
            int64_t);
void conv_output(float*, const float*, const float*, int64_t, int64_t, int64_t);
void conv_output_backward(float*, float*, const float*, int64_t, int64_t, int64_t);
void max_pool2d(float*, int32_t*, const float*, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t,
                int64_t, int64_t);
void max_pool2d_backward(float*, const float*, const int32_t*, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t);
double fma_peak(int64_t);
void triad(float*, const float*, const float*, float, int64_t);

#define SG_STR2(x) #x
#define SG_STR(x) SG_STR2(x)

// Designated by position; the compiler checks each pointer's type against kernels.h.
extern const Kernels table = {
    SG_STR(SG_NS),       sgemm,          sgemm_sum_squares,
    batchnorm_forward_train,                 batchnorm_forward_eval, batchnorm_backward,
    add,                 mul,            scale,                   axpy,                   relu,
    relu_backward,       leaky_relu,     leaky_relu_backward,     sigmoid,                sigmoid_backward,
    tanh,                tanh_backward,  sum,                     sum_squares,            max_rows,
    gather_rows,         gather_bytes,
    softmax_xent_forward, softmax_xent_backward, sgd_step,        adam_step,              im2col,
    col2im,              conv_output,    conv_output_backward,
    max_pool2d,          max_pool2d_backward,     fma_peak,       triad,
};

}  // namespace SG_NS
}  // namespace sg
