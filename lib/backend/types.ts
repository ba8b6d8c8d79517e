/**
 * The backend contract: every kernel stablegrad runs, as one typed surface that both the native
 * addon (native/binding.cpp) and the pure-TypeScript fallback (./ts) implement with the same
 * semantics and the same error messages. The kernels' arguments come from their schema (schema.ts):
 * outputs first, then inputs, then sizes and scalars. Arrays are float32, row-major and contiguous
 * unless a leading dimension (lda, ldb, ldc) says otherwise.
 */
import type { KERNELS, KernelFunction, KernelName } from './schema.js';

export type { KernelName };

/** Instruction sets of the native kernels. */
export type Isa = 'scalar' | 'avx2' | 'avx512' | 'neon';
/** The ISAs a build for this machine's architecture has, lowest first (what STABLEGRAD_ISA may name). */
export const ISAS: readonly Isa[] = process.arch === 'arm64' ? ['scalar', 'neon'] : ['scalar', 'avx2', 'avx512'];

export interface KernelInfo {
  /** The ISA whose kernels run now. */
  isa: Isa | 'none';
  /** The best ISA this CPU supports ('none' for the TypeScript fallback). */
  detectedIsa: Isa | 'none';
  /** The ISAs this build has, lowest first (none for the fallback). */
  isas: readonly Isa[];
  threads: number;
}

/**
 * The allocator's native side (native/memory.cpp, used by lib/memory.ts): aligned blocks, and weak
 * references that the garbage collector clears as it collects.
 */
export interface MemoryHost {
  /** `bytes` bytes at a 64-byte-aligned address, in a fresh ArrayBuffer */
  alignedBlock(bytes: number): Uint8Array;
  /** gives the pages under a block the cache drops back to the system now (it then reads as zeros) */
  dropPages(block: Uint8Array): void;
  /** a weak reference to o; its id */
  watch(o: object): number;
  unwatch(id: number): void;
  isCollected(id: number): boolean;
  /** the ids of watched objects that have been collected (as many as fit in out), now forgotten; their count */
  collectDead(out: Int32Array): number;
}

/** The kernels, as the schema declares them (schema.ts; native/kernels/kernels.h says what each computes). */
export type Kernels = { [K in KernelName]: KernelFunction<(typeof KERNELS)[K]> };

export interface Runtime {
  readonly name: 'native' | 'ts';
  /** weak references for the allocator; null for the fallback, which has none */
  readonly memory: MemoryHost | null;
  info(): KernelInfo;
  /** Caps the ISA (the CPU's best is used when lower); returns the ISA now in effect. */
  setIsa(isa: Isa): Isa | 'none';
  /** Sets the worker thread count (>= 1); returns the count now in effect. */
  setThreads(threads: number): number;
}

export type Backend = Runtime & Kernels;
