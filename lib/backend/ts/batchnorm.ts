/**
 * BatchNorm in TypeScript: the specification of native/kernels/batchnorm.cpp (see its header for
 * the formulas). x, y, dx, dy are (N, C, S); per-channel vectors (C); M = N*S values per channel.
 * Everything is accumulated in double.
 */

export function batchnormForwardTrain(y: Float32Array, saveMean: Float32Array, saveInvstd: Float32Array,
  runningMean: Float32Array | null, runningVar: Float32Array | null, x: Float32Array, weight: Float32Array | null,
  bias: Float32Array | null, N: number, C: number, S: number, eps: number, momentum: number, relu: boolean): void {
  const M = N * S;
  for (let c = 0; c < C; c++) {
    let sum = 0;
    for (let n = 0; n < N; n++) for (let s = 0, o = (n * C + c) * S; s < S; s++) sum += x[o + s];
    const mean = sum / M;
    let sq = 0;
    for (let n = 0; n < N; n++)
      for (let s = 0, o = (n * C + c) * S; s < S; s++) {
        const d = x[o + s] - mean;
        sq += d * d;
      }
    const invstd = 1 / Math.sqrt(sq / M + eps);
    saveMean[c] = mean;
    saveInvstd[c] = invstd;
    if (runningMean) runningMean[c] = (1 - momentum) * runningMean[c] + momentum * mean;
    if (runningVar) runningVar[c] = (1 - momentum) * runningVar[c] + momentum * (sq / (M - 1));
    const w = weight ? weight[c] : 1, b = bias ? bias[c] : 0;
    affine(y, x, N, C, S, c, invstd * w, b - mean * invstd * w, relu);
  }
}

export function batchnormForwardEval(y: Float32Array, x: Float32Array, runningMean: Float32Array,
  runningVar: Float32Array, weight: Float32Array | null, bias: Float32Array | null, N: number, C: number, S: number,
  eps: number, relu: boolean): void {
  for (let c = 0; c < C; c++) {
    const invstd = 1 / Math.sqrt(runningVar[c] + eps);
    const w = weight ? weight[c] : 1, b = bias ? bias[c] : 0;
    affine(y, x, N, C, S, c, invstd * w, b - runningMean[c] * invstd * w, relu);
  }
}

function affine(y: Float32Array, x: Float32Array, N: number, C: number, S: number, c: number, a: number, b: number,
  relu: boolean): void {
  for (let n = 0; n < N; n++)
    for (let s = 0, o = (n * C + c) * S; s < S; s++) {
      const v = x[o + s] * a + b;
      y[o + s] = relu && v < 0 ? 0 : v;
    }
}

export function batchnormBackward(dx: Float32Array | null, dweight: Float32Array | null, dbias: Float32Array | null,
  dy: Float32Array, x: Float32Array, mean: Float32Array, invstd: Float32Array, weight: Float32Array | null,
  y: Float32Array | null, N: number, C: number, S: number, train: boolean): void {
  const M = N * S;
  // dy masked by the fused ReLU's output
  const g = (i: number): number => (y === null || y[i] > 0 ? dy[i] : 0);
  for (let c = 0; c < C; c++) {
    const m = mean[c], is = invstd[c];
    let sumDy = 0, dot = 0;
    for (let n = 0; n < N; n++)
      for (let s = 0, o = (n * C + c) * S; s < S; s++) {
        const gi = g(o + s);
        sumDy += gi;
        dot += gi * (x[o + s] - m);
      }
    if (dweight) dweight[c] = dot * is;
    if (dbias) dbias[c] = sumDy;
    if (!dx) continue;
    const sc = is * (weight ? weight[c] : 1);
    const gm = sumDy / M, k = (dot * is * is) / M;
    for (let n = 0; n < N; n++)
      for (let s = 0, o = (n * C + c) * S; s < S; s++)
        dx[o + s] = train ? (g(o + s) - gm - (x[o + s] - m) * k) * sc : g(o + s) * sc;
  }
}
