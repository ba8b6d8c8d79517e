/**
 * Native (each ISA this CPU runs) against the TypeScript fallback, the specification, on random
 * inputs, including sizes that are not multiples of any vector width. Tolerances are relative with
 * a small absolute floor (see maxError): float32 kernels with different summation orders agree to a
 * few ulps times the reduction length. GEMM's paths are in parity-gemm.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { both, copy, firstBitDifference, maxAbs, maxError, native, Rng, runnableIsas, tsBackend, withIsa } from './helpers.js';

const SIZES = [1, 7, 17, 33, 100];

describe.each(runnableIsas)('native %s vs the TypeScript fallback', (isa) => {
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
