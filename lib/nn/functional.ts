/**
 * Differentiable building blocks of the nn modules, each one fused op on the backend:
 * linear (one GEMM forward, two backward), batchNorm (the BatchNorm kernels, optionally fused
 * with ReLU), crossEntropy (softmax cross-entropy kernels), and mseLoss.
 */
import { backend } from '../backend/index.js';
import { describe } from '../backend/validate.js';
import { collectingGradSquares, fmt, gradOverwrite, gradScratch, gradTarget, mean, noteGradSquares, pow, record, sizeOf, sub, sum, Tensor, uninitialized } from '../tensor.js';

export type Reduction = 'mean' | 'sum' | 'none';

let ones = new Float32Array(0);
/** n ones (a shared array: read it, never write it). */
function onesOf(n: number): Float32Array {
  if (ones.length < n) ones = new Float32Array(Math.max(n, 2 * ones.length)).fill(1);
  return ones.subarray(0, n);
}

/**
 * y = x W^T + b for x (N, in), W (out, in), b (out).
 * @example linear(x, weight, bias)
 * @throws {RangeError} when the shapes do not fit
 */
export function linear(x: Tensor, weight: Tensor, bias: Tensor | null = null): Tensor {
  const [out, inF] = weight.shape;
  if (x.ndim !== 2 || x.shape[1] !== inF)
    throw new RangeError(`linear: expected input of shape [N, ${inF}] but received ${fmt(x.shape)}`);
  const N = x.shape[0];
  const y = uninitialized(N * out); // every value written by the product (beta 0, or with the bias)
  // y (N, out) = x (N, in) . W^T (+ b on every row, added where the product stores y)
  if (bias)
    backend().sgemmBias(y, x.data, weight.data, bias.data, N, out, inF, false, true, 1, Math.max(inF, 1), Math.max(inF, 1), Math.max(out, 1));
  else
    backend().sgemm(y, x.data, weight.data, N, out, inF, false, true, 1, 0, Math.max(inF, 1), Math.max(inF, 1), Math.max(out, 1));
  const inputs = bias ? [x, weight, bias] : [x, weight];
  return record('linear', y, [N, out], inputs, (g) => {
    let dx: Float32Array | null = null, dw: Float32Array | null = null, db: Float32Array | null = null;
    if (x.requiresGrad) {
      dx = gradScratch(N * inF); // dx (N, in) = g (N, out) . W (out, in)
      backend().sgemm(dx, g, weight.data, N, inF, out, false, false, 1, 0, Math.max(out, 1), Math.max(inF, 1), Math.max(inF, 1));
    }
    // the parameters' gradients go straight into their .grad when it exists (beta = 1 adds); the
    // bias first, while g is still in cache from the op that wrote it: the weight's product writes
    // (out, in) values in between
    if (bias?.requiresGrad) {
      const b = gradTarget(bias); // db (1, out) = ones (1, N) . g (N, out)
      backend().sgemm(b.data, onesOf(N), g, 1, out, N, false, false, 1, b.beta, Math.max(N, 1), Math.max(out, 1), Math.max(out, 1));
      db = b.returned;
    }
    if (weight.requiresGrad) {
      const w = gradTarget(weight); // dW (out, in) = g^T (out, N) . x (N, in)
      const args = [w.data, g, x.data, out, inF, N, true, false, 1, w.beta, Math.max(out, 1), Math.max(inF, 1), Math.max(inF, 1)] as const;
      // written into .grad itself while fit() monitors gradients: its sum of squares from the product
      if (w.returned === null && collectingGradSquares()) noteGradSquares(weight, backend().sgemmSumSquares(...args));
      else backend().sgemm(...args);
      dw = w.returned;
    }
    return [dx, dw, db];
  });
}

export interface BatchNormArgs {
  runningMean: Tensor | null;
  runningVar: Tensor | null;
  weight: Tensor | null;
  bias: Tensor | null;
  /** normalise with batch statistics (and update the running ones when given) */
  training: boolean;
  /** the factor of the running update: momentum, or 1/numBatchesTracked for the cumulative average */
  factor: number;
  eps: number;
  relu?: boolean;
}

/**
 * Batch normalization of x (N, C, ...) over every dimension but C, PyTorch's semantics.
 * @example batchNorm(x, { runningMean, runningVar, weight, bias, training: true, factor: 0.1, eps: 1e-5 })
 * @throws {RangeError} when training with one value per channel
 */
export function batchNorm(x: Tensor, a: BatchNormArgs): Tensor {
  const [N, C] = x.shape;
  const S = sizeOf(x.shape.slice(2));
  const k = backend();
  const y = uninitialized(x.size); // the kernels write every value
  const w = a.weight?.data ?? null, b = a.bias?.data ?? null, relu = a.relu ?? false;
  let mean: Float32Array, invstd: Float32Array;
  if (a.training) {
    if (N * S <= 1) throw new RangeError(`Expected more than 1 value per channel when training, got input size ${fmt(x.shape)}`);
    mean = uninitialized(C); // both written in full by the kernel
    invstd = uninitialized(C);
    k.batchnormForwardTrain(y, mean, invstd, a.runningMean?.data ?? null, a.runningVar?.data ?? null, x.data, w, b, N, C, S, a.eps, a.factor, relu);
  } else {
    const rm = a.runningMean!.data, rv = a.runningVar!.data;
    k.batchnormForwardEval(y, x.data, rm, rv, w, b, N, C, S, a.eps, relu);
    mean = rm.slice();
    invstd = rv.map((v) => 1 / Math.sqrt(v + a.eps));
  }
  const inputs = [x, ...(a.weight ? [a.weight] : []), ...(a.bias ? [a.bias] : [])];
  return record(relu ? 'batchNormRelu' : 'batchNorm', y, [...x.shape], inputs, (g) => {
    const dx = x.requiresGrad ? gradScratch(x.size) : null;
    // the parameters' gradients straight into their .grad when it is zero (see gradOverwrite)
    const dw = a.weight?.requiresGrad ? gradOverwrite(a.weight) : null;
    const db = a.bias?.requiresGrad ? gradOverwrite(a.bias) : null;
    k.batchnormBackward(dx, dw?.data ?? null, db?.data ?? null, g, x.data, mean, invstd, w, relu ? y : null, N, C, S, a.training);
    dw?.finish();
    db?.finish();
    return [dx, ...(a.weight ? [dw?.returned ?? null] : []), ...(a.bias ? [db?.returned ?? null] : [])];
  });
}

/** Class indices as an Int32Array, validated against the batch size and the class count. */
export function classTargets(fn: string, target: Tensor | Int32Array | Uint8Array | number[], R: number, K: number): Int32Array {
  let values: ArrayLike<number>;
  if (target instanceof Tensor) values = target.data;
  else if (target instanceof Int32Array || target instanceof Uint8Array || Array.isArray(target)) values = target;
  else throw new TypeError(`${fn}: expected targets to be a Tensor, Int32Array, Uint8Array or number[] of class indices but received ${describe(target)}`);
  if (values.length !== R) throw new RangeError(`${fn}: expected ${R} targets (one per row of the input) but received ${values.length}`);
  const t = new Int32Array(R);
  for (let i = 0; i < R; i++) {
    const v = values[i];
    if (!Number.isInteger(v)) throw new TypeError(`${fn}: expected integer class indices but targets[${i}] is ${v}`);
    if (v < 0 || v >= K) throw new RangeError(`${fn}: target ${v} at index ${i} is out of range for ${K} classes`);
    t[i] = v;
  }
  return t;
}

function checkReduction(fn: string, reduction: string): void {
  if (reduction !== 'mean' && reduction !== 'sum' && reduction !== 'none')
    throw new RangeError(`${fn}: expected reduction to be 'mean', 'sum' or 'none' but received '${reduction}'`);
}

/**
 * Softmax cross-entropy of logits (N, K) against class indices, as PyTorch's cross_entropy.
 * @example crossEntropy(logits, targets, { labelSmoothing: 0.1 })
 * @throws {TypeError} when targets are not class indices
 * @throws {RangeError} when a target is out of range or the counts differ
 */
export function crossEntropy(logits: Tensor, target: Tensor | Int32Array | Uint8Array | number[],
  options: { reduction?: Reduction; labelSmoothing?: number } = {}): Tensor {
  const reduction = options.reduction ?? 'mean', ls = options.labelSmoothing ?? 0;
  checkReduction('crossEntropy', reduction);
  if (!(ls >= 0 && ls <= 1)) throw new RangeError(`crossEntropy: expected labelSmoothing in [0, 1] but received ${ls}`);
  if (logits.ndim !== 2) throw new RangeError(`crossEntropy: expected logits of shape [N, classes] but received ${fmt(logits.shape)}`);
  const [R, K] = logits.shape;
  const t = classTargets('crossEntropy', target, R, K);
  const losses = new Float32Array(R);
  backend().softmaxCrossEntropy(losses, logits.data, t, R, K, ls);
  const total = reduction === 'none' ? 0 : losses.reduce((s, v) => s + v, 0);
  const out = reduction === 'none' ? losses : Float32Array.of(reduction === 'mean' ? total / R : total);
  return record('crossEntropy', out, reduction === 'none' ? [R] : [], [logits], (g) => {
    const dl = reduction === 'none' ? g : new Float32Array(R).fill(reduction === 'mean' ? g[0] / R : g[0]);
    const dz = gradScratch(R * K);
    backend().softmaxCrossEntropyBackward(dz, logits.data, t, dl, R, K, ls);
    return [dz];
  });
}

/**
 * Mean squared error, as PyTorch's mse_loss.
 * @example mseLoss(prediction, target)
 * @throws {RangeError} when the shapes differ
 */
export function mseLoss(input: Tensor, target: Tensor, options: { reduction?: Reduction } = {}): Tensor {
  const reduction = options.reduction ?? 'mean';
  checkReduction('mseLoss', reduction);
  if (input.shape.length !== target.shape.length || input.shape.some((d, i) => d !== target.shape[i]))
    throw new RangeError(`mseLoss: expected target of shape ${fmt(input.shape)} but received ${fmt(target.shape)}`);
  const sq = pow(sub(input, target), 2);
  return reduction === 'none' ? sq : reduction === 'sum' ? sum(sq) : mean(sq);
}

