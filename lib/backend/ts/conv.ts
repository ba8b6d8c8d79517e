/** im2col/col2im, Conv2d's output layout and 2-D max pooling: the specification of native/kernels/conv.cpp. */

/** A convolution's or pooling's sizes: x (N, C, H, W), a KH x KW window, stride, padding, output OH x OW. */
export interface ConvDims {
  N: number; C: number; H: number; W: number; KH: number; KW: number;
  SH: number; SW: number; PH: number; PW: number; OH: number; OW: number;
}

/**
 * Visits every entry of col (C*KH*KW, N*OH*OW) in order, with the index in x (N, C, H, W) it
 * copies, or -1 where it lies in the padding. im2col and col2im are this walk in two directions.
 */
function walkColumns(d: ConvDims, visit: (colIndex: number, xIndex: number) => void): void {
  const { N, C, H, W, KH, KW, SH, SW, PH, PW, OH, OW } = d;
  let o = 0;
  for (let c = 0; c < C; c++)
    for (let kh = 0; kh < KH; kh++)
      for (let kw = 0; kw < KW; kw++)
        for (let n = 0; n < N; n++) {
          const plane = (n * C + c) * H * W;
          for (let oh = 0; oh < OH; oh++) {
            const ih = oh * SH - PH + kh;
            for (let ow = 0; ow < OW; ow++, o++) {
              const iw = ow * SW - PW + kw;
              visit(o, ih >= 0 && ih < H && iw >= 0 && iw < W ? plane + ih * W + iw : -1);
            }
          }
        }
}

export function im2col(col: Float32Array, x: Float32Array, d: ConvDims): void {
  if (col.length === 0) return; // work in proportion to the data, whatever the sizes say
  walkColumns(d, (o, xi) => {
    col[o] = xi >= 0 ? x[xi] : 0;
  });
}

export function col2im(dx: Float32Array, col: Float32Array, d: ConvDims): void {
  dx.fill(0);
  if (col.length === 0) return;
  walkColumns(d, (o, xi) => {
    if (xi >= 0) dx[xi] += col[o];
  });
}

/** y (N, OC, P) = out (OC, N, P) with its first two dimensions swapped, plus bias[o] when given. */
export function convOutput(y: Float32Array, out: Float32Array, bias: Float32Array | null, N: number, OC: number, P: number): void {
  if (y.length === 0) return;
  for (let o = 0; o < OC; o++)
    for (let n = 0; n < N; n++) {
      const src = (o * N + n) * P, dst = (n * OC + o) * P;
      if (!bias) {
        y.set(out.subarray(src, src + P), dst);
        continue;
      }
      const b = bias[o];
      for (let p = 0; p < P; p++) y[dst + p] = out[src + p] + b;
    }
}

/** gT (OC, N, P) = g (N, OC, P) with its first two dimensions swapped; dbias[o] = g summed over N and P. */
export function convOutputBackward(gT: Float32Array, dbias: Float32Array | null, g: Float32Array, N: number, OC: number, P: number): void {
  if (g.length === 0) {
    dbias?.fill(0); // sums over no values
    return;
  }
  for (let o = 0; o < OC; o++) {
    let total = 0;
    for (let n = 0; n < N; n++) {
      const src = (n * OC + o) * P, dst = (o * N + n) * P;
      gT.set(g.subarray(src, src + P), dst);
      if (dbias) for (let p = 0; p < P; p++) total += g[src + p];
    }
    if (dbias) dbias[o] = total;
  }
}

export function maxPool2d(y: Float32Array, indices: Int32Array, x: Float32Array, d: ConvDims): void {
  const { N, C, H, W, KH, KW, SH, SW, PH, PW, OH, OW } = d;
  for (let p = 0; p < N * C; p++)
    for (let oh = 0; oh < OH; oh++)
      for (let ow = 0; ow < OW; ow++) {
        const h0 = oh * SH - PH, w0 = ow * SW - PW;
        const hs = Math.max(h0, 0), he = Math.min(h0 + KH, H), ws = Math.max(w0, 0), we = Math.min(w0 + KW, W);
        let m = -Infinity, at = hs * W + ws;
        search: for (let h = hs; h < he; h++)
          for (let w = ws; w < we; w++) {
            const v = x[p * H * W + h * W + w];
            if (v > m || v !== v) {
              m = v;
              at = h * W + w;
              if (v !== v) break search;
            }
          }
        y[(p * OH + oh) * OW + ow] = m;
        indices[(p * OH + oh) * OW + ow] = at;
      }
}

export function maxPool2dBackward(dx: Float32Array, dy: Float32Array, indices: Int32Array, planes: number,
  plane: number, outPlane: number): void {
  dx.fill(0);
  for (let p = 0; p < planes; p++)
    for (let i = 0; i < outPlane; i++) dx[p * plane + indices[p * outPlane + i]] += dy[p * outPlane + i];
}
