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
/*
 * ReLU and its mask without data-dependent branches: on activations such a branch mispredicts on
 * about every other value (measured in V8 on 32k values: 10 ns a value with the branch, 1.8 with
 * the select below).
 */
const select = new Float64Array(2); // [0, value], indexed by a comparison instead of branching on it
/** value when keep, else 0 */
export function keepOrZero(keep: boolean, value: number): number {
  select[1] = value;
  return select[Number(keep)];
}
/** max(v, 0); NaN stays NaN, as in PyTorch */
export function reluOf(v: number): number {
  return keepOrZero(!(v < 0), v);
}
export function relu(out: Float32Array, x: Float32Array): void {
  for (let i = 0; i < out.length; i++) out[i] = reluOf(x[i]);
}
export function reluBackward(dx: Float32Array, dy: Float32Array, x: Float32Array): void {
  for (let i = 0; i < dx.length; i++) dx[i] = keepOrZero(x[i] > 0, dy[i]);
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
/**
 * In double, over four interleaved partial sums (one chain is bound by the add latency: 1.7x
 * slower), with int32 indices so that V8 adds no overflow checks (392k values: 408 -> 219 us).
 */
export function sumSquares(x: Float32Array): number {
  let s0 = 0, s1 = 0, s2 = 0, s3 = 0, i = 0;
  const n = x.length, n4 = n & ~3;
  for (; i < n4; i = (i + 4) | 0) {
    const a = x[i], b = x[(i + 1) | 0], c = x[(i + 2) | 0], d = x[(i + 3) | 0];
    s0 += a * a;
    s1 += b * b;
    s2 += c * c;
    s3 += d * d;
  }
  for (; i < n; i++) s0 += x[i] * x[i];
  return s0 + s1 + (s2 + s3);
}
export function gatherRows(out: Float32Array, src: Float32Array, indices: Int32Array, R: number, D: number): void {
  for (let r = 0; r < R; r++) out.set(src.subarray(indices[r] * D, (indices[r] + 1) * D), r * D);
}
/** (byte - offset) then * scale, each rounded to float32 as the native kernel does (no FMA). */
export function gatherBytes(out: Float32Array, src: Uint8Array, indices: Int32Array, R: number, D: number,
  offset: Float32Array, scale: Float32Array): void {
  const plane = D / offset.length;
  for (let r = 0; r < R; r++) {
    const row = indices[r] * D;
    for (let c = 0; c < offset.length; c++) {
      const off = offset[c], sc = scale[c], o = r * D + c * plane, s = row + c * plane;
      // a product of two floats is exact in double, so storing it rounds once, as float arithmetic does
      for (let i = 0; i < plane; i++) out[o + i] = Math.fround(src[s + i] - off) * sc;
    }
  }
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
