/**
 * The fallback's GEMM on several threads. C is cut into one range of columns per thread (of rows,
 * when it has more rows than columns). The calling thread computes the first range in place; each
 * worker thread computes another on copies of A, B (and C, when beta != 0) in a SharedArrayBuffer,
 * and the caller copies the worker's range back. Every element of C goes through the same
 * operations as on one thread (each range's K blocks start at 0, and a micro-tile element sums only
 * its own products), so the result is bitwise the same for any thread count.
 *
 * The hand-off is synchronous, as every backend call is: the caller writes the product into a shared
 * Float64Array and a range into each worker's Int32Array, wakes the worker with Atomics.notify,
 * computes its own range, then sleeps in Atomics.wait until each worker has marked its range done.
 * Workers sleep in Atomics.wait between products, so idle ones cost nothing.
 *
 * A worker can die (terminated, or out of memory) while the caller sleeps, and a dead one never
 * marks its range done, so the caller's wait has a deadline: past it, the caller computes the
 * range itself into C, and the worker is let go with its scratch (a slow but live one may still
 * write into it). Workers that died between products are dropped before the next one.
 */
import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { MessageChannel, receiveMessageOnPort, Worker, type MessagePort } from 'node:worker_threads';
import { packageRoot } from '../native.js';
import { MR, NR, sgemm } from './gemm.js';

// job (Float64Array): the product every range belongs to, and where the copies sit in the scratch
const M_ = 0, N_ = 1, K_ = 2, TRANS_A = 3, TRANS_B = 4, ALPHA = 5, BETA = 6, LDA = 7, LDB = 8, LDC = 9,
  BY_ROWS = 10, B_AT = 11, C_AT = 12, JOB_LENGTH = 13;
// control (Int32Array, one per worker): its state, its range [lo, hi), and which scratch it holds
const STATE = 0, LO = 1, HI = 2, SCRATCH = 3, CONTROL_LENGTH = 4;
const STARTING = 0, READY = 1, POSTED = 2, DONE = 3, FAILED = 4;

/**
 * A range is worth a thread from 2^21 multiply-adds (~0.7 ms here); waking a worker and copying
 * the operands cost far less.
 */
const MIN_RANGE_MACS = 2 ** 21;

/**
 * @internal How long the caller waits for a worker's range past the end of its own (which is at
 * least as large): `slackMs` plus `factor` times what its own took. A live worker stalled that long
 * by the host costs a warning and a restart, never a wrong or missing range.
 */
export const workerPatience = { slackMs: 5_000, factor: 20 };

/** C's rows (byRows) or columns [lo, hi) of the product `job` describes. */
export function gemmRange(C: Float32Array, A: Float32Array, B: Float32Array, job: Float64Array, lo: number, hi: number): void {
  const M = job[M_], N = job[N_], K = job[K_], ta = job[TRANS_A] === 1, tb = job[TRANS_B] === 1;
  const alpha = job[ALPHA], beta = job[BETA], lda = job[LDA], ldb = job[LDB], ldc = job[LDC];
  if (job[BY_ROWS] === 1) sgemm(C.subarray(lo * ldc), A.subarray(ta ? lo : lo * lda), B, hi - lo, N, K, ta, tb, alpha, beta, lda, ldb, ldc);
  else sgemm(C.subarray(lo), A, B.subarray(tb ? lo * ldb : lo), M, hi - lo, K, ta, tb, alpha, beta, lda, ldb, ldc);
}

/** Where A, B and C sit in the scratch, as job gives them (A first). */
function views(scratch: Float32Array, job: Float64Array): [Float32Array, Float32Array, Float32Array] {
  return [scratch.subarray(0, job[B_AT]), scratch.subarray(job[B_AT], job[C_AT]), scratch.subarray(job[C_AT])];
}

/** A worker thread's loop (gemm-worker.ts): one range per wake-up, until the process ends. */
export function serveRanges(control: Int32Array, job: Float64Array, port: MessagePort): never {
  let scratch: Float32Array = new Float32Array(0), held = -1;
  Atomics.store(control, STATE, READY);
  Atomics.notify(control, STATE);
  for (;;) {
    const state = Atomics.load(control, STATE);
    if (state !== POSTED) {
      Atomics.wait(control, STATE, state);
      continue;
    }
    try {
      // a larger scratch is posted before the range that first needs it
      if (held !== control[SCRATCH]) {
        for (let m; (m = receiveMessageOnPort(port)); ) scratch = new Float32Array(m.message as SharedArrayBuffer);
        held = control[SCRATCH];
      }
      const [A, B, C] = views(scratch, job);
      gemmRange(C, A, B, job, control[LO], control[HI]);
      Atomics.store(control, STATE, DONE);
    } catch (e) {
      port.postMessage(e instanceof Error ? e.stack ?? e.message : String(e));
      Atomics.store(control, STATE, FAILED);
    }
    Atomics.notify(control, STATE);
  }
}

interface Helper {
  worker: Worker;
  control: Int32Array;
  port: MessagePort;
  /** false once its 'exit' event has run (between products: the caller's waits block the event loop) */
  alive: boolean;
}

let threads = availableParallelism();
const helpers: Helper[] = [];
const job = new Float64Array(new SharedArrayBuffer(JOB_LENGTH * 8));
let scratch: Float32Array = new Float32Array(0), scratchId = -1;

/** The thread count the fallback's GEMM splits products over (the caller's thread included). */
export function gemmThreads(): number {
  return threads;
}

/** @internal The running workers (the tests let one die). */
export function gemmWorkers(): Worker[] {
  return helpers.map((h) => h.worker);
}

/** Sets the thread count; workers start on the first product that needs them and end when not. */
export function setGemmThreads(n: number): number {
  threads = n;
  for (const h of helpers.splice(n - 1)) void h.worker.terminate();
  return threads;
}

/** The worker script: compiled next to this file, or, when this runs from the TypeScript sources (the tests), the build's copy in dist/. */
function workerScript(): string {
  const file = __filename.endsWith('.ts') ? join(packageRoot(), 'dist', 'cjs', 'backend', 'ts', 'gemm-worker.js') : join(__dirname, 'gemm-worker.js');
  if (!existsSync(file)) throw new Error(`${file} is missing`);
  return file;
}

/** A started worker, or the reason none could start. */
function startHelper(): Helper | string {
  const control = new Int32Array(new SharedArrayBuffer(CONTROL_LENGTH * 4));
  const { port1, port2 } = new MessageChannel();
  let worker: Worker;
  try {
    worker = new Worker(workerScript(), { workerData: { control, job, port: port2 }, transferList: [port2] });
  } catch (e) {
    return e instanceof Error ? e.message : String(e);
  }
  worker.unref();
  port1.unref();
  // the worker starts while this thread waits: its loading does not need this thread's event loop
  if (Atomics.wait(control, STATE, STARTING, 30_000) === 'timed-out') {
    void worker.terminate();
    return 'it did not start within 30 s';
  }
  control[SCRATCH] = -1;
  const helper = { worker, control, port: port1, alive: true };
  worker.on('exit', () => { helper.alive = false; });
  return helper;
}

/** Lets a worker go: out of the pool, terminated, and with the scratch it may still write into left to it. */
function dropHelper(helper: Helper): void {
  helpers.splice(helpers.indexOf(helper), 1);
  void helper.worker.terminate();
  scratch = new Float32Array(0);
}

/**
 * Starts workers until `count` are running, and returns how many are (at most count). When one
 * cannot start (a bundle without gemm-worker.js, say), the thread count drops to what is running,
 * with one warning: the fallback must always compute.
 */
function ensureHelpers(count: number): number {
  for (const h of helpers.filter((h) => !h.alive)) dropHelper(h);
  while (helpers.length < count) {
    const helper = startHelper();
    if (typeof helper === 'string') {
      process.emitWarning(`the fallback's GEMM runs on ${helpers.length + 1} thread(s), not ${threads}: a worker thread cannot start: ${helper}`,
        { code: 'STABLEGRAD_FALLBACK_THREADS' });
      threads = helpers.length + 1;
      break;
    }
    helpers.push(helper);
  }
  return Math.min(count, helpers.length);
}

/** The scratch that holds `length` floats, grown (and posted to every worker) when too small. */
function scratchOf(length: number): Float32Array {
  if (scratch.length < length) {
    scratch = new Float32Array(new SharedArrayBuffer(Math.max(length, 2 * scratch.length) * 4));
    scratchId++;
  }
  return scratch;
}

/** The dimension of C a product is split along (rows when it has more rows than columns), in whole micro-panels. */
function splitAxis(M: number, N: number): { byRows: boolean; length: number; unit: number } {
  return M > N ? { byRows: true, length: M, unit: MR } : { byRows: false, length: N, unit: NR };
}

/** @internal How many threads a product is split over (1: it runs on the caller alone). */
export function rangeCount(M: number, N: number, K: number, alpha: number): number {
  if (K === 0 || alpha === 0) return 1; // only C scaled by beta
  const { length, unit } = splitAxis(M, N);
  return Math.max(1, Math.min(threads, Math.ceil(length / unit), Math.floor(M * N * K / MIN_RANGE_MACS)));
}

/** Runs sgemm (gemm.ts) split over the threads, as the module comment describes. */
export function sgemmThreaded(C: Float32Array, A: Float32Array, B: Float32Array, M: number, N: number, K: number,
  transA: boolean, transB: boolean, alpha: number, beta: number, lda: number, ldb: number, ldc: number): void {
  const wanted = rangeCount(M, N, K, alpha);
  const parts = wanted > 1 ? 1 + ensureHelpers(wanted - 1) : 1;
  if (parts <= 1) {
    sgemm(C, A, B, M, N, K, transA, transB, alpha, beta, lda, ldb, ldc);
    return;
  }

  const { byRows, length, unit } = splitAxis(M, N);
  const extent = (rows: number, cols: number, ld: number): number => (rows - 1) * ld + cols;
  const aLength = transA ? extent(K, M, lda) : extent(M, K, lda), bLength = transB ? extent(N, K, ldb) : extent(K, N, ldb);
  const cLength = extent(M, N, ldc);
  const s = scratchOf(aLength + bLength + cLength);
  job.set([M, N, K, +transA, +transB, alpha, beta, lda, ldb, ldc, +byRows, aLength, aLength + bLength]);
  // ranges of whole micro-panels; this thread takes the first, so what only it reads is not copied
  const step = Math.ceil(Math.ceil(length / unit) / parts) * unit;
  const aFrom = byRows ? (transA ? step : step * lda) : 0, bFrom = byRows ? 0 : (transB ? step * ldb : step);
  s.set(A.subarray(aFrom, aLength), aFrom);
  s.set(B.subarray(bFrom, bLength), aLength + bFrom);
  if (beta !== 0) {
    const cFrom = byRows ? step * ldc : step;
    s.set(C.subarray(cFrom, cLength), aLength + bLength + cFrom);
  }

  const posted = helpers.slice(0, Math.ceil(length / step) - 1);
  posted.forEach((h, i) => {
    if (h.control[SCRATCH] !== scratchId) {
      h.port.postMessage(s.buffer);
      h.control[SCRATCH] = scratchId;
    }
    h.control[LO] = (i + 1) * step;
    h.control[HI] = Math.min(length, (i + 2) * step);
    Atomics.store(h.control, STATE, POSTED);
    Atomics.notify(h.control, STATE);
  });
  const start = performance.now();
  gemmRange(C, A, B, job, 0, step);
  const end = performance.now(), deadline = end + workerPatience.slackMs + workerPatience.factor * (end - start);

  const cCopy = s.subarray(aLength + bLength);
  let failure: string | undefined;
  for (const h of posted) {
    for (let now; Atomics.load(h.control, STATE) === POSTED && (now = performance.now()) < deadline; ) {
      Atomics.wait(h.control, STATE, POSTED, deadline - now);
    }
    if (Atomics.load(h.control, STATE) === POSTED) {
      const lo = h.control[LO], hi = h.control[HI];
      process.emitWarning(`a GEMM worker thread of the fallback did not finish its range within ${Math.round(deadline - start)} ms; ` +
        'the calling thread computed it, and a new worker will start', { code: 'STABLEGRAD_FALLBACK_WORKER_LOST' });
      dropHelper(h);
      gemmRange(C, A, B, job, lo, hi);
      continue;
    }
    if (h.control[STATE] === FAILED) {
      failure ??= String(receiveMessageOnPort(h.port)?.message);
      continue;
    }
    const lo = h.control[LO], hi = h.control[HI];
    if (byRows) {
      if (ldc === N) C.set(cCopy.subarray(lo * ldc, hi * ldc), lo * ldc);
      else for (let i = lo; i < hi; i++) C.set(cCopy.subarray(i * ldc, i * ldc + N), i * ldc);
    } else {
      for (let i = 0; i < M; i++) C.set(cCopy.subarray(i * ldc + lo, i * ldc + hi), i * ldc + lo);
    }
  }
  if (failure !== undefined) throw new Error(`stablegrad: a GEMM worker thread of the fallback failed: ${failure}`);
}
