/** Datasets of (input, target) samples, targets class indices or float tensors, and the DataLoader that batches them. */
import { backend } from '../backend/index.js';
import { defaultGenerator, Generator } from '../random.js';
import { describe } from '../backend/validate.js';
import { allocate, allocateInt32, release } from '../memory.js';
import { fmt, Tensor } from '../tensor.js';

/** A batch's targets: class indices, or a float tensor (B, ...) for regression and other losses. */
export type Target = Int32Array | Tensor;

/** A finite indexed dataset that can gather a batch of samples at once. */
export interface Dataset<Y extends Target = Target> {
  readonly length: number;
  /** The samples at these indices stacked: inputs (B, ...) and targets (B, ...). */
  batch(indices: ArrayLike<number>): [Tensor, Y];
}

/** The rows at[0..n) of a tensor's values (rows of `rowSize`), gathered into a new tensor. */
function gatherTensorRows(t: Tensor, at: Int32Array, n: number): Tensor {
  const rowSize = t.size / Math.max(t.shape[0], 1), out = allocate(n * rowSize);
  if (rowSize > 0) backend().gatherRows(out, t.values, at, n, rowSize);
  return new Tensor(out, [n, ...t.shape.slice(1)]);
}

/**
 * Samples of one shape, stored as rows, with one target each: a batch is one kernel call that
 * gathers the rows (random rows of a large dataset are latency-bound, and the kernels prefetch
 * ahead) and the targets picked alongside.
 */
abstract class RowDataset<Y extends Target> implements Dataset<Y> {
  /** values per sample */
  protected readonly rowSize: number;
  protected constructor(readonly targets: Y, readonly sampleShape: readonly number[]) {
    this.rowSize = sampleShape.reduce((p, d) => p * d, 1);
  }
  get length(): number {
    return this.targets instanceof Tensor ? this.targets.shape[0] : this.targets.length;
  }
  batch(indices: ArrayLike<number>): [Tensor, Y] {
    const n = indices.length, at = indices instanceof Int32Array ? indices : Int32Array.from(indices);
    const x = allocate(n * this.rowSize);
    if (this.rowSize > 0) this.gatherRows(x, at, n);
    let y: Target;
    if (this.targets instanceof Tensor) y = gatherTensorRows(this.targets, at, n);
    else {
      const classes = this.targets as Int32Array, picked = new Int32Array(n);
      for (let i = 0; i < n; i++) picked[i] = classes[at[i]];
      y = picked;
    }
    return [new Tensor(x, [n, ...this.sampleShape]), y as Y];
  }
  /** x (n, rowSize) = the rows at[0..n) as floats */
  protected abstract gatherRows(x: Float32Array, at: Int32Array, n: number): void;
}

/**
 * Samples as rows of one input tensor, with targets as class indices (an Int32Array) or as the rows
 * of a float tensor (regression).
 * @example const ds = new TensorDataset(tensor(images, [n, 784]), labels);
 * @example const ds = new TensorDataset(x, y); // y (n, 1) of floats
 * @throws {RangeError} when the counts differ
 */
export class TensorDataset<Y extends Target = Target> extends RowDataset<Y> {
  constructor(readonly inputs: Tensor, targets: Y) {
    if (!(inputs instanceof Tensor) || inputs.ndim < 1) throw new TypeError('TensorDataset: expected inputs to be a Tensor with a batch dimension');
    if (!(targets instanceof Int32Array) && !(targets instanceof Tensor && targets.ndim >= 1))
      throw new TypeError(`TensorDataset: expected targets to be an Int32Array of class indices or a Tensor with a batch dimension but received ${describe(targets)}`);
    const count = targets instanceof Tensor ? targets.shape[0] : targets.length;
    if (count !== inputs.shape[0])
      throw new RangeError(`TensorDataset: inputs of shape ${fmt(inputs.shape)} hold ${inputs.shape[0]} samples but there are ${count} targets` +
        (targets instanceof Tensor ? ` (targets of shape ${fmt(targets.shape)})` : ''));
    super(targets, inputs.shape.slice(1));
  }
  protected gatherRows(x: Float32Array, at: Int32Array, n: number): void {
    backend().gatherRows(x, this.inputs.values, at, n, this.rowSize);
  }
  /** The first n samples (a view, no copy). */
  slice(n: number): TensorDataset<Y> {
    const m = Math.min(n, this.length), t: Target = this.targets;
    const targets = t instanceof Tensor ? new Tensor(t.data.subarray(0, m * (t.size / t.shape[0])), [m, ...t.shape.slice(1)]) : t.subarray(0, m);
    return new TensorDataset(new Tensor(this.inputs.data.subarray(0, m * this.rowSize), [m, ...this.sampleShape]), targets as Y);
  }
}

/** Per-channel normalisation of 8-bit values: (value/255 - mean[c]) / std[c]. */
export interface ByteNormalization {
  /** one entry for every value, or one per channel (the sample shape's first dimension) */
  mean: readonly number[];
  std: readonly number[];
}

/**
 * 8-bit samples (images as CHW bytes) with one class index each, kept as bytes and made float only
 * as a batch is gathered: a quarter of the memory of the same samples as floats, and a batch reads a
 * quarter of the bytes. A value v of channel c becomes (v - 255*mean[c]) * (1/(255*std[c])), in
 * float32 arithmetic (each of the two constants and operations rounded to float), the same bits on
 * every backend.
 * @example const ds = new ByteImageDataset(pixels, [1, 28, 28], labels, { mean: [0.1307], std: [0.3081] });
 * @throws {TypeError} when images is not a Uint8Array or targets not an Int32Array
 * @throws {RangeError} when the sample shape, the byte count or the normalisation does not fit
 */
export class ByteImageDataset extends RowDataset<Int32Array> {
  /** per channel: 255*mean and 1/(255*std), as float32 */
  readonly offset: Float32Array;
  readonly scale: Float32Array;
  constructor(readonly images: Uint8Array, sampleShape: readonly number[], targets: Int32Array,
    readonly normalize: ByteNormalization = { mean: [0], std: [1] }) {
    const name = 'ByteImageDataset';
    if (!(images instanceof Uint8Array)) throw new TypeError(`${name}: expected images to be a Uint8Array but received ${describe(images)}`);
    if (!(targets instanceof Int32Array)) throw new TypeError(`${name}: expected targets to be an Int32Array of class indices but received ${describe(targets)}`);
    if (!Array.isArray(sampleShape) || sampleShape.length === 0 || !sampleShape.every((d) => Number.isInteger(d) && d > 0))
      throw new RangeError(`${name}: expected sampleShape to be a non-empty array of positive integers but received ${JSON.stringify(sampleShape)}`);
    const sampleSize = sampleShape.reduce((p, d) => p * d, 1);
    if (images.length !== targets.length * sampleSize)
      throw new RangeError(`${name}: ${targets.length} targets need ${targets.length * sampleSize} bytes of images of shape ` +
        `${fmt(sampleShape)} but there are ${images.length}`);
    const { mean, std } = normalize, channels = sampleShape[0];
    if (!Array.isArray(mean) || !Array.isArray(std) || mean.length !== std.length || (mean.length !== 1 && mean.length !== channels))
      throw new RangeError(`${name}: expected mean and std to have 1 entry or ${channels} (one per channel) each but received ` +
        `${JSON.stringify(mean)} and ${JSON.stringify(std)}`);
    if (!mean.every(Number.isFinite) || !std.every((v) => Number.isFinite(v) && v > 0))
      throw new RangeError(`${name}: expected finite means and positive finite stds but received mean ${JSON.stringify(mean)}, std ${JSON.stringify(std)}`);
    super(targets, sampleShape);
    this.offset = Float32Array.from(mean, (m) => 255 * m);
    this.scale = Float32Array.from(std, (v) => 1 / (255 * v));
  }
  protected gatherRows(x: Float32Array, at: Int32Array, n: number): void {
    backend().gatherBytes(x, this.images, at, n, this.rowSize, this.offset, this.scale);
  }
  /** Every sample as one float tensor (length, ...sampleShape), made by each call: four times the bytes. */
  toTensor(): Tensor {
    return this.batch(Int32Array.from({ length: this.length }, (_, i) => i))[0];
  }
  /** The first n samples (a view of the same bytes, no copy). */
  slice(n: number): ByteImageDataset {
    const m = Math.min(n, this.length);
    return new ByteImageDataset(this.images.subarray(0, m * this.rowSize), this.sampleShape, this.targets.subarray(0, m),
      this.normalize);
  }
}

/**
 * @internal Whether a dataset is one of the library's own classes, whose batch() reads the indices it
 * is given only while it gathers and makes new arrays for every batch (a subclass or the caller's
 * own dataset may keep either).
 */
export function isLibraryDataset(dataset: Dataset<Target>): boolean {
  return [TensorDataset, ByteImageDataset].includes(dataset.constructor as never);
}

export interface DataLoaderOptions {
  batchSize?: number;
  /** a new random order every epoch */
  shuffle?: boolean;
  /** skip the last batch when it is smaller than batchSize */
  dropLast?: boolean;
  /** a private generator for the order (reproducible regardless of other random use); default: the global one */
  seed?: number;
  /**
   * for data-parallel training: this process's rank and the number of ranks. Each epoch's order is
   * the same on every rank (give a seed), and rank r takes every worldSize-th sample from r, the
   * order wrapped round to a multiple of worldSize, so every rank has the same number of steps
   */
  rank?: number;
  worldSize?: number;
}

/**
 * Iterates a dataset in batches of [inputs, targets]; each `for ... of` is one epoch.
 * @example for (const [x, y] of new DataLoader(train, { batchSize: 64, shuffle: true, seed: 0 })) { ... }
 * @throws {RangeError} when batchSize is not a positive integer
 */
export class DataLoader<Y extends Target = Target> implements Iterable<[Tensor, Y]> {
  readonly batchSize: number;
  readonly shuffle: boolean;
  readonly dropLast: boolean;
  /** The generator of the shuffled order (its state goes into a checkpoint) */
  readonly generator: Generator;
  readonly rank: number;
  readonly worldSize: number;
  constructor(readonly dataset: Dataset<Y>, options: DataLoaderOptions = {}) {
    this.batchSize = options.batchSize ?? 1;
    if (!Number.isInteger(this.batchSize) || this.batchSize < 1)
      throw new RangeError(`DataLoader: expected batchSize to be a positive integer but received ${options.batchSize}`);
    this.shuffle = options.shuffle ?? false;
    this.dropLast = options.dropLast ?? false;
    this.generator = options.seed === undefined ? defaultGenerator : new Generator(options.seed);
    this.worldSize = options.worldSize ?? 1;
    this.rank = options.rank ?? 0;
    if (!Number.isInteger(this.worldSize) || this.worldSize < 1)
      throw new RangeError(`DataLoader: expected worldSize to be a positive integer but received ${options.worldSize}`);
    if (!Number.isInteger(this.rank) || this.rank < 0 || this.rank >= this.worldSize)
      throw new RangeError(`DataLoader: expected rank to be an integer in [0, ${this.worldSize}) but received ${options.rank}`);
  }
  /** Samples this rank takes per epoch. */
  private get shardLength(): number {
    return Math.ceil(this.dataset.length / this.worldSize);
  }
  /** Batches per epoch. */
  get length(): number {
    const n = this.shardLength / this.batchSize;
    return this.dropLast ? Math.floor(n) : Math.ceil(n);
  }
  /** One epoch of batches. */
  [Symbol.iterator](): Iterator<[Tensor, Y]> {
    return this.batches();
  }
  /**
   * One epoch of batches from batch `first` on (for a run resumed within an epoch: the generator in
   * the state it had at the epoch's start gives the same order). The order is drawn at this call.
   */
  batches(first = 0): IterableIterator<[Tensor, Y]> {
    if (!Number.isInteger(first) || first < 0) throw new RangeError(`DataLoader.batches: expected first to be a non-negative integer but received ${first}`);
    const all = this.dataset.length;
    let order = allocateInt32(all);
    if (this.shuffle) this.generator.permutation(all, order);
    else for (let i = 0; i < all; i++) order[i] = i;
    if (this.worldSize > 1 && all > 0) {
      const shard = allocateInt32(this.shardLength); // every worldSize-th, wrapping round at the end
      for (let i = 0; i < shard.length; i++) shard[i] = order[(this.rank + i * this.worldSize) % all];
      release(order);
      order = shard;
    }
    return this.batchesOf(order, first * this.batchSize);
  }
  private *batchesOf(order: Int32Array, from: number): IterableIterator<[Tensor, Y]> {
    // The library's datasets read a batch's indices only while they gather it, so the order goes back
    // to the allocator when the epoch ends (or the loop leaves it). Left to the collector, an order
    // lives an epoch, so it is old by then, and old arrays wait for a full collection: RSS grew by
    // each epoch's order (240 KB for MNIST) for hundreds of epochs.
    const own = isLibraryDataset(this.dataset);
    try {
      const n = order.length;
      for (let start = from; start < n; start += this.batchSize) {
        const end = Math.min(start + this.batchSize, n);
        if (this.dropLast && end - start < this.batchSize) break;
        yield this.dataset.batch(order.subarray(start, end));
      }
    } finally {
      if (own) release(order);
    }
  }
}
