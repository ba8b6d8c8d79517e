/** Elementwise maps, activations, reductions: the specification of native/kernels/elementwise.cpp. */

export function add(out: Float32Array, a: Float32Array, b: Float32Array): void {
  for (let i = 0; i < out.length; i++) out[i] = a[i] + b[i];
}
export function mul(out: Float32Array, a: Float32Array, b: Float32Array): void {
  for (let i = 0; i < out.length; i++) out[i] = a[i] * b[i];
}
export function scale(out: Float32Array, x: Float32Array, alpha: number): void {
  for (let i = 0; i < out.length; i++) out[i] = x[i] * alpha;
}
export function axpy(y: Float32Array, x: Float32Array, alpha: number): void {
  for (let i = 0; i < y.length; i++) y[i] += alpha * x[i];
}
/** NaN stays NaN, as in PyTorch. */
export function relu(out: Float32Array, x: Float32Array): void {
  for (let i = 0; i < out.length; i++) out[i] = x[i] < 0 ? 0 : x[i];
}
export function reluBackward(dx: Float32Array, dy: Float32Array, x: Float32Array): void {
  for (let i = 0; i < dx.length; i++) dx[i] = x[i] > 0 ? dy[i] : 0;
}
export function leakyRelu(out: Float32Array, x: Float32Array, slope: number): void {
  for (let i = 0; i < out.length; i++) out[i] = x[i] <= 0 ? x[i] * slope : x[i];
}
export function leakyReluBackward(dx: Float32Array, dy: Float32Array, x: Float32Array, slope: number): void {
  for (let i = 0; i < dx.length; i++) dx[i] = x[i] <= 0 ? dy[i] * slope : dy[i];
}
export function sigmoid(out: Float32Array, x: Float32Array): void {
  for (let i = 0; i < out.length; i++) out[i] = 1 / (1 + Math.exp(-x[i]));
}
export function sigmoidBackward(dx: Float32Array, dy: Float32Array, y: Float32Array): void {
  for (let i = 0; i < dx.length; i++) dx[i] = dy[i] * y[i] * (1 - y[i]);
}
export function tanh(out: Float32Array, x: Float32Array): void {
  for (let i = 0; i < out.length; i++) out[i] = Math.tanh(x[i]);
}
export function tanhBackward(dx: Float32Array, dy: Float32Array, y: Float32Array): void {
  for (let i = 0; i < dx.length; i++) dx[i] = dy[i] * (1 - y[i] * y[i]);
}
export function sum(x: Float32Array): number {
  let s = 0;
  for (let i = 0; i < x.length; i++) s += x[i];
  return s;
}
export function sumSquares(x: Float32Array): number {
  let s = 0;
  for (let i = 0; i < x.length; i++) s += x[i] * x[i];
  return s;
}
export function gatherRows(out: Float32Array, src: Float32Array, indices: Int32Array, R: number, D: number): void {
  for (let r = 0; r < R; r++) out.set(src.subarray(indices[r] * D, (indices[r] + 1) * D), r * D);
}
export function maxRows(max: Float32Array, argmax: Int32Array, x: Float32Array, R: number, K: number): void {
  for (let r = 0; r < R; r++) {
    const o = r * K;
    let m = x[o], at = 0;
    for (let k = 1; k < K && m === m; k++) {
      const v = x[o + k];
      if (v > m || v !== v) {
        m = v;
        at = k;
      }
    }
    max[r] = m;
    argmax[r] = at;
  }
}
