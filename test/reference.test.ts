/**
 * BatchNorm (in one call and in phases) and softmax cross-entropy against values produced by
 * PyTorch (test/fixtures/make_fixtures.py, torch 1.13), on both backends and every native ISA. Tolerance: 1e-4 relative,
 * with an absolute floor of 1% of the array's largest value (see maxError): values that cancel to
 * near zero carry PyTorch's own float32 rounding (the float64 TypeScript backend shows the same).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Backend } from '../lib/backend/types.js';
import { nn } from '../lib/index.js';
import { maxError, native, runnableIsas, tsBackend, withIsa } from './helpers.js';

interface BnStep {
  x: number[]; dy: number[]; y: number[]; saveMean: number[]; saveInvstd: number[]; runningMean: number[];
  runningVar: number[]; factor: number; dx: number[]; dweight: number[] | null; dbias: number[] | null;
}
interface BnCase {
  name: string; shape: number[]; momentum: number | null; eps: number; affine: boolean; relu: boolean;
  runningMean0: number[]; runningVar0: number[]; weight: number[] | null; bias: number[] | null; train: BnStep[];
  eval: { x: number[]; dy: number[]; y: number[]; dx: number[]; dweight: number[] | null; dbias: number[] | null };
}
interface CeCase {
  name: string; R: number; K: number; labelSmoothing: number; logits: number[]; targets: number[];
  dlosses: number[]; losses: number[]; meanLoss: number; dlogits: number[];
}
const fixtures = JSON.parse(readFileSync(join(__dirname, 'fixtures', 'kernels.json'), 'utf8')) as {
  torch: string; batchnorm: BnCase[]; crossEntropy: CeCase[];
};

const TOL = 1e-4;
const f32 = (a: number[]) => Float32Array.from(a);

function expectClose(name: string, actual: ArrayLike<number>, expected: number[]): void {
  const err = maxError(actual, expected);
  if (!(err <= TOL)) expect.fail(`${name}: max error ${err} > ${TOL}`);
}

function runBatchnorm(b: Backend, c: BnCase): void {
  const [N, C] = c.shape, S = c.shape.slice(2).reduce((p, v) => p * v, 1), n = N * C * S;
  const w = c.weight && f32(c.weight), bias = c.bias && f32(c.bias);
  const rm = f32(c.runningMean0), rv = f32(c.runningVar0);
  for (const [i, step] of c.train.entries()) {
    const x = f32(step.x), dy = f32(step.dy);
    const y = new Float32Array(n), mean = new Float32Array(C), invstd = new Float32Array(C);
    // momentum null is PyTorch's cumulative average: the factor is 1/numBatchesTracked
    b.batchnormForwardTrain(y, mean, invstd, rm, rv, x, w, bias, N, C, S, c.eps, step.factor, c.relu);
    const dx = new Float32Array(n), dw = new Float32Array(C), db = new Float32Array(C);
    b.batchnormBackward(dx, w ? dw : null, w ? db : null, dy, x, mean, invstd, w, c.relu ? y : null, N, C, S, true);
    const at = `${c.name}, train step ${i + 1}`;
    expectClose(`${at}: y`, y, step.y);
    expectClose(`${at}: saveMean`, mean, step.saveMean);
    expectClose(`${at}: saveInvstd`, invstd, step.saveInvstd);
    expectClose(`${at}: runningMean`, rm, step.runningMean);
    expectClose(`${at}: runningVar`, rv, step.runningVar);
    expectClose(`${at}: dx`, dx, step.dx);
    if (step.dweight && step.dbias) {
      expectClose(`${at}: dweight`, dw, step.dweight);
      expectClose(`${at}: dbias`, db, step.dbias);
    }
  }
  const e = c.eval, x = f32(e.x), dy = f32(e.dy), y = new Float32Array(n);
  b.batchnormForwardEval(y, x, rm, rv, w, bias, N, C, S, c.eps, c.relu);
  const invRun = Float32Array.from(rv, (v) => 1 / Math.sqrt(v + c.eps));
  const dx = new Float32Array(n), dw = new Float32Array(C), db = new Float32Array(C);
  b.batchnormBackward(dx, w ? dw : null, w ? db : null, dy, x, rm, invRun, w, c.relu ? y : null, N, C, S, false);
  expectClose(`${c.name}, eval: y`, y, e.y);
  expectClose(`${c.name}, eval: dx`, dx, e.dx);
  if (e.dweight && e.dbias) {
    expectClose(`${c.name}, eval: dweight`, dw, e.dweight);
    expectClose(`${c.name}, eval: dbias`, db, e.dbias);
  }
}

/**
 * The same steps through the phases: stats (also of the batch's two halves, merged as processes'
 * shares would be), apply with invstd = 1/sqrt(var + eps), the backward sums, which give the
 * parameters' gradients, and dx from them over the whole batch's count; eval is apply with the
 * running statistics and dx from zero sums.
 */
function runBatchnormPhases(b: Backend, c: BnCase): void {
  const [N, C] = c.shape, S = c.shape.slice(2).reduce((p, v) => p * v, 1), n = N * C * S;
  const w = c.weight && f32(c.weight), bias = c.bias && f32(c.bias);
  for (const [i, step] of c.train.entries()) {
    const at = `${c.name}, train step ${i + 1} in phases`, x = f32(step.x), dy = f32(step.dy);
    const stats = (from: number, to: number) => {
      const mean = new Float32Array(C), variance = new Float32Array(C);
      b.batchnormStats(mean, variance, x.subarray(from * C * S, to * C * S), to - from, C, S);
      return { mean, variance, count: (to - from) * S };
    };
    const all = stats(0, N), half = N >> 1;
    const merged = half >= 1 ? nn.functional.mergeBatchNormStats([stats(0, half), stats(half, N)]) : all;
    const invstd = Float32Array.from(all.variance, (v) => 1 / Math.sqrt(v + c.eps));
    for (const [what, s] of [['', all], [' (two halves merged)', merged]] as const) {
      expectClose(`${at}${what}: mean`, s.mean, step.saveMean);
      expectClose(`${at}${what}: invstd`, Float32Array.from(s.variance, (v) => 1 / Math.sqrt(v + c.eps)), step.saveInvstd);
    }
    const y = new Float32Array(n);
    b.batchnormApply(y, x, all.mean, invstd, w, bias, N, C, S, c.relu);
    expectClose(`${at}: y`, y, step.y);
    const sumDy = new Float32Array(C), sumDyXmu = new Float32Array(C);
    b.batchnormBackwardReduce(sumDy, sumDyXmu, dy, x, all.mean, c.relu ? y : null, N, C, S);
    if (step.dweight && step.dbias) {
      expectClose(`${at}: dweight`, sumDyXmu.map((v, k) => v * invstd[k]), step.dweight);
      expectClose(`${at}: dbias`, sumDy, step.dbias);
    }
    const dx = new Float32Array(n);
    b.batchnormBackwardApply(dx, dy, x, all.mean, invstd, w, sumDy, sumDyXmu, c.relu ? y : null, N * S, N, C, S);
    expectClose(`${at}: dx`, dx, step.dx);
  }
  const e = c.eval, x = f32(e.x), dy = f32(e.dy), y = new Float32Array(n), last = c.train[c.train.length - 1];
  const rm = f32(last.runningMean), invRun = Float32Array.from(last.runningVar, (v) => 1 / Math.sqrt(v + c.eps));
  b.batchnormApply(y, x, rm, invRun, w, bias, N, C, S, c.relu);
  const zeros = new Float32Array(C), dx = new Float32Array(n);
  b.batchnormBackwardApply(dx, dy, x, rm, invRun, w, zeros, zeros, c.relu ? y : null, N * S, N, C, S);
  expectClose(`${c.name}, eval in phases: y`, y, e.y);
  expectClose(`${c.name}, eval in phases: dx`, dx, e.dx);
}

function runCrossEntropy(b: Backend, c: CeCase): void {
  const { R, K } = c, logits = f32(c.logits), targets = Int32Array.from(c.targets);
  const losses = new Float32Array(R), dlogits = new Float32Array(R * K);
  b.softmaxCrossEntropy(losses, logits, targets, R, K, c.labelSmoothing);
  b.softmaxCrossEntropyBackward(dlogits, logits, targets, f32(c.dlosses), R, K, c.labelSmoothing);
  // losses that are 0 in exact arithmetic (one class) are compared against the logits' size
  const err = maxError(losses, c.losses, 0.01 * Math.max(...c.logits.map(Math.abs)));
  if (!(err <= TOL)) expect.fail(`${c.name}: losses max error ${err}`);
  expect(Math.abs(losses.reduce((s, v) => s + v, 0) / R - c.meanLoss)).toBeLessThan(1e-4 * Math.max(1, Math.abs(c.meanLoss)));
  const errGrad = maxError(dlogits, c.dlogits, 0.01 * Math.max(...c.dlosses));
  if (!(errGrad <= TOL)) expect.fail(`${c.name}: dlogits max error ${errGrad}`);
}

const targets: [string, () => Backend][] = [
  ['ts', () => tsBackend],
  ...runnableIsas.map((isa): [string, () => Backend] => [`native ${isa}`, () => native]),
];

describe.each(targets)(`PyTorch ${fixtures.torch} reference values on %s`, (label, get) => {
  const isa = label.startsWith('native') ? (label.split(' ')[1] as 'scalar' | 'avx2' | 'avx512') : null;
  const run = (fn: () => void) => (isa ? withIsa(isa, fn) : fn());
  it.each(fixtures.batchnorm.map((c) => [c.name, c] as const))('%s', (_, c) => run(() => runBatchnorm(get(), c)));
  it.each(fixtures.batchnorm.map((c) => [c.name, c] as const))('%s, in phases', (_, c) => run(() => runBatchnormPhases(get(), c)));
  it.each(fixtures.crossEntropy.map((c) => [c.name, c] as const))('%s', (_, c) => run(() => runCrossEntropy(get(), c)));
});
