/**
 * stablegrad: train neural networks on the CPU from Node.js.
 *
 * This release exposes the kernel layer: `backend()` is the selected implementation of the
 * `Backend` contract (SIMD C++ through N-API, or the pure-TypeScript fallback) and
 * `backendInfo()` says which one runs.
 */
export { backend, backendInfo, type BackendInfo } from './backend/index.js';
export type { Backend, Isa, KernelInfo } from './backend/types.js';
