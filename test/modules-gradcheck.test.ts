/**
 * Finite-difference checks of every module and loss, through autograd, on both backends: the
 * gradient with respect to the input and to every parameter of f = sum(w * module(x)).
 */
import { afterAll, describe, expect, it } from 'vitest';
import { backend, useBackend } from '../lib/backend/index.js';
import type { Backend } from '../lib/backend/types.js';
import { manualSeed, mul, nn, noGrad, randn, sum, Tensor, tensor } from '../lib/index.js';
import { gradcheck, native, tsBackend } from './helpers.js';

const initial = backend();
afterAll(() => useBackend(initial));

/** The spacing of float32 values at v. */
const ulp = (v: number) => 2 ** (Math.floor(Math.log2(Math.max(Math.abs(v), 2 ** -126))) - 23);

/** Checks d/dx and d/dparameter of sum(w * m(x)) for a fresh module from make(). */
function checkModule(name: string, make: () => nn.Module, shape: number[], prepare: (x: Tensor) => Tensor = (x) => x): void {
  manualSeed(9);
  const m = make();
  const x = prepare(randn(shape));
  const w = randn(m.forward(x).shape);
  gradcheck(`${name}: input`, (t) => sum(mul(m.forward(t), w)), x);
  // parameters: autograd's p.grad against central differences over p.data
  if (m.parameters().length === 0) return;
  m.zeroGrad();
  sum(mul(m.forward(x), w)).backward();
  const h = 1e-2;
  for (const [pname, p] of m.namedParameters()) {
    const grad = p.grad!.data, scale = Math.max(1e-3, ...Array.from(grad, Math.abs));
    for (let i = 0; i < p.size; i++) {
      const saved = p.data[i];
      const f = (v: number) => {
        p.data[i] = v;
        return noGrad(() => sum(mul(m.forward(x), w)).item());
      };
      const [up, down] = [f(saved + h), f(saved - h)], fd = (up - down) / (2 * h);
      p.data[i] = saved;
      // a difference quotient cannot resolve below the float rounding of f: a few units in its last place, over 2h
      const noise = (4 * Math.max(ulp(up), ulp(down))) / (2 * h);
      expect(Math.abs(fd - grad[i]), `${name}: d/d${pname}[${i}] finite difference ${fd} vs autograd ${grad[i]}`).toBeLessThan(1e-2 * scale + noise);
    }
  }
}

// values at least 0.1 from zero and pairwise apart, so that ReLU kinks and max-pool choices are stable under +-h
const separated = (x: Tensor) => new Tensor(Float32Array.from(x.data, (_, i) => {
  const v = (((i * 7919) % x.size) - x.size / 2) * 0.05; // distinct values (7919 is prime)
  return v >= 0 ? v + 0.1 : v - 0.1;
}), [...x.shape]);

describe.each([['native', native], ['ts', tsBackend]] as [string, Backend][])('module gradients on %s', (_, b) => {
  it('Linear, BatchNorm1d (train, eval), Conv2d, BatchNorm2d, pooling, LayerNorm, activations, Flatten', () => {
    useBackend(b);
    checkModule('Linear', () => new nn.Linear(5, 3), [4, 5]);
    checkModule('BatchNorm1d train', () => new nn.BatchNorm1d(3), [6, 3]);
    checkModule('BatchNorm1d (N, C, L) train', () => new nn.BatchNorm1d(3), [3, 3, 4]);
    checkModule('BatchNorm1d eval', () => {
      const bn = new nn.BatchNorm1d(3);
      bn.forward(randn([8, 3]));
      return bn.eval();
    }, [4, 3]);
    checkModule('BatchNorm2d train', () => new nn.BatchNorm2d(2), [3, 2, 3, 3]);
    checkModule('Conv2d', () => new nn.Conv2d(2, 3, 3, { stride: 2, padding: 1 }), [2, 2, 5, 4]);
    checkModule('MaxPool2d', () => new nn.MaxPool2d(2), [2, 2, 4, 4], separated);
    checkModule('AvgPool2d', () => new nn.AvgPool2d(3, { stride: 2, padding: 1 }), [1, 2, 5, 5]);
    checkModule('LayerNorm', () => new nn.LayerNorm([2, 3]), [4, 2, 3]);
    checkModule('LeakyReLU', () => new nn.LeakyReLU(0.1), [3, 4], separated);
    checkModule('ReLU', () => new nn.ReLU(), [3, 4], separated);
    checkModule('Sigmoid', () => new nn.Sigmoid(), [3, 4]);
    checkModule('Tanh', () => new nn.Tanh(), [3, 4]);
    checkModule('Flatten', () => new nn.Flatten(), [2, 3, 2]);
    checkModule('Sequential', () => new nn.Sequential(new nn.Linear(4, 6), new nn.BatchNorm1d(6), new nn.Tanh(), new nn.Linear(6, 2)), [5, 4]);
  });

  it('CrossEntropyLoss (mean, sum, none, label smoothing) and MSELoss', () => {
    useBackend(b);
    manualSeed(10);
    const logits = randn([4, 5]), y = [0, 3, 4, 1], target = randn([4, 5]), w = randn([4]);
    for (const labelSmoothing of [0, 0.2]) {
      gradcheck(`crossEntropy mean ls=${labelSmoothing}`, (t) => new nn.CrossEntropyLoss({ labelSmoothing }).forward(t, y), logits);
      gradcheck(`crossEntropy sum ls=${labelSmoothing}`, (t) => new nn.CrossEntropyLoss({ reduction: 'sum', labelSmoothing }).forward(t, y), logits);
      gradcheck(`crossEntropy none ls=${labelSmoothing}`, (t) => sum(mul(new nn.CrossEntropyLoss({ reduction: 'none', labelSmoothing }).forward(t, y), w)), logits);
    }
    gradcheck('mseLoss', (t) => new nn.MSELoss().forward(t, target), logits);
    gradcheck('mseLoss sum', (t) => new nn.MSELoss({ reduction: 'sum' }).forward(t, target), logits);
  });

  it('Dropout: the gradient flows through the kept elements, scaled by 1/(1-p)', () => {
    useBackend(b);
    const x = tensor([1, 2, 3, 4, 5, 6, 7, 8], undefined, { requiresGrad: true });
    const d = new nn.Dropout(0.5);
    const y = d.forward(x);
    sum(y).backward();
    x.grad!.data.forEach((g, i) => {
      if (!(g === (y.data[i] === 0 ? 0 : 2))) throw new Error(`dropout grad ${i}: ${g} for output ${y.data[i]}`);
    });
    d.eval();
    if (d.forward(x) !== x) throw new Error('Dropout in eval mode must be the identity');
  });
});
