/**
 * Finite-difference checks of every backward kernel: for f(x) = sum(w * forward(x)) with random w,
 * the central difference (f(x + h e_i) - f(x - h e_i)) / 2h must match the backward kernel's
 * gradient. Forward values are float32, so h is large (1e-2) and the tolerance is 1e-2 relative to
 * the gradient's scale; ReLU-like kernels are sampled away from their kink.
 */
import { describe, expect, it } from 'vitest';
import type { Backend } from '../lib/backend/types.js';
import { maxAbs, native, Rng, tsBackend } from './helpers.js';

const H = 1e-2;

function dot(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
}

/** Compares grad with central differences of f at x, over every coordinate. */
function check(name: string, f: (x: Float32Array) => number, x: Float32Array, grad: ArrayLike<number>, tol = 1e-2): void {
  const scale = Math.max(maxAbs(grad), 1e-3);
  for (let i = 0; i < x.length; i++) {
    const saved = x[i];
    x[i] = saved + H;
    const up = f(x);
    x[i] = saved - H;
    const down = f(x);
    x[i] = saved;
    const fd = (up - down) / (2 * H);
    const err = Math.abs(fd - grad[i]) / scale;
    if (!(err <= tol)) expect.fail(`${name}: d/dx[${i}] finite difference ${fd} vs backward ${grad[i]} (error ${err})`);
  }
}

/** Random values at least 0.05 away from zero, so that +-H never crosses a ReLU kink. */
function awayFromZero(rng: Rng, n: number): Float32Array {
  return Float32Array.from(rng.f32(n), (v) => (v >= 0 ? v + 0.05 : v - 0.05));
}

describe.each([['native', native], ['ts', tsBackend]] as [string, Backend][])('gradients on %s', (_, b) => {
  it.each([[6, 5, 1], [3, 4, 6], [2, 3, 1], [4, 2, 9]])('batchnorm backward (train and eval, with and without fused ReLU) N=%i C=%i S=%i', (N, C, S) => {
    const rng = new Rng(N * 100 + C * 10 + S);
    const n = N * C * S, x = rng.f32(n, 1.5, 0.5), w = rng.f32(C), bias = rng.f32(C), dy = rng.f32(n);
    const rv = Float32Array.from(rng.f32(C), (v) => Math.abs(v) + 0.5), rm = rng.f32(C);
    for (const relu of [false, true]) {
      const forward = (xx: Float32Array, ww: Float32Array, bb: Float32Array, train: boolean) => {
        const y = new Float32Array(n);
        if (train)
          b.batchnormForwardTrain(y, new Float32Array(C), new Float32Array(C), null, null, xx, ww, bb, N, C, S, 1e-5, 0.1, relu);
        else b.batchnormForwardEval(y, xx, rm, rv, ww, bb, N, C, S, 1e-5, relu);
        return y;
      };
      for (const train of [true, false]) {
        const y = new Float32Array(n), mean = new Float32Array(C), invstd = new Float32Array(C);
        if (train) b.batchnormForwardTrain(y, mean, invstd, null, null, x, w, bias, N, C, S, 1e-5, 0.1, relu);
        else {
          b.batchnormForwardEval(y, x, rm, rv, w, bias, N, C, S, 1e-5, relu);
          mean.set(rm);
          invstd.set(rv.map((v) => 1 / Math.sqrt(v + 1e-5)));
        }
        const dx = new Float32Array(n), dw = new Float32Array(C), db = new Float32Array(C);
        b.batchnormBackward(dx, dw, db, dy, x, mean, invstd, w, relu ? y : null, N, C, S, train);
        // a ReLU output within H of its kink would make the difference quotient meaningless
        if (relu && y.some((v) => Math.abs(v) < 0.05)) continue;
        const tag = `train=${train} relu=${relu}`;
        check(`dx ${tag}`, (xx) => dot(dy, forward(xx, w, bias, train)), x, dx, 2e-2);
        check(`dweight ${tag}`, (ww) => dot(dy, forward(x, ww, bias, train)), w, dw);
        check(`dbias ${tag}`, (bb) => dot(dy, forward(x, w, bb, train)), bias, db);
      }
    }
  });

  it('activations: relu, leaky relu, sigmoid, tanh', () => {
    const rng = new Rng(11);
    const n = 40, x = awayFromZero(rng, n), w = rng.f32(n);
    const cases: [string, (o: Float32Array, v: Float32Array) => void, (dx: Float32Array, y: Float32Array) => void][] = [
      ['relu', (o, v) => b.relu(o, v), (dx) => b.reluBackward(dx, w, x)],
      ['leakyRelu', (o, v) => b.leakyRelu(o, v, 0.1), (dx) => b.leakyReluBackward(dx, w, x, 0.1)],
      ['sigmoid', (o, v) => b.sigmoid(o, v), (dx, y) => b.sigmoidBackward(dx, w, y)],
      ['tanh', (o, v) => b.tanh(o, v), (dx, y) => b.tanhBackward(dx, w, y)],
    ];
    for (const [name, fwd, bwd] of cases) {
      const f = (v: Float32Array) => {
        const o = new Float32Array(n);
        fwd(o, v);
        return dot(w, o);
      };
      const y = new Float32Array(n), dx = new Float32Array(n);
      fwd(y, x);
      bwd(dx, y);
      check(name, f, x, dx);
    }
  });

  it('softmax cross-entropy backward, with and without label smoothing', () => {
    const rng = new Rng(12);
    const R = 5, K = 7, z = rng.f32(R * K, 2), t = rng.int(R, K), dl = Float32Array.from(rng.f32(R), Math.abs);
    for (const ls of [0, 0.1]) {
      const f = (zz: Float32Array) => {
        const l = new Float32Array(R);
        b.softmaxCrossEntropy(l, zz, t, R, K, ls);
        return dot(dl, l);
      };
      const dz = new Float32Array(R * K);
      b.softmaxCrossEntropyBackward(dz, z, t, dl, R, K, ls);
      check(`labelSmoothing=${ls}`, f, z, dz);
    }
  });

  it('sgemm as Linear uses it: forward NT, backward NN (dx) and TN (dW)', () => {
    const rng = new Rng(13);
    const Nb = 5, In = 6, Out = 4;
    const x = rng.f32(Nb * In), W = rng.f32(Out * In), g = rng.f32(Nb * Out);
    const forward = (xx: Float32Array, WW: Float32Array) => {
      const y = new Float32Array(Nb * Out);
      b.sgemm(y, xx, WW, Nb, Out, In, false, true, 1, 0, In, In, Out); // y = x W^T
      return dot(g, y);
    };
    const dx = new Float32Array(Nb * In), dW = new Float32Array(Out * In);
    b.sgemm(dx, g, W, Nb, In, Out, false, false, 1, 0, Out, In, In); // dx = g W
    b.sgemm(dW, g, x, Out, In, Nb, true, false, 1, 0, Out, In, In); // dW = g^T x
    check('dx', (xx) => forward(xx, W), x, dx);
    check('dW', (WW) => forward(x, WW), W, dW);
  });

  it('col2im is the adjoint of im2col: <im2col(x), c> = <x, col2im(c)>', () => {
    const rng = new Rng(14);
    for (const [N, C, H, W, KH, KW, SH, SW, PH, PW] of [[2, 3, 6, 5, 3, 3, 1, 1, 1, 1], [1, 2, 9, 7, 3, 2, 2, 3, 1, 0]]) {
      const OH = Math.floor((H + 2 * PH - KH) / SH) + 1, OW = Math.floor((W + 2 * PW - KW) / SW) + 1;
      const x = rng.f32(N * C * H * W), c = rng.f32(N * C * KH * KW * OH * OW);
      const col = new Float32Array(c.length), dx = new Float32Array(x.length);
      b.im2col(col, x, N, C, H, W, KH, KW, SH, SW, PH, PW);
      b.col2im(dx, c, N, C, H, W, KH, KW, SH, SW, PH, PW);
      expect(Math.abs(dot(col, c) - dot(x, dx))).toBeLessThan(1e-4 * Math.abs(dot(col, c)) + 1e-4);
      check('col2im as the gradient of im2col', (xx) => {
        const cc = new Float32Array(c.length);
        b.im2col(cc, xx, N, C, H, W, KH, KW, SH, SW, PH, PW);
        return dot(cc, c);
      }, x, dx);
    }
  });

  it('max pooling backward', () => {
    const rng = new Rng(15);
    const [N, C, H, W, K, S, P] = [2, 2, 6, 6, 3, 2, 1];
    const OH = Math.floor((H + 2 * P - K) / S) + 1, OW = Math.floor((W + 2 * P - K) / S) + 1;
    // a permutation of well-separated values: no two within 2H, so each window's argmax is stable
    const x = Float32Array.from(rng.int(N * C * H * W, 1 << 30), (_, i) => i * 0.1);
    for (let i = x.length - 1; i > 0; i--) {
      const j = Math.floor(rng.uniform() * (i + 1));
      [x[i], x[j]] = [x[j], x[i]];
    }
    const dy = rng.f32(N * C * OH * OW), y = new Float32Array(dy.length), idx = new Int32Array(dy.length);
    b.maxPool2d(y, idx, x, N, C, H, W, K, K, S, S, P, P);
    const dx = new Float32Array(x.length);
    b.maxPool2dBackward(dx, dy, idx, N, C, H, W, OH, OW);
    check('maxPool2d', (xx) => {
      const yy = new Float32Array(dy.length);
      b.maxPool2d(yy, new Int32Array(dy.length), xx, N, C, H, W, K, K, S, S, P, P);
      return dot(dy, yy);
    }, x, dx);
  });
});
