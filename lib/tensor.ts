/**
 * Tensor: a contiguous row-major Float32Array with a shape, and tape-based reverse-mode autograd.
 *
 * Every op on tensors that require grad records a node (its inputs and a backward closure).
 * backward() runs the recorded graph from the output back, hands each leaf's gradient to one
 * accumulate step (which fills .grad and then runs the leaf's post-accumulate-grad hooks), and
 * releases the graph as it goes. Every array comes from the caching allocator (memory.ts).
 * Heavy work runs on the backend (GEMM, activations, same-shape arithmetic); broadcasting and
 * reductions are TypeScript loops.
 */
import { backend } from './backend/index.js';
import { allocate, allocateInt32, allocateZeroed, expose, isPooled, release } from './memory.js';
import { normal, uniform } from './random.js';
import * as ops from './ops.js';
import { formatTensor } from './format.js';

export type NestedArray = number | NestedArray[];

interface Node {
  op: string;
  inputs: Tensor[];
  /**
   * gradients for the inputs, from the output's gradient (null where an input needs none): each a
   * new array from the allocator, or the output's gradient itself, passed on
   */
  backward(grad: Float32Array): (Float32Array | null)[];
}

/** A handle that removes the hook it was returned for. */
export interface RemovableHandle {
  remove(): void;
}

/**
 * Sums of squares of gradient arrays, noted by the kernel that wrote them (linear's weight gradient
 * is summed as the product stores it): accumulate carries a note to the leaf whose .grad the array
 * becomes, and gradSumSquares reads it there instead of making a pass over the gradient.
 */
const noted = new WeakMap<Float32Array, number>();

/** @internal a's sum of squares, as the kernel that just wrote a computed it */
export function noteSumSquares(a: Float32Array, sumSquares: number): void {
  noted.set(a, sumSquares);
}

/** @internal The sum of the squares of leaf's .grad (0 without one): noted by the kernel that wrote it, or a pass. */
export function gradSumSquares(leaf: Tensor): number {
  const grad = leaf.gradValue;
  if (!grad) return 0;
  return leaf.gradSquares ?? backend().sumSquares(grad.values);
}

/**
 * @internal Clears p's gradient: drops it (setToNone, PyTorch's default) or zeroes it in place. A
 * dropped gradient that only the library has seen goes straight back to the allocator.
 */
export function zeroGradOf(p: Tensor, setToNone: boolean): void {
  const grad = p.gradValue;
  if (!grad) return;
  if (!setToNone) {
    grad.values.fill(0);
    p.gradSquares = 0;
    return;
  }
  if (!p.gradTaken) release(grad.values);
  p.gradValue = null;
}

let gradEnabled = true;

/**
 * Runs fn without recording operations for autograd (inference, optimizer updates).
 * @example
 * const y = noGrad(() => model.forward(x)); // y.requiresGrad === false
 */
export function noGrad<T>(fn: () => T): T {
  const previous = gradEnabled;
  gradEnabled = false;
  try {
    return fn();
  } finally {
    gradEnabled = previous;
  }
}

/** Whether operations are being recorded now (false inside noGrad). */
export function isGradEnabled(): boolean {
  return gradEnabled;
}

/** @internal */
export const sizeOf = (shape: readonly number[]) => shape.reduce((p, d) => p * d, 1);
/** @internal */
export const fmt = (shape: readonly number[]) => `[${shape.join(', ')}]`;

function checkShape(fn: string, shape: unknown): number[] {
  if (!Array.isArray(shape)) throw new TypeError(`${fn}: expected shape to be an array of integers but received ${typeof shape}`);
  for (const d of shape)
    if (!Number.isInteger(d) || d < 0)
      throw new RangeError(`${fn}: expected shape to hold non-negative integers but received ${fmt(shape)}`);
  return [...shape];
}

/** What a released activation's values become (see Tensor.graphOwned): no values at all. */
const RELEASED_VALUES = new Float32Array(0);

export class Tensor {
  /** Dimensions, outermost first. */
  readonly shape: number[];
  /**
   * @internal The values, for the library's own use. Reading them does not take them out of the
   * allocator's pool; everything a user is given goes through `data`.
   */
  values: Float32Array;
  /** @internal the values are the allocator's and the user has not taken them (see data) */
  private pooled: boolean;
  /** Whether operations on this tensor are recorded for autograd. */
  requiresGrad: boolean;
  /** @internal the recorded operation that produced this tensor (null for leaves; RELEASED after backward) */
  node: Node | null = null;
  /** @internal the gradient, read through .grad */
  gradValue: Tensor | null = null;
  /** @internal the user has read .grad since it was last set: zeroGrad leaves that array to the collector */
  gradTaken = false;
  /** @internal the sum of the squares of .grad, when the kernel that wrote it noted it (see gradSumSquares) */
  gradSquares: number | undefined = undefined;
  /** @internal hooks run after this leaf's gradient is accumulated */
  hooks: ((t: Tensor) => void)[] | null = null;
  /**
   * @internal Set by code that made this tensor and hands it only to the library (Sequential's
   * intermediate outputs): once backward has run this tensor's node, no one can read its values, so
   * they go back to the allocator then, still in cache, instead of waiting for the collector.
   */
  graphOwned = false;

  /** @internal use tensor(), zeros(), ... */
  constructor(data: Float32Array, shape: number[], requiresGrad = false) {
    if (data.length !== sizeOf(shape))
      throw new RangeError(`Tensor: shape ${fmt(shape)} holds ${sizeOf(shape)} values but data has ${data.length}`);
    this.values = data;
    this.pooled = isPooled(data);
    this.shape = shape;
    this.requiresGrad = requiresGrad;
  }

  /**
   * The values, contiguous and row-major. The array is the tensor's own memory (writes change the
   * tensor) and stays valid as long as it is referenced.
   */
  get data(): Float32Array {
    if (this.pooled) {
      this.pooled = false;
      expose(this.values); // the user may keep views of it now: it never goes back to the pool
    }
    return this.values;
  }

  /** The accumulated gradient of a leaf tensor after backward(), else null. */
  get grad(): Tensor | null {
    this.gradTaken = true;
    this.gradSquares = undefined; // the user may change it
    return this.gradValue;
  }
  set grad(value: Tensor | null) {
    if (value !== null && !(value instanceof Tensor))
      throw new TypeError(`grad: expected a Tensor or null but received ${typeof value}`);
    if (value && !sameShape(value.shape, this.shape))
      throw new RangeError(`grad: expected a gradient of shape ${fmt(this.shape)} but received ${fmt(value.shape)}`);
    if (this.gradValue && !this.gradTaken && this.gradValue !== value) release(this.gradValue.values);
    this.gradValue = value;
    this.gradSquares = undefined;
    this.gradTaken = value !== null; // the caller has it
  }

  /** Number of elements. */
  get size(): number {
    return this.values.length;
  }

  get ndim(): number {
    return this.shape.length;
  }

  /**
   * The value of a one-element tensor.
   * @throws {RangeError} when the tensor has more than one element
   */
  item(): number {
    if (this.size !== 1) throw new RangeError(`item: expected a tensor with one element but its shape is ${fmt(this.shape)}`);
    return this.values[0];
  }

  /** The values as nested arrays of numbers (a number for a 0-d tensor). */
  toArray(): NestedArray {
    const v = this.values;
    const build = (dim: number, offset: number): NestedArray => {
      if (dim === this.shape.length) return v[offset];
      const stride = sizeOf(this.shape.slice(dim + 1));
      return Array.from({ length: this.shape[dim] }, (_, i) => build(dim + 1, offset + i * stride));
    };
    return build(0, 0);
  }

  /** A copy of the values, in the graph (gradients flow back to this tensor). */
  clone(): Tensor {
    const copy = allocate(this.size);
    copy.set(this.values);
    return record('clone', copy, [...this.shape], [this], (g) => [g]);
  }

  /** The same values, cut from the graph (shares data). */
  detach(): Tensor {
    return new Tensor(this.values, [...this.shape]);
  }

  /**
   * The same values in another shape (shares data); one dimension may be -1.
   * @throws {RangeError} when the sizes differ
   */
  reshape(...shape: number[] | [number[]]): Tensor {
    const dims = (Array.isArray(shape[0]) ? shape[0] : shape) as number[];
    const known = dims.filter((d) => d !== -1);
    const free = dims.length - known.length;
    if (free > 1 || known.some((d) => !Number.isInteger(d) || d < 0))
      throw new RangeError(`reshape: invalid shape ${fmt(dims)}`);
    const rest = sizeOf(known);
    const target = dims.map((d) => (d === -1 ? (rest === 0 ? 0 : this.size / rest) : d));
    if (sizeOf(target) !== this.size || !target.every(Number.isInteger))
      throw new RangeError(`reshape: shape ${fmt(dims)} is invalid for input of shape ${fmt(this.shape)} (${this.size} values)`);
    return record('reshape', this.values, target, [this], (g) => [g]);
  }

  /**
   * Swaps two dimensions (default: the last two), returning a contiguous copy.
   * @throws {RangeError} when a dimension is out of range
   */
  transpose(dim0 = -2, dim1 = -1): Tensor {
    const n = this.ndim;
    const a = normDim('transpose', dim0, n), b = normDim('transpose', dim1, n);
    const order = [...Array(n).keys()];
    [order[a], order[b]] = [order[b], order[a]];
    return permuteCopy(this, order);
  }

  add(other: Tensor | number): Tensor { return add(this, other); }
  sub(other: Tensor | number): Tensor { return sub(this, other); }
  mul(other: Tensor | number): Tensor { return mul(this, other); }
  div(other: Tensor | number): Tensor { return div(this, other); }
  matmul(other: Tensor): Tensor { return matmul(this, other); }
  sum(dim?: number, options?: { keepdim?: boolean }): Tensor { return sum(this, dim, options); }
  mean(dim?: number, options?: { keepdim?: boolean }): Tensor { return mean(this, dim, options); }
  max(dim?: number, options?: { keepdim?: boolean }): Tensor { return max(this, dim, options); }
  argmax(dim?: number, options?: { keepdim?: boolean }): Tensor { return argmax(this, dim, options); }
  pow(exponent: number): Tensor { return pow(this, exponent); }
  exp(): Tensor { return exp(this); }
  log(): Tensor { return log(this); }
  relu(): Tensor { return relu(this); }
  sigmoid(): Tensor { return sigmoid(this); }
  tanh(): Tensor { return tanh(this); }
  softmax(dim = -1): Tensor { return softmax(this, dim); }
  logSoftmax(dim = -1): Tensor { return logSoftmax(this, dim); }
  min(dim?: number, options?: { keepdim?: boolean }): Tensor { return min(this, dim, options); }
  argmin(dim?: number, options?: { keepdim?: boolean }): Tensor { return argmin(this, dim, options); }
  sqrt(): Tensor { return sqrt(this); }
  abs(): Tensor { return ops.abs(this); }
  neg(): Tensor { return ops.neg(this); }
  square(): Tensor { return ops.square(this); }
  clamp(min: number | null = null, max: number | null = null): Tensor { return ops.clamp(this, min, max); }
  minimum(other: Tensor | number): Tensor { return ops.minimum(this, other); }
  maximum(other: Tensor | number): Tensor { return ops.maximum(this, other); }
  var(dim?: number, options?: ops.VarianceOptions): Tensor { return ops.variance(this, dim, options); }
  std(dim?: number, options?: ops.VarianceOptions): Tensor { return ops.std(this, dim, options); }
  eq(other: Tensor | number): Tensor { return ops.eq(this, other); }
  ne(other: Tensor | number): Tensor { return ops.ne(this, other); }
  gt(other: Tensor | number): Tensor { return ops.gt(this, other); }
  ge(other: Tensor | number): Tensor { return ops.ge(this, other); }
  lt(other: Tensor | number): Tensor { return ops.lt(this, other); }
  le(other: Tensor | number): Tensor { return ops.le(this, other); }
  /** this where condition is nonzero, else other (PyTorch's x.where(condition, y)). */
  where(condition: Tensor, other: Tensor | number): Tensor { return ops.where(condition, this, other); }
  narrow(dim: number, start: number, length: number): Tensor { return ops.narrow(this, dim, start, length); }
  select(dim: number, index: number): Tensor { return ops.select(this, dim, index); }
  split(splitSize: number | readonly number[], dim = 0): Tensor[] { return ops.split(this, splitSize, dim); }
  chunk(chunks: number, dim = 0): Tensor[] { return ops.chunk(this, chunks, dim); }
  indexSelect(dim: number, index: Int32Array | readonly number[] | Tensor): Tensor { return ops.indexSelect(this, dim, index); }
  unsqueeze(dim: number): Tensor { return ops.unsqueeze(this, dim); }
  squeeze(dim?: number): Tensor { return ops.squeeze(this, dim); }
  flatten(startDim = 0, endDim = -1): Tensor { return ops.flatten(this, startDim, endDim); }
  /** The dimensions in the given order (a copy). @example x.permute(0, 2, 1) */
  permute(...dims: number[] | [number[]]): Tensor { return ops.permute(this, (Array.isArray(dims[0]) ? dims[0] : dims) as number[]); }
  /** reshape under PyTorch's other name (tensors are always contiguous, so every view is possible). */
  view(...shape: number[] | [number[]]): Tensor { return this.reshape(...shape); }
  /**
   * The values (summarised past 1000), shape and autograd state, laid out as PyTorch prints.
   * @example tensor([1.5, -2]).toString() // 'tensor([ 1.5000, -2.0000], shape=[2])'
   */
  toString(): string { return formatTensor(this); }
  /** console.log and util.inspect print toString(). */
  [Symbol.for('nodejs.util.inspect.custom')](): string { return formatTensor(this); }
  /** Number of elements (PyTorch's numel; also .size). */
  numel(): number { return this.values.length; }

  /**
   * Runs fn(this) after each backward pass has accumulated this leaf's gradient into .grad: once
   * per pass, when every use of the tensor in that graph has contributed, in backpropagation order
   * (from the output toward the inputs). PyTorch's register_post_accumulate_grad_hook.
   * @example
   * const handle = w.registerPostAccumulateGradHook((p) => console.log(p.grad.toArray()));
   * handle.remove();
   * @throws {TypeError} when fn is not a function, or this tensor is not a leaf that requires grad
   */
  registerPostAccumulateGradHook(fn: (tensor: Tensor) => void): RemovableHandle {
    if (typeof fn !== 'function') throw new TypeError(`registerPostAccumulateGradHook: expected a function but received ${typeof fn}`);
    if (!this.requiresGrad || this.node)
      throw new TypeError(`registerPostAccumulateGradHook: expected a leaf tensor that requires grad, but this tensor ${
        this.node ? `is the output of ${this.node.op}` : 'does not require grad'}`);
    (this.hooks ??= []).push(fn);
    return {
      remove: () => {
        const at = this.hooks?.indexOf(fn) ?? -1;
        if (at >= 0) this.hooks!.splice(at, 1);
      },
    };
  }

  /**
   * Computes the gradients of this tensor with respect to every leaf that requires grad, adding
   * them into each leaf's .grad, then releases the graph.
   * @param gradient d(something)/d(this); may be omitted for a one-element tensor (then 1)
   * @throws {RangeError} for an implicit gradient of a tensor with more than one element, or a
   *   gradient of the wrong shape
   * @throws {Error} when this tensor does not require grad, or its graph was already released
   */
  backward(gradient?: Tensor): void {
    if (!this.requiresGrad) throw new Error('backward: this tensor does not require grad and has no grad_fn');
    if (gradient === undefined && this.size !== 1)
      throw new RangeError(`backward: grad can be implicitly created only for scalar outputs, but the shape is ${fmt(this.shape)}`);
    if (gradient !== undefined && !sameShape(gradient.shape, this.shape))
      throw new RangeError(`backward: expected a gradient of shape ${fmt(this.shape)} but received ${fmt(gradient.shape)}`);
    if (this.node === RELEASED) throw releasedError();
    runBackward(this, gradient ? gradient.values : Float32Array.of(1), gradient !== undefined);
  }
}

/** What a non-leaf's node becomes once backward has run through it. */
const RELEASED: Node = {
  op: 'released',
  inputs: [],
  backward() {
    throw releasedError();
  },
};

function releasedError(): Error {
  return new Error('backward: trying to backward through the graph a second time (the graph is released after backward)');
}

/**
 * The leaf's gradient for this pass is complete: adopt it as .grad (the array is backward's own)
 * or add it into the .grad there is, then run the leaf's hooks.
 */
function accumulate(leaf: Tensor, g: Float32Array): void {
  const grad = leaf.gradValue;
  if (grad) {
    backend().axpy(grad.values, g, 1);
    release(g);
    leaf.gradSquares = undefined;
  } else {
    leaf.gradValue = new Tensor(g, [...leaf.shape]);
    leaf.gradTaken = false;
    leaf.gradSquares = noted.get(g);
  }
  if (leaf.hooks) for (const hook of [...leaf.hooks]) hook(leaf);
}

const backwardCallbacks: (() => void)[] = [];

/**
 * @internal Runs fn once the next backward pass has finished (PyTorch's queue_callback): where
 * DistributedDataParallel waits for its last gradient buckets. A backward that throws drops them.
 */
export function queueBackwardCallback(fn: () => void): void {
  backwardCallbacks.push(fn);
}

/**
 * Backpropagation from root: each tensor's node runs once every use of the tensor in the graph has
 * added its part of the gradient (PyTorch's dependency counting), so a leaf is accumulated, and its
 * hooks run, as soon as its gradient is complete. Nodes are released as they run; gradients are
 * returned to the allocator once consumed, and so are the values of graph-owned activations.
 */
function runBackward(root: Tensor, seed: Float32Array, seedIsUsers: boolean): void {
  try {
    backpropagate(root, seed, seedIsUsers);
  } catch (e) {
    backwardCallbacks.length = 0;
    throw e;
  }
  for (const fn of backwardCallbacks.splice(0)) fn();
}

function backpropagate(root: Tensor, seed: Float32Array, seedIsUsers: boolean): void {
  const borrowed = seedIsUsers ? seed : null; // the caller's gradient: read, never written, kept or returned
  const uses = new Map<Tensor, number>([[root, 0]]);
  for (const stack = [root]; stack.length; ) {
    const t = stack.pop()!;
    for (const input of t.node?.inputs ?? []) {
      if (!input.requiresGrad) continue;
      const n = uses.get(input);
      uses.set(input, (n ?? 0) + 1);
      if (n === undefined) stack.push(input);
    }
  }
  const grads = new Map<Tensor, Float32Array>([[root, seed]]);
  const ready = [root];
  while (ready.length) {
    const t = ready.pop()!;
    const g = grads.get(t)!;
    grads.delete(t);
    const node = t.node;
    if (!node) {
      accumulate(t, g === borrowed ? copyOf(g) : g); // the root is a leaf
      continue;
    }
    t.node = RELEASED; // released before it runs: a node that throws is not run again
    const inputGrads = node.backward(g);
    const handed = new Set<Float32Array>(); // arrays that now belong to a pending gradient
    node.inputs.forEach((input, i) => {
      if (!input.requiresGrad) return;
      const ig = inputGrads[i];
      if (ig) {
        const pending = grads.get(input);
        if (pending) backend().axpy(pending, ig, 1);
        else {
          const own = handed.has(ig) || ig === borrowed ? copyOf(ig) : ig; // one array per pending gradient
          grads.set(input, own);
          handed.add(own);
        }
      }
      const left = uses.get(input)! - 1;
      uses.set(input, left);
      if (left > 0 || !grads.has(input)) return;
      if (input.node) ready.push(input);
      else {
        const complete = grads.get(input)!;
        grads.delete(input);
        accumulate(input, complete);
      }
    });
    for (const a of new Set([g, ...inputGrads])) if (a && a !== borrowed && !handed.has(a)) release(a);
    if (t.graphOwned) {
      release(t.values);
      t.values = RELEASED_VALUES;
    }
  }
}

function copyOf(a: Float32Array): Float32Array {
  const c = allocate(a.length);
  c.set(a);
  return c;
}

/** @internal The number of tensors backward() would visit from t (for the graph-growth test). */
export function tapeLength(t: Tensor): number {
  const seen = new Set<Tensor>([t]);
  for (const stack = [t]; stack.length; )
    for (const input of stack.pop()!.node?.inputs ?? [])
      if (input.requiresGrad && !seen.has(input)) {
        seen.add(input);
        stack.push(input);
      }
  return seen.size;
}

/**
 * @internal Makes an op's output, recording its node when grad is enabled and an input requires
 * grad (the building block of every differentiable op, here and in nn/functional.ts).
 */
export function record(op: string, data: Float32Array, shape: number[], inputs: Tensor[],
  backwardFn: (grad: Float32Array) => (Float32Array | null)[]): Tensor {
  const requiresGrad = gradEnabled && inputs.some((t) => t.requiresGrad);
  const out = new Tensor(data, shape, requiresGrad);
  if (requiresGrad) out.node = { op, inputs, backward: backwardFn };
  return out;
}

/** @internal */
export function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/** @internal */
export function normDim(fn: string, dim: number, ndim: number): number {
  const d = dim < 0 ? dim + ndim : dim;
  if (!Number.isInteger(dim) || d < 0 || d >= Math.max(ndim, 1))
    throw new RangeError(`${fn}: dimension ${dim} is out of range for a tensor with ${ndim} dimensions`);
  return d;
}

/** @internal */
export function asTensor(fn: string, v: Tensor | number): Tensor {
  if (v instanceof Tensor) return v;
  if (typeof v === 'number') return new Tensor(Float32Array.of(v), []);
  throw new TypeError(`${fn}: expected a Tensor or a number but received ${v === null ? 'null' : typeof v}`);
}

// ---- factories ----------------------------------------------------------------------------------

/**
 * A tensor from numbers, nested arrays or a Float32Array (used as is, not copied).
 * @example
 * const x = tensor([[1, 2], [3, 4]], undefined, { requiresGrad: true });
 * const y = tensor(new Float32Array(6), [2, 3]);
 * @throws {TypeError} when data holds something other than numbers
 * @throws {RangeError} when nested arrays are ragged or data does not fit shape
 */
export function tensor(data: NestedArray | Float32Array | number[], shape?: number[], options: { requiresGrad?: boolean } = {}): Tensor {
  let values: Float32Array;
  let inferred: number[];
  if (data instanceof Float32Array) {
    values = data;
    inferred = [data.length];
  } else if (typeof data === 'number' || Array.isArray(data)) {
    inferred = [];
    for (let level: NestedArray = data; Array.isArray(level); level = level[0]) inferred.push(level.length);
    const flat: number[] = [];
    const walk = (v: NestedArray, dim: number): void => {
      if (dim === inferred.length) {
        if (typeof v !== 'number') throw new TypeError(`tensor: expected a number at depth ${dim} but received ${Array.isArray(v) ? 'an array' : typeof v}`);
        flat.push(v);
        return;
      }
      if (!Array.isArray(v) || v.length !== inferred[dim])
        throw new RangeError(`tensor: nested arrays must be rectangular: expected ${inferred[dim]} items at depth ${dim} but received ${Array.isArray(v) ? v.length : typeof v}`);
      for (const item of v) walk(item, dim + 1);
    };
    walk(data, 0);
    values = Float32Array.from(flat);
  } else {
    throw new TypeError(`tensor: expected numbers, nested arrays or a Float32Array but received ${data === null ? 'null' : typeof data}`);
  }
  const finalShape = shape === undefined ? inferred : checkShape('tensor', shape);
  if (sizeOf(finalShape) !== values.length)
    throw new RangeError(`tensor: shape ${fmt(finalShape)} holds ${sizeOf(finalShape)} values but data has ${values.length}`);
  return new Tensor(values, finalShape, options.requiresGrad ?? false);
}

function filled(fn: string, shape: number[], options: { requiresGrad?: boolean }, fill: (i: number) => number): Tensor {
  const s = checkShape(fn, shape);
  const data = allocate(sizeOf(s));
  for (let i = 0; i < data.length; i++) data[i] = fill(i);
  return new Tensor(data, s, options.requiresGrad ?? false);
}

/** A tensor of zeros. @example zeros([2, 3]) */
export const zeros = (shape: number[], options: { requiresGrad?: boolean } = {}) => filled('zeros', shape, options, () => 0);
/** A tensor of ones. @example ones([2, 3]) */
export const ones = (shape: number[], options: { requiresGrad?: boolean } = {}) => filled('ones', shape, options, () => 1);
/** Standard normal values from the seeded generator (see manualSeed). @example randn([64, 784]) */
export const randn = (shape: number[], options: { requiresGrad?: boolean } = {}) => filled('randn', shape, options, normal);
/** Uniform values in [0, 1) from the seeded generator. @example rand([3]) */
export const rand = (shape: number[], options: { requiresGrad?: boolean } = {}) => filled('rand', shape, options, uniform);

/**
 * Values start, start + step, ... below end (one argument: 0 .. end - 1).
 * @example arange(5) // [0, 1, 2, 3, 4]
 * @throws {RangeError} when step is 0 or not finite
 */
export function arange(start: number, end?: number, step = 1): Tensor {
  if (end === undefined) [start, end] = [0, start];
  if (!Number.isFinite(step) || step === 0) throw new RangeError(`arange: expected a finite non-zero step but received ${step}`);
  const n = Math.max(0, Math.ceil((end - start) / step));
  return filled('arange', [n], {}, (i) => start + i * step);
}

// ---- broadcasting elementwise ops -----------------------------------------------------------------

/** PyTorch's broadcast of two shapes. */
/** @internal */
export function broadcastShape(op: string, a: number[], b: number[]): number[] {
  const n = Math.max(a.length, b.length);
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const da = a[a.length - n + i] ?? 1, db = b[b.length - n + i] ?? 1;
    if (da !== db && da !== 1 && db !== 1)
      throw new RangeError(`${op}: shapes ${fmt(a)} and ${fmt(b)} cannot be broadcast together (dimension ${i}: ${da} vs ${db})`);
    out.push(da === 1 ? db : da);
  }
  return out;
}

/** For each element of `out`, the offset of the element of a tensor of `shape` broadcast to it. */
/** @internal */
export function broadcastIndex(shape: number[], out: number[]): Int32Array {
  const n = out.length, idx = allocateInt32(sizeOf(out));
  const strides = new Array<number>(n).fill(0);
  for (let i = shape.length - 1, s = 1; i >= 0; i--) {
    if (shape[i] !== 1) strides[n - shape.length + i] = s;
    s *= shape[i];
  }
  const counter = new Array<number>(n).fill(0);
  let offset = 0;
  for (let k = 0; k < idx.length; k++) {
    idx[k] = offset;
    for (let d = n - 1; d >= 0; d--) {
      counter[d]++;
      offset += strides[d];
      if (counter[d] < out[d]) break;
      offset -= strides[d] * counter[d];
      counter[d] = 0;
    }
  }
  return idx;
}

/** Sums a gradient of shape `out` down to `shape` (the adjoint of broadcasting). */
/** @internal */
export function reduceTo(g: Float32Array, out: number[], shape: number[]): Float32Array {
  if (sameShape(out, shape)) return g;
  const r = allocateZeroed(sizeOf(shape)), idx = broadcastIndex(shape, out);
  for (let k = 0; k < g.length; k++) r[idx[k]] += g[k];
  release(idx);
  return r;
}

type Elementwise = (a: number, b: number) => number;

/** @internal */
export function binary(op: string, x: Tensor | number, y: Tensor | number, f: Elementwise,
  same: ((out: Float32Array, a: Float32Array, b: Float32Array) => void) | null,
  grads: (g: Float32Array, a: Float32Array, b: Float32Array, out: Float32Array) => [Float32Array | null, Float32Array | null]): Tensor {
  const a = asTensor(op, x), b = asTensor(op, y);
  const shape = broadcastShape(op, a.shape, b.shape);
  let av = a.values, bv = b.values;
  const out = allocate(sizeOf(shape));
  if (same && sameShape(a.shape, b.shape)) same(out, av, bv);
  else {
    // materialise the broadcast inputs once; their gradients are reduced back with reduceTo
    if (!sameShape(a.shape, shape)) av = gather(av, a.shape, shape);
    if (!sameShape(b.shape, shape)) bv = gather(bv, b.shape, shape);
    for (let i = 0; i < out.length; i++) out[i] = f(av[i], bv[i]);
  }
  return record(op, out, shape, [a, b], (g) => {
    const [ga, gb] = grads(g, av, bv, out);
    const result = [ga && a.requiresGrad ? reduceTo(ga, shape, a.shape) : null, gb && b.requiresGrad ? reduceTo(gb, shape, b.shape) : null];
    for (const x of [ga, gb]) if (x && x !== g && !result.includes(x)) release(x); // reduced, or not needed
    return result;
  });
}

/** v, of a tensor of `shape`, broadcast to `out` */
/** @internal */
export function gather(v: Float32Array, shape: number[], out: number[]): Float32Array {
  const idx = broadcastIndex(shape, out), r = allocate(idx.length);
  for (let i = 0; i < idx.length; i++) r[i] = v[idx[i]];
  release(idx);
  return r;
}

/** @internal */
export function map(v: Float32Array, f: (x: number, i: number) => number): Float32Array {
  const r = allocate(v.length);
  for (let i = 0; i < v.length; i++) r[i] = f(v[i], i);
  return r;
}

/**
 * a + b, broadcasting as PyTorch.
 * @example add(tensor([[1], [2]]), tensor([10, 20])) // [[11, 21], [12, 22]]
 * @throws {RangeError} when the shapes cannot be broadcast together
 */
export function add(a: Tensor | number, b: Tensor | number): Tensor {
  return binary('add', a, b, (p, q) => p + q, (o, p, q) => backend().add(o, p, q), (g) => [g, g]);
}

/** a - b, broadcasting. @example sub(tensor([3, 4]), 1) @throws {RangeError} on shapes that cannot broadcast */
export function sub(a: Tensor | number, b: Tensor | number): Tensor {
  return binary('sub', a, b, (p, q) => p - q, null, (g) => [g, map(g, (v) => -v)]);
}

/** a * b elementwise, broadcasting. @example mul(x, 0.5) @throws {RangeError} on shapes that cannot broadcast */
export function mul(a: Tensor | number, b: Tensor | number): Tensor {
  return binary('mul', a, b, (p, q) => p * q, (o, p, q) => backend().mul(o, p, q), (g, p, q) => {
    const ga = allocate(g.length), gb = allocate(g.length);
    backend().mul(ga, g, q);
    backend().mul(gb, g, p);
    return [ga, gb];
  });
}

/** a / b elementwise, broadcasting. @example div(x, x.sum()) @throws {RangeError} on shapes that cannot broadcast */
export function div(a: Tensor | number, b: Tensor | number): Tensor {
  return binary('div', a, b, (p, q) => p / q, null, (g, p, q) => [map(g, (v, i) => v / q[i]), map(g, (v, i) => (-v * p[i]) / (q[i] * q[i]))]);
}

/** @internal */
export function unary(op: string, x: Tensor, forward: (out: Float32Array, v: Float32Array) => void,
  grad: (g: Float32Array, v: Float32Array, out: Float32Array) => Float32Array): Tensor {
  if (!(x instanceof Tensor)) throw new TypeError(`${op}: expected a Tensor but received ${x === null ? 'null' : typeof x}`);
  const out = allocate(x.size);
  forward(out, x.values);
  return record(op, out, [...x.shape], [x], (g) => [grad(g, x.values, out)]);
}

/** x ** exponent elementwise. @example pow(x, 2) @throws {TypeError} when exponent is not a number */
export function pow(x: Tensor, exponent: number): Tensor {
  if (typeof exponent !== 'number') throw new TypeError(`pow: expected exponent to be a number but received ${typeof exponent}`);
  return unary('pow', x, (o, v) => o.set(map(v, (a) => a ** exponent)),
    (g, v) => map(g, (d, i) => (exponent === 0 ? 0 : d * exponent * v[i] ** (exponent - 1))));
}
/** e ** x elementwise. @example exp(x) */
export const exp = (x: Tensor) => unary('exp', x, (o, v) => o.set(map(v, Math.exp)), (g, _, y) => map(g, (d, i) => d * y[i]));
/** Square root elementwise. @example sqrt(x) */
export const sqrt = (x: Tensor) => unary('sqrt', x, (o, v) => o.set(map(v, Math.sqrt)), (g, _, y) => map(g, (d, i) => d / (2 * y[i])));
/** Natural logarithm elementwise. @example log(x) */
export const log = (x: Tensor) => unary('log', x, (o, v) => o.set(map(v, Math.log)), (g, v) => map(g, (d, i) => d / v[i]));
/** max(0, x) elementwise (NaN stays NaN). @example relu(x) */
export const relu = (x: Tensor) => unary('relu', x, (o, v) => backend().relu(o, v), (g, v) => {
  const dx = allocate(g.length);
  backend().reluBackward(dx, g, v);
  return dx;
});
/** 1 / (1 + e ** -x) elementwise. @example sigmoid(x) */
export const sigmoid = (x: Tensor) => unary('sigmoid', x, (o, v) => backend().sigmoid(o, v), (g, _, y) => {
  const dx = allocate(g.length);
  backend().sigmoidBackward(dx, g, y);
  return dx;
});
/** tanh elementwise. @example tanh(x) */
export const tanh = (x: Tensor) => unary('tanh', x, (o, v) => backend().tanh(o, v), (g, _, y) => {
  const dx = allocate(g.length);
  backend().tanhBackward(dx, g, y);
  return dx;
});

// ---- matmul -------------------------------------------------------------------------------------

/**
 * Matrix product as torch.matmul: of 1-D or 2-D tensors (a vector is a row on the left, a column
 * on the right), and batched for more dimensions (the batch dimensions broadcast), through the
 * backend's GEMM; backward uses the NT and TN forms.
 * @example matmul(randn([64, 784]), randn([784, 500])) // shape [64, 500]
 * @example matmul(randn([8, 10, 16]), randn([16, 4])) // shape [8, 10, 4]
 * @throws {RangeError} when the inner dimensions differ or the batch dimensions cannot broadcast
 */
export function matmul(a: Tensor, b: Tensor): Tensor {
  if (!(a instanceof Tensor) || !(b instanceof Tensor)) throw new TypeError('matmul: expected two Tensors');
  if (a.ndim < 1 || b.ndim < 1)
    throw new RangeError(`matmul: expected tensors of at least 1 dimension but received ${fmt(a.shape)} and ${fmt(b.shape)}`);
  if (a.ndim > 2 || b.ndim > 2) return ops.batchedMatmul(a, b);
  const [M, K] = a.ndim === 2 ? a.shape : [1, a.shape[0]];
  const [K2, N] = b.ndim === 2 ? b.shape : [b.shape[0], 1];
  if (K !== K2) throw new RangeError(`matmul: shapes ${fmt(a.shape)} and ${fmt(b.shape)} cannot be multiplied (${K} != ${K2})`);
  const out = allocate(M * N);
  backend().sgemm(out, a.values, b.values, M, N, K, false, false, 1, 0, Math.max(K, 1), Math.max(N, 1), Math.max(N, 1));
  const shape = a.ndim === 2 && b.ndim === 2 ? [M, N] : a.ndim === 2 ? [M] : b.ndim === 2 ? [N] : [];
  return record('matmul', out, shape, [a, b], (g) => {
    let ga: Float32Array | null = null, gb: Float32Array | null = null;
    if (a.requiresGrad) {
      ga = allocate(M * K); // dA (M, K) = g (M, N) . B^T (beta = 0: written whole)
      backend().sgemm(ga, g, b.values, M, K, N, false, true, 1, 0, Math.max(N, 1), Math.max(N, 1), Math.max(K, 1));
    }
    if (b.requiresGrad) {
      gb = allocate(K * N); // dB (K, N) = A^T . g (M, N)
      backend().sgemm(gb, a.values, g, K, N, M, true, false, 1, 0, Math.max(K, 1), Math.max(N, 1), Math.max(N, 1));
    }
    return [ga, gb];
  });
}

// ---- permute (transpose) --------------------------------------------------------------------------

/** @internal */
export function permuteCopy(x: Tensor, order: number[]): Tensor {
  const shape = order.map((d) => x.shape[d]);
  const src = x.shape.map((_, i) => sizeOf(x.shape.slice(i + 1)));
  const strides = order.map((d) => src[d]);
  const idx = allocateInt32(x.size);
  const counter = new Array<number>(shape.length).fill(0);
  let offset = 0;
  for (let k = 0; k < idx.length; k++) {
    idx[k] = offset;
    for (let d = shape.length - 1; d >= 0; d--) {
      counter[d]++;
      offset += strides[d];
      if (counter[d] < shape[d]) break;
      offset -= strides[d] * counter[d];
      counter[d] = 0;
    }
  }
  const out = allocate(x.size), v = x.values;
  for (let k = 0; k < idx.length; k++) out[k] = v[idx[k]];
  return record('permute', out, shape, [x], (g) => {
    const dx = allocate(x.size);
    for (let k = 0; k < idx.length; k++) dx[idx[k]] = g[k];
    release(idx);
    return [dx];
  });
}

// ---- reductions along one dimension -----------------------------------------------------------------

/** x viewed as (outer, n, inner) around dim. */
/** @internal */
export function around(fn: string, x: Tensor, dim: number) {
  const d = normDim(fn, dim, x.ndim);
  const outer = sizeOf(x.shape.slice(0, d)), n = x.shape[d] ?? 1, inner = sizeOf(x.shape.slice(d + 1));
  return { d, outer, n, inner };
}

/** @internal */
export function reducedShape(x: Tensor, dim: number | undefined, d: number, keepdim: boolean): number[] {
  if (dim === undefined) return keepdim ? x.shape.map(() => 1) : [];
  return keepdim ? x.shape.map((s, i) => (i === d ? 1 : s)) : x.shape.filter((_, i) => i !== d);
}

/**
 * Sum of all elements, or along dim.
 * @example sum(x) // a 0-d tensor; sum(x, 1, { keepdim: true })
 * @throws {RangeError} when dim is out of range
 */
export function sum(x: Tensor, dim?: number, options: { keepdim?: boolean } = {}): Tensor {
  if (dim === undefined) {
    const shape = reducedShape(x, undefined, 0, options.keepdim ?? false);
    return record('sum', Float32Array.of(backend().sum(x.values)), shape, [x], (g) => [allocate(x.size).fill(g[0])]);
  }
  const { d, outer, n, inner } = around('sum', x, dim);
  const out = allocateZeroed(outer * inner), v = x.values;
  for (let o = 0; o < outer; o++)
    for (let i = 0; i < n; i++) for (let k = 0; k < inner; k++) out[o * inner + k] += v[(o * n + i) * inner + k];
  return record('sum', out, reducedShape(x, dim, d, options.keepdim ?? false), [x], (g) => {
    const dx = allocate(x.size);
    for (let o = 0; o < outer; o++) for (let i = 0; i < n; i++) for (let k = 0; k < inner; k++) dx[(o * n + i) * inner + k] = g[o * inner + k];
    return [dx];
  });
}

/** Mean of all elements, or along dim. @example mean(loss) @throws {RangeError} when dim is out of range */
export function mean(x: Tensor, dim?: number, options: { keepdim?: boolean } = {}): Tensor {
  const count = dim === undefined ? x.size : x.shape[normDim('mean', dim, x.ndim)];
  return mul(sum(x, dim, options), 1 / count);
}

/** Index (first, NaN winning) and value of the maximum (or minimum) along dim of x viewed as (outer, n, inner). */
function extremeAlong(x: Tensor, outer: number, n: number, inner: number, largest: boolean) {
  const values = allocate(outer * inner), at = allocateInt32(outer * inner), xv = x.values;
  for (let o = 0; o < outer; o++)
    for (let k = 0; k < inner; k++) {
      let m = xv[o * n * inner + k], best = 0;
      for (let i = 1; i < n && m === m; i++) {
        const v = xv[(o * n + i) * inner + k];
        if ((largest ? v > m : v < m) || v !== v) {
          m = v;
          best = i;
        }
      }
      values[o * inner + k] = m;
      at[o * inner + k] = best;
    }
  return { values, at };
}

/** @internal */
export function reductionView(fn: string, x: Tensor, dim: number | undefined) {
  if (x.size === 0) throw new RangeError(`${fn}: cannot reduce an empty tensor of shape ${fmt(x.shape)}`);
  return dim === undefined ? { d: 0, outer: 1, n: x.size, inner: 1 } : around(fn, x, dim);
}

function extreme(fn: string, x: Tensor, dim: number | undefined, keepdim: boolean, largest: boolean): Tensor {
  const { d, outer, n, inner } = reductionView(fn, x, dim);
  const { values, at } = extremeAlong(x, outer, n, inner, largest);
  return record(fn, values, reducedShape(x, dim, d, keepdim), [x], (g) => {
    const dx = allocateZeroed(x.size);
    for (let o = 0; o < outer; o++) for (let k = 0; k < inner; k++) dx[(o * n + at[o * inner + k]) * inner + k] = g[o * inner + k];
    release(at);
    return [dx];
  });
}

function extremeIndex(fn: string, x: Tensor, dim: number | undefined, keepdim: boolean, largest: boolean): Tensor {
  const { d, outer, n, inner } = reductionView(fn, x, dim);
  const { values, at } = extremeAlong(x, outer, n, inner, largest);
  for (let i = 0; i < at.length; i++) values[i] = at[i];
  release(at);
  return new Tensor(values, reducedShape(x, dim, d, keepdim));
}

/**
 * Maximum of all elements, or along dim; the gradient flows to the first maximum (NaN wins).
 * @example max(logits, 1)
 * @throws {RangeError} when dim is out of range or the tensor is empty
 */
export function max(x: Tensor, dim?: number, options: { keepdim?: boolean } = {}): Tensor {
  return extreme('max', x, dim, options.keepdim ?? false, true);
}

/** Minimum of all elements, or along dim; the gradient flows to the first minimum (NaN wins). @example min(x, 0) */
export function min(x: Tensor, dim?: number, options: { keepdim?: boolean } = {}): Tensor {
  return extreme('min', x, dim, options.keepdim ?? false, false);
}

/**
 * Index of the maximum of all elements (flattened), or along dim, as float values (no gradient).
 * @example argmax(logits, 1) // predicted classes
 * @throws {RangeError} when dim is out of range or the tensor is empty
 */
export function argmax(x: Tensor, dim?: number, options: { keepdim?: boolean } = {}): Tensor {
  return extremeIndex('argmax', x, dim, options.keepdim ?? false, true);
}

/** Index of the minimum of all elements (flattened), or along dim, as float values (no gradient). @example argmin(x, 1) */
export function argmin(x: Tensor, dim?: number, options: { keepdim?: boolean } = {}): Tensor {
  return extremeIndex('argmin', x, dim, options.keepdim ?? false, false);
}

function softmaxAlong(fn: string, x: Tensor, dim: number, logOutput: boolean): Tensor {
  const { outer, n, inner } = around(fn, x, dim);
  const out = allocate(x.size), xv = x.values;
  for (let o = 0; o < outer; o++)
    for (let k = 0; k < inner; k++) {
      const at = (i: number) => (o * n + i) * inner + k;
      let m = -Infinity;
      for (let i = 0; i < n; i++) if (xv[at(i)] > m || xv[at(i)] !== xv[at(i)]) m = xv[at(i)];
      let s = 0;
      for (let i = 0; i < n; i++) s += Math.exp(xv[at(i)] - m);
      const lse = m + Math.log(s);
      for (let i = 0; i < n; i++) out[at(i)] = logOutput ? xv[at(i)] - lse : Math.exp(xv[at(i)] - lse);
    }
  return record(fn, out, [...x.shape], [x], (g) => {
    const dx = allocate(x.size);
    for (let o = 0; o < outer; o++)
      for (let k = 0; k < inner; k++) {
        const at = (i: number) => (o * n + i) * inner + k;
        let s = 0;
        for (let i = 0; i < n; i++) s += logOutput ? g[at(i)] : g[at(i)] * out[at(i)];
        for (let i = 0; i < n; i++)
          dx[at(i)] = logOutput ? g[at(i)] - Math.exp(out[at(i)]) * s : out[at(i)] * (g[at(i)] - s);
      }
    return [dx];
  });
}

/** Softmax along dim (default: the last), computed stably. @example softmax(logits, 1) */
export const softmax = (x: Tensor, dim = -1) => softmaxAlong('softmax', x, dim, false);
/** log(softmax(x)) along dim, computed stably. @example logSoftmax(logits, 1) */
export const logSoftmax = (x: Tensor, dim = -1) => softmaxAlong('logSoftmax', x, dim, true);
