/**
 * DistributedDataParallel: one replica of a module per rank, gradients averaged over the ranks.
 * Parameters are grouped into buckets (in reverse order, the order backward completes them); a
 * bucket's allReduce starts on the communication thread as soon as its last gradient is complete
 * (post-accumulate-grad hooks), so communication overlaps the rest of backward, and backward's end
 * waits for them all and writes the averages back into .grad.
 */
import { backend } from '../backend/index.js';
import * as distributed from '../distributed/index.js';
import { isGradEnabled, queueBackwardCallback, Tensor } from '../tensor.js';
import { Module } from './module.js';

interface Bucket {
  params: Tensor[];
  offsets: number[];
  flat: Float32Array;
  ready: number;
  work: distributed.Work | null;
}

/**
 * Wraps module for data-parallel training: broadcasts its parameters and buffers from rank 0, and
 * averages gradients over the ranks during backward. Its state-dict keys are PyTorch's (`module.0.weight`).
 * @example const ddp = new nn.parallel.DistributedDataParallel(model); ddp.forward(x) ... loss.backward(); opt.step();
 * @throws {Error} before distributed.init()
 */
export class DistributedDataParallel<M extends Module = Module> extends Module {
  readonly module: M;
  #buckets: Bucket[] = [];
  #where = new Map<Tensor, [bucket: number, index: number]>();
  #armed = false;
  #syncing = true;
  #launched = 0;
  readonly #broadcastBuffers: boolean;

  constructor(module: M, options: { bucketCapMB?: number; broadcastBuffers?: boolean } = {}) {
    super();
    if (!(module instanceof Module)) throw new TypeError('DistributedDataParallel: expected a Module');
    if (!distributed.isInitialized()) throw new Error('DistributedDataParallel: call distributed.init() first');
    const capMB = options.bucketCapMB ?? 25;
    if (!(capMB > 0)) throw new RangeError(`DistributedDataParallel: expected bucketCapMB > 0 but received ${capMB}`);
    this.module = module;
    this.#broadcastBuffers = options.broadcastBuffers ?? true;
    for (const t of [...module.parameters(), ...module.buffers()]) distributed.broadcast(t, { src: 0 });
    // buckets of up to capMB, from the last parameter (the first whose gradient backward completes)
    const cap = capMB * 2 ** 20;
    let current: Tensor[] = [], bytes = 0;
    const close = () => {
      if (!current.length) return;
      const offsets: number[] = [];
      let n = 0;
      for (const p of current) {
        offsets.push(n);
        n += p.size;
      }
      current.forEach((p, i) => this.#where.set(p, [this.#buckets.length, i]));
      this.#buckets.push({ params: current, offsets, flat: new Float32Array(n), ready: 0, work: null });
      current = [];
      bytes = 0;
    };
    for (const p of module.parameters().filter((t) => t.requiresGrad).reverse()) {
      if (bytes > 0 && bytes + 4 * p.size > cap) close();
      current.push(p);
      bytes += 4 * p.size;
    }
    close();
    for (const p of this.#where.keys()) p.registerPostAccumulateGradHook((t) => this.#ready(t));
  }

  /** Runs the module; in training, arms the gradient averaging of the backward that follows. */
  forward(...args: unknown[]): ReturnType<M['forward']> {
    if (this.training && this.#broadcastBuffers) this.#syncBuffers();
    const out = this.module.forward(...args);
    if (isGradEnabled() && this.#syncing && !this.#armed) {
      this.#armed = true;
      this.#launched = 0;
      for (const b of this.#buckets) b.ready = 0;
      queueBackwardCallback(() => this.#finish());
    }
    return out;
  }

  /**
   * Runs fn without averaging gradients (they accumulate locally), for gradient accumulation: the
   * next backward outside noSync averages everything accumulated.
   * @example ddp.noSync(() => lossOf(ddp.forward(x1)).backward()); lossOf(ddp.forward(x2)).backward(); opt.step();
   */
  noSync<T>(fn: () => T): T {
    const before = this.#syncing;
    this.#syncing = false;
    try {
      return fn();
    } finally {
      this.#syncing = before;
    }
  }

  /** Rank 0's buffers (BatchNorm's running statistics) to every rank, in one broadcast, as PyTorch's DDP before each forward. */
  #syncBuffers(): void {
    const buffers = this.module.buffers();
    if (!buffers.length) return;
    const flat = new Float32Array(buffers.reduce((n, t) => n + t.size, 0));
    let at = 0;
    for (const t of buffers) {
      flat.set(t.values, at);
      at += t.size;
    }
    distributed.broadcastNow(flat);
    at = 0;
    for (const t of buffers) {
      t.values.set(flat.subarray(at, at + t.size));
      at += t.size;
    }
  }

  #ready(p: Tensor): void {
    if (!this.#armed) return;
    const [b] = this.#where.get(p)!;
    this.#buckets[b].ready++;
    // buckets start in index order on every rank, so the ranks' collectives match
    while (this.#launched < this.#buckets.length && this.#buckets[this.#launched].ready === this.#buckets[this.#launched].params.length)
      this.#launch(this.#buckets[this.#launched++]);
  }

  #launch(b: Bucket): void {
    b.params.forEach((p, i) => {
      const g = p.gradValue?.values;
      if (g) b.flat.set(g, b.offsets[i]);
      else b.flat.fill(0, b.offsets[i], b.offsets[i] + p.size); // no gradient this pass: contributes zeros
    });
    b.work = distributed.allReduceAsync(b.flat, 'sum');
  }

  #finish(): void {
    if (!this.#armed) return;
    this.#armed = false;
    while (this.#launched < this.#buckets.length) this.#launch(this.#buckets[this.#launched++]);
    const scale = 1 / distributed.worldSize();
    for (const b of this.#buckets) {
      b.work!.wait();
      b.work = null;
      b.params.forEach((p, i) => {
        const avg = b.flat.subarray(b.offsets[i], b.offsets[i] + p.size);
        if (!p.gradValue) p.grad = new Tensor(new Float32Array(p.size), [...p.shape]);
        backend().scale(p.gradValue!.values, avg, scale);
        p.gradSquares = undefined;
      });
    }
  }
}
