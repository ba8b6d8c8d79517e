/**
 * stablegrad: train neural networks on the CPU from Node.js.
 *
 * Tensors with autograd (tensor.ts), nn modules, losses and optimizers, data loading and the
 * training loop, all running on `backend()`: the selected implementation of the `Backend`
 * contract (SIMD C++ through N-API, or the pure-TypeScript fallback); `backendInfo()` says which.
 */
export { backend, backendInfo, type BackendInfo } from './backend/index.js';
export type { Backend, Isa, KernelInfo } from './backend/types.js';
export { Generator, getRngState, manualSeed, setRngState, type GeneratorState } from './random.js';
export {
  Tensor, tensor, zeros, ones, randn, rand, arange, noGrad, isGradEnabled,
  add, sub, mul, div, matmul, sum, mean, max, min, argmax, argmin, pow, exp, log, sqrt, relu, sigmoid, tanh, softmax, logSoftmax,
  type NestedArray, type RemovableHandle,
} from './tensor.js';
export {
  cat, stack, split, chunk, narrow, select, indexSelect, unsqueeze, squeeze, flatten, permute, abs, neg, square, clamp,
  minimum, maximum, eq, ne, gt, ge, lt, le, where, variance, std, type VarianceOptions,
} from './ops.js';
export * as nn from './nn/index.js';
export * as distributed from './distributed/index.js';
export * as optim from './optim/index.js';
export { load, loadMetadata, save } from './io/safetensors.js';
export { loadCheckpoint, saveCheckpoint, type CheckpointInfo, type CheckpointParts } from './io/checkpoint.js';
export * from './data/index.js';
export { evaluate, fit, TrainingDivergedError, type EpochProgress, type EpochRecord, type FitOptions, type Loss, type StepRecord } from './train/fit.js';
export { makeModel, MODEL_NAMES, type ModelName } from './models.js';
