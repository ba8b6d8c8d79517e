/**
 * Tensor: a contiguous row-major Float32Array with a shape, and tape-based reverse-mode autograd.
 *
 * Every op on tensors that require grad records a node (its inputs and a backward closure).
 * backward() orders the recorded graph into a tape (reverse topological order), runs it, adds
 * the gradients of leaf tensors into their .grad, and then releases the graph: the nodes are
 * dropped, so a training loop's memory stays flat. Heavy work runs on the backend (GEMM,
 * activations, same-shape arithmetic); broadcasting and reductions are TypeScript loops.
 */
import { backend } from './backend/index.js';
import { normal, uniform } from './random.js';

export type NestedArray = number | NestedArray[];

interface Node {
  op: string;
  inputs: Tensor[];
  /**
   * gradients for the inputs, from the output's gradient: null where an input needs none, or where
   * the op has already added its gradient into the input's .grad itself (see gradTarget)
   */
  backward(grad: Float32Array): (Float32Array | null)[];
}

// Gradient arrays that backward() takes back for reuse once they have been passed on, and arrays an
// op saves for its backward (Conv2d's patches), given back by the op once used: a training step
// allocates the same sizes every time, and a fresh Float32Array of a few hundred kilobytes costs
// tens of microseconds in page faults and zeroing, more than the kernel that fills it.
const scratchPool = new Map<number, Float32Array[]>();
const scratchIssued = new WeakSet<Float32Array>();
const SCRATCH_PER_SIZE = 4;

/**
 * @internal n values whose contents are arbitrary (not zeroed), for an op's output that its kernel
 * writes in full before anything reads it. A fresh zeroed Float32Array of 128 KB (the seed model's
 * activations) costs its page faults and a memset: allocating and touching one in a loop took
 * 8.8-10.4 us zeroed and 2.0-2.5 us not. Inside fit() they come from the step's memory (StepMemory).
 */
export function uninitialized(n: number): Float32Array {
  if (openStep) return openStep.take(n);
  return allocateUninitialized(n);
}

/** @internal as uninitialized(), for n int32 values (an index array an op saves for its backward) */
export function uninitializedInt32(n: number): Int32Array {
  const f = uninitialized(n);
  return new Int32Array(f.buffer, f.byteOffset, n);
}

function allocateUninitialized(n: number): Float32Array {
  const bytes = Buffer.allocUnsafeSlow(n * Float32Array.BYTES_PER_ELEMENT); // its own ArrayBuffer, not Node's pool
  return new Float32Array(bytes.buffer, bytes.byteOffset, n);
}

let openStep: StepMemory | null = null;

/**
 * @internal The forward outputs of training steps, reused from step to step (fit() opens one around
 * each step). While a step is open, uninitialized() gives out arrays that earlier steps used, so a
 * step writes its activations into memory that is still in cache: fresh arrays sit at new addresses
 * every step, and the seed model's BatchNorm forward took 38 us in a step writing a fresh 128 KB
 * output against 25 us reusing one. Closing the step releases every tensor made over those arrays
 * (reading its data then throws, instead of showing a later step's values) and frees the arrays for
 * the next step.
 */
export class StepMemory {
  private readonly free = new Map<number, Float32Array[]>();
  private readonly taken: Float32Array[] = [];
  // every array this memory gave out, and the views reshape made of them: known by the array
  // itself, since reading .buffer of a small typed array (the loss, a sum) moves it off V8's heap
  private readonly arrays = new WeakSet<Float32Array>();
  private readonly tensors: Tensor[] = [];

  open(): void {
    if (openStep) throw new Error('StepMemory: a step is already open (fit() called from inside a training step?)');
    openStep = this;
  }

  close(): void {
    if (openStep === this) openStep = null;
    for (const t of this.tensors) t.release();
    this.tensors.length = 0;
    for (const a of this.taken) {
      let list = this.free.get(a.length);
      if (!list) this.free.set(a.length, (list = []));
      list.push(a);
    }
    this.taken.length = 0;
  }

  take(n: number): Float32Array {
    let a = this.free.get(n)?.pop();
    if (!a) {
      a = allocateUninitialized(n);
      this.arrays.add(a);
    }
    this.taken.push(a);
    return a;
  }

  /** a tensor over one of this memory's arrays (the array itself, or a view of it from view()) */
  track(t: Tensor, data: Float32Array): void {
    if (this.arrays.has(data)) this.tensors.push(t);
  }

  /** view, an array over of's memory, is this memory's too when of is */
  view(view: Float32Array, of: Float32Array): Float32Array {
    if (this.arrays.has(of)) this.arrays.add(view);
    return view;
  }
}

/**
 * @internal An array for a backward closure to fill completely with a gradient (its contents on
 * return are arbitrary). backward() reuses it once the gradient has been consumed.
 */
export function gradScratch(n: number): Float32Array {
  const a = scratchPool.get(n)?.pop() ?? new Float32Array(n);
  scratchIssued.add(a);
  return a;
}

/**
 * @internal Takes back a gradScratch array that nothing refers to any more; ignores any other array
 * (and one given back twice). An array saved for a backward that never runs is simply collected.
 */
export function recycle(a: Float32Array): void {
  if (!scratchIssued.delete(a)) return;
  let list = scratchPool.get(a.length);
  if (!list) scratchPool.set(a.length, (list = []));
  if (list.length < SCRATCH_PER_SIZE) list.push(a);
}

/**
 * @internal Clears p's gradient: drops it (setToNone, PyTorch's default) or zeroes it in place, which
 * keeps the array, so that the next backward adds into it instead of allocating (see gradTarget).
 */
export function zeroGradOf(p: Tensor, setToNone: boolean): void {
  if (setToNone) p.grad = null;
  else if (p.gradValue) p.gradPendingZero = true; // zeroed when next read, or overwritten by backward
}

/**
 * Sums of squares of leaves' .grad arrays, noted by the kernel that wrote each (linear's weight
 * gradient, summed as the product stores it) while fit() collects them for its gradient-health
 * check instead of a pass over every gradient; any later write to such a .grad forgets it.
 */
let gradSquares: Map<Tensor, number> | null = null;

/** @internal fit(): start (on) or stop noting gradients' sums of squares (see gradSquaresOf) */
export function collectGradSquares(on: boolean): void {
  if (!on) gradSquares = null;
  else if (gradSquares) gradSquares.clear();
  else gradSquares = new Map();
}

/** @internal whether a kernel that writes t's .grad should note its sum of squares (noteGradSquares) */
export function collectingGradSquares(): boolean {
  return gradSquares !== null;
}

/** @internal the sum of the squares of t's .grad as the last write left it, when that write noted it */
export function noteGradSquares(t: Tensor, sum: number): void {
  gradSquares?.set(t, sum);
}

/** @internal the sum noted for t's .grad by the write that made it (undefined: not known) */
export function gradSquaresOf(t: Tensor): number | undefined {
  return gradSquares?.get(t);
}

/**
 * @internal Where a backward closure writes its gradient for t (a tensor that requires grad). When t
 * is a leaf that keeps a .grad array: into that array, adding to it (beta 1), or overwriting it
 * (beta 0) when it is zero by zeroGrad(false), which saves allocating the gradient, zeroing it, and
 * a pass to add it; the closure then returns null for t (`returned`). Otherwise into a new array,
 * which the closure returns.
 */
export function gradTarget(t: Tensor): { data: Float32Array; beta: 0 | 1; returned: Float32Array | null } {
  gradSquares?.delete(t); // about to change
  if (t.node || !t.gradValue) {
    const data = new Float32Array(t.size);
    return { data, beta: 0, returned: data };
  }
  const beta = t.gradPendingZero ? 0 : 1;
  t.gradPendingZero = false;
  return { data: t.gradValue.data, beta, returned: null };
}

/**
 * @internal gradTarget for a kernel that overwrites its output rather than adding to it (BatchNorm's
 * parameter gradients, Conv2d's bias gradient): into t's .grad when that is zero or new (beta 0),
 * else into a scratch array that finish() adds into .grad and takes back.
 */
export function gradOverwrite(t: Tensor): { data: Float32Array; returned: Float32Array | null; finish(): void } {
  const target = gradTarget(t);
  if (target.beta === 0) return { data: target.data, returned: target.returned, finish() {} };
  const scratch = gradScratch(t.size);
  return {
    data: scratch,
    returned: null,
    finish() {
      backend().axpy(target.data, scratch, 1);
      recycle(scratch);
    },
  };
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

export class Tensor {
  /** Dimensions, outermost first. */
  readonly shape: number[];
  /** @internal the values; null once released (see StepMemory) */
  private values: Float32Array | null;
  /**
   * The values, contiguous and row-major.
   * @throws {Error} for an activation of a fit() training step that has ended (its memory was reused)
   */
  get data(): Float32Array {
    const v = this.values;
    if (v === null)
      throw new Error(
        `this tensor (shape ${fmt(this.shape)}) was made during a fit() training step, and its memory now holds a later ` +
          `step's values: keep a copy (tensor.clone()) during the step, or pass reuseActivations: false to fit()`);
    return v;
  }
  /** @internal the gradient, read through .grad */
  gradValue: Tensor | null = null;
  /** @internal zeroGrad(false) was called: .grad reads as zeros, which backward may overwrite */
  gradPendingZero = false;
  /** The accumulated gradient of a leaf tensor after backward(), else null. */
  get grad(): Tensor | null {
    // zeroed lazily, on the first look: backward overwrites it instead (see gradTarget)
    if (this.gradPendingZero) {
      this.gradPendingZero = false;
      this.gradValue!.data.fill(0);
    }
    return this.gradValue;
  }
  set grad(value: Tensor | null) {
    gradSquares?.delete(this);
    this.gradValue = value;
    this.gradPendingZero = false;
  }
  /** Whether operations on this tensor are recorded for autograd. */
  requiresGrad: boolean;
  /** @internal the recorded operation that produced this tensor (null for leaves and after backward) */
  node: Node | null = null;

  /** @internal use tensor(), zeros(), ... */
  constructor(data: Float32Array, shape: number[], requiresGrad = false) {
    if (data.length !== sizeOf(shape))
      throw new RangeError(`Tensor: shape ${fmt(shape)} holds ${sizeOf(shape)} values but data has ${data.length}`);
    this.values = data;
    this.shape = shape;
    this.requiresGrad = requiresGrad;
    openStep?.track(this, data);
  }

  /** @internal see StepMemory */
  release(): void {
    this.values = null;
    this.node = null;
  }

  /** Number of elements. */
  get size(): number {
    return this.data.length;
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
    return this.data[0];
  }

  /** The values as nested arrays of numbers (a number for a 0-d tensor). */
  toArray(): NestedArray {
    const build = (dim: number, offset: number): NestedArray => {
      if (dim === this.shape.length) return this.data[offset];
      const stride = sizeOf(this.shape.slice(dim + 1));
      return Array.from({ length: this.shape[dim] }, (_, i) => build(dim + 1, offset + i * stride));
    };
    return build(0, 0);
  }

  /** A copy of the values, in the graph (gradients flow back to this tensor). */
  clone(): Tensor {
    return record('clone', this.data.slice(), [...this.shape], [this], (g) => [g]);
  }

  /** The same values, cut from the graph (shares data). */
  detach(): Tensor {
    return new Tensor(this.data, [...this.shape]);
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
    const data = new Float32Array(this.data.buffer, this.data.byteOffset, this.size);
    return record('reshape', openStep ? openStep.view(data, this.data) : data, target, [this], (g) => [g]);
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
    return permute(this, order);
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
    const tape = buildTape(this);
    const grads = new Map<Tensor, Float32Array>();
    grads.set(this, gradient ? new Float32Array(gradient.data) : new Float32Array(1).fill(1));
    for (const t of tape) {
      const g = grads.get(t);
      grads.delete(t);
      if (!g) continue;
      const node = t.node;
      if (!node) {
        // a leaf: accumulate, as PyTorch does across backward() calls until zeroGrad
        gradSquares?.delete(t);
        if (t.grad) {
          backend().axpy(t.grad.data, g, 1);
          recycle(g);
        } else {
          scratchIssued.delete(g); // the user's now
          t.grad = new Tensor(g, [...t.shape]);
        }
        continue;
      }
      const inputGrads = node.backward(g);
      const stored = new Set<ArrayBufferLike>(); // buffers now owned by pending gradients
      const consumed: Float32Array[] = [g]; // arrays added into others: dead after this node
      node.inputs.forEach((input, i) => {
        const ig = inputGrads[i];
        if (!ig || !input.requiresGrad) return;
        const acc = grads.get(input);
        if (acc) {
          backend().axpy(acc, ig, 1);
          consumed.push(ig);
        } else {
          // g itself, or an array handed back twice, is copied: each pending gradient owns its array
          const own = ig.buffer === g.buffer || stored.has(ig.buffer) ? new Float32Array(ig) : ig;
          grads.set(input, own);
          stored.add(own.buffer);
        }
      });
      for (const a of consumed) if (!stored.has(a.buffer)) recycle(a);
      t.node = RELEASED; // release the graph as we go: the inputs become unreachable from here
    }
  }
}

/** What a non-leaf's node becomes once backward has run through it. */
const RELEASED: Node = {
  op: 'released',
  inputs: [],
  backward() {
    throw new Error('backward: trying to backward through the graph a second time (the graph is released after backward)');
  },
};

/** @internal The number of tensors backward() would visit from t (for the graph-growth test). */
export function tapeLength(t: Tensor): number {
  return buildTape(t).length;
}

/** The tensors reachable from root through recorded nodes, root first, each after all its users. */
function buildTape(root: Tensor): Tensor[] {
  const order: Tensor[] = [];
  const visited = new Set<Tensor>();
  const stack: [Tensor, boolean][] = [[root, false]];
  while (stack.length) {
    const [t, done] = stack.pop()!;
    if (done) {
      order.push(t);
      continue;
    }
    if (visited.has(t)) continue;
    visited.add(t);
    stack.push([t, true]);
    for (const input of t.node?.inputs ?? []) if (input.requiresGrad && !visited.has(input)) stack.push([input, false]);
  }
  return order.reverse();
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

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

function normDim(fn: string, dim: number, ndim: number): number {
  const d = dim < 0 ? dim + ndim : dim;
  if (!Number.isInteger(dim) || d < 0 || d >= Math.max(ndim, 1))
    throw new RangeError(`${fn}: dimension ${dim} is out of range for a tensor with ${ndim} dimensions`);
  return d;
}

function asTensor(fn: string, v: Tensor | number): Tensor {
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
  const data = new Float32Array(sizeOf(s));
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
function broadcastShape(op: string, a: number[], b: number[]): number[] {
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
function broadcastIndex(shape: number[], out: number[]): Int32Array {
  const n = out.length, idx = new Int32Array(sizeOf(out));
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
function reduceTo(g: Float32Array, out: number[], shape: number[]): Float32Array {
  if (sameShape(out, shape)) return g;
  const r = new Float32Array(sizeOf(shape)), idx = broadcastIndex(shape, out);
  for (let k = 0; k < g.length; k++) r[idx[k]] += g[k];
  return r;
}

type Elementwise = (a: number, b: number) => number;

function binary(op: string, x: Tensor | number, y: Tensor | number, f: Elementwise,
  same: ((out: Float32Array, a: Float32Array, b: Float32Array) => void) | null,
  grads: (g: Float32Array, a: Float32Array, b: Float32Array, out: Float32Array) => [Float32Array | null, Float32Array | null]): Tensor {
  const a = asTensor(op, x), b = asTensor(op, y);
  const shape = broadcastShape(op, a.shape, b.shape);
  let av = a.data, bv = b.data;
  const out = new Float32Array(sizeOf(shape));
  if (same && sameShape(a.shape, b.shape)) same(out, av, bv);
  else {
    // materialise the broadcast inputs once; their gradients are reduced back with reduceTo
    if (!sameShape(a.shape, shape)) av = gather(av, broadcastIndex(a.shape, shape));
    if (!sameShape(b.shape, shape)) bv = gather(bv, broadcastIndex(b.shape, shape));
    for (let i = 0; i < out.length; i++) out[i] = f(av[i], bv[i]);
  }
  return record(op, out, shape, [a, b], (g) => {
    const [ga, gb] = grads(g, av, bv, out);
    return [ga && a.requiresGrad ? reduceTo(ga, shape, a.shape) : null, gb && b.requiresGrad ? reduceTo(gb, shape, b.shape) : null];
  });
}

function gather(v: Float32Array, idx: Int32Array): Float32Array {
  const r = new Float32Array(idx.length);
  for (let i = 0; i < idx.length; i++) r[i] = v[idx[i]];
  return r;
}

function map(v: Float32Array, f: (x: number, i: number) => number): Float32Array {
  const r = new Float32Array(v.length);
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
    const ga = new Float32Array(g.length), gb = new Float32Array(g.length);
    backend().mul(ga, g, q);
    backend().mul(gb, g, p);
    return [ga, gb];
  });
}

/** a / b elementwise, broadcasting. @example div(x, x.sum()) @throws {RangeError} on shapes that cannot broadcast */
export function div(a: Tensor | number, b: Tensor | number): Tensor {
  return binary('div', a, b, (p, q) => p / q, null, (g, p, q) => [map(g, (v, i) => v / q[i]), map(g, (v, i) => (-v * p[i]) / (q[i] * q[i]))]);
}

function unary(op: string, x: Tensor, forward: (out: Float32Array, v: Float32Array) => void,
  grad: (g: Float32Array, v: Float32Array, out: Float32Array) => Float32Array): Tensor {
  if (!(x instanceof Tensor)) throw new TypeError(`${op}: expected a Tensor but received ${x === null ? 'null' : typeof x}`);
  const out = new Float32Array(x.size);
  forward(out, x.data);
  return record(op, out, [...x.shape], [x], (g) => [grad(g, x.data, out)]);
}

/** x ** exponent elementwise. @example pow(x, 2) @throws {TypeError} when exponent is not a number */
export function pow(x: Tensor, exponent: number): Tensor {
  if (typeof exponent !== 'number') throw new TypeError(`pow: expected exponent to be a number but received ${typeof exponent}`);
  return unary('pow', x, (o, v) => o.set(map(v, (a) => a ** exponent)),
    (g, v) => map(g, (d, i) => (exponent === 0 ? 0 : d * exponent * v[i] ** (exponent - 1))));
}
/** e ** x elementwise. @example exp(x) */
export const exp = (x: Tensor) => unary('exp', x, (o, v) => o.set(map(v, Math.exp)), (g, _, y) => map(g, (d, i) => d * y[i]));
/** Natural logarithm elementwise. @example log(x) */
export const log = (x: Tensor) => unary('log', x, (o, v) => o.set(map(v, Math.log)), (g, v) => map(g, (d, i) => d / v[i]));
/** max(0, x) elementwise (NaN stays NaN). @example relu(x) */
export const relu = (x: Tensor) => unary('relu', x, (o, v) => backend().relu(o, v), (g, v) => {
  const dx = gradScratch(g.length);
  backend().reluBackward(dx, g, v);
  return dx;
});
/** 1 / (1 + e ** -x) elementwise. @example sigmoid(x) */
export const sigmoid = (x: Tensor) => unary('sigmoid', x, (o, v) => backend().sigmoid(o, v), (g, _, y) => {
  const dx = gradScratch(g.length);
  backend().sigmoidBackward(dx, g, y);
  return dx;
});
/** tanh elementwise. @example tanh(x) */
export const tanh = (x: Tensor) => unary('tanh', x, (o, v) => backend().tanh(o, v), (g, _, y) => {
  const dx = gradScratch(g.length);
  backend().tanhBackward(dx, g, y);
  return dx;
});

// ---- matmul -------------------------------------------------------------------------------------

/**
 * Matrix product of 1-D or 2-D tensors (a vector is a row on the left, a column on the right),
 * through the backend's GEMM; backward uses the NT and TN forms.
 * @example matmul(randn([64, 784]), randn([784, 500])) // shape [64, 500]
 * @throws {RangeError} when the inner dimensions differ or a tensor has more than 2 dimensions
 */
export function matmul(a: Tensor, b: Tensor): Tensor {
  if (!(a instanceof Tensor) || !(b instanceof Tensor)) throw new TypeError('matmul: expected two Tensors');
  if (a.ndim < 1 || a.ndim > 2 || b.ndim < 1 || b.ndim > 2)
    throw new RangeError(`matmul: supports 1-D and 2-D tensors but received ${fmt(a.shape)} and ${fmt(b.shape)}`);
  const [M, K] = a.ndim === 2 ? a.shape : [1, a.shape[0]];
  const [K2, N] = b.ndim === 2 ? b.shape : [b.shape[0], 1];
  if (K !== K2) throw new RangeError(`matmul: shapes ${fmt(a.shape)} and ${fmt(b.shape)} cannot be multiplied (${K} != ${K2})`);
  const out = new Float32Array(M * N);
  backend().sgemm(out, a.data, b.data, M, N, K, false, false, 1, 0, Math.max(K, 1), Math.max(N, 1), Math.max(N, 1));
  const shape = a.ndim === 2 && b.ndim === 2 ? [M, N] : a.ndim === 2 ? [M] : b.ndim === 2 ? [N] : [];
  return record('matmul', out, shape, [a, b], (g) => {
    let ga: Float32Array | null = null, gb: Float32Array | null = null;
    if (a.requiresGrad) {
      ga = gradScratch(M * K); // dA (M, K) = g (M, N) . B^T (beta = 0: written whole)
      backend().sgemm(ga, g, b.data, M, K, N, false, true, 1, 0, Math.max(N, 1), Math.max(N, 1), Math.max(K, 1));
    }
    if (b.requiresGrad) {
      gb = gradScratch(K * N); // dB (K, N) = A^T . g (M, N)
      backend().sgemm(gb, a.data, g, K, N, M, true, false, 1, 0, Math.max(K, 1), Math.max(N, 1), Math.max(N, 1));
    }
    return [ga, gb];
  });
}

// ---- permute (transpose) --------------------------------------------------------------------------

function permute(x: Tensor, order: number[]): Tensor {
  const shape = order.map((d) => x.shape[d]);
  const src = x.shape.map((_, i) => sizeOf(x.shape.slice(i + 1)));
  const strides = order.map((d) => src[d]);
  const idx = new Int32Array(x.size);
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
  return record('transpose', gather(x.data, idx), shape, [x], (g) => {
    const dx = new Float32Array(x.size);
    for (let k = 0; k < idx.length; k++) dx[idx[k]] = g[k];
    return [dx];
  });
}

// ---- reductions along one dimension -----------------------------------------------------------------

/** x viewed as (outer, n, inner) around dim. */
function around(fn: string, x: Tensor, dim: number) {
  const d = normDim(fn, dim, x.ndim);
  const outer = sizeOf(x.shape.slice(0, d)), n = x.shape[d] ?? 1, inner = sizeOf(x.shape.slice(d + 1));
  return { d, outer, n, inner };
}

function reducedShape(x: Tensor, dim: number | undefined, d: number, keepdim: boolean): number[] {
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
    return record('sum', Float32Array.of(backend().sum(x.data)), shape, [x], (g) => [new Float32Array(x.size).fill(g[0])]);
  }
  const { d, outer, n, inner } = around('sum', x, dim);
  const out = new Float32Array(outer * inner);
  for (let o = 0; o < outer; o++)
    for (let i = 0; i < n; i++) for (let k = 0; k < inner; k++) out[o * inner + k] += x.data[(o * n + i) * inner + k];
  return record('sum', out, reducedShape(x, dim, d, options.keepdim ?? false), [x], (g) => {
    const dx = new Float32Array(x.size);
    for (let o = 0; o < outer; o++) for (let i = 0; i < n; i++) for (let k = 0; k < inner; k++) dx[(o * n + i) * inner + k] = g[o * inner + k];
    return [dx];
  });
}

/** Mean of all elements, or along dim. @example mean(loss) @throws {RangeError} when dim is out of range */
export function mean(x: Tensor, dim?: number, options: { keepdim?: boolean } = {}): Tensor {
  const count = dim === undefined ? x.size : x.shape[normDim('mean', dim, x.ndim)];
  return mul(sum(x, dim, options), 1 / count);
}

/** Index (first, NaN winning) and value of the maximum along dim of x viewed as (outer, n, inner). */
function maxAlong(x: Tensor, outer: number, n: number, inner: number) {
  const values = new Float32Array(outer * inner), at = new Int32Array(outer * inner);
  for (let o = 0; o < outer; o++)
    for (let k = 0; k < inner; k++) {
      let m = x.data[o * n * inner + k], best = 0;
      for (let i = 1; i < n && m === m; i++) {
        const v = x.data[(o * n + i) * inner + k];
        if (v > m || v !== v) {
          m = v;
          best = i;
        }
      }
      values[o * inner + k] = m;
      at[o * inner + k] = best;
    }
  return { values, at };
}

function reductionView(fn: string, x: Tensor, dim: number | undefined) {
  if (x.size === 0) throw new RangeError(`${fn}: cannot reduce an empty tensor of shape ${fmt(x.shape)}`);
  return dim === undefined ? { d: 0, outer: 1, n: x.size, inner: 1 } : around(fn, x, dim);
}

/**
 * Maximum of all elements, or along dim; the gradient flows to the first maximum (NaN wins).
 * @example max(logits, 1)
 * @throws {RangeError} when dim is out of range or the tensor is empty
 */
export function max(x: Tensor, dim?: number, options: { keepdim?: boolean } = {}): Tensor {
  const { d, outer, n, inner } = reductionView('max', x, dim);
  const { values, at } = maxAlong(x, outer, n, inner);
  return record('max', values, reducedShape(x, dim, d, options.keepdim ?? false), [x], (g) => {
    const dx = new Float32Array(x.size);
    for (let o = 0; o < outer; o++) for (let k = 0; k < inner; k++) dx[(o * n + at[o * inner + k]) * inner + k] = g[o * inner + k];
    return [dx];
  });
}

/**
 * Index of the maximum of all elements (flattened), or along dim, as float values (no gradient).
 * @example argmax(logits, 1) // predicted classes
 * @throws {RangeError} when dim is out of range or the tensor is empty
 */
export function argmax(x: Tensor, dim?: number, options: { keepdim?: boolean } = {}): Tensor {
  const { d, outer, n, inner } = reductionView('argmax', x, dim);
  const { at } = maxAlong(x, outer, n, inner);
  return new Tensor(Float32Array.from(at), reducedShape(x, dim, d, options.keepdim ?? false));
}

function softmaxAlong(fn: string, x: Tensor, dim: number, logOutput: boolean): Tensor {
  const { outer, n, inner } = around(fn, x, dim);
  const out = new Float32Array(x.size);
  for (let o = 0; o < outer; o++)
    for (let k = 0; k < inner; k++) {
      const at = (i: number) => (o * n + i) * inner + k;
      let m = -Infinity;
      for (let i = 0; i < n; i++) if (x.data[at(i)] > m || x.data[at(i)] !== x.data[at(i)]) m = x.data[at(i)];
      let s = 0;
      for (let i = 0; i < n; i++) s += Math.exp(x.data[at(i)] - m);
      const lse = m + Math.log(s);
      for (let i = 0; i < n; i++) out[at(i)] = logOutput ? x.data[at(i)] - lse : Math.exp(x.data[at(i)] - lse);
    }
  return record(fn, out, [...x.shape], [x], (g) => {
    const dx = new Float32Array(x.size);
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
