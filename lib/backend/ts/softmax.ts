/** Softmax cross-entropy: the specification of native/kernels/softmax_xent.cpp (formulas there). */

function logSumExp(z: Float32Array, o: number, K: number): number {
  let m = z[o];
  for (let k = 1; k < K; k++) if (z[o + k] > m || z[o + k] !== z[o + k]) m = z[o + k];
  let s = 0;
  for (let k = 0; k < K; k++) s += Math.exp(z[o + k] - m);
  return m + Math.log(s);
}

export function softmaxCrossEntropy(losses: Float32Array, logits: Float32Array, targets: Int32Array, R: number,
  K: number, ls: number): void {
  for (let r = 0; r < R; r++) {
    const o = r * K;
    let total = 0;
    for (let k = 0; k < K; k++) total += logits[o + k];
    losses[r] = logSumExp(logits, o, K) - (1 - ls) * logits[o + targets[r]] - (ls * total) / K;
  }
}

export function softmaxCrossEntropyBackward(dlogits: Float32Array, logits: Float32Array, targets: Int32Array,
  dlosses: Float32Array, R: number, K: number, ls: number): void {
  for (let r = 0; r < R; r++) {
    const o = r * K, lse = logSumExp(logits, o, K), g = dlosses[r];
    for (let k = 0; k < K; k++) dlogits[o + k] = g * (Math.exp(logits[o + k] - lse) - ls / K);
    dlogits[o + targets[r]] -= g * (1 - ls);
  }
}
