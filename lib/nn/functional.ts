/**
 * Differentiable building blocks of the nn modules, each one fused op on the backend:
 * linear (one GEMM forward, two backward), batchNorm (the BatchNorm kernels, optionally fused
 * with ReLU), crossEntropy (softmax cross-entropy kernels), and mseLoss.
 */
import { backend } from '../backend/index.js';
import { describe } from '../backend/validate.js';
import { allocate, release } from '../memory.js';
import { fmt, mean, noteSumSquares, pow, record, sizeOf, sub, sum, Tensor } from '../tensor.js';

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
  const y = allocate(N * out); // every value written by the product (beta 0, or with the bias)
  // y (N, out) = x (N, in) . W^T (+ b on every row, added where the product stores y)
  if (bias)
    backend().sgemmBias(y, x.values, weight.values, bias.values, N, out, inF, false, true, 1, Math.max(inF, 1), Math.max(inF, 1), Math.max(out, 1));
  else
    backend().sgemm(y, x.values, weight.values, N, out, inF, false, true, 1, 0, Math.max(inF, 1), Math.max(inF, 1), Math.max(out, 1));
  const inputs = bias ? [x, weight, bias] : [x, weight];
  return record('linear', y, [N, out], inputs, (g) => {
    let dx: Float32Array | null = null, dw: Float32Array | null = null, db: Float32Array | null = null;
    if (x.requiresGrad) {
      dx = allocate(N * inF); // dx (N, in) = g (N, out) . W (out, in)
      backend().sgemm(dx, g, weight.values, N, inF, out, false, false, 1, 0, Math.max(out, 1), Math.max(inF, 1), Math.max(inF, 1));
    }
    // the bias first, while g is still in cache from the op that wrote it: the weight's product
    // writes (out, in) values in between
    if (bias?.requiresGrad) {
      db = allocate(out); // db (1, out) = ones (1, N) . g (N, out)
      backend().sgemm(db, onesOf(N), g, 1, out, N, false, false, 1, 0, Math.max(N, 1), Math.max(out, 1), Math.max(out, 1));
    }
    if (weight.requiresGrad) {
      // dW (out, in) = g^T (out, N) . x (N, in), its sum of squares noted as the product stores it
      // (gradient-health monitoring needs it, and a pass over dW would read it all again)
      dw = allocate(out * inF);
      noteSumSquares(dw, backend().sgemmSumSquares(dw, g, x.values, out, inF, N, true, false, 1, 0, Math.max(out, 1), Math.max(inF, 1), Math.max(inF, 1)));
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
  const y = allocate(x.size); // the kernels write every value
  const w = a.weight?.values ?? null, b = a.bias?.values ?? null, relu = a.relu ?? false;
  let mean: Float32Array, invstd: Float32Array;
  if (a.training) {
    if (N * S <= 1) throw new RangeError(`Expected more than 1 value per channel when training, got input size ${fmt(x.shape)}`);
    mean = allocate(C); // both written in full by the kernel
    invstd = allocate(C);
    k.batchnormForwardTrain(y, mean, invstd, a.runningMean?.values ?? null, a.runningVar?.values ?? null, x.values, w, b, N, C, S, a.eps, a.factor, relu);
  } else {
    const rm = a.runningMean!.values, rv = a.runningVar!.values;
    k.batchnormForwardEval(y, x.values, rm, rv, w, b, N, C, S, a.eps, relu);
    mean = rm.slice();
    invstd = rv.map((v) => 1 / Math.sqrt(v + a.eps));
  }
  const inputs = [x, ...(a.weight ? [a.weight] : []), ...(a.bias ? [a.bias] : [])];
  const out = record(relu ? 'batchNormRelu' : 'batchNorm', y, [...x.shape], inputs, (g) => {
    const dx = x.requiresGrad ? allocate(x.size) : null;
    const dw = a.weight?.requiresGrad ? allocate(C) : null;
    const db = a.bias?.requiresGrad ? allocate(C) : null;
    k.batchnormBackward(dx, dw, db, g, x.values, mean, invstd, w, relu ? y : null, N, C, S, a.training);
    release(mean); // a node runs backward once
    release(invstd);
    return [dx, ...(a.weight ? [dw] : []), ...(a.bias ? [db] : [])];
  });
  if (!out.requiresGrad) {
    release(mean);
    release(invstd);
  }
  return out;
}

/** A BatchNorm's per-channel statistics of some values: what backend().batchnormStats gives, and their count. */
export interface BatchNormStats {
  mean: Float32Array;
  /** biased: the mean of the squared deviations */
  variance: Float32Array;
  /** values per channel */
  count: number;
}

/**
 * The statistics of the union of several parts' values from each part's (the batches of processes
 * that train together, say), per channel: Chan et al.'s pairwise update, in double, so the order of
 * the parts changes only the last bit.
 * @example const all = mergeBatchNormStats([statsOfMine, statsOfYours]);
 * @throws {RangeError} when there are no parts, a count is not positive, or the channel counts differ
 */
export function mergeBatchNormStats(parts: BatchNormStats[]): BatchNormStats {
  if (!parts.length) throw new RangeError('mergeBatchNormStats: expected at least one part');
  const C = parts[0].mean.length;
  const mean = new Float64Array(C), m2 = new Float64Array(C); // m2: the sum of squared deviations
  let count = 0;
  parts.forEach((p, i) => {
    if (!(Number.isInteger(p.count) && p.count > 0))
      throw new RangeError(`mergeBatchNormStats: expected part ${i}'s count to be a positive integer but received ${p.count}`);
    if (p.mean.length !== C || p.variance.length !== C)
      throw new RangeError(`mergeBatchNormStats: expected part ${i} to have ${C} channels but received ${p.mean.length} means and ${p.variance.length} variances`);
    const total = count + p.count;
    for (let c = 0; c < C; c++) {
      const delta = p.mean[c] - mean[c];
      mean[c] += (delta * p.count) / total;
      m2[c] += p.variance[c] * p.count + (delta * delta * count * p.count) / total;
    }
    count = total;
  });
  return { mean: Float32Array.from(mean), variance: Float32Array.from(m2, (v) => v / count), count };
}

/** Class indices as an Int32Array, validated against the batch size and the class count. */
export function classTargets(fn: string, target: Tensor | Int32Array | Uint8Array | number[], R: number, K: number): Int32Array {
  let values: ArrayLike<number>;
  if (target instanceof Tensor) values = target.values;
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
  const losses = allocate(R);
  backend().softmaxCrossEntropy(losses, logits.values, t, R, K, ls);
  const total = reduction === 'none' ? 0 : losses.reduce((s, v) => s + v, 0);
  const out = reduction === 'none' ? losses : Float32Array.of(reduction === 'mean' ? total / R : total);
  return record('crossEntropy', out, reduction === 'none' ? [R] : [], [logits], (g) => {
    const dl = reduction === 'none' ? g : new Float32Array(R).fill(reduction === 'mean' ? g[0] / R : g[0]);
    const dz = allocate(R * K);
    backend().softmaxCrossEntropyBackward(dz, logits.values, t, dl, R, K, ls);
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

