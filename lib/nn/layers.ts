/** Layers: Sequential, Linear, BatchNorm1d/2d, activations, Flatten, Dropout. */
import { uniform } from '../random.js';
import { fmt, ones, record, relu, sigmoid, tanh, Tensor, zeros } from '../tensor.js';
import { backend } from '../backend/index.js';
import { allocate, release } from '../memory.js';
import { batchNorm, linear } from './functional.js';
import { flatten } from '../ops.js';
import { isLibraryModule, libraryModules, Module } from './module.js';
import { moduleAt } from './containers.js';
import { checkPositiveInt, pyFloat } from '../check.js';

/**
 * Runs its modules in order; their state-dict keys are their indices (`0.weight`, `1.running_mean`).
 * @example new nn.Sequential(new nn.Linear(784, 500), new nn.BatchNorm1d(500), new nn.ReLU(), new nn.Linear(500, 10))
 */
export class Sequential extends Module {
  constructor(...layers: Module[]) {
    super();
    layers.forEach((m, i) => {
      if (!(m instanceof Module)) throw new TypeError(`Sequential: expected argument ${i} to be a Module but received ${m === null ? 'null' : typeof m}`);
      this.registerModule(String(i), m);
    });
  }
  /** The modules in order. */
  get layers(): Module[] {
    return this.children();
  }
  get length(): number {
    return this.children().length;
  }
  /** The module at index i (negative counts from the end). @throws {RangeError} out of range */
  at(i: number): Module {
    return moduleAt('Sequential', this.children(), i);
  }
  forward(x: Tensor): Tensor {
    let h = x;
    const made: Tensor[] = []; // outputs with new arrays, made by the library's own layers
    const seen = new Set<Float32Array>(); // arrays given to the caller's own modules
    const layers = this.children();
    for (let i = 0; i < layers.length; i++) {
      const m = layers[i], next = layers[i + 1];
      const own = isLibraryModule(m);
      if (!own) seen.add(h.values);
      let out: Tensor;
      // BatchNorm then ReLU runs as one fused kernel forward and backward: the same values, one
      // pass and one array fewer each way
      if (own && m instanceof BatchNormBase && next?.constructor === ReLU && isLibraryModule(next)) {
        out = m.forwardWith(h, true);
        i++;
      } else {
        out = m.forward(h);
      }
      if (own && out.values !== h.values) made.push(out);
      h = out;
    }
    seen.add(h.values);
    // Intermediate outputs no caller can reach: their arrays go back to the allocator as soon as
    // nothing needs them, at once without a graph, else when backward has run their nodes.
    for (const t of made) {
      if (seen.has(t.values)) continue;
      if (!h.requiresGrad) release(t.values);
      else if (t.requiresGrad) t.graphOwned = true;
    }
    return h;
  }
}

/** Values uniform in [-bound, bound) from the seeded generator. */
export function uniformTensor(shape: number[], bound: number): Tensor {
  const t = zeros(shape);
  for (let i = 0; i < t.size; i++) t.values[i] = (2 * uniform() - 1) * bound;
  return t;
}

/**
 * y = x W^T + b. Initialised as PyTorch: W and b uniform in +-1/sqrt(inFeatures) (Kaiming-uniform
 * with a = sqrt(5)).
 * @example const fc = new nn.Linear(784, 500); fc.forward(x) // x (N, 784) -> (N, 500)
 * @throws {RangeError} when the input is not (N, inFeatures)
 */
export class Linear extends Module {
  readonly weight: Tensor;
  readonly bias: Tensor | null;
  constructor(readonly inFeatures: number, readonly outFeatures: number, options: { bias?: boolean } = {}) {
    super();
    checkPositiveInt('Linear', 'inFeatures', inFeatures);
    checkPositiveInt('Linear', 'outFeatures', outFeatures);
    const bound = 1 / Math.sqrt(inFeatures);
    this.weight = this.registerParameter('weight', uniformTensor([outFeatures, inFeatures], bound))!;
    this.bias = this.registerParameter('bias', options.bias ?? true ? uniformTensor([outFeatures], bound) : null);
  }
  forward(x: Tensor): Tensor {
    if (x.ndim !== 2 || x.shape[1] !== this.inFeatures)
      throw new RangeError(`Linear(${this.inFeatures}, ${this.outFeatures}) expected input of shape [N, ${this.inFeatures}] but received ${fmt(x.shape)}`);
    return linear(x, this.weight, this.bias);
  }
  override extraRepr(): string {
    return `in_features=${this.inFeatures}, out_features=${this.outFeatures}, bias=${this.bias !== null}`;
  }
}

export interface BatchNormOptions {
  eps?: number;
  /** factor of the running-statistics update; null: cumulative average */
  momentum?: number | null;
  affine?: boolean;
  trackRunningStats?: boolean;
}

/** @internal What BatchNorm1d, BatchNorm2d and SyncBatchNorm share. */
export abstract class BatchNormBase extends Module {
  readonly eps: number;
  readonly momentum: number | null;
  readonly weight: Tensor | null;
  readonly bias: Tensor | null;
  // buffers, under PyTorch's names (runningMean, runningVar and numBatchesTracked read them)
  declare running_mean: Tensor | null;
  declare running_var: Tensor | null;
  /** batches seen in training (an integer) */
  declare num_batches_tracked: Tensor | null;

  constructor(readonly name: string, readonly numFeatures: number, options: BatchNormOptions) {
    super();
    checkPositiveInt(name, 'numFeatures', numFeatures);
    this.eps = options.eps ?? 1e-5;
    this.momentum = options.momentum === undefined ? 0.1 : options.momentum;
    if (!(this.eps > 0)) throw new RangeError(`${name}: expected eps > 0 but received ${this.eps}`);
    if (this.momentum !== null && !(this.momentum >= 0 && this.momentum <= 1))
      throw new RangeError(`${name}: expected momentum in [0, 1] or null but received ${this.momentum}`);
    const affine = options.affine ?? true, track = options.trackRunningStats ?? true;
    this.weight = this.registerParameter('weight', affine ? ones([numFeatures]) : null);
    this.bias = this.registerParameter('bias', affine ? zeros([numFeatures]) : null);
    this.registerBuffer('running_mean', track ? zeros([numFeatures]) : null);
    this.registerBuffer('running_var', track ? ones([numFeatures]) : null);
    this.registerBuffer('num_batches_tracked', track ? zeros([]) : null);
  }

  get runningMean(): Tensor | null {
    return this.running_mean;
  }
  get runningVar(): Tensor | null {
    return this.running_var;
  }
  /** batches seen in training (PyTorch's num_batches_tracked, an integer) */
  get numBatchesTracked(): Tensor | null {
    return this.num_batches_tracked;
  }

  override extraRepr(): string {
    return `${this.numFeatures}, eps=${pyFloat(this.eps)}, momentum=${this.momentum}, affine=${this.weight !== null}, ` +
      `track_running_stats=${this.running_mean !== null}`;
  }

  /** @internal */
  abstract checkInput(x: Tensor): void;

  /** Runs BatchNorm, optionally fused with the ReLU that follows it (one pass forward and backward). */
  forwardWith(x: Tensor, relu: boolean): Tensor {
    this.checkInput(x);
    const counts = this.training && this.numBatchesTracked !== null;
    // the batch is counted only once batchNorm has accepted it, so a rejected batch changes no state
    const factor = counts ? this.momentum ?? 1 / (this.numBatchesTracked!.values[0] + 1) : 0;
    const y = batchNorm(x, {
      runningMean: this.runningMean, runningVar: this.runningVar, weight: this.weight, bias: this.bias,
      training: this.training || this.runningMean === null, factor, eps: this.eps, relu,
    });
    if (counts) this.numBatchesTracked!.values[0] += 1;
    return y;
  }

  forward(x: Tensor): Tensor {
    return this.forwardWith(x, false);
  }
}

/**
 * Batch normalization over (N, C) or (N, C, L) inputs, PyTorch's semantics (biased variance to
 * normalise, unbiased for running_var, momentum 0.1 or null for a cumulative average).
 * @example const bn = new nn.BatchNorm1d(500); bn.forward(x) // x (N, 500)
 * @throws {RangeError} on a wrong channel count, or one value per channel in training
 */
export class BatchNorm1d extends BatchNormBase {
  constructor(numFeatures: number, options: BatchNormOptions = {}) {
    super('BatchNorm1d', numFeatures, options);
  }
  checkInput(x: Tensor): void {
    if ((x.ndim !== 2 && x.ndim !== 3) || x.shape[1] !== this.numFeatures)
      throw new RangeError(`BatchNorm1d(${this.numFeatures}) expected input of shape [N, ${this.numFeatures}] or [N, ${this.numFeatures}, L] but received ${fmt(x.shape)}`);
  }
}

/**
 * Batch normalization over (N, C, H, W) inputs.
 * @example const bn = new nn.BatchNorm2d(64); bn.forward(x) // x (N, 64, H, W)
 * @throws {RangeError} on a wrong shape, or one value per channel in training
 */
export class BatchNorm2d extends BatchNormBase {
  constructor(numFeatures: number, options: BatchNormOptions = {}) {
    super('BatchNorm2d', numFeatures, options);
  }
  checkInput(x: Tensor): void {
    if (x.ndim !== 4 || x.shape[1] !== this.numFeatures)
      throw new RangeError(`BatchNorm2d(${this.numFeatures}) expected input of shape [N, ${this.numFeatures}, H, W] but received ${fmt(x.shape)}`);
  }
}

/** max(0, x). @example new nn.ReLU() */
export class ReLU extends Module {
  forward(x: Tensor): Tensor {
    return relu(x);
  }
}

/** x for x > 0, else negativeSlope * x. @example new nn.LeakyReLU(0.01) */
export class LeakyReLU extends Module {
  constructor(readonly negativeSlope = 0.01) {
    super();
  }
  override extraRepr(): string {
    return `negative_slope=${this.negativeSlope}`;
  }
  forward(x: Tensor): Tensor {
    return leakyRelu(x, this.negativeSlope);
  }
}

/** Logistic sigmoid. @example new nn.Sigmoid() */
export class Sigmoid extends Module {
  forward(x: Tensor): Tensor {
    return sigmoid(x);
  }
}

/** tanh. @example new nn.Tanh() */
export class Tanh extends Module {
  forward(x: Tensor): Tensor {
    return tanh(x);
  }
}

/** Flattens dimensions startDim..endDim (default: all after the first): (N, ...) -> (N, prod(...)). @example new nn.Flatten() */
export class Flatten extends Module {
  constructor(readonly startDim = 1, readonly endDim = -1) {
    super();
  }
  forward(x: Tensor): Tensor {
    return flatten(x, this.startDim, this.endDim);
  }
  override extraRepr(): string {
    return `start_dim=${this.startDim}, end_dim=${this.endDim}`;
  }
}

/** LeakyReLU as a function, on the backend's kernels. */
export function leakyRelu(x: Tensor, slope = 0.01): Tensor {
  const out = allocate(x.size); // the kernel writes every value
  backend().leakyRelu(out, x.values, slope);
  return record('leakyRelu', out, [...x.shape], [x], (g) => {
    const dx = allocate(g.length);
    backend().leakyReluBackward(dx, g, x.values, slope);
    return [dx];
  });
}

/**
 * Zeroes each element with probability p in training (scaling the rest by 1/(1-p)), using the
 * seeded generator; the identity in evaluation.
 * @example new nn.Dropout(0.5)
 * @throws {RangeError} when p is outside [0, 1]
 */
export class Dropout extends Module {
  constructor(readonly p = 0.5) {
    super();
    if (!(p >= 0 && p <= 1)) throw new RangeError(`Dropout: expected p in [0, 1] but received ${p}`);
  }
  override extraRepr(): string {
    return `p=${this.p}, inplace=false`;
  }
  forward(x: Tensor): Tensor {
    if (!this.training || this.p === 0) return x;
    const keep = 1 - this.p, mask = allocate(x.size); // both written in full
    for (let i = 0; i < mask.length; i++) mask[i] = keep > 0 && uniform() < keep ? 1 / keep : 0;
    const out = allocate(x.size);
    backend().mul(out, x.values, mask);
    const y = record('dropout', out, [...x.shape], [x], (g) => {
      const dx = allocate(g.length);
      backend().mul(dx, g, mask);
      release(mask); // a node runs backward once
      return [dx];
    });
    if (!y.requiresGrad) release(mask);
    return y;
  }
}

libraryModules.add(Sequential, Linear, BatchNorm1d, BatchNorm2d, ReLU, LeakyReLU, Sigmoid, Tanh, Flatten, Dropout);
