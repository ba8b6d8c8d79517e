/**
 * The pure-TypeScript backend: the living specification of the native kernels. Each method checks
 * its arguments exactly as native/binding.cpp does (same order, same messages), then runs the
 * kernel of the same name in this folder.
 */
import type { Backend, Isa } from '../types.js';
import { Args, checkLabelSmoothing, checkRowIndices, checkTargets, checkValuesPerChannel, convDims } from '../validate.js';
import { batchnormBackward, batchnormForwardEval, batchnormForwardTrain } from './batchnorm.js';
import { col2im, convOutput, convOutputBackward, im2col, maxPool2d, maxPool2dBackward } from './conv.js';
import * as ew from './elementwise.js';
import { gemmThreads, setGemmThreads, sgemmThreaded } from './gemm-threads.js';
import { adamStep, sgdStep } from './optim.js';
import { softmaxCrossEntropy, softmaxCrossEntropyBackward } from './softmax.js';

/** As native/kernels/threadpool.h's kMaxThreads. */
const MAX_THREADS = 256;

type Args3<T> = T extends (...a: infer P) => unknown ? P : never;

function binary(fn: string, out: string, in1: string, in2: string,
  kernel: (o: Float32Array, p: Float32Array, q: Float32Array) => void) {
  return (...args: [Float32Array, Float32Array, Float32Array]): void => {
    const a = new Args(fn, args, 3);
    const n = a.length(0, out);
    kernel(a.f32(0, out, n), a.f32(1, in1, n), a.f32(2, in2, n));
  };
}

function unary(fn: string, kernel: (o: Float32Array, x: Float32Array) => void) {
  return (...args: [Float32Array, Float32Array]): void => {
    const a = new Args(fn, args, 2);
    const n = a.length(0, 'out');
    kernel(a.f32(0, 'out', n), a.f32(1, 'x', n));
  };
}

function unaryScalar(fn: string, out: string, scalar: string,
  kernel: (o: Float32Array, x: Float32Array, s: number) => void) {
  return (...args: [Float32Array, Float32Array, number]): void => {
    const a = new Args(fn, args, 3);
    const n = a.length(0, out);
    const o = a.f32(0, out, n), x = a.f32(1, 'x', n);
    kernel(o, x, a.number(2, scalar));
  };
}

function reduction(fn: string, kernel: (x: Float32Array) => number) {
  return (...args: [Float32Array]): number => {
    const a = new Args(fn, args, 1);
    return kernel(a.f32(0, 'x', a.length(0, 'x')));
  };
}

/**
 * The arguments both GEMM kernels share (as the binding's GemmArgs): C, A, B at 0, 1, 2, then M, N,
 * K, transA, transB, alpha from `at` on and lda, ldb, ldc from `ldAt`; checks the leading
 * dimensions, the lengths, and that C overlaps neither operand.
 */
function gemmArgs(a: Args, at: number, ldAt: number) {
  const M = a.size(at, 'M'), N = a.size(at + 1, 'N'), K = a.size(at + 2, 'K');
  const ta = a.flag(at + 3, 'transA'), tb = a.flag(at + 4, 'transB');
  const alpha = a.number(at + 5, 'alpha');
  const lda = a.size(ldAt, 'lda'), ldb = a.size(ldAt + 1, 'ldb'), ldc = a.size(ldAt + 2, 'ldc');
  const checkLd = (name: string, ld: number, cols: number): void => {
    const need = Math.max(cols, 1);
    if (ld < need) a.rangeError(`expected ${name} >= ${need} but received ${ld}`);
  };
  const extent = (rows: number, cols: number, ld: number): number => (rows === 0 || cols === 0 ? 0 : (rows - 1) * ld + cols);
  const aRows = ta ? K : M, aCols = ta ? M : K, bRows = tb ? N : K, bCols = tb ? K : N;
  checkLd('lda', lda, aCols);
  checkLd('ldb', ldb, bCols);
  checkLd('ldc', ldc, N);
  const C = a.f32(0, 'C', extent(M, N, ldc), true);
  const A = a.f32(1, 'A', extent(aRows, aCols, lda), true);
  const B = a.f32(2, 'B', extent(bRows, bCols, ldb), true);
  a.noOverlap(0, 'C', 1, 'A');
  a.noOverlap(0, 'C', 2, 'B');
  return { C, A, B, M, N, K, ta, tb, alpha, lda, ldb, ldc };
}

export const tsBackend: Backend = {
  name: 'ts',
  memory: null,
  info: () => ({ isa: 'none', detectedIsa: 'none', threads: gemmThreads() }),
  setIsa: (...args: [Isa]) => {
    const a = new Args('setIsa', args, 1);
    if (typeof args[0] !== 'string') a.typeError(`expected isa to be a string but received ${typeof args[0]}`);
    if (!['scalar', 'avx2', 'avx512'].includes(args[0]))
      a.rangeError(`expected isa to be one of scalar, avx2, avx512 but received '${args[0]}'`);
    return 'none';
  },
  setThreads: (...args: [number]) => {
    const a = new Args('setThreads', args, 1);
    const n = a.size(0, 'threads', 1);
    if (n > MAX_THREADS) a.rangeError(`expected threads to be at most ${MAX_THREADS} but received ${n}`);
    return setGemmThreads(n);
  },

  sgemm(...args: Args3<Backend['sgemm']>) {
    const a = new Args('sgemm', args, 13);
    const beta = a.number(9, 'beta');
    const g = gemmArgs(a, 3, 10);
    sgemmThreaded(g.C, g.A, g.B, g.M, g.N, g.K, g.ta, g.tb, g.alpha, beta, g.lda, g.ldb, g.ldc);
  },

  sgemmSumSquares(...args: Args3<Backend['sgemmSumSquares']>) {
    const a = new Args('sgemmSumSquares', args, 13);
    const beta = a.number(9, 'beta');
    const g = gemmArgs(a, 3, 10);
    sgemmThreaded(g.C, g.A, g.B, g.M, g.N, g.K, g.ta, g.tb, g.alpha, beta, g.lda, g.ldb, g.ldc);
    let total = 0; // row by row, each row's sum (in ew.sumSquares' order) added in row order
    for (let i = 0; i < g.M; i++) total += ew.sumSquares(g.C.subarray(i * g.ldc, i * g.ldc + g.N));
    return total;
  },

  sgemmBias(...args: Args3<Backend['sgemmBias']>) {
    const a = new Args('sgemmBias', args, 13);
    const g = gemmArgs(a, 4, 10);
    const bias = a.f32(3, 'bias', g.N);
    a.noOverlap(0, 'C', 3, 'bias');
    // the bias in every row, then the product added onto it
    for (let i = 0; i < g.M; i++) g.C.set(bias, i * g.ldc);
    sgemmThreaded(g.C, g.A, g.B, g.M, g.N, g.K, g.ta, g.tb, g.alpha, 1, g.lda, g.ldb, g.ldc);
  },

  batchnormForwardTrain(...args: Args3<Backend['batchnormForwardTrain']>) {
    const a = new Args('batchnormForwardTrain', args, 14);
    const N = a.size(8, 'N'), C = a.size(9, 'C'), S = a.size(10, 'S');
    const eps = a.number(11, 'eps'), momentum = a.number(12, 'momentum'), relu = a.flag(13, 'relu');
    const n = N * C * S;
    const y = a.f32(0, 'y', n), mean = a.f32(1, 'saveMean', C), invstd = a.f32(2, 'saveInvstd', C);
    const rm = a.f32OrNull(3, 'runningMean', C), rv = a.f32OrNull(4, 'runningVar', C);
    const x = a.f32(5, 'x', n), w = a.f32OrNull(6, 'weight', C), b = a.f32OrNull(7, 'bias', C);
    checkValuesPerChannel(a, N, C, S);
    batchnormForwardTrain(y, mean, invstd, rm, rv, x, w, b, N, C, S, eps, momentum, relu);
  },

  batchnormForwardEval(...args: Args3<Backend['batchnormForwardEval']>) {
    const a = new Args('batchnormForwardEval', args, 11);
    const N = a.size(6, 'N'), C = a.size(7, 'C'), S = a.size(8, 'S');
    const eps = a.number(9, 'eps'), relu = a.flag(10, 'relu');
    const n = N * C * S;
    const y = a.f32(0, 'y', n), x = a.f32(1, 'x', n);
    const rm = a.f32(2, 'runningMean', C), rv = a.f32(3, 'runningVar', C);
    const w = a.f32OrNull(4, 'weight', C), b = a.f32OrNull(5, 'bias', C);
    batchnormForwardEval(y, x, rm, rv, w, b, N, C, S, eps, relu);
  },

  batchnormBackward(...args: Args3<Backend['batchnormBackward']>) {
    const a = new Args('batchnormBackward', args, 13);
    const N = a.size(9, 'N'), C = a.size(10, 'C'), S = a.size(11, 'S');
    const train = a.flag(12, 'train');
    const n = N * C * S;
    const dx = a.f32OrNull(0, 'dx', n), dw = a.f32OrNull(1, 'dweight', C), db = a.f32OrNull(2, 'dbias', C);
    const dy = a.f32(3, 'dy', n), x = a.f32(4, 'x', n), mean = a.f32(5, 'mean', C), invstd = a.f32(6, 'invstd', C);
    const w = a.f32OrNull(7, 'weight', C), y = a.f32OrNull(8, 'y', n);
    if (train) checkValuesPerChannel(a, N, C, S);
    batchnormBackward(dx, dw, db, dy, x, mean, invstd, w, y, N, C, S, train);
  },

  add: binary('add', 'out', 'a', 'b', ew.add),
  mul: binary('mul', 'out', 'a', 'b', ew.mul),
  scale: unaryScalar('scale', 'out', 'alpha', ew.scale),
  axpy: unaryScalar('axpy', 'y', 'alpha', ew.axpy),
  relu: unary('relu', ew.relu),
  reluBackward: binary('reluBackward', 'dx', 'dy', 'x', ew.reluBackward),
  leakyRelu: unaryScalar('leakyRelu', 'out', 'slope', ew.leakyRelu),
  leakyReluBackward(...args: Args3<Backend['leakyReluBackward']>) {
    const a = new Args('leakyReluBackward', args, 4);
    const n = a.length(0, 'dx');
    const dx = a.f32(0, 'dx', n), dy = a.f32(1, 'dy', n), x = a.f32(2, 'x', n);
    ew.leakyReluBackward(dx, dy, x, a.number(3, 'slope'));
  },
  sigmoid: unary('sigmoid', ew.sigmoid),
  sigmoidBackward: binary('sigmoidBackward', 'dx', 'dy', 'y', ew.sigmoidBackward),
  tanh: unary('tanh', ew.tanh),
  tanhBackward: binary('tanhBackward', 'dx', 'dy', 'y', ew.tanhBackward),
  sum: reduction('sum', ew.sum),
  sumSquares: reduction('sumSquares', ew.sumSquares),
  maxRows(...args: Args3<Backend['maxRows']>) {
    const a = new Args('maxRows', args, 5);
    const R = a.size(3, 'R'), K = a.size(4, 'K', 1);
    const max = a.f32(0, 'max', R), idx = a.i32(1, 'argmax', R), x = a.f32(2, 'x', R * K);
    ew.maxRows(max, idx, x, R, K);
  },
  gatherRows(...args: Args3<Backend['gatherRows']>) {
    const a = new Args('gatherRows', args, 5);
    const R = a.size(3, 'R'), D = a.size(4, 'D', 1);
    const out = a.f32(0, 'out', R * D), src = a.f32(1, 'src', a.length(1, 'src')), indices = a.i32(2, 'indices', R);
    a.noOverlap(0, 'out', 1, 'src');
    checkRowIndices(a, indices, R, Math.floor(src.length / D));
    ew.gatherRows(out, src, indices, R, D);
  },
  gatherBytes(...args: Args3<Backend['gatherBytes']>) {
    const a = new Args('gatherBytes', args, 7);
    const R = a.size(3, 'R'), D = a.size(4, 'D', 1);
    const out = a.f32(0, 'out', R * D), src = a.u8(1, 'src', a.u8Length(1, 'src')), indices = a.i32(2, 'indices', R);
    a.f32(5, 'offset', 1, true);
    const channels = a.length(5, 'offset');
    const offset = a.f32(5, 'offset', channels), scale = a.f32(6, 'scale', channels);
    if (D % channels !== 0)
      a.rangeError(`expected D to be a multiple of the channels (the length of offset) but received D = ${D} for ${channels} channels`);
    a.noOverlap(0, 'out', 1, 'src');
    checkRowIndices(a, indices, R, Math.floor(src.length / D));
    ew.gatherBytes(out, src, indices, R, D, offset, scale);
  },

  softmaxCrossEntropy(...args: Args3<Backend['softmaxCrossEntropy']>) {
    const a = new Args('softmaxCrossEntropy', args, 6);
    const R = a.size(3, 'R'), K = a.size(4, 'K', 1), ls = a.number(5, 'labelSmoothing');
    const losses = a.f32(0, 'losses', R), logits = a.f32(1, 'logits', R * K), t = a.i32(2, 'targets', R);
    checkLabelSmoothing(a, ls);
    checkTargets(a, t, R, K);
    softmaxCrossEntropy(losses, logits, t, R, K, ls);
  },

  softmaxCrossEntropyBackward(...args: Args3<Backend['softmaxCrossEntropyBackward']>) {
    const a = new Args('softmaxCrossEntropyBackward', args, 7);
    const R = a.size(4, 'R'), K = a.size(5, 'K', 1), ls = a.number(6, 'labelSmoothing');
    const dlogits = a.f32(0, 'dlogits', R * K), logits = a.f32(1, 'logits', R * K);
    const t = a.i32(2, 'targets', R), dlosses = a.f32(3, 'dlosses', R);
    checkLabelSmoothing(a, ls);
    checkTargets(a, t, R, K);
    softmaxCrossEntropyBackward(dlogits, logits, t, dlosses, R, K, ls);
  },

  sgdStep(...args: Args3<Backend['sgdStep']>) {
    const a = new Args('sgdStep', args, 9);
    const n = a.length(0, 'param');
    const p = a.f32(0, 'param', n), buf = a.f32OrNull(1, 'momentumBuffer', n), g = a.f32(2, 'grad', n);
    const lr = a.number(3, 'lr'), momentum = a.number(4, 'momentum'), damp = a.number(5, 'dampening');
    const wd = a.number(6, 'weightDecay'), nesterov = a.flag(7, 'nesterov'), first = a.flag(8, 'firstStep');
    if (momentum !== 0 && !buf) a.typeError('expected momentumBuffer to be a Float32Array when momentum != 0 but received null');
    sgdStep(p, buf, g, lr, momentum, damp, wd, nesterov, first);
  },

  adamStep(...args: Args3<Backend['adamStep']>) {
    const a = new Args('adamStep', args, 11);
    const n = a.length(0, 'param');
    const p = a.f32(0, 'param', n), m = a.f32(1, 'expAvg', n), v = a.f32(2, 'expAvgSq', n), g = a.f32(3, 'grad', n);
    const lr = a.number(4, 'lr'), b1 = a.number(5, 'beta1'), b2 = a.number(6, 'beta2'), eps = a.number(7, 'eps');
    const wd = a.number(8, 'weightDecay'), step = a.size(9, 'step', 1), decoupled = a.flag(10, 'decoupled');
    adamStep(p, m, v, g, lr, b1, b2, eps, wd, step, decoupled);
  },

  im2col(...args: Args3<Backend['im2col']>) {
    const a = new Args('im2col', args, 12);
    const d = convDims(a, 2);
    const col = a.f32(0, 'col', d.N * d.C * d.KH * d.KW * d.OH * d.OW), x = a.f32(1, 'x', d.N * d.C * d.H * d.W);
    a.noOverlap(0, 'col', 1, 'x');
    im2col(col, x, d);
  },

  col2im(...args: Args3<Backend['col2im']>) {
    const a = new Args('col2im', args, 12);
    const d = convDims(a, 2);
    const dx = a.f32(0, 'dx', d.N * d.C * d.H * d.W), col = a.f32(1, 'col', d.N * d.C * d.KH * d.KW * d.OH * d.OW);
    a.noOverlap(0, 'dx', 1, 'col');
    col2im(dx, col, d);
  },

  convOutput(...args: Args3<Backend['convOutput']>) {
    const a = new Args('convOutput', args, 6);
    const N = a.size(3, 'N'), OC = a.size(4, 'OC'), P = a.size(5, 'P');
    const y = a.f32(0, 'y', N * OC * P), out = a.f32(1, 'out', N * OC * P), bias = a.f32OrNull(2, 'bias', OC);
    a.noOverlap(0, 'y', 1, 'out');
    if (bias) a.noOverlap(0, 'y', 2, 'bias');
    convOutput(y, out, bias, N, OC, P);
  },

  convOutputBackward(...args: Args3<Backend['convOutputBackward']>) {
    const a = new Args('convOutputBackward', args, 6);
    const N = a.size(3, 'N'), OC = a.size(4, 'OC'), P = a.size(5, 'P');
    const gT = a.f32(0, 'gT', N * OC * P), dbias = a.f32OrNull(1, 'dbias', OC), g = a.f32(2, 'g', N * OC * P);
    a.noOverlap(0, 'gT', 2, 'g');
    if (dbias) {
      a.noOverlap(1, 'dbias', 2, 'g');
      a.noOverlap(1, 'dbias', 0, 'gT');
    }
    convOutputBackward(gT, dbias, g, N, OC, P);
  },

  maxPool2d(...args: Args3<Backend['maxPool2d']>) {
    const a = new Args('maxPool2d', args, 13);
    const d = convDims(a, 3);
    if (2 * d.PH > d.KH || 2 * d.PW > d.KW)
      a.rangeError(`expected padding at most half the kernel but received padding ${d.PH}x${d.PW} for kernel ${d.KH}x${d.KW}`);
    const out = d.N * d.C * d.OH * d.OW;
    const y = a.f32(0, 'y', out), idx = a.i32(1, 'indices', out), x = a.f32(2, 'x', d.N * d.C * d.H * d.W);
    a.noOverlap(0, 'y', 2, 'x');
    a.noOverlap(1, 'indices', 2, 'x');
    maxPool2d(y, idx, x, d);
  },

  maxPool2dBackward(...args: Args3<Backend['maxPool2dBackward']>) {
    const a = new Args('maxPool2dBackward', args, 9);
    const N = a.size(3, 'N'), C = a.size(4, 'C'), H = a.size(5, 'H'), W = a.size(6, 'W');
    const OH = a.size(7, 'OH'), OW = a.size(8, 'OW');
    const dx = a.f32(0, 'dx', N * C * H * W), dy = a.f32(1, 'dy', N * C * OH * OW);
    const idx = a.i32(2, 'indices', N * C * OH * OW);
    a.noOverlap(0, 'dx', 1, 'dy');
    a.noOverlap(0, 'dx', 2, 'indices');
    for (let i = 0; i < idx.length; i++)
      if (idx[i] < 0 || idx[i] >= H * W) a.rangeError(`indices[${i}] = ${idx[i]} is out of range [0, ${H * W})`);
    maxPool2dBackward(dx, dy, idx, N * C, H * W, OH * OW);
  },
};
