/**
 * Collectives over MPI (PyTorch's torch.distributed, JS names): init() reads the launcher's
 * environment (mpirun, srun), then allReduce, broadcast, allGather and barrier across the ranks.
 * The MPI addon is loaded only here, so require('stablegrad') works where MPI is absent; every
 * collective runs on one communication thread, in call order, and the async forms return a Work
 * to wait for (what DistributedDataParallel overlaps with backward).
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Tensor } from '../tensor.js';

interface MpiAddon {
  init(): { rank: number; worldSize: number };
  submit(kind: string, data: Float32Array | null, options: { op?: string; root?: number; out?: Float32Array; check?: boolean }): number;
  run(kind: string, data: Float32Array | null, options: { op?: string; root?: number; out?: Float32Array; check?: boolean }): void;
  wait(id: number): void;
  finalize(): void;
  mpiVersion: string;
}

export type ReduceOp = 'sum' | 'avg' | 'max' | 'min';

/** A collective in flight: wait() blocks until it is done on this rank (and rethrows its error). */
export interface Work {
  wait(): void;
}

let addon: MpiAddon | null = null;
let world: { rank: number; worldSize: number } | null = null;

/** The MPI addon: one built here (npm run build:mpi), else the package's prebuild (linux-x64). */
function loadAddon(): MpiAddon {
  const root = join(__dirname, '..', '..', '..'), platform = `${process.platform}-${process.arch}`;
  const candidates = [join(root, 'native', 'mpi', 'build', 'Release', 'stablegrad_mpi.node'), join(root, 'prebuilds', platform, 'mpi', 'stablegrad_mpi.node')];
  const path = candidates.find(existsSync);
  if (!path)
    throw new Error(`distributed.init: no MPI addon for ${platform}: install Open MPI with its headers (Debian: apt-get install openmpi-bin ` +
      'libopenmpi-dev) and build it: npm explore stablegrad -- npm run build:mpi');
  try {
    return require(path) as MpiAddon; // eslint-disable-line @typescript-eslint/no-require-imports
  } catch (e) {
    throw new Error(`distributed.init: cannot load the MPI addon (${(e as Error).message.split('\n')[0]}): install Open MPI 4.x or 5.x ` +
      '(libmpi.so.40; Debian: apt-get install openmpi-bin)');
  }
}

/**
 * Joins the job: MPI_Init with the rank and size the launcher gave (a process started without a
 * launcher is a world of one). Idempotent.
 * @example const { rank, worldSize } = distributed.init();
 * @throws {Error} saying what to install when MPI or the addon is missing
 */
export function init(): { rank: number; worldSize: number } {
  if (world) return { ...world };
  addon ??= loadAddon();
  world = addon.init();
  return { ...world };
}

/** Whether init() has run (and destroy() has not). */
export function isInitialized(): boolean {
  return world !== null;
}

/** True when this process was started by an MPI launcher (mpirun, srun) with more than one rank. */
export function isLaunched(): boolean {
  const size = Number(process.env.OMPI_COMM_WORLD_SIZE ?? process.env.PMI_SIZE ?? process.env.SLURM_NTASKS ?? 1);
  return size > 1;
}

function joined(fn: string): { rank: number; worldSize: number } {
  if (!world) throw new Error(`distributed.${fn}: not initialized (call distributed.init() first)`);
  return world;
}

/** This process's rank, from 0. @throws {Error} before init() */
export function rank(): number {
  return joined('rank').rank;
}

/** The number of ranks. @throws {Error} before init() */
export function worldSize(): number {
  return joined('worldSize').worldSize;
}

function arrayOf(fn: string, t: Tensor | Float32Array): Float32Array {
  if (t instanceof Tensor) return t.values;
  if (t instanceof Float32Array) return t;
  throw new TypeError(`distributed.${fn}: expected a Tensor or a Float32Array but received ${t === null ? 'null' : typeof t}`);
}

type Options = { op?: string; root?: number; out?: Float32Array; check?: boolean };

/** A blocking collective, run on this thread after the queued ones. */
function run(fn: string, kind: string, data: Float32Array | null, options: Options): void {
  joined(fn);
  addon!.run(kind, data, options);
}

function submit(fn: string, kind: string, data: Float32Array | null, options: Options): Work {
  joined(fn);
  const id = addon!.submit(kind, data, options);
  let done = false;
  return {
    wait() {
      if (done) return;
      done = true;
      addon!.wait(id);
    },
  };
}

/**
 * Starts reducing a Float32Array in place across the ranks (op sum, max or min; avg is sum then a
 * division, done by wait()). Every rank must start the same collectives in the same order.
 * `check` first agrees on the length (a mismatch is an Error on every rank, never a hang).
 */
export function allReduceAsync(values: Float32Array, op: ReduceOp = 'sum', check = false): Work {
  const work = submit('allReduce', 'allreduce', values, { op: op === 'avg' ? 'sum' : op, check });
  if (op !== 'avg') return work;
  return {
    wait() {
      work.wait();
      const n = worldSize();
      for (let i = 0; i < values.length; i++) values[i] /= n;
    },
  };
}

/**
 * @internal A blocking allReduce sum without the length check, for the library's own collectives
 * whose lengths agree by construction (SyncBatchNorm's sums, DDP's buffers).
 */
export function reduceNow(values: Float32Array): void {
  run('allReduce', 'allreduce', values, { op: 'sum' });
}

/** @internal A blocking broadcast from rank 0 without the length check (see reduceNow). */
export function broadcastNow(values: Float32Array): void {
  run('broadcast', 'broadcast', values, { root: 0 });
}

/** @internal Every rank's values, in rank order, in one array; the library's own calls skip the length check (see reduceNow). */
export function gatherNow(values: Float32Array, check = false): Float32Array {
  const out = new Float32Array(values.length * worldSize());
  run('allGather', 'allgather', values, { out, check });
  return out;
}

const OPS = ['sum', 'avg', 'max', 'min'];

/**
 * Reduces t across the ranks, in place: every rank ends with the sum (or mean, max, min).
 * @example distributed.allReduce(grad, { op: 'avg' });
 * @throws {Error} before init(), or when the ranks pass different lengths
 */
export function allReduce(t: Tensor | Float32Array, options: { op?: ReduceOp } = {}): void {
  const op = options.op ?? 'sum';
  if (!OPS.includes(op)) throw new RangeError(`distributed.allReduce: expected op to be one of ${OPS.join(', ')} but received ${JSON.stringify(op)}`);
  const values = arrayOf('allReduce', t);
  run('allReduce', 'allreduce', values, { op: op === 'avg' ? 'sum' : op, check: true });
  if (op === 'avg') for (let i = 0, n = worldSize(); i < values.length; i++) values[i] /= n;
}

/**
 * Copies rank src's values into t on every rank.
 * @example distributed.broadcast(weights, { src: 0 });
 * @throws {Error} before init(), or when the ranks pass different lengths
 */
export function broadcast(t: Tensor | Float32Array, options: { src?: number } = {}): void {
  const src = options.src ?? 0;
  if (!Number.isInteger(src)) throw new RangeError(`distributed.broadcast: expected src to be a rank but received ${src}`);
  run('broadcast', 'broadcast', arrayOf('broadcast', t), { root: src, check: true });
}

/**
 * Every rank's values, in rank order: tensors of t's shape (or Float32Arrays for one).
 * @example const [mine, theirs] = distributed.allGather(stats);
 */
export function allGather(t: Tensor): Tensor[];
export function allGather(t: Float32Array): Float32Array[];
export function allGather(t: Tensor | Float32Array): (Tensor | Float32Array)[] {
  const values = arrayOf('allGather', t), n = worldSize(), out = gatherNow(values, true);
  return Array.from({ length: n }, (_, r) => {
    const part = out.slice(r * values.length, (r + 1) * values.length);
    return t instanceof Tensor ? new Tensor(part, [...t.shape]) : part;
  });
}

/** Returns once every rank has called barrier(). */
export function barrier(): void {
  run('barrier', 'barrier', null, {});
}

/** Leaves the job (MPI_Finalize); init() cannot run again in this process (an MPI rule). */
export function destroy(): void {
  if (!world) return;
  addon!.finalize();
  world = null;
}
