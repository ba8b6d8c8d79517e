/**
 * BatchNorm in TypeScript: the specification of native/kernels/batchnorm.cpp (see its header for
 * the formulas). x, y, dx, dy are (N, C, S); per-channel vectors (C); M = N*S values per channel.
 * Everything is accumulated in double; every pass walks the arrays in memory order (n, c, s) with
 * per-channel accumulators (a channel-by-channel walk strides by C*S: 1.5x slower on (1024, 4096)),
 * and the (N, C) layout (S = 1) walks each row along C (an inner loop of one value per channel
 * cost 20-35% more), several rows at a time (four in the forward, two in the backward): each visit
 * of a channel's accumulators and parameters then serves several values, and V8 checks the arrays
 * once per visit, not once per value.
 */

import { keepOrZero, reluOf } from './elementwise.js';

export function batchnormForwardTrain(y: Float32Array, saveMean: Float32Array, saveInvstd: Float32Array,
  runningMean: Float32Array | null, runningVar: Float32Array | null, x: Float32Array, weight: Float32Array | null,
  bias: Float32Array | null, N: number, C: number, S: number, eps: number, momentum: number, relu: boolean): void {
  if (x.length === 0) return; // training rejects empty channels before this
  const M = N * S;
  const mean = channelSums(x, null, N, C, S);
  for (let c = 0; c < C; c++) mean[c] /= M;
  // the variance from deviations (a second pass), exact where the mean is large against the spread
  const sq = channelSums(x, mean, N, C, S);
  const scale = new Float64Array(C), shift = new Float64Array(C);
  for (let c = 0; c < C; c++) {
    const invstd = 1 / Math.sqrt(sq[c] / M + eps);
    saveMean[c] = mean[c];
    saveInvstd[c] = invstd;
    if (runningMean) runningMean[c] = (1 - momentum) * runningMean[c] + momentum * mean[c];
    if (runningVar) runningVar[c] = (1 - momentum) * runningVar[c] + momentum * (sq[c] / (M - 1));
    const w = weight ? weight[c] : 1, b = bias ? bias[c] : 0;
    scale[c] = invstd * w;
    shift[c] = b - mean[c] * invstd * w;
  }
  affine(y, x, N, C, S, scale, shift, relu);
}

export function batchnormForwardEval(y: Float32Array, x: Float32Array, runningMean: Float32Array,
  runningVar: Float32Array, weight: Float32Array | null, bias: Float32Array | null, N: number, C: number, S: number,
  eps: number, relu: boolean): void {
  if (x.length === 0) return;
  const scale = new Float64Array(C), shift = new Float64Array(C);
  for (let c = 0; c < C; c++) {
    const invstd = 1 / Math.sqrt(runningVar[c] + eps);
    const w = weight ? weight[c] : 1, b = bias ? bias[c] : 0;
    scale[c] = invstd * w;
    shift[c] = b - runningMean[c] * invstd * w;
  }
  affine(y, x, N, C, S, scale, shift, relu);
}

// per channel c: the sum of x, or with shift the sum of (x - shift[c])^2
function channelSums(x: Float32Array, shift: Float64Array | null, N: number, C: number, S: number): Float64Array {
  const sums = new Float64Array(C);
  if (S === 1) {
    let o = 0;
    for (const end4 = (N & ~3) * C; o < end4; o += 4 * C) {
      const o1 = o + C, o2 = o1 + C, o3 = o2 + C;
      if (shift === null) for (let c = 0; c < C; c++) sums[c] += (x[o + c] + x[o1 + c]) + (x[o2 + c] + x[o3 + c]);
      else
        for (let c = 0; c < C; c++) {
          const m = shift[c], d0 = x[o + c] - m, d1 = x[o1 + c] - m, d2 = x[o2 + c] - m, d3 = x[o3 + c] - m;
          sums[c] += (d0 * d0 + d1 * d1) + (d2 * d2 + d3 * d3);
        }
    }
    for (; o < N * C; o += C)
      if (shift === null) for (let c = 0; c < C; c++) sums[c] += x[o + c];
      else
        for (let c = 0; c < C; c++) {
          const d = x[o + c] - shift[c];
          sums[c] += d * d;
        }
    return sums;
  }
  for (let n = 0, o = 0; n < N; n++)
    for (let c = 0; c < C; c++) {
      let sum = 0;
      if (shift === null) for (const end = o + S; o < end; o++) sum += x[o];
      else for (const end = o + S, m = shift[c]; o < end; o++) sum += (x[o] - m) * (x[o] - m);
      sums[c] += sum;
    }
  return sums;
}

// y = x * scale[c] + shift[c], then max(y, 0) when relu
function affine(y: Float32Array, x: Float32Array, N: number, C: number, S: number, scale: Float64Array,
  shift: Float64Array, relu: boolean): void {
  if (S === 1) {
    let o = 0;
    for (const end4 = (N & ~3) * C; o < end4; o += 4 * C) {
      const o1 = o + C, o2 = o1 + C, o3 = o2 + C;
      for (let c = 0; c < C; c++) {
        const a = scale[c], b = shift[c];
        const v0 = x[o + c] * a + b, v1 = x[o1 + c] * a + b, v2 = x[o2 + c] * a + b, v3 = x[o3 + c] * a + b;
        if (relu) {
          y[o + c] = reluOf(v0);
          y[o1 + c] = reluOf(v1);
          y[o2 + c] = reluOf(v2);
          y[o3 + c] = reluOf(v3);
        } else {
          y[o + c] = v0;
          y[o1 + c] = v1;
          y[o2 + c] = v2;
          y[o3 + c] = v3;
        }
      }
    }
    for (; o < N * C; o += C)
      for (let c = 0; c < C; c++) {
        const v = x[o + c] * scale[c] + shift[c];
        y[o + c] = relu ? reluOf(v) : v;
      }
    return;
  }
  for (let n = 0, o = 0; n < N; n++)
    for (let c = 0; c < C; c++) {
      const a = scale[c], b = shift[c];
      for (const end = o + S; o < end; o++) {
        const v = x[o] * a + b;
        y[o] = relu ? reluOf(v) : v;
      }
    }
}

/** dy[i], masked by the fused ReLU's output y when there is one */
function gradAt(dy: Float32Array, y: Float32Array | null, i: number): number {
  return y === null ? dy[i] : keepOrZero(y[i] > 0, dy[i]);
}

export function batchnormBackward(dx: Float32Array | null, dweight: Float32Array | null, dbias: Float32Array | null,
  dy: Float32Array, x: Float32Array, mean: Float32Array, invstd: Float32Array, weight: Float32Array | null,
  y: Float32Array | null, N: number, C: number, S: number, train: boolean): void {
  if (x.length === 0) { // the sums over no values are 0
    dweight?.fill(0);
    dbias?.fill(0);
    return;
  }
  const M = N * S;
  const { sumDy, dot } = gradSums(dy, x, mean, y, N, C, S);
  for (let c = 0; c < C; c++) {
    if (dweight) dweight[c] = dot[c] * invstd[c];
    if (dbias) dbias[c] = sumDy[c];
  }
  if (dx) dxPass(dx, dy, x, y, mean, invstd, weight, sumDy, dot, M, N, C, S, train);
}

/** Per channel: sumDy = Σdy' and dot = Σdy'·(x - mean), dy' = dy masked by the fused ReLU's y when given. */
function gradSums(dy: Float32Array, x: Float32Array, mean: Float32Array, y: Float32Array | null, N: number, C: number,
  S: number): { sumDy: Float64Array; dot: Float64Array } {
  const sumDy = new Float64Array(C), dot = new Float64Array(C);
  if (S === 1) {
    // two rows per visit here, not four: with dy, y and x (and dx below) four rows would be 12-16
    // streams, and when C*4 bytes is a multiple of 4 KiB they all fall in one 8-way L1 set
    let o = 0;
    for (const end2 = (N & ~1) * C; o < end2; o += 2 * C) {
      const o1 = o + C;
      for (let c = 0; c < C; c++) {
        const m = mean[c], g0 = gradAt(dy, y, o + c), g1 = gradAt(dy, y, o1 + c);
        sumDy[c] += g0 + g1;
        dot[c] += g0 * (x[o + c] - m) + g1 * (x[o1 + c] - m);
      }
    }
    for (; o < N * C; o += C)
      for (let c = 0; c < C; c++) {
        const gi = gradAt(dy, y, o + c);
        sumDy[c] += gi;
        dot[c] += gi * (x[o + c] - mean[c]);
      }
    return { sumDy, dot };
  }
  for (let n = 0, o = 0; n < N; n++)
    for (let c = 0; c < C; c++) {
      const m = mean[c];
      let s1 = 0, s2 = 0;
      for (const end = o + S; o < end; o++) {
        const gi = gradAt(dy, y, o);
        s1 += gi;
        s2 += gi * (x[o] - m);
      }
      sumDy[c] += s1;
      dot[c] += s2;
    }
  return { sumDy, dot };
}

/**
 * dx = (g - Σg/M - (x - mean) * Σg(x - mean) * invstd² / M) * invstd * w in training, g * invstd * w
 * in eval, from the sums over M values.
 */
function dxPass(dx: Float32Array, dy: Float32Array, x: Float32Array, y: Float32Array | null, mean: Float32Array,
  invstd: Float32Array, weight: Float32Array | null, sumDy: ArrayLike<number>, dot: ArrayLike<number>, M: number,
  N: number, C: number, S: number, train: boolean): void {
  const sc = new Float64Array(C), gm = new Float64Array(C), k = new Float64Array(C);
  for (let c = 0; c < C; c++) {
    sc[c] = invstd[c] * (weight ? weight[c] : 1);
    gm[c] = sumDy[c] / M;
    k[c] = (dot[c] * invstd[c] * invstd[c]) / M;
  }
  if (S === 1) {
    let o = 0;
    if (train)
      for (const end2 = (N & ~1) * C; o < end2; o += 2 * C) {
        const o1 = o + C;
        for (let c = 0; c < C; c++) {
          const m = mean[c], gmc = gm[c], kc = k[c], scc = sc[c];
          dx[o + c] = (gradAt(dy, y, o + c) - gmc - (x[o + c] - m) * kc) * scc;
          dx[o1 + c] = (gradAt(dy, y, o1 + c) - gmc - (x[o1 + c] - m) * kc) * scc;
        }
      }
    for (; o < N * C; o += C)
      if (train) for (let c = 0; c < C; c++) dx[o + c] = (gradAt(dy, y, o + c) - gm[c] - (x[o + c] - mean[c]) * k[c]) * sc[c];
      else for (let c = 0; c < C; c++) dx[o + c] = gradAt(dy, y, o + c) * sc[c];
    return;
  }
  for (let n = 0, o = 0; n < N; n++)
    for (let c = 0; c < C; c++) {
      const m = mean[c], gmc = gm[c], kc = k[c], scc = sc[c];
      if (train) for (const end = o + S; o < end; o++) dx[o] = (gradAt(dy, y, o) - gmc - (x[o] - m) * kc) * scc;
      else for (const end = o + S; o < end; o++) dx[o] = gradAt(dy, y, o) * scc;
    }
}

// ---- in phases (see native/kernels/kernels.h) ---------------------------------------------------------

/** mean (C), variance (C): each channel's mean and biased variance over its N*S values. */
export function batchnormStats(mean: Float32Array, variance: Float32Array, x: Float32Array, N: number, C: number, S: number): void {
  if (x.length === 0) return; // rejected before this: no values per channel
  const M = N * S;
  const m = channelSums(x, null, N, C, S);
  for (let c = 0; c < C; c++) m[c] /= M;
  const sq = channelSums(x, m, N, C, S);
  for (let c = 0; c < C; c++) {
    mean[c] = m[c];
    variance[c] = sq[c] / M;
  }
}

/** y = (x - mean) * invstd * weight + bias, then max(y, 0) when relu. */
export function batchnormApply(y: Float32Array, x: Float32Array, mean: Float32Array, invstd: Float32Array,
  weight: Float32Array | null, bias: Float32Array | null, N: number, C: number, S: number, relu: boolean): void {
  if (x.length === 0) return;
  const scale = new Float64Array(C), shift = new Float64Array(C);
  for (let c = 0; c < C; c++) {
    scale[c] = invstd[c] * (weight ? weight[c] : 1);
    shift[c] = (bias ? bias[c] : 0) - mean[c] * scale[c];
  }
  affine(y, x, N, C, S, scale, shift, relu);
}

/** sumDy (C) = Σdy', sumDyXmu (C) = Σdy'·(x - mean), dy' = dy masked by y > 0 when y is given. */
export function batchnormBackwardReduce(sumDy: Float32Array, sumDyXmu: Float32Array, dy: Float32Array, x: Float32Array,
  mean: Float32Array, y: Float32Array | null, N: number, C: number, S: number): void {
  if (x.length === 0) {
    sumDy.fill(0);
    sumDyXmu.fill(0);
    return;
  }
  const sums = gradSums(dy, x, mean, y, N, C, S);
  sumDy.set(sums.sumDy);
  sumDyXmu.set(sums.dot);
}

/** dx from the sums over count values (the training formula; zero sums give the evaluation one). */
export function batchnormBackwardApply(dx: Float32Array, dy: Float32Array, x: Float32Array, mean: Float32Array,
  invstd: Float32Array, weight: Float32Array | null, sumDy: Float32Array, sumDyXmu: Float32Array, y: Float32Array | null,
  count: number, N: number, C: number, S: number): void {
  if (x.length === 0) return;
  dxPass(dx, dy, x, y, mean, invstd, weight, sumDy, sumDyXmu, count, N, C, S, true);
}
