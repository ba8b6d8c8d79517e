// Convolution helpers: im2col/col2im (so Conv2d is one GEMM per image) and 2-D max pooling.
// x, dx are (N, C, H, W); col is (N, C*KH*KW, OH*OW) with row (c*KH + kh)*KW + kw holding, for each
// output position (oh, ow), x[c, oh*SH - PH + kh, ow*SW - PW + kw] or 0 in the padding.
// Work is split over the N*C planes, so no two threads ever write the same element.
#include "kernels.h"
#include "simd.h"

namespace sg {
namespace SG_NS {

void im2col(float* col, const float* x, int64_t N, int64_t C, int64_t H, int64_t W, int64_t KH, int64_t KW, int64_t SH,
            int64_t SW, int64_t PH, int64_t PW) {
  const int64_t OH = conv_out_size(H, KH, SH, PH), OW = conv_out_size(W, KW, SW, PW);
  parallel(N * C, imax(1, 4096 / imax(1, KH * KW * OH * OW)), [&](int64_t p0, int64_t p1, int) {
    for (int64_t p = p0; p < p1; p++) {
      const float* plane = x + p * H * W;
      // the rows of plane p = n*C + c start at (n*C*KH*KW + c*KH*KW) * OH*OW = p*KH*KW*OH*OW
      float* out = col + p * KH * KW * OH * OW;
      for (int64_t kh = 0; kh < KH; kh++)
        for (int64_t kw = 0; kw < KW; kw++, out += OH * OW)
          for (int64_t oh = 0; oh < OH; oh++) {
            const int64_t ih = oh * SH - PH + kh;
            float* dst = out + oh * OW;
            if (ih < 0 || ih >= H) {
              for (int64_t ow = 0; ow < OW; ow++) dst[ow] = 0.0f;
              continue;
            }
            const float* src = plane + ih * W;
            for (int64_t ow = 0; ow < OW; ow++) {
              const int64_t iw = ow * SW - PW + kw;
              dst[ow] = (iw >= 0 && iw < W) ? src[iw] : 0.0f;
            }
          }
    }
  });
}

void col2im(float* dx, const float* col, int64_t N, int64_t C, int64_t H, int64_t W, int64_t KH, int64_t KW,
            int64_t SH, int64_t SW, int64_t PH, int64_t PW) {
  const int64_t OH = conv_out_size(H, KH, SH, PH), OW = conv_out_size(W, KW, SW, PW);
  parallel(N * C, imax(1, 4096 / imax(1, KH * KW * OH * OW)), [&](int64_t p0, int64_t p1, int) {
    for (int64_t p = p0; p < p1; p++) {
      float* plane = dx + p * H * W;
      for (int64_t i = 0; i < H * W; i++) plane[i] = 0.0f;
      const float* in = col + p * KH * KW * OH * OW;
      for (int64_t kh = 0; kh < KH; kh++)
        for (int64_t kw = 0; kw < KW; kw++, in += OH * OW)
          for (int64_t oh = 0; oh < OH; oh++) {
            const int64_t ih = oh * SH - PH + kh;
            if (ih < 0 || ih >= H) continue;
            float* dst = plane + ih * W;
            const float* src = in + oh * OW;
            for (int64_t ow = 0; ow < OW; ow++) {
              const int64_t iw = ow * SW - PW + kw;
              if (iw >= 0 && iw < W) dst[iw] += src[ow];
            }
          }
    }
  });
}

// y (N, C, OH, OW) = max over each window (padding counts as -inf; NaN wins, as in PyTorch)
void max_pool2d(float* y, int32_t* indices, const float* x, int64_t N, int64_t C, int64_t H, int64_t W, int64_t KH,
                int64_t KW, int64_t SH, int64_t SW, int64_t PH, int64_t PW) {
  const int64_t OH = conv_out_size(H, KH, SH, PH), OW = conv_out_size(W, KW, SW, PW);
  parallel(N * C, imax(1, 4096 / imax(1, OH * OW * KH * KW)), [&](int64_t p0, int64_t p1, int) {
    for (int64_t p = p0; p < p1; p++) {
      const float* plane = x + p * H * W;
      float* out = y + p * OH * OW;
      int32_t* idx = indices + p * OH * OW;
      for (int64_t oh = 0; oh < OH; oh++)
        for (int64_t ow = 0; ow < OW; ow++) {
          const int64_t h0 = oh * SH - PH, w0 = ow * SW - PW;
          const int64_t hs = imax(h0, 0), he = imin(h0 + KH, H), ws = imax(w0, 0), we = imin(w0 + KW, W);
          float m = -INFINITY;
          int64_t at = hs * W + ws;
          for (int64_t h = hs; h < he; h++)
            for (int64_t w = ws; w < we; w++) {
              const float v = plane[h * W + w];
              if (v > m || v != v) {
                m = v;
                at = h * W + w;
                if (v != v) goto done;
              }
            }
        done:
          out[oh * OW + ow] = m;
          idx[oh * OW + ow] = (int32_t)at;
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
