/**
 * The caching allocator beneath Tensor: every array an op, a gradient, a batch or a temporary needs
 * comes from here, and comes back for reuse in one of two ways.
 *
 * - Released: the library knows that nothing refers to the array any more (a gradient backward has
 *   consumed, an activation its graph owned once that backward has run, a .grad that zeroGrad drops
 *   and the user never read, a temporary). Its block is reused at once, still in cache.
 * - Collected: any other array is watched through a weak reference (native/memory.cpp), and its
 *   block is reused once the garbage collector has taken the array. A weak reference is cleared
 *   during the collection itself, so this works inside a synchronous training loop, which never
 *   yields to the event loop where FinalizationRegistry callbacks would run. When the watched
 *   arrays outgrow a budget, the allocator runs a minor collection itself, so that memory stays
 *   bounded in loops that make arrays faster than V8 collects them.
 *
 * Blocks stay mapped while cached: fresh memory costs page faults, more than most kernels (the
 * native side faults a new block's pages in at once: 1.35 ms per MiB on the benchmark machines,
 * against 2.65 page by page). Arrays under MIN_BYTES are plain Float32Arrays, which V8 makes
 * cheaply. An array whose Tensor.data the user has taken leaves the pool for good (expose): the
 * user may keep views of it, which the allocator cannot see.
 *
 * Without the native addon there are no weak references: released blocks are still reused, the
 * others are left to V8.
 */
import * as v8 from 'node:v8';
import * as vm from 'node:vm';
import { backend } from './backend/index.js';
import type { MemoryHost } from './backend/types.js';

/** Arrays below this many bytes are not pooled. */
const MIN_BYTES = 4096;
/**
 * Watched bytes may grow by `budget` between the allocator's own collections (and by at least as
 * much as survived the last one). The budget adapts so that those collections take a few percent
 * of the time: doubled when two in a row each took more than 4% of the time since the one before
 * (one slow collection should not grow the cache for good), halved (down to MIN_GC_BUDGET) when
 * one took under 1%, and at most MAX_GC_BUDGET. A small budget keeps the cache small and warm: its
 * blocks are new memory at first (page faults cost more than a collection), and a block comes back
 * after a budget's worth of others (with 64 MiB, short BatchNorm1d calls kept doubling the budget,
 * each time by fresh blocks: their mean call was ~10% slower). A minor collection costs 0.1-0.5 ms
 * whatever it frees.
 */
const MIN_GC_BUDGET = 4 << 20, MAX_GC_BUDGET = 16 << 20;

interface Block {
  /** the block's bytes (64-byte aligned when the native side made them) */
  readonly base: Uint8Array;
  /** id in the weak table while the block is in use and watched, else -1 */
  id: number;
}

type View = Float32Array | Int32Array;

const settings = { reuse: true, poison: false };
/** free blocks by size in bytes, the most recently freed last */
const free = new Map<number, Block[]>();
/** the block under each array given out and not yet returned */
const given = new WeakMap<View, Block>();
/** the collection epoch at which each size was last asked for (idle sizes are trimmed) */
const lastAsked = new Map<number, number>();
let host: MemoryHost | null | undefined;
let watched: (Block | undefined)[] = [];
let watchedBytes = 0, freeBytes = 0, epoch = 0;
let budget = MIN_GC_BUDGET, gcThreshold = MIN_GC_BUDGET, lastCollectionEnd = 0, lastCost = 0;
let sentinel = -1; // a watched object that only lives until the next garbage collection
const dead = new Int32Array(256);
const counts = { allocations: 0, reused: 0, newBlocks: 0, collections: 0, collectionSeconds: 0 };

function memoryHost(): MemoryHost | null {
  if (host === undefined) host = backend().memory;
  return host;
}

/** n float32 values from the allocator, contents arbitrary (callers write all of them). */
export function allocate(n: number): Float32Array {
  if (n * 4 < MIN_BYTES) return new Float32Array(n);
  const block = take(n * 4);
  return give(new Float32Array(block.base.buffer, block.base.byteOffset, n), block);
}

/** n int32 values, contents arbitrary. */
export function allocateInt32(n: number): Int32Array {
  if (n * 4 < MIN_BYTES) return new Int32Array(n);
  const block = take(n * 4);
  return give(new Int32Array(block.base.buffer, block.base.byteOffset, n), block);
}

/** n zeros. */
export function allocateZeroed(n: number): Float32Array {
  const a = allocate(n);
  return n * 4 < MIN_BYTES ? a : a.fill(0);
}

/**
 * Takes back an array that nothing will read or write again; ignores arrays that are not the
 * allocator's (and one returned twice).
 */
export function release(view: View): void {
  const block = given.get(view);
  if (!block) return;
  given.delete(view);
  unwatch(block);
  toFree(block);
}

/** The user holds this array itself now: its block leaves the pool (V8 frees it when unreachable). */
export function expose(view: View): void {
  const block = given.get(view);
  if (!block) return;
  given.delete(view);
  unwatch(block);
}

/** Whether view is an allocator array that has been neither returned nor exposed. */
export function isPooled(view: View): boolean {
  return given.has(view);
}

function give<T extends View>(view: T, block: Block): T {
  given.set(view, block);
  const h = memoryHost();
  if (h) {
    block.id = h.watch(view);
    watched[block.id] = block;
    watchedBytes += block.base.length;
  }
  counts.allocations++;
  return view;
}

function unwatch(block: Block): void {
  if (block.id < 0) return;
  host!.unwatch(block.id);
  watched[block.id] = undefined;
  watchedBytes -= block.base.length;
  block.id = -1;
}

function toFree(block: Block): void {
  if (!settings.reuse) return;
  if (settings.poison) new Float32Array(block.base.buffer, block.base.byteOffset, block.base.length >> 2).fill(NaN);
  const bytes = block.base.length;
  let list = free.get(bytes);
  if (!list) free.set(bytes, (list = []));
  list.push(block);
  freeBytes += bytes;
}

function pop(bytes: number): Block | undefined {
  const block = free.get(bytes)?.pop();
  if (block) {
    freeBytes -= bytes;
    counts.reused++;
  }
  return block;
}

/** A block of at least `wanted` bytes: a free one, one the collector has freed, or a new one. */
function take(wanted: number): Block {
  const bytes = (wanted + 63) & ~63;
  lastAsked.set(bytes, epoch);
  const h = memoryHost();
  let block = pop(bytes);
  if (h) {
    if (!block) {
      collectDead(h);
      block = pop(bytes);
    }
    // also when a cached block was at hand: arrays the collector has not taken yet would otherwise
    // pile up while the cache has blocks to give
    if (watchedBytes >= gcThreshold) {
      runCollection(h);
      block ??= pop(bytes);
    }
  }
  if (block) return block;
  counts.newBlocks++;
  return { base: h ? h.alignedBlock(bytes) : new Uint8Array(bytes), id: -1 };
}

/** Moves the blocks of watched arrays that the garbage collector has taken to the free lists. */
function collectDead(h: MemoryHost): void {
  if (sentinel >= 0 && !h.isCollected(sentinel)) return; // no collection since the last look
  for (;;) {
    const n = h.collectDead(dead);
    for (let i = 0; i < n; i++) {
      const block = watched[dead[i]];
      if (!block) continue; // the sentinel
      watched[dead[i]] = undefined;
      watchedBytes -= block.base.length;
      block.id = -1;
      toFree(block);
    }
    if (n < dead.length) break;
  }
  sentinel = h.watch({});
}

/**
 * A minor collection (a major one if that frees too little: arrays that lived through two minor
 * collections are old), then the threshold for the next (see MIN_GC_BUDGET). Blocks of sizes
 * nobody asked for since the collection before leave the cache (an epoch's last, smaller batch
 * makes a few), their pages given back at once rather than when a major collection finds them.
 */
function runCollection(h: MemoryHost): void {
  const gc = collector();
  if (!gc) return;
  const start = performance.now();
  gc({ type: 'minor' });
  collectDead(h);
  if (watchedBytes >= gcThreshold) {
    gc({ type: 'major' });
    collectDead(h);
  }
  const end = performance.now(), spent = end - start, since = start - lastCollectionEnd;
  const cost = lastCollectionEnd > 0 ? spent / since : 0;
  if (cost > 0.04 && lastCost > 0.04) budget = Math.min(2 * budget, MAX_GC_BUDGET);
  else if (cost < 0.01) budget = Math.max(budget / 2, MIN_GC_BUDGET);
  lastCost = cost;
  lastCollectionEnd = end;
  counts.collections++;
  counts.collectionSeconds += spent / 1e3;
  gcThreshold = watchedBytes + Math.max(budget, watchedBytes);
  epoch++;
  for (const [bytes, at] of lastAsked)
    if (at < epoch - 1) {
      for (const block of free.get(bytes) ?? []) h.dropPages(block.base);
      freeBytes -= (free.get(bytes)?.length ?? 0) * bytes;
      free.delete(bytes);
      lastAsked.delete(bytes);
    }
}

let gcFunction: ((options: { type: 'minor' | 'major' }) => void) | null | undefined;

/**
 * V8's gc() (the --expose-gc extension): globalThis.gc when the process has it, else the one of a
 * context made with the flag set for that moment only. null if neither works.
 */
function collector(): typeof gcFunction {
  if (gcFunction !== undefined) return gcFunction;
  const own = (globalThis as { gc?: unknown }).gc;
  if (typeof own === 'function') return (gcFunction = own as unknown as typeof gcFunction);
  try {
    v8.setFlagsFromString('--expose-gc');
    gcFunction = vm.runInNewContext('gc') as typeof gcFunction;
  } catch {
    gcFunction = null;
  } finally {
    v8.setFlagsFromString('--no-expose-gc');
  }
  return gcFunction;
}

/** @internal What the allocator holds and has done, for tests and benchmarks. */
export function memoryStats() {
  let cachedBlocks = 0;
  for (const list of free.values()) cachedBlocks += list.length;
  return { cachedBytes: freeBytes, cachedBlocks, watchedBytes, ...counts };
}

/**
 * @internal Test settings: reuse false makes every block new (the reference for bitwise checks);
 * poison fills every returned block with NaN, so that a use after return shows in the results.
 * Empties the cache.
 */
export function configureMemory(options: { reuse?: boolean; poison?: boolean }): void {
  Object.assign(settings, options);
  free.clear();
  freeBytes = 0;
}
