/** Edge cases: zero variance, one value per channel, NaN propagation, empty sizes. */
import { describe, expect, it } from 'vitest';
import type { Backend } from '../lib/backend/types.js';
import { native, tsBackend } from './helpers.js';

describe.each([['native', native], ['ts', tsBackend]] as [string, Backend][])('edge cases on %s', (_, b) => {
  it('a channel with zero variance normalises to the bias, with finite gradients', () => {
    for (const S of [1, 5]) {
      const N = 4, C = 2, n = N * C * S;
      const x = new Float32Array(n);
      for (let i = 0; i < n; i++) x[i] = Math.floor(i / S) % C === 0 ? 3.25 : i * 0.1; // channel 0 is constant
      const w = Float32Array.of(2, 3), bias = Float32Array.of(0.5, -1);
      const y = new Float32Array(n), mean = new Float32Array(C), invstd = new Float32Array(C);
      const rm = new Float32Array(C), rv = Float32Array.of(1, 1);
      b.batchnormForwardTrain(y, mean, invstd, rm, rv, x, w, bias, N, C, S, 1e-5, 0.1, false);
      expect(mean[0]).toBe(3.25);
      expect(invstd[0]).toBeCloseTo(1 / Math.sqrt(1e-5), 0);
      expect(rv[0]).toBeCloseTo(0.9, 6); // (1 - 0.1) * 1 + 0.1 * 0
      // y = x*a + b with the folded affine a = w/sqrt(eps) ~ 632, b = bias - mean*a ~ -2055 in float32,
      // as PyTorch's CPU kernel computes it: exact up to the rounding of b, ulp(2055) ~ 1.2e-4
      for (let i = 0; i < n; i++) if (Math.floor(i / S) % C === 0) expect(Math.abs(y[i] - 0.5)).toBeLessThan(2.5e-4);
      const dx = new Float32Array(n), dw = new Float32Array(C), db = new Float32Array(C);
      b.batchnormBackward(dx, dw, db, Float32Array.from(y, (_, i) => Math.sin(i)), x, mean, invstd, w, null, N, C, S, true);
      expect(dx.every(Number.isFinite) && dw.every(Number.isFinite) && db.every(Number.isFinite)).toBe(true);
      expect(dw[0]).toBe(0);
    }
  });

  it('statistics stay exact when the mean dwarfs the spread (no cancellation in the variance)', () => {
    for (const S of [1, 7]) {
      const N = 64, C = 3, n = N * C * S;
      const x = Float32Array.from({ length: n }, (_, i) => 1000 * (1 + (Math.floor(i / S) % C)) + Math.sin(i));
      const mean = new Float32Array(C), invstd = new Float32Array(C);
      b.batchnormForwardTrain(new Float32Array(n), mean, invstd, null, null, x, null, null, N, C, S, 1e-5, 0.1, false);
      for (let c = 0; c < C; c++) {
        const values = [...x].filter((_, i) => Math.floor(i / S) % C === c);
        const m = values.reduce((s, v) => s + v, 0) / values.length;
        const v = values.reduce((s, u) => s + (u - m) ** 2, 0) / values.length;
        expect(Math.abs(mean[c] - m) / m).toBeLessThan(1e-7);
        expect(Math.abs(invstd[c] * Math.sqrt(v + 1e-5) - 1)).toBeLessThan(1e-5);
      }
    }
  });

  it('one value per channel in training is a RangeError, as in PyTorch', () => {
    const z = (n: number) => new Float32Array(n);
    expect(() => b.batchnormForwardTrain(z(4), z(4), z(4), null, null, z(4), null, null, 1, 4, 1, 1e-5, 0.1, false))
      .toThrow(new RangeError('batchnormForwardTrain: Expected more than 1 value per channel when training, got input size [1, 4]'));
    expect(() => b.batchnormBackward(z(4), null, null, z(4), z(4), z(4), z(4), null, null, 1, 4, 1, true))
      .toThrow(new RangeError('batchnormBackward: Expected more than 1 value per channel when training, got input size [1, 4]'));
    // (1, C, S) with S > 1 is fine (each channel's two values normalised to -1 and 1; a constant
    // channel to 0, within the rounding of the affine form x * a + b with a = 1/sqrt(eps)), and
    // eval mode takes a batch of one (x / sqrt(1 + eps))
    const y = z(8), x = Float32Array.of(1, 3, 0, 4, -2, 2, 5, 5);
    b.batchnormForwardTrain(y, z(4), z(4), null, null, x, null, null, 1, 4, 2, 1e-5, 0.1, false);
    [-1, 1, -1, 1, -1, 1, 0, 0].forEach((v, i) => expect(y[i]).toBeCloseTo(v, 3));
    const ye = z(4);
    b.batchnormForwardEval(ye, Float32Array.of(1, -2, 3, 0.5), z(4), Float32Array.of(1, 1, 1, 1), null, null, 1, 4, 1, 1e-5, false);
    [1, -2, 3, 0.5].forEach((v, i) => expect(ye[i]).toBeCloseTo(v / Math.sqrt(1 + 1e-5), 6));
  });

  it('NaN in the input propagates to the affected outputs only, never crashes', () => {
    const N = 3, C = 2, x = Float32Array.of(1, 2, NaN, 4, 5, 6);
    const y = new Float32Array(6), mean = new Float32Array(C), invstd = new Float32Array(C);
    b.batchnormForwardTrain(y, mean, invstd, null, null, x, null, null, N, C, 1, 1e-5, 0.1, false);
    expect([0, 2, 4].every((i) => Number.isNaN(y[i]))).toBe(true); // channel 0 holds the NaN
    expect([1, 3, 5].every((i) => Number.isFinite(y[i]))).toBe(true);

    const C2 = new Float32Array(4);
    b.sgemm(C2, Float32Array.of(NaN, 1, 1, 1), Float32Array.of(1, 0, 0, 1), 2, 2, 2, false, false, 1, 0, 2, 2, 2);
    expect(Number.isNaN(C2[0]) && Number.isNaN(C2[1])).toBe(true);
    expect([C2[2], C2[3]]).toEqual([1, 1]);

    const losses = new Float32Array(2);
    b.softmaxCrossEntropy(losses, Float32Array.of(NaN, 1, 2, 1, 2, 3), Int32Array.of(0, 1), 2, 3, 0);
    expect(Number.isNaN(losses[0]) && Number.isFinite(losses[1])).toBe(true);

    const r = new Float32Array(3);
    b.relu(r, Float32Array.of(NaN, -1, 2));
    expect(Number.isNaN(r[0]) && r[1] === 0 && r[2] === 2).toBe(true);
    for (const f of [b.sigmoid, b.tanh]) {
      f.call(b, r, Float32Array.of(NaN, -1, 2));
      expect(Number.isNaN(r[0]) && Number.isFinite(r[1])).toBe(true);
    }

    const max = new Float32Array(1), arg = new Int32Array(1);
    b.maxRows(max, arg, Float32Array.of(1, NaN, 5), 1, 3);
    expect(Number.isNaN(max[0]) && arg[0] === 1).toBe(true);
    const py = new Float32Array(1), pi = new Int32Array(1);
    b.maxPool2d(py, pi, Float32Array.of(1, NaN, 5, 2), 1, 1, 2, 2, 2, 2, 2, 2, 0, 0);
    expect(Number.isNaN(py[0]) && pi[0] === 1).toBe(true);
    // windows of 1x2 along a row: the first NaN wins over a later one, a tie keeps the first, an
    // all -Inf window points at its first element
    const row = Float32Array.of(NaN, NaN, 4, 4, -Infinity, -Infinity, 3, 5), ry = new Float32Array(4), ri = new Int32Array(4);
    b.maxPool2d(ry, ri, row, 1, 1, 1, 8, 1, 2, 1, 2, 0, 0);
    expect([...ry]).toEqual([NaN, 4, -Infinity, 5]);
    expect([...ri]).toEqual([0, 2, 4, 7]);
    // with padding 0x1: a window half in the padding points at its inside element, even at -Inf
    b.maxPool2d(ry.subarray(0, 2), ri.subarray(0, 2), Float32Array.of(-Infinity, 1), 1, 1, 1, 2, 1, 2, 1, 2, 0, 1);
    expect([...ry.subarray(0, 2)]).toEqual([-Infinity, 1]);
    expect([...ri.subarray(0, 2)]).toEqual([0, 1]);
    expect(Number.isNaN(b.sum(Float32Array.of(1, NaN)))).toBe(true);
  });

  it('ReLU is exact and its mask gives 0 where it masks, even a non-finite gradient', () => {
    const x = Float32Array.of(-3, -0, 0, 1e-45, 3.4e38, 0.1, NaN, -Infinity, Infinity);
    const r = new Float32Array(x.length);
    b.relu(r, x);
    expect([...r]).toEqual([0, -0, 0, 1e-45, 3.4e38, 0.1, NaN, 0, Infinity].map(Math.fround));
    const dy = Float32Array.of(Infinity, NaN, -Infinity, 2, 3, 4, 5, NaN, 7), dx = new Float32Array(x.length);
    b.reluBackward(dx, dy, x);
    expect([...dx]).toEqual([0, 0, 0, 2, 3, 4, 0, 0, 7]);

    // BatchNorm with the fused ReLU: a masked Inf in dy neither reaches dx nor the channel sums
    const N = 4, C = 1, xs = Float32Array.of(-1, 1, -2, 2), y = new Float32Array(4);
    const mean = new Float32Array(1), invstd = new Float32Array(1);
    b.batchnormForwardTrain(y, mean, invstd, null, null, xs, null, null, N, C, 1, 1e-5, 0.1, true);
    expect([y[0], y[2]]).toEqual([0, 0]);
    const dxs = new Float32Array(4), dw = new Float32Array(1), db = new Float32Array(1);
    b.batchnormBackward(dxs, dw, db, Float32Array.of(Infinity, 1, NaN, 1), xs, mean, invstd, null, y, N, C, 1, true);
    expect(db[0]).toBe(2);
    expect(dxs.every(Number.isFinite) && Number.isFinite(dw[0])).toBe(true);
  });

  it('empty sizes are no-ops, K = 0 GEMM scales C by beta', () => {
    const C = Float32Array.of(1, 2, 3, 4);
    b.sgemm(C, new Float32Array(0), new Float32Array(0), 2, 2, 0, false, false, 1, 0.5, 1, 2, 2);
    expect([...C]).toEqual([0.5, 1, 1.5, 2]);
    b.sgemm(new Float32Array(0), new Float32Array(0), new Float32Array(0), 0, 0, 0, false, false, 1, 0, 1, 1, 1);
    expect(b.sum(new Float32Array(0))).toBe(0);
    b.add(new Float32Array(0), new Float32Array(0), new Float32Array(0));
  });
});
