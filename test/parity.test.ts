/**
 * Native (each ISA this CPU runs) against the TypeScript fallback, the specification, on random
 * inputs, including sizes that are not multiples of any vector width. Tolerances are relative with
 * a small absolute floor (see maxError): float32 kernels with different summation orders agree to a
 * few ulps times the reduction length.
 */
import { describe, expect, it } from 'vitest';
import type { Backend } from '../lib/backend/types.js';
import { copy, firstBitDifference, maxAbs, maxError, native, Rng, runnableIsas, tsBackend, withIsa } from './helpers.js';

const SIZES = [1, 7, 17, 33, 100];

/**
 * GEMM error against the classic bound for float32 dot products of length K:
 * |C - C'| <= gamma_K * (|alpha| * sum_k |op(A)_ik| |op(B)_kj| + |beta| |C0_ij|), gamma_K ~ K * 2^-24,
 * evaluated per element. Returns the worst |C - C'| / bound; a sound implementation stays below 2.
 */
function gemmBoundRatio(cn: Float32Array, ct: Float32Array, A: Float32Array, B: Float32Array, C0: Float32Array,
  M: number, N: number, K: number, ta: boolean, tb: boolean, alpha: number, beta: number, lda: number, ldb: number,
  ldc: number): number {
  const bound = Float32Array.from(C0, Math.abs);
  tsBackend.sgemm(bound, Float32Array.from(A, Math.abs), Float32Array.from(B, Math.abs), M, N, K, ta, tb,
    Math.abs(alpha), Math.abs(beta), lda, ldb, ldc);
  const gamma = (K + 2) * 2 ** -24;
  let worst = 0;
  for (let i = 0; i < M; i++)
    for (let j = 0; j < N; j++) {
      const o = i * ldc + j, diff = Math.abs(cn[o] - ct[o]);
      if (Number.isNaN(diff)) return Infinity; // a NaN on one side only (both NaN: also a failure here)
      if (diff > 0) worst = Math.max(worst, diff / (gamma * bound[o] + 1e-30));
    }
  return worst;
}

/** Runs fn on both backends with identical inputs and returns both results. */
function both<T>(fn: (b: Backend) => T): [T, T] {
  return [fn(native), fn(tsBackend)];
}

/**
 * sgemm on both backends from copies of C0, checked against the rounding bound (beta * C0 counts
 * only when beta is not 0: C0 may then hold NaN, which the product must not read) and for C's
 * padding (columns N .. ldc-1) left as it was; returns native's C.
 */
function checkGemm(A: Float32Array, B: Float32Array, C0: Float32Array, M: number, N: number, K: number, ta: boolean,
  tb: boolean, alpha: number, beta: number, lda: number, ldb: number, ldc: number): Float32Array {
  const [cn, ct] = both((b) => {
    const C = copy(C0);
    b.sgemm(C, A, B, M, N, K, ta, tb, alpha, beta, lda, ldb, ldc);
    return C;
  });
  const err = gemmBoundRatio(cn, ct, A, B, beta === 0 ? new Float32Array(C0.length) : C0, M, N, K, ta, tb, alpha, beta,
    lda, ldb, ldc);
  if (err > 2) expect.fail(`M=${M} N=${N} K=${K} transA=${ta} transB=${tb}: error ${err}`);
  for (let i = 0; i < M; i++) // the padding of C is not written
    for (let j = N; j < ldc; j++) expect(Object.is(cn[i * ldc + j], C0[i * ldc + j])).toBe(true);
  return cn;
}

/** The sum of the squares of C's M x N values (rows ldc apart), in double. */
function squaresOf(C: Float32Array, M: number, N: number, ldc: number): number {
  let total = 0;
  for (let i = 0; i < M; i++) for (let j = 0; j < N; j++) total += C[i * ldc + j] ** 2;
  return total;
}

/**
 * sgemm C = alpha * A . B^T + beta * C for each (M, N, K), native against the fallback within the
 * rounding bound, with lda = K + 3, ldb = K + ldbPad, ldc = N + 2 (the padding of C must stay as it
 * was); odd M with alpha -1.5 and beta 0.25, even M with 1 and 0.
 */
function checkABt(rng: Rng, shapes: number[][], ldbPad: number): void {
  for (const [M, N, K] of shapes) {
    const [alpha, beta] = M % 2 ? [-1.5, 0.25] : [1, 0];
    const lda = K + 3, ldb = K + ldbPad, ldc = N + 2;
    // C0 large enough that beta * C0 stands out of the bound of a long K's rounding
    checkGemm(rng.f32(M * lda), rng.f32(N * ldb), rng.f32(M * ldc, 100), M, N, K, false, true, alpha, beta, lda, ldb,
      ldc);
  }
}

describe.each(runnableIsas)('native %s vs the TypeScript fallback', (isa) => {
  it('sgemm: every transpose, alpha/beta, sizes 1..100, padded leading dimensions', () => {
    withIsa(isa, () => {
      const rng = new Rng(1);
      for (const M of SIZES)
        for (const N of SIZES)
          for (const K of SIZES)
            for (const [ta, tb] of [[false, false], [false, true], [true, false], [true, true]] as const) {
              const pad = (M + N + K) % 3; // some calls use leading dimensions wider than the matrix
              const lda = Math.max(ta ? M : K, 1) + pad, ldb = Math.max(tb ? K : N, 1) + pad, ldc = N + pad;
              const A = rng.f32((ta ? K : M) * lda), B = rng.f32((tb ? N : K) * ldb), C0 = rng.f32(M * ldc);
              const [alpha, beta] = [[1, 0], [0.5, 1], [-1.5, 0.25]][(M + K) % 3];
              const [cn, ct] = both((b) => {
                const C = copy(C0);
                b.sgemm(C, A, B, M, N, K, ta, tb, alpha, beta, lda, ldb, ldc);
                return C;
              });
              const err = gemmBoundRatio(cn, ct, A, B, C0, M, N, K, ta, tb, alpha, beta, lda, ldb, ldc);
              if (err > 2) expect.fail(`M=${M} N=${N} K=${K} transA=${ta} transB=${tb}: error ${err}`);
            }
    });
  });

  it('sgemm: blocked sizes past one cache block (M=300, N=3100, K=520), a batch product with K in two rounds of packed A, one-row products, every transpose, and beta=0 ignores NaN in C', () => {
    withIsa(isa, () => {
      const rng = new Rng(2);
      for (const [M, N, K] of [[300, 70, 520], [13, 3100, 200], [500, 500, 500], [64, 500, 784], [500, 784, 64], [8, 64, 7000], [1, 3100, 520], [1, 500, 784]])
        for (const [ta, tb] of [[false, false], [false, true], [true, false], [true, true]]) {
          const A = rng.f32(M * K), B = rng.f32(K * N);
          const lda = ta ? M : K, ldb = tb ? K : N;
          const [cn, ct] = both((b) => {
            const C = new Float32Array(M * N).fill(NaN);
            b.sgemm(C, A, B, M, N, K, ta, tb, 1, 0, lda, ldb, N);
            return C;
          });
          expect(gemmBoundRatio(cn, ct, A, B, new Float32Array(M * N), M, N, K, ta, tb, 1, 0, lda, ldb, N)).toBeLessThan(2);
        }
    });
  });

  it.each([1, 2])('batchnorm forward (train, eval) and backward, layouts (N, C) and (N, C, S), relu %#', (variant) => {
    const relu = variant === 2;
    withIsa(isa, () => {
      const rng = new Rng(3 + variant);
      for (const N of [2, 7, 33])
        for (const C of SIZES)
          for (const S of [1, 7, 17, 100, 200, 1031]) { // S >= 144 walks channel by channel, smaller S sample-major
            const n = N * C * S;
            const x = rng.f32(n, 2, 1), dy = rng.f32(n), w = rng.f32(C), bias = rng.f32(C);
            const rm0 = rng.f32(C), rv0 = Float32Array.from(rng.f32(C), (v) => Math.abs(v) + 0.5);
            const affine = (N + C + S) % 4 !== 0;
            // the backward passes take the native forward's outputs as their ReLU masks on both
            // backends: an output that rounds to either side of 0 (~1e-8 of values ~1) would mask a
            // gradient on one and not on the other, and move that channel's sums
            let masks: { y: Float32Array; ye: Float32Array } | null = null;
            const [rn, rt] = both((b) => {
              const y = new Float32Array(n), mean = new Float32Array(C), invstd = new Float32Array(C);
              const rm = copy(rm0), rv = copy(rv0);
              b.batchnormForwardTrain(y, mean, invstd, rm, rv, x, affine ? w : null, affine ? bias : null, N, C, S, 1e-5, 0.1, relu);
              const ye = new Float32Array(n);
              b.batchnormForwardEval(ye, x, rm, rv, affine ? w : null, affine ? bias : null, N, C, S, 1e-5, relu);
              masks ??= { y, ye };
              const dx = new Float32Array(n), dw = new Float32Array(C), db = new Float32Array(C);
              b.batchnormBackward(dx, dw, db, dy, x, mean, invstd, affine ? w : null, relu ? masks.y : null, N, C, S, true);
              const dxe = new Float32Array(n);
              const invRun = Float32Array.from(rv, (v) => 1 / Math.sqrt(v + 1e-5));
              b.batchnormBackward(dxe, null, null, dy, x, rm, invRun, affine ? w : null, relu ? masks.ye : null, N, C, S, false);
              return { y, mean, invstd, rm, rv, dx, dw, db, ye, dxe };
            });
            // dx's natural size is |dy| * invstd * |weight| even where it cancels to ~0 (N = 2)
            const dxScale = maxAbs(dy) * maxAbs(rt.invstd) * (affine ? maxAbs(w) : 1);
            for (const key of Object.keys(rn) as (keyof typeof rn)[]) {
              const atol = key === 'dx' || key === 'dxe' ? 0.01 * dxScale : undefined;
              const err = maxError(rn[key], rt[key], atol);
              if (err > 1e-4) expect.fail(`N=${N} C=${C} S=${S} ${key}: error ${err}`);
            }
          }
    });
  });

  it.each([1, 2])('batchnorm in phases (stats, apply, backward reduce, backward apply), layouts (N, C) and (N, C, S), relu %#', (variant) => {
    const relu = variant === 2;
    withIsa(isa, () => {
      const rng = new Rng(21 + variant);
      for (const N of [1, 2, 7, 33])
        for (const C of SIZES)
          for (const S of [1, 7, 17, 100, 200, 1031]) {
            if (N * S < 1) continue;
            const n = N * C * S, affine = (N + C + S) % 4 !== 0;
            const x = rng.f32(n, 2, 1), dy = rng.f32(n), w = rng.f32(C), bias = rng.f32(C);
            // the same statistics and ReLU mask on both backends for the later phases (see above)
            const mean = rng.f32(C, 0.5, 1), invstd = Float32Array.from(rng.f32(C), (v) => Math.abs(v) + 0.5);
            const sumDy = rng.f32(C, 10), sumDyXmu = rng.f32(C, 10);
            let mask: Float32Array | null = null;
            const [rn, rt] = both((b) => {
              const m = new Float32Array(C), v = new Float32Array(C);
              b.batchnormStats(m, v, x, N, C, S);
              const y = new Float32Array(n);
              b.batchnormApply(y, x, mean, invstd, affine ? w : null, affine ? bias : null, N, C, S, relu);
              mask ??= y;
              const s1 = new Float32Array(C), s2 = new Float32Array(C);
              b.batchnormBackwardReduce(s1, s2, dy, x, mean, relu ? mask : null, N, C, S);
              const dx = new Float32Array(n);
              b.batchnormBackwardApply(dx, dy, x, mean, invstd, affine ? w : null, sumDy, sumDyXmu, relu ? mask : null, N * S + 3, N, C, S);
              return { m, v, y, s1, s2, dx };
            });
            for (const key of Object.keys(rn) as (keyof typeof rn)[]) {
              // sums over the channel: their natural size is the sum of the magnitudes, not the result
              const atol = key === 's1' || key === 's2' ? 0.01 * N * S * maxAbs(dy) * 2 : undefined;
              const err = maxError(rn[key], rt[key], atol);
              if (err > 1e-4) expect.fail(`N=${N} C=${C} S=${S} ${key}: error ${err}`);
            }
          }
    });
  });

  it('batchnorm: the phases composed give what the one-call kernels give (nn.BatchNorm runs the one-call ones: faster)', () => {
    withIsa(isa, () => {
      const rng = new Rng(31);
      for (const [N, C, S] of [[64, 50, 1], [7, 5, 17], [4, 6, 200], [2, 3, 1031]])
        for (const b of [native, tsBackend])
          for (const relu of [false, true]) {
            const n = N * C * S, x = rng.f32(n, 2, 1), dy = rng.f32(n), w = rng.f32(C), bias = rng.f32(C);
            const y1 = new Float32Array(n), mean1 = new Float32Array(C), invstd1 = new Float32Array(C);
            b.batchnormForwardTrain(y1, mean1, invstd1, null, null, x, w, bias, N, C, S, 1e-5, 0.1, relu);
            const dx1 = new Float32Array(n), dw1 = new Float32Array(C), db1 = new Float32Array(C);
            b.batchnormBackward(dx1, dw1, db1, dy, x, mean1, invstd1, w, relu ? y1 : null, N, C, S, true);
            const mean = new Float32Array(C), variance = new Float32Array(C);
            b.batchnormStats(mean, variance, x, N, C, S);
            const invstd = Float32Array.from(variance, (v) => 1 / Math.sqrt(v + 1e-5)), y = new Float32Array(n);
            b.batchnormApply(y, x, mean, invstd, w, bias, N, C, S, relu);
            const sumDy = new Float32Array(C), sumDyXmu = new Float32Array(C), dx = new Float32Array(n);
            b.batchnormBackwardReduce(sumDy, sumDyXmu, dy, x, mean, relu ? y1 : null, N, C, S);
            b.batchnormBackwardApply(dx, dy, x, mean, invstd, w, sumDy, sumDyXmu, relu ? y1 : null, N * S, N, C, S);
            const at = `${b.name} N=${N} C=${C} S=${S} relu=${relu}`, dxScale = maxAbs(dy) * maxAbs(invstd) * maxAbs(w);
            for (const [key, got, want, atol] of [['mean', mean, mean1], ['invstd', invstd, invstd1], ['y', y, y1],
              ['dweight', sumDyXmu.map((v, c) => v * invstd[c]), dw1], ['dbias', sumDy, db1], ['dx', dx, dx1, 0.01 * dxScale]] as const) {
              const err = maxError(got, want, atol);
              if (err > 1e-4) expect.fail(`${at} ${key}: error ${err}`);
            }
          }
    });
  });

  // Streamed outputs (8 MiB and more) a few bytes ahead of their inputs modulo 4 KiB are written
  // from the end down (simd.h, write_run): here the arrays are carved from one buffer so that each
  // output is 12-72 bytes ahead of every array of the test it reads, whatever the buffer's own
  // address. (The (N, C) rows also read the kernel's own per-channel buffers, so whether those rows
  // walk down depends on where the buffers are; the (N, C, S) shapes always do.)
  it.each([1, 2])('batchnorm on streamed outputs just ahead of their inputs (walked down), relu %#', (variant) => {
    const relu = variant === 2;
    withIsa(isa, () => {
      const rng = new Rng(11 + variant);
      for (const [N, C, S] of [[16, 3, 45001], [40000, 8, 7], [2100, 1031, 1]]) {
        const n = N * C * S, stride = Math.ceil((n + 64) / 1024) * 1024; // 4 KiB apart, plus the offsets
        const offsets = { x: 0, dy: 1, y: 4, dx: 12, ye: 16, dxe: 19 }; // floats past a multiple of 4 KiB
        const w = rng.f32(C), bias = rng.f32(C), x0 = rng.f32(n, 2, 1), dy0 = rng.f32(n);
        const rm0 = rng.f32(C), rv0 = Float32Array.from(rng.f32(C), (v) => Math.abs(v) + 0.5);
        const [rn, rt] = both((b) => {
          const buffer = new Float32Array(6 * stride);
          const at = (k: number, key: keyof typeof offsets) => buffer.subarray(k * stride + offsets[key], k * stride + offsets[key] + n);
          const x = at(0, 'x'), dy = at(1, 'dy'), y = at(2, 'y'), dx = at(3, 'dx'), ye = at(4, 'ye'), dxe = at(5, 'dxe');
          x.set(x0);
          dy.set(dy0);
          const mean = new Float32Array(C), invstd = new Float32Array(C), rm = copy(rm0), rv = copy(rv0);
          b.batchnormForwardTrain(y, mean, invstd, rm, rv, x, w, bias, N, C, S, 1e-5, 0.1, relu);
          const dw = new Float32Array(C), db = new Float32Array(C);
          b.batchnormBackward(dx, dw, db, dy, x, mean, invstd, w, relu ? y : null, N, C, S, true);
          b.batchnormForwardEval(ye, x, rm, rv, w, bias, N, C, S, 1e-5, relu);
          const invRun = Float32Array.from(rv, (v) => 1 / Math.sqrt(v + 1e-5));
          b.batchnormBackward(dxe, null, null, dy, x, rm, invRun, w, relu ? ye : null, N, C, S, false);
          return { y: copy(y), mean, invstd, dx: copy(dx), dw, db, ye: copy(ye), dxe: copy(dxe) };
        });
        const dxScale = maxAbs(dy0) * maxAbs(rt.invstd) * maxAbs(w);
        for (const key of Object.keys(rn) as (keyof typeof rn)[]) {
          const atol = key === 'dx' || key === 'dxe' ? 0.01 * dxScale : undefined;
          const err = maxError(rn[key], rt[key], atol);
          if (err > 1e-4) expect.fail(`N=${N} C=${C} S=${S} ${key}: error ${err}`);
        }
      }
    });
  });

  it('elementwise maps, activations and their backward', () => {
    withIsa(isa, () => {
      const rng = new Rng(5);
      for (const n of [...SIZES, 1000, 70001]) {
        const a = rng.f32(n, 3), b = rng.f32(n, 3), dy = rng.f32(n);
        // the backward of sigmoid and tanh take the forward's output: give both backends the same one
        const sigY = new Float32Array(n), tanhY = new Float32Array(n);
        tsBackend.sigmoid(sigY, a);
        tsBackend.tanh(tanhY, a);
        const [rn, rt] = both((k) => {
          const out = (f: (o: Float32Array) => void) => {
            const o = new Float32Array(n);
            f(o);
            return o;
          };
          const sig = out((o) => k.sigmoid(o, a)), th = out((o) => k.tanh(o, a));
          const y = copy(b);
          k.axpy(y, a, -0.75);
          return {
            add: out((o) => k.add(o, a, b)), mul: out((o) => k.mul(o, a, b)), scale: out((o) => k.scale(o, a, 0.3)),
            axpy: y, relu: out((o) => k.relu(o, a)), reluBackward: out((o) => k.reluBackward(o, dy, a)),
            leakyRelu: out((o) => k.leakyRelu(o, a, 0.01)),
            leakyReluBackward: out((o) => k.leakyReluBackward(o, dy, a, 0.2)),
            sigmoid: sig, sigmoidBackward: out((o) => k.sigmoidBackward(o, dy, sigY)),
            tanh: th, tanhBackward: out((o) => k.tanhBackward(o, dy, tanhY)),
            sum: [k.sum(a)], sumSquares: [k.sumSquares(a)],
          };
        });
        for (const key of Object.keys(rn) as (keyof typeof rn)[]) {
          const err = maxError(rn[key], rt[key]);
          if (err > 1e-5) expect.fail(`n=${n} ${key}: error ${err}`);
        }
      }
    });
  });

  it('tanh, sigmoid and exp stay accurate across their whole range', () => {
    withIsa(isa, () => {
      const n = 20001;
      const x = Float32Array.from({ length: n }, (_, i) => -100 + (200 * i) / (n - 1));
      x[0] = 1e-7;
      x[1] = -3e-5;
      const [rn, rt] = both((k) => {
        const t = new Float32Array(n), s = new Float32Array(n);
        k.tanh(t, x);
        k.sigmoid(s, x);
        return { t, s };
      });
      expect(maxError(rn.t, rt.t, 1e-30)).toBeLessThan(1e-6);
      expect(maxError(rn.s, rt.s, 1e-30)).toBeLessThan(2e-6);
    });
  });

  it('gatherRows: random rows, repeated rows, rows of every width', () => {
    withIsa(isa, () => {
      const rng = new Rng(9);
      for (const D of [1, 3, 784])
        for (const R of [0, 1, 7, 64]) {
          const rows = 50, src = rng.f32(rows * D + 2), indices = Int32Array.from(rng.int(R, rows));
          if (R > 1) indices[1] = indices[0]; // a row taken twice
          const [on, ot] = both((k) => {
            const out = new Float32Array(R * D).fill(NaN);
            k.gatherRows(out, src, indices, R, D);
            return out;
          });
          expect(on).toEqual(ot);
          for (let r = 0; r < R; r++) expect(on.subarray(r * D, (r + 1) * D)).toEqual(src.subarray(indices[r] * D, (indices[r] + 1) * D));
        }
    });
  });

  it('gatherBytes: the same bits as the fallback, for one channel and several, every plane width', () => {
    withIsa(isa, () => {
      const rng = new Rng(10);
      for (const [channels, plane] of [[1, 1], [1, 13], [1, 784], [3, 1024], [3, 17], [2, 40]])
        for (const R of [0, 1, 7, 64]) {
          const D = channels * plane, rows = 40;
          const src = Uint8Array.from({ length: rows * D + 3 }, (_, i) => (i * 2654435761) >>> 24);
          src[0] = 0;
          src[1] = 255;
          const indices = Int32Array.from(rng.int(R, rows));
          if (R > 1) indices[1] = indices[0]; // a row taken twice
          if (R > 2) indices[2] = 0;
          // offsets and scales that are not round in binary, one of them negative
          const offset = Float32Array.from({ length: channels }, (_, c) => 255 * [0.4914, 0.4822, 0.4465][c % 3]);
          const scale = Float32Array.from({ length: channels }, (_, c) => (c === 1 ? -1 : 1) / (255 * [0.247, 0.2435, 0.2616][c % 3]));
          const [on, ot] = both((k) => {
            const out = new Float32Array(R * D).fill(NaN);
            k.gatherBytes(out, src, indices, R, D, offset, scale);
            return out;
          });
          expect(firstBitDifference(on, ot)).toBeNull();
          // and each value is the float32 arithmetic of its byte
          const expected = Float32Array.from({ length: R * D }, (_, i) => {
            const r = Math.floor(i / D), j = i % D, c = Math.floor(j / plane);
            return Math.fround(Math.fround(src[indices[r] * D + j] - offset[c]) * scale[c]);
          });
          expect(firstBitDifference(on, expected)).toBeNull();
        }
    });
  });

  it('maxRows, softmax cross-entropy forward and backward', () => {
    withIsa(isa, () => {
      const rng = new Rng(6);
      for (const R of SIZES)
        for (const K of SIZES) {
          const x = rng.f32(R * K, 4), t = rng.int(R, K), dl = rng.f32(R);
          for (const ls of [0, 0.1]) {
            const [rn, rt] = both((k) => {
              const max = new Float32Array(R), arg = new Int32Array(R), losses = new Float32Array(R);
              const dz = new Float32Array(R * K);
              k.maxRows(max, arg, x, R, K);
              k.softmaxCrossEntropy(losses, x, t, R, K, ls);
              k.softmaxCrossEntropyBackward(dz, x, t, dl, R, K, ls);
              return { max, arg, losses, dz };
            });
            for (const key of Object.keys(rn) as (keyof typeof rn)[]) {
              // a loss that cancels to ~0 (K = 1) is noise of the logits' size
              const floor = { losses: 0.01 * maxAbs(x), dz: maxAbs(dl) }[key as string];
              const err = maxError(rn[key], rt[key], floor);
              if (err > 1e-5) expect.fail(`R=${R} K=${K} ls=${ls} ${key}: error ${err}`);
            }
          }
        }
    });
  });

  it('SGD (momentum, dampening, nesterov, weight decay) and Adam/AdamW steps', () => {
    withIsa(isa, () => {
      const rng = new Rng(7);
      for (const n of [...SIZES, 40000]) {
        const p0 = rng.f32(n), g = rng.f32(n), m0 = rng.f32(n), v0 = Float32Array.from(rng.f32(n), Math.abs);
        const [rn, rt] = both((k) => {
          const out: Record<string, Float32Array> = {};
          for (const [i, [mom, damp, wd, nest, first]] of ([
            [0, 0, 0, false, false], [0.9, 0, 1e-4, false, true], [0.9, 0.1, 0.01, false, false], [0.9, 0, 0.01, true, false],
          ] as const).entries()) {
            const p = copy(p0), buf = copy(m0);
            k.sgdStep(p, mom === 0 ? null : buf, g, 0.01, mom, damp, wd, nest, first);
            out[`sgd${i}`] = p;
            out[`sgdbuf${i}`] = buf;
          }
          for (const decoupled of [false, true]) {
            const p = copy(p0), m = copy(m0), v = copy(v0);
            k.adamStep(p, m, v, g, 1e-3, 0.9, 0.999, 1e-8, 0.01, 3, decoupled);
            Object.assign(out, { [`adam${decoupled}`]: p, [`m${decoupled}`]: m, [`v${decoupled}`]: v });
          }
          return out;
        });
        for (const key of Object.keys(rn)) {
          const err = maxError(rn[key], rt[key]);
          if (err > 1e-5) expect.fail(`n=${n} ${key}: error ${err}`);
        }
      }
    });
  });

  it('sgemm: a few rows of A against a wide B^T (native: C^T = B . A^T with B read in place), alpha/beta, padded leading dimensions', () => {
    // M across the panels of A^T (8, 16 and 64 wide) and past the path's 64; N across the row tiles
    // (4, 6), the chunks (480) and the threads' runs, and just past the dot path; K across its
    // blocks of 128 and the 8 x 8 transposes
    withIsa(isa, () => checkABt(new Rng(11), [[64, 500, 784], [2, 12, 64], [7, 13, 65], [9, 97, 127], [63, 1001, 129],
      [33, 250, 1000], [64, 33, 3000], [17, 2049, 300], [8, 95, 200], [65, 100, 200], [64, 11, 64]], 5));
  });

  it('sgemm: up to 12 rows of op(A) against B not transposed (native: B read in place, K in blocks of 128), alpha/beta, padded leading dimensions, beta = 0 ignores NaN in C', () => {
    // M across every tile height of the path and just past it (13 is packed again); N across the
    // strips' widths (16 to 64 columns) and their masked right edges; K across the blocks of 128
    // (300: three blocks of 100, each after the first adding onto C); 10 x 500 x 784 on two threads
    withIsa(isa, () => {
      const rng = new Rng(13);
      let shape = 0;
      for (const M of [2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13])
        for (const [N, K] of [[1, 5], [17, 129], [33, 64], [49, 300], [100, 7], [500, 64]])
          for (const ta of [false, true]) {
            const [alpha, beta] = [[1, 0], [0.5, 1], [-1.5, 0.25]][shape++ % 3];
            const lda = (ta ? M : K) + 2, ldb = N + 3, ldc = N + 1;
            const A = rng.f32((ta ? K : M) * lda), B = rng.f32(K * ldb), C0 = rng.f32(M * ldc, 100);
            if (beta === 0) C0.fill(NaN);
            checkGemm(A, B, C0, M, N, K, ta, false, alpha, beta, lda, ldb, ldc);
          }
      for (const ta of [false, true]) {
        const [M, N, K] = [10, 500, 784], A = rng.f32(M * K), B = rng.f32(K * N);
        const [cn, ct] = both((b) => {
          const C = new Float32Array(M * N).fill(NaN);
          b.sgemm(C, A, B, M, N, K, ta, false, 1, 0, ta ? M : K, N, N);
          return C;
        });
        expect(gemmBoundRatio(cn, ct, A, B, new Float32Array(M * N), M, N, K, ta, false, 1, 0, ta ? M : K, N, N)).toBeLessThan(2);
      }
    });
  });

  it('sgemm: B read in place (not transposed, one K block, rows an odd number of cache lines apart), masked right edge, both layouts of A, two threads, alpha/beta', () => {
    // ldb 784 floats: rows 49 lines apart (native AVX-512 reads B in place; the other ISAs pack it).
    // N 780 leaves a 12-column edge past the last whole vector; 500 rows go in two row blocks on two
    // threads, 40 x 780 x 16 on one; K 81 spans 254 KB of B, K 84 (packed) 263 KB
    withIsa(isa, () => {
      const rng = new Rng(15);
      for (const [M, N, K] of [[500, 784, 64], [500, 780, 64], [40, 780, 16], [600, 770, 81], [600, 770, 84]])
        for (const ta of [false, true])
          for (const [alpha, beta] of [[1, 0], [-0.5, 1]]) {
            const lda = (ta ? M : K) + 1, ldb = 784, ldc = N + 3;
            // B ends at its last value: the edge's masked loads must not read past it
            const A = rng.f32((ta ? K : M) * lda), B = rng.f32((K - 1) * ldb + N), C0 = rng.f32(M * ldc, 100);
            if (beta === 0) C0.fill(NaN, 0, M * ldc - 3); // the padding of the last row stays a number
            const cn = checkGemm(A, B, C0, M, N, K, ta, false, alpha, beta, lda, ldb, ldc);
            const Cs = copy(C0);
            const sum = native.sgemmSumSquares(Cs, A, B, M, N, K, ta, false, alpha, beta, lda, ldb, ldc);
            expect(firstBitDifference(Cs, cn)).toBeNull();
            const exact = squaresOf(Cs, M, N, ldc);
            expect(Math.abs(sum - exact)).toBeLessThanOrEqual(1e-6 * exact);
          }
    });
  });

  it('sgemmSumSquares: C as sgemm leaves it, and the sum of its squares, on every path (summed in the blocked product\'s stores, else after it); infinite A gives Infinity, not NaN', () => {
    withIsa(isa, () => {
      const rng = new Rng(14);
      // [M, N, K, ta, tb]: blocked and packed (one and several row blocks, K blocks, NC blocks, two
      // threads), a batch split by columns, a wide B^T, dot products, a few rows, one row, K = 0
      for (const [M, N, K, ta, tb] of [[20, 50, 30, false, false], [500, 784, 64, true, false], [300, 70, 520, false, false],
        [13, 3100, 200, true, true], [64, 500, 784, false, false], [64, 500, 784, false, true], [9, 10, 384, false, true],
        [10, 500, 64, true, false], [1, 37, 50, false, false], [5, 6, 0, false, false]] as const)
        for (const [alpha, beta, pad] of [[1, 0, 0], [-0.5, 1, 3]]) {
          const lda = Math.max(ta ? M : K, 1) + pad, ldb = Math.max(tb ? K : N, 1) + pad, ldc = N + pad;
          const A = rng.f32((ta ? K : M) * lda), B = rng.f32((tb ? N : K) * ldb), C0 = rng.f32(M * ldc);
          if (beta === 0) C0.fill(NaN);
          const Cs = copy(C0), Cp = copy(C0), Ct = copy(C0);
          const sum = native.sgemmSumSquares(Cs, A, B, M, N, K, ta, tb, alpha, beta, lda, ldb, ldc);
          native.sgemm(Cp, A, B, M, N, K, ta, tb, alpha, beta, lda, ldb, ldc);
          const sumTs = tsBackend.sgemmSumSquares(Ct, A, B, M, N, K, ta, tb, alpha, beta, lda, ldb, ldc);
          expect(firstBitDifference(Cs, Cp)).toBeNull(); // the same product as sgemm's
          const exact = squaresOf(Cs, M, N, ldc);
          const where = `M=${M} N=${N} K=${K} ta=${ta} tb=${tb} beta=${beta}`;
          if (Math.abs(sum - exact) > 1e-6 * exact) expect.fail(`${where}: ${sum} against ${exact}`);
          if (Math.abs(sumTs - sum) > 1e-5 * exact + 1e-6) expect.fail(`${where}: fallback ${sumTs} against ${sum}`);
        }
      // A's first row infinite: C's first row is +Infinity; the packed tiles' padding columns hold
      // Infinity * 0 = NaN, which must not reach the sum
      const [M, N, K] = [20, 50, 30];
      const A = rng.f32(M * K), B = Float32Array.from(rng.f32(K * N), Math.abs);
      A[0] = Infinity;
      B.fill(0.5, 0, N);
      for (const b of [native, tsBackend])
        expect(b.sgemmSumSquares(new Float32Array(M * N), A, B, M, N, K, false, false, 1, 0, K, N, N)).toBe(Infinity);
    });
  });

  it('sgemmBias: the bias on every row, on every path (one row, dot products, a batch against a wide B^T, a few rows against B in K blocks, a batch, row blocks, K = 0, alpha = 0), padded leading dimensions', () => {
    withIsa(isa, () => {
      const rng = new Rng(12);
      for (const [M, N, K, ta, tb, alpha] of [[1, 37, 50, false, true, 1], [1, 37, 50, false, false, 1], [9, 10, 384, false, true, 1],
        [64, 500, 784, false, true, 1], [7, 13, 65, false, true, -0.5], [64, 100, 70, false, false, 1], [300, 70, 90, true, false, 2],
        [200, 60, 50, false, true, 1], [5, 6, 0, false, true, 1], [5, 6, 7, false, false, 0], [10, 70, 300, true, false, 1],
        [3, 500, 64, false, false, -1]] as const) {
        const lda = (ta ? M : K) + 3, ldb = (tb ? K : N) + 1, ldc = N + 2;
        const A = rng.f32((ta ? K : M) * lda), B = rng.f32((tb ? N : K) * ldb), bias = rng.f32(N, 10);
        const C0 = rng.f32(M * ldc, 100);
        const [cn, ct] = both((b) => {
          const C = copy(C0);
          b.sgemmBias(C, A, B, bias, M, N, K, ta, tb, alpha, lda, ldb, ldc);
          return C;
        });
        // the bound of a product with beta 1 onto C's rows filled with the bias
        const rows = copy(C0);
        for (let i = 0; i < M; i++) rows.set(bias, i * ldc);
        const err = gemmBoundRatio(cn, ct, A, B, rows, M, N, K, ta, tb, alpha, 1, lda, ldb, ldc);
        if (err > 2) expect.fail(`M=${M} N=${N} K=${K} ta=${ta} tb=${tb}: error ${err}`);
        for (let i = 0; i < M; i++) { // the padding of C is not written
          for (let j = N; j < ldc; j++) expect(cn[i * ldc + j]).toBe(C0[i * ldc + j]);
          if (K === 0 || alpha === 0) for (let j = 0; j < N; j++) expect(cn[i * ldc + j]).toBe(bias[j]);
        }
      }
    });
  });

  it('sgemm: narrow A.B^T over a long K (native: dot products in K blocks), alpha/beta, padded leading dimensions', () => {
    // N on both sides of the dot path's limits (N <= 32 at K >= 384, N <= 12 at K >= 128, N <= 4 at
    // any K; 33 and 13 are packed again); M across the dot tile's and row blocks' edges; K across
    // its blocks and vector widths
    withIsa(isa, () => checkABt(new Rng(10), [[32, 9, 50176], [70, 15, 4099], [5, 1, 2049], [131, 4, 37], [3, 16, 3000],
      [9, 10, 384], [3, 32, 3000], [3, 33, 3000], [9, 12, 128], [9, 13, 128]], 1));
  });

  it('im2col, col2im, max pooling forward and backward', () => {
    withIsa(isa, () => {
      const rng = new Rng(8);
      const shapes = [
        [1, 1, 1, 1, 1, 1, 1, 1, 0, 0], [2, 3, 7, 7, 3, 3, 1, 1, 1, 1], [1, 2, 17, 33, 5, 3, 2, 3, 2, 1],
        [3, 1, 33, 17, 2, 2, 2, 2, 0, 0], [1, 7, 8, 8, 3, 3, 2, 2, 1, 1],
      ];
      for (const [N, C, H, W, KH, KW, SH, SW, PH, PW] of shapes) {
        const OH = Math.floor((H + 2 * PH - KH) / SH) + 1, OW = Math.floor((W + 2 * PW - KW) / SW) + 1;
        const x = rng.f32(N * C * H * W), cols = rng.f32(N * C * KH * KW * OH * OW), dy = rng.f32(N * C * OH * OW);
        const [rn, rt] = both((k) => {
          const col = new Float32Array(cols.length), dx = new Float32Array(x.length);
          k.im2col(col, x, N, C, H, W, KH, KW, SH, SW, PH, PW);
          k.col2im(dx, cols, N, C, H, W, KH, KW, SH, SW, PH, PW);
          const out: Record<string, ArrayLike<number>> = { col, dx };
          if (2 * PH <= KH && 2 * PW <= KW) {
            const y = new Float32Array(dy.length), idx = new Int32Array(dy.length), dp = new Float32Array(x.length);
            k.maxPool2d(y, idx, x, N, C, H, W, KH, KW, SH, SW, PH, PW);
            k.maxPool2dBackward(dp, dy, idx, N, C, H, W, OH, OW);
            Object.assign(out, { y, idx, dp });
          }
          return out;
        });
        for (const key of Object.keys(rn)) {
          const err = maxError(rn[key], rt[key]);
          if (err > 1e-5) expect.fail(`${[N, C, H, W, KH, KW, SH, SW, PH, PW]} ${key}: error ${err}`);
        }
      }
    });
  });

  it("Conv2d's output layout: swapped with the bias added, and its gradient swapped back and summed per channel", () => {
    withIsa(isa, () => {
      const rng = new Rng(10);
      // P of 1, 7, 17 (vector tails), 49, and 1030 (sums flushed to double every 1024 values)
      for (const [N, OC, P] of [[1, 1, 1], [2, 3, 7], [3, 5, 17], [64, 6, 49], [2, 3, 1030]]) {
        const out = rng.f32(OC * N * P), g = rng.f32(N * OC * P), bias = rng.f32(OC);
        out[0] = -0;
        out[out.length - 1] = NaN;
        const [rn, rt] = both((k) => {
          const y = new Float32Array(out.length), y0 = new Float32Array(out.length), gT = new Float32Array(g.length);
          const gT0 = new Float32Array(g.length), dbias = new Float32Array(OC);
          k.convOutput(y, out, bias, N, OC, P);
          k.convOutput(y0, out, null, N, OC, P);
          k.convOutputBackward(gT, dbias, g, N, OC, P);
          k.convOutputBackward(gT0, null, g, N, OC, P);
          return { y, y0, gT, gT0, dbias };
        });
        const at = `${[N, OC, P]}`;
        // the swap is a copy and the bias one rounded addition: the same bits on both
        for (const key of ['y', 'y0', 'gT', 'gT0'] as const)
          for (let i = 0; i < rn[key].length; i++)
            if (!Object.is(rn[key][i], rt[key][i])) expect.fail(`${at} ${key}[${i}]: native ${rn[key][i]}, fallback ${rt[key][i]}`);
        for (let n = 0; n < N; n++)
          for (let o = 0; o < OC; o++)
            for (let p = 0; p < P; p++) {
              const yi = (n * OC + o) * P + p, oi = (o * N + n) * P + p;
              if (!Object.is(rt.y0[yi], out[oi]) || !Object.is(rt.y[yi], Math.fround(out[oi] + bias[o])) || !Object.is(rt.gT[oi], g[yi]))
                expect.fail(`${at} (${n}, ${o}, ${p}): the fallback's layout is wrong`);
            }
        for (let o = 0; o < OC; o++) {
          let total = 0, magnitude = 0;
          for (let n = 0; n < N; n++)
            for (let p = 0; p < P; p++) {
              total += g[(n * OC + o) * P + p];
              magnitude += Math.abs(g[(n * OC + o) * P + p]);
            }
          for (const [side, d] of [['native', rn.dbias], ['fallback', rt.dbias]] as const)
            if (!(Math.abs(d[o] - total) <= 1e-6 * magnitude + 1e-7)) expect.fail(`${at} ${side} dbias[${o}] = ${d[o]}, want ${total}`);
        }
      }
    });
  });

  it('MaxPool2d(2) (native runs it eight outputs at a time): the same maxima and indices, with NaN, ties and -Inf', () => {
    withIsa(isa, () => {
      const rng = new Rng(9);
      // rows of 1, 7, 8, 9, 16 and 19 outputs (whole vectors and tails), odd sizes that drop a row or column
      for (const [N, C, H, W] of [[1, 1, 2, 2], [2, 3, 14, 14], [1, 2, 5, 17], [2, 1, 4, 18], [1, 1, 7, 33], [1, 2, 6, 39]]) {
        const x = rng.f32(N * C * H * W);
        // a few values from a small set make ties; NaN and -Inf in some windows (two NaN in one, too)
        for (let i = 0; i < x.length; i++) {
          const r = (i * 7919) % 23;
          if (r < 4) x[i] = [0.5, -0.5, 0, -0][r];
          else if (r === 4) x[i] = NaN;
          else if (r === 5) x[i] = -Infinity;
        }
        const OH = Math.floor(H / 2), OW = Math.floor(W / 2);
        const [[yn, in_], [yt, it_]] = both((k) => {
          const y = new Float32Array(N * C * OH * OW), idx = new Int32Array(y.length);
          k.maxPool2d(y, idx, x, N, C, H, W, 2, 2, 2, 2, 0, 0);
          return [y, idx] as const;
        });
        for (let i = 0; i < yn.length; i++)
          if (!Object.is(yn[i], yt[i]) || in_[i] !== it_[i])
            expect.fail(`${[N, C, H, W]} output ${i}: native ${yn[i]} at ${in_[i]}, fallback ${yt[i]} at ${it_[i]}`);
      }
    });
  });
});
