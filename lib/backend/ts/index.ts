/**
 * The pure-TypeScript backend: the living specification of the native kernels. Each kernel is its
 * schema's checks (validate.ts, the same checks and messages as the native binding) around its
 * twin in this folder.
 */
import { KERNELS, type KernelName, type KernelValues } from '../schema.js';
import { ISAS, type Backend, type Kernels } from '../types.js';
import { checked, MAX_SIZE } from '../validate.js';
import {
  batchnormApply, batchnormBackward, batchnormBackwardApply, batchnormBackwardReduce, batchnormForwardEval, batchnormForwardTrain,
  batchnormStats,
} from './batchnorm.js';
import { col2im, convOutput, convOutputBackward, im2col, maxPool2d, maxPool2dBackward } from './conv.js';
import * as ew from './elementwise.js';
import { gemmThreads, setGemmThreads, sgemmThreaded } from './gemm-threads.js';
import { adamStep, sgdStep } from './optim.js';
import { softmaxCrossEntropy, softmaxCrossEntropyBackward } from './softmax.js';

/** As native/kernels/threadpool.h's kMaxThreads. */
const MAX_THREADS = 256;

type Twins = { [K in KernelName]: (v: KernelValues<(typeof KERNELS)[K]>) => ReturnType<Kernels[K]> };

/** Each kernel's TypeScript twin, given its checked arguments by name. */
const twins: Twins = {
  sgemm: (v) => sgemmThreaded(v.C, v.A, v.B, v.M, v.N, v.K, v.transA, v.transB, v.alpha, v.beta, v.lda, v.ldb, v.ldc),
  sgemmSumSquares: (v) => {
    if (v.M === 0 || v.N === 0) return 0; // C is empty: no pass over M rows of nothing
    sgemmThreaded(v.C, v.A, v.B, v.M, v.N, v.K, v.transA, v.transB, v.alpha, v.beta, v.lda, v.ldb, v.ldc);
    let total = 0; // row by row, each row's sum (in ew.sumSquares' order) added in row order
    for (let i = 0; i < v.M; i++) total += ew.sumSquares(v.C.subarray(i * v.ldc, i * v.ldc + v.N));
    return total;
  },
  sgemmBias: (v) => {
    if (v.M === 0 || v.N === 0) return;
    // the bias in every row, then the product added onto it
    for (let i = 0; i < v.M; i++) v.C.set(v.bias, i * v.ldc);
    sgemmThreaded(v.C, v.A, v.B, v.M, v.N, v.K, v.transA, v.transB, v.alpha, 1, v.lda, v.ldb, v.ldc);
  },
  batchnormForwardTrain: (v) => batchnormForwardTrain(v.y, v.saveMean, v.saveInvstd, v.runningMean, v.runningVar, v.x, v.weight,
    v.bias, v.N, v.C, v.S, v.eps, v.momentum, v.relu),
  batchnormForwardEval: (v) => batchnormForwardEval(v.y, v.x, v.runningMean, v.runningVar, v.weight, v.bias, v.N, v.C, v.S, v.eps, v.relu),
  batchnormBackward: (v) => batchnormBackward(v.dx, v.dweight, v.dbias, v.dy, v.x, v.mean, v.invstd, v.weight, v.y, v.N, v.C, v.S, v.train),
  batchnormStats: (v) => batchnormStats(v.mean, v.variance, v.x, v.N, v.C, v.S),
  batchnormApply: (v) => batchnormApply(v.y, v.x, v.mean, v.invstd, v.weight, v.bias, v.N, v.C, v.S, v.relu),
  batchnormBackwardReduce: (v) => batchnormBackwardReduce(v.sumDy, v.sumDyXmu, v.dy, v.x, v.mean, v.y, v.N, v.C, v.S),
  batchnormBackwardApply: (v) => batchnormBackwardApply(v.dx, v.dy, v.x, v.mean, v.invstd, v.weight, v.sumDy, v.sumDyXmu, v.y,
    v.count, v.N, v.C, v.S),
  add: (v) => ew.add(v.out, v.a, v.b),
  mul: (v) => ew.mul(v.out, v.a, v.b),
  scale: (v) => ew.scale(v.out, v.x, v.alpha),
  axpy: (v) => ew.axpy(v.y, v.x, v.alpha),
  relu: (v) => ew.relu(v.out, v.x),
  reluBackward: (v) => ew.reluBackward(v.dx, v.dy, v.x),
  leakyRelu: (v) => ew.leakyRelu(v.out, v.x, v.slope),
  leakyReluBackward: (v) => ew.leakyReluBackward(v.dx, v.dy, v.x, v.slope),
  sigmoid: (v) => ew.sigmoid(v.out, v.x),
  sigmoidBackward: (v) => ew.sigmoidBackward(v.dx, v.dy, v.y),
  tanh: (v) => ew.tanh(v.out, v.x),
  tanhBackward: (v) => ew.tanhBackward(v.dx, v.dy, v.y),
  sum: (v) => ew.sum(v.x),
  sumSquares: (v) => ew.sumSquares(v.x),
  maxRows: (v) => ew.maxRows(v.max, v.argmax, v.x, v.R, v.K),
  gatherRows: (v) => ew.gatherRows(v.out, v.src, v.indices, v.R, v.D),
  gatherBytes: (v) => ew.gatherBytes(v.out, v.src, v.indices, v.R, v.D, v.offset, v.scale),
  softmaxCrossEntropy: (v) => softmaxCrossEntropy(v.losses, v.logits, v.targets, v.R, v.K, v.labelSmoothing),
  softmaxCrossEntropyBackward: (v) => softmaxCrossEntropyBackward(v.dlogits, v.logits, v.targets, v.dlosses, v.R, v.K, v.labelSmoothing),
  sgdStep: (v) => sgdStep(v.param, v.momentumBuffer, v.grad, v.lr, v.momentum, v.dampening, v.weightDecay, v.nesterov, v.firstStep),
  adamStep: (v) => adamStep(v.param, v.expAvg, v.expAvgSq, v.grad, v.lr, v.beta1, v.beta2, v.eps, v.weightDecay, v.step, v.decoupled),
  im2col: (v) => im2col(v.col, v.x, v),
  col2im: (v) => col2im(v.dx, v.col, v),
  convOutput: (v) => convOutput(v.y, v.out, v.bias, v.N, v.OC, v.P),
  convOutputBackward: (v) => convOutputBackward(v.gT, v.dbias, v.g, v.N, v.OC, v.P),
  maxPool2d: (v) => maxPool2d(v.y, v.indices, v.x, v),
  maxPool2dBackward: (v) => maxPool2dBackward(v.dx, v.dy, v.indices, v.N * v.C, v.H * v.W, v.OH * v.OW),
};

const kernels = Object.fromEntries((Object.keys(KERNELS) as KernelName[]).map((name) =>
  [name, checked(name, KERNELS[name], twins[name])])) as unknown as Kernels;

export const tsBackend: Backend = {
  name: 'ts',
  memory: null,
  info: () => ({ isa: 'none', detectedIsa: 'none', isas: [], threads: gemmThreads() }),
  setIsa: (...args: unknown[]) => {
    if (args.length !== 1) throw new TypeError(`setIsa: expected 1 arguments but received ${args.length}`);
    if (typeof args[0] !== 'string') throw new TypeError(`setIsa: expected isa to be a string but received ${typeof args[0]}`);
    if (!(ISAS as readonly string[]).includes(args[0]))
      throw new RangeError(`setIsa: expected isa to be one of ${ISAS.join(', ')} but received '${args[0]}'`);
    return 'none';
  },
  setThreads: (...args: unknown[]) => {
    if (args.length !== 1) throw new TypeError(`setThreads: expected 1 arguments but received ${args.length}`);
    const n = args[0];
    if (typeof n !== 'number') throw new TypeError(`setThreads: expected threads to be a number but received ${typeof n}`);
    if (!(Number.isInteger(n) && n >= 1 && n <= MAX_SIZE))
      throw new RangeError(`setThreads: expected threads to be an integer from 1 to ${MAX_SIZE} but received ${n}`);
    if (n > MAX_THREADS) throw new RangeError(`setThreads: expected threads to be at most ${MAX_THREADS} but received ${n}`);
    return setGemmThreads(n);
  },
  ...kernels,
} as Backend;
