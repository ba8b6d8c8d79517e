/**
 * Every kernel of the Backend contract, declared once: its arguments in order (kind, element type,
 * required length as an expression of the sizes), its checks, the arrays it writes that must not
 * overlap what it reads, and the C++ call that runs it. From this:
 *   - validate.ts checks the arguments of the TypeScript fallback,
 *   - scripts/gen-binding.js writes native/binding.gen.h, the native binding's checks and calls,
 *     with the same checks and the same error texts (a test keeps the file up to date),
 *   - types.ts derives the Backend's TypeScript types,
 *   - test/bad-input.test.ts derives its bad calls.
 *
 * Arguments are checked in this order: the count; the scalars (sizes, numbers, flags) in argument
 * order; `checks`; the arrays in argument order (kind, then length); `noOverlap`; `valueChecks`.
 * Expressions (expr.ts) name arguments and `derive`d sizes; a message's `${...}` parts are
 * expressions too. Kinds: f32, i32 and u8 typed arrays (f32? may be null), size (an integer from
 * `min`, default 0, to 2^31 - 1), num (a finite number), flag (a boolean). An array's `len` is the
 * length it must have (at least, with atLeast), null for any.
 * See native/kernels/kernels.h for what each kernel computes.
 */

export type ArgKind = 'f32' | 'f32?' | 'i32' | 'u8' | 'size' | 'num' | 'flag';

export interface ArgSpec {
  readonly name: string;
  readonly kind: ArgKind;
  readonly len?: string | null;
  readonly atLeast?: boolean;
  readonly min?: number;
}

/** Fails (throws error with message) when `fail` is true. */
export interface CheckSpec {
  readonly fail: string;
  readonly error: 'TypeError' | 'RangeError';
  readonly message: string;
}

/** Fails when `fail` is true of any element v = each[i], i < count (a RangeError). */
export interface EachSpec {
  readonly each: string;
  readonly count: string;
  readonly fail: string;
  readonly message: string;
}

export interface KernelSpec {
  readonly args: readonly ArgSpec[];
  readonly derive?: Readonly<Record<string, string>>;
  readonly checks?: readonly CheckSpec[];
  readonly noOverlap?: readonly (readonly [string, string])[];
  readonly valueChecks?: readonly (CheckSpec | EachSpec)[];
  readonly returns?: 'number';
  /** the call on the active ISA's kernel table (kernels.h), in C++ */
  readonly native: string;
  /** sizes and scalars of a valid call (the bad-input test's starting point); sizes default to 2, numbers to 0.5 */
  readonly example?: Readonly<Record<string, number | boolean>>;
}

const f32 = <N extends string>(name: N, len: string | null, atLeast = false) => ({ name, kind: 'f32', len, atLeast }) as const;
const f32OrNull = <N extends string>(name: N, len: string) => ({ name, kind: 'f32?', len }) as const;
const i32 = <N extends string>(name: N, len: string) => ({ name, kind: 'i32', len }) as const;
const u8 = <N extends string>(name: N) => ({ name, kind: 'u8', len: null }) as const;
const size = <N extends string>(name: N, min = 0) => ({ name, kind: 'size', min }) as const;
const num = <N extends string>(name: N) => ({ name, kind: 'num' }) as const;
const flag = <N extends string>(name: N) => ({ name, kind: 'flag' }) as const;
const rangeError = (fail: string, message: string) => ({ fail, error: 'RangeError', message }) as const;

// ---- shared pieces ---------------------------------------------------------------------------------

// GEMM: C (M, N) = alpha * op(A) (M, K) . op(B) (K, N); A is stored (K, M) when transposed, else
// (M, K), with leading dimension lda; B (N, K) or (K, N). The leading dimensions are checked first.
const gemmSizes = [size('M'), size('N'), size('K'), flag('transA'), flag('transB'), num('alpha')] as const;
const gemmLds = [size('lda'), size('ldb'), size('ldc')] as const;
const gemmChecks = [
  rangeError('lda < max(transA ? M : K, 1)', 'expected lda >= ${max(transA ? M : K, 1)} but received ${lda}'),
  rangeError('ldb < max(transB ? K : N, 1)', 'expected ldb >= ${max(transB ? K : N, 1)} but received ${ldb}'),
  rangeError('ldc < max(N, 1)', 'expected ldc >= ${max(N, 1)} but received ${ldc}'),
] as const;
const gemmC = f32('C', 'extent(M, N, ldc)', true);
const gemmA = f32('A', 'extent(transA ? K : M, transA ? M : K, lda)', true);
const gemmB = f32('B', 'extent(transB ? N : K, transB ? K : N, ldb)', true);
const gemmExample = { M: 2, N: 4, K: 3, lda: 3, ldb: 4, ldc: 4 };

// BatchNorm: x, y (N, C, S), per-channel vectors (C)
const perChannel = rangeError('N * S <= 1', 'Expected more than 1 value per channel when training, got input size ${dims(N, C, S)}');
const bnExample = { N: 2, C: 3, S: 4 };

// elementwise over n = the first array's length
const unary = <O extends string, X extends string>(out: O, x: X, call: string) =>
  ({ args: [f32(out, null), f32(x, 'n')], derive: { n: `len(${out})` }, native: call }) as const;
const binary = <O extends string, A extends string, B extends string>(out: O, a: A, b: B, call: string) =>
  ({ args: [f32(out, null), f32(a, 'n'), f32(b, 'n')], derive: { n: `len(${out})` }, native: call }) as const;
const withScalar = <O extends string, X extends string, S extends string>(out: O, x: X, scalar: S, call: string) =>
  ({ args: [f32(out, null), f32(x, 'n'), num(scalar)], derive: { n: `len(${out})` }, native: call }) as const;
const reduction = (call: string) => ({ args: [f32('x', null)], derive: { n: 'len(x)' }, returns: 'number', native: call }) as const;

// indices of rows of src (rows of D values)
const rowIndices = {
  each: 'indices', count: 'R', fail: 'v < 0 || v >= len(src) / D', message: 'indices[${i}] = ${v} is out of range [0, ${len(src) / D}) (the rows of src)',
} as const;
const classTargets = { each: 'targets', count: 'R', fail: 'v < 0 || v >= K', message: 'targets[${i}] = ${v} is out of range [0, ${K})' } as const;
const labelSmoothing = rangeError('labelSmoothing < 0 || labelSmoothing > 1', 'expected labelSmoothing to be in [0, 1] but received ${labelSmoothing}');

// convolution and pooling: x (N, C, H, W), a KH x KW window, stride SH x SW, padding PH x PW
const convSizes = [size('N'), size('C'), size('H'), size('W'), size('KH', 1), size('KW', 1), size('SH', 1), size('SW', 1), size('PH'), size('PW')] as const;
const convDerive = { OH: '(H + 2 * PH - KH) / SH + 1', OW: '(W + 2 * PW - KW) / SW + 1' };
const kernelFits = rangeError('H + 2 * PH < KH || W + 2 * PW < KW', 'kernel ${KH}x${KW} does not fit input ${H}x${W} with padding ${PH}x${PW}');
const convExample = { N: 1, C: 2, H: 4, W: 4, KH: 3, KW: 3, SH: 1, SW: 1, PH: 1, PW: 1 };

export const KERNELS = {
  sgemm: {
    args: [gemmC, gemmA, gemmB, ...gemmSizes, num('beta'), ...gemmLds],
    checks: gemmChecks,
    noOverlap: [['C', 'A'], ['C', 'B']],
    native: 'sgemm(C, A, B, M, N, K, transA, transB, alpha, beta, lda, ldb, ldc, nullptr)',
    example: { ...gemmExample, alpha: 1, beta: 0 },
  },
  sgemmSumSquares: {
    args: [gemmC, gemmA, gemmB, ...gemmSizes, num('beta'), ...gemmLds],
    checks: gemmChecks,
    noOverlap: [['C', 'A'], ['C', 'B']],
    returns: 'number',
    native: 'sgemm_sum_squares(C, A, B, M, N, K, transA, transB, alpha, beta, lda, ldb, ldc)',
    example: { ...gemmExample, alpha: 1, beta: 0 },
  },
  sgemmBias: {
    args: [gemmC, gemmA, gemmB, f32('bias', 'N'), ...gemmSizes, ...gemmLds],
    checks: gemmChecks,
    noOverlap: [['C', 'A'], ['C', 'B'], ['C', 'bias']],
    native: 'sgemm(C, A, B, M, N, K, transA, transB, alpha, 0.0f, lda, ldb, ldc, bias)',
    example: { ...gemmExample, alpha: 1 },
  },

  batchnormForwardTrain: {
    args: [f32('y', 'N * C * S'), f32('saveMean', 'C'), f32('saveInvstd', 'C'), f32OrNull('runningMean', 'C'),
      f32OrNull('runningVar', 'C'), f32('x', 'N * C * S'), f32OrNull('weight', 'C'), f32OrNull('bias', 'C'),
      size('N'), size('C'), size('S'), num('eps'), num('momentum'), flag('relu')],
    valueChecks: [perChannel],
    native: 'batchnorm_forward_train(y, saveMean, saveInvstd, runningMean, runningVar, x, weight, bias, N, C, S, eps, momentum, relu)',
    example: { ...bnExample, eps: 1e-5, momentum: 0.1 },
  },
  batchnormForwardEval: {
    args: [f32('y', 'N * C * S'), f32('x', 'N * C * S'), f32('runningMean', 'C'), f32('runningVar', 'C'),
      f32OrNull('weight', 'C'), f32OrNull('bias', 'C'), size('N'), size('C'), size('S'), num('eps'), flag('relu')],
    native: 'batchnorm_forward_eval(y, x, runningMean, runningVar, weight, bias, N, C, S, eps, relu)',
    example: { ...bnExample, eps: 1e-5 },
  },
  batchnormBackward: {
    args: [f32OrNull('dx', 'N * C * S'), f32OrNull('dweight', 'C'), f32OrNull('dbias', 'C'), f32('dy', 'N * C * S'),
      f32('x', 'N * C * S'), f32('mean', 'C'), f32('invstd', 'C'), f32OrNull('weight', 'C'), f32OrNull('y', 'N * C * S'),
      size('N'), size('C'), size('S'), flag('train')],
    valueChecks: [{ ...perChannel, fail: `train && ${perChannel.fail}` }],
    native: 'batchnorm_backward(dx, dweight, dbias, dy, x, mean, invstd, weight, y, N, C, S, train)',
    example: { ...bnExample, train: true },
  },

  // BatchNorm in phases, for statistics merged across processes (see kernels.h)
  batchnormStats: {
    args: [f32('mean', 'C'), f32('variance', 'C'), f32('x', 'N * C * S'), size('N'), size('C'), size('S')],
    valueChecks: [rangeError('N * S < 1', 'expected at least 1 value per channel but received input size ${dims(N, C, S)}')],
    native: 'batchnorm_stats(mean, variance, x, N, C, S)',
    example: bnExample,
  },
  batchnormApply: {
    args: [f32('y', 'N * C * S'), f32('x', 'N * C * S'), f32('mean', 'C'), f32('invstd', 'C'), f32OrNull('weight', 'C'),
      f32OrNull('bias', 'C'), size('N'), size('C'), size('S'), flag('relu')],
    native: 'batchnorm_apply(y, x, mean, invstd, weight, bias, N, C, S, relu)',
    example: bnExample,
  },
  batchnormBackwardReduce: {
    args: [f32('sumDy', 'C'), f32('sumDyXmu', 'C'), f32('dy', 'N * C * S'), f32('x', 'N * C * S'), f32('mean', 'C'),
      f32OrNull('y', 'N * C * S'), size('N'), size('C'), size('S')],
    native: 'batchnorm_backward_reduce(sumDy, sumDyXmu, dy, x, mean, y, N, C, S)',
    example: bnExample,
  },
  batchnormBackwardApply: {
    args: [f32('dx', 'N * C * S'), f32('dy', 'N * C * S'), f32('x', 'N * C * S'), f32('mean', 'C'), f32('invstd', 'C'),
      f32OrNull('weight', 'C'), f32('sumDy', 'C'), f32('sumDyXmu', 'C'), f32OrNull('y', 'N * C * S'), size('count', 1),
      size('N'), size('C'), size('S')],
    native: 'batchnorm_backward_apply(dx, dy, x, mean, invstd, weight, sumDy, sumDyXmu, y, count, N, C, S)',
    example: { ...bnExample, count: 8 },
  },

  add: binary('out', 'a', 'b', 'add(out, a, b, n)'),
  mul: binary('out', 'a', 'b', 'mul(out, a, b, n)'),
  scale: withScalar('out', 'x', 'alpha', 'scale(out, x, alpha, n)'),
  axpy: withScalar('y', 'x', 'alpha', 'axpy(y, x, alpha, n)'),
  relu: unary('out', 'x', 'relu(out, x, n)'),
  reluBackward: binary('dx', 'dy', 'x', 'relu_backward(dx, dy, x, n)'),
  leakyRelu: withScalar('out', 'x', 'slope', 'leaky_relu(out, x, slope, n)'),
  leakyReluBackward: {
    args: [f32('dx', null), f32('dy', 'n'), f32('x', 'n'), num('slope')],
    derive: { n: 'len(dx)' },
    native: 'leaky_relu_backward(dx, dy, x, slope, n)',
  },
  sigmoid: unary('out', 'x', 'sigmoid(out, x, n)'),
  sigmoidBackward: binary('dx', 'dy', 'y', 'sigmoid_backward(dx, dy, y, n)'),
  tanh: unary('out', 'x', 'tanh(out, x, n)'),
  tanhBackward: binary('dx', 'dy', 'y', 'tanh_backward(dx, dy, y, n)'),
  sum: reduction('sum(x, n)'),
  sumSquares: reduction('sum_squares(x, n)'),
  maxRows: {
    args: [f32('max', 'R'), i32('argmax', 'R'), f32('x', 'R * K'), size('R'), size('K', 1)],
    native: 'max_rows(max, argmax, x, R, K)',
    example: { R: 2, K: 3 },
  },
  gatherRows: {
    args: [f32('out', 'R * D'), f32('src', null), i32('indices', 'R'), size('R'), size('D', 1)],
    noOverlap: [['out', 'src'], ['out', 'indices']],
    valueChecks: [rowIndices],
    native: 'gather_rows(out, src, indices, R, D)',
    example: { R: 2, D: 3, 'len(src)': 9 },
  },
  gatherBytes: {
    args: [f32('out', 'R * D'), u8('src'), i32('indices', 'R'), size('R'), size('D', 1), f32('offset', '1', true), f32('scale', 'channels')],
    derive: { channels: 'len(offset)' },
    noOverlap: [['out', 'src'], ['out', 'indices']],
    valueChecks: [
      rangeError('D % channels != 0', 'expected D to be a multiple of the channels (the length of offset) but received D = ${D} for ${channels} channels'),
      rowIndices,
    ],
    native: 'gather_bytes(out, src, indices, R, D, offset, scale, channels)',
    example: { R: 2, D: 3, 'len(src)': 9, 'len(offset)': 1 },
  },

  softmaxCrossEntropy: {
    args: [f32('losses', 'R'), f32('logits', 'R * K'), i32('targets', 'R'), size('R'), size('K', 1), num('labelSmoothing')],
    noOverlap: [['losses', 'logits'], ['losses', 'targets']],
    valueChecks: [labelSmoothing, classTargets],
    native: 'softmax_xent_forward(losses, logits, targets, R, K, labelSmoothing)',
    example: { R: 2, K: 3, labelSmoothing: 0 },
  },
  softmaxCrossEntropyBackward: {
    args: [f32('dlogits', 'R * K'), f32('logits', 'R * K'), i32('targets', 'R'), f32('dlosses', 'R'), size('R'), size('K', 1),
      num('labelSmoothing')],
    noOverlap: [['dlogits', 'logits'], ['dlogits', 'targets'], ['dlogits', 'dlosses']],
    valueChecks: [labelSmoothing, classTargets],
    native: 'softmax_xent_backward(dlogits, logits, targets, dlosses, R, K, labelSmoothing)',
    example: { R: 2, K: 3, labelSmoothing: 0 },
  },

  sgdStep: {
    args: [f32('param', null), f32OrNull('momentumBuffer', 'n'), f32('grad', 'n'), num('lr'), num('momentum'), num('dampening'),
      num('weightDecay'), flag('nesterov'), flag('firstStep')],
    derive: { n: 'len(param)' },
    valueChecks: [{ fail: 'momentum != 0 && isNull(momentumBuffer)', error: 'TypeError',
      message: 'expected momentumBuffer to be a Float32Array when momentum != 0 but received null' }],
    native: 'sgd_step(param, momentumBuffer, grad, n, lr, momentum, dampening, weightDecay, nesterov, firstStep)',
    example: { 'len(param)': 5, lr: 0.1, momentum: 0.9, dampening: 0, weightDecay: 0, firstStep: true },
  },
  adamStep: {
    args: [f32('param', null), f32('expAvg', 'n'), f32('expAvgSq', 'n'), f32('grad', 'n'), num('lr'), num('beta1'), num('beta2'),
      num('eps'), num('weightDecay'), size('step', 1), flag('decoupled')],
    derive: { n: 'len(param)' },
    native: 'adam_step(param, expAvg, expAvgSq, grad, n, lr, beta1, beta2, eps, weightDecay, step, decoupled)',
    example: { 'len(param)': 5, lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, step: 1 },
  },

  im2col: {
    args: [f32('col', 'N * C * KH * KW * OH * OW'), f32('x', 'N * C * H * W'), ...convSizes],
    derive: convDerive,
    checks: [kernelFits],
    noOverlap: [['col', 'x']],
    native: 'im2col(col, x, N, C, H, W, KH, KW, SH, SW, PH, PW)',
    example: convExample,
  },
  col2im: {
    args: [f32('dx', 'N * C * H * W'), f32('col', 'N * C * KH * KW * OH * OW'), ...convSizes],
    derive: convDerive,
    checks: [kernelFits],
    noOverlap: [['dx', 'col']],
    native: 'col2im(dx, col, N, C, H, W, KH, KW, SH, SW, PH, PW)',
    example: convExample,
  },
  convOutput: {
    args: [f32('y', 'N * OC * P'), f32('out', 'N * OC * P'), f32OrNull('bias', 'OC'), size('N'), size('OC'), size('P')],
    noOverlap: [['y', 'out'], ['y', 'bias']],
    native: 'conv_output(y, out, bias, N, OC, P)',
    example: { N: 2, OC: 3, P: 4 },
  },
  convOutputBackward: {
    args: [f32('gT', 'N * OC * P'), f32OrNull('dbias', 'OC'), f32('g', 'N * OC * P'), size('N'), size('OC'), size('P')],
    noOverlap: [['gT', 'g'], ['dbias', 'g'], ['dbias', 'gT']],
    native: 'conv_output_backward(gT, dbias, g, N, OC, P)',
    example: { N: 2, OC: 3, P: 4 },
  },
  maxPool2d: {
    args: [f32('y', 'N * C * OH * OW'), i32('indices', 'N * C * OH * OW'), f32('x', 'N * C * H * W'), ...convSizes],
    derive: convDerive,
    checks: [kernelFits, rangeError('2 * PH > KH || 2 * PW > KW',
      'expected padding at most half the kernel but received padding ${PH}x${PW} for kernel ${KH}x${KW}')],
    noOverlap: [['y', 'x'], ['indices', 'x'], ['y', 'indices']],
    native: 'max_pool2d(y, indices, x, N, C, H, W, KH, KW, SH, SW, PH, PW)',
    example: { N: 1, C: 2, H: 4, W: 4, KH: 2, KW: 2, SH: 2, SW: 2, PH: 0, PW: 0 },
  },
  maxPool2dBackward: {
    args: [f32('dx', 'N * C * H * W'), f32('dy', 'N * C * OH * OW'), i32('indices', 'N * C * OH * OW'), size('N'), size('C'),
      size('H'), size('W'), size('OH'), size('OW')],
    noOverlap: [['dx', 'dy'], ['dx', 'indices']],
    valueChecks: [{ each: 'indices', count: 'N * C * OH * OW', fail: 'v < 0 || v >= H * W', message: 'indices[${i}] = ${v} is out of range [0, ${H * W})' }],
    native: 'max_pool2d_backward(dx, dy, indices, N, C, H, W, OH, OW)',
    example: { N: 1, C: 2, H: 4, W: 4, OH: 2, OW: 2 },
  },
} as const satisfies Record<string, KernelSpec>;

export type KernelName = keyof typeof KERNELS;

type ArgType<A> = A extends { kind: 'f32' } ? Float32Array : A extends { kind: 'f32?' } ? Float32Array | null
  : A extends { kind: 'i32' } ? Int32Array : A extends { kind: 'u8' } ? Uint8Array : A extends { kind: 'flag' } ? boolean : number;
type ArgTypes<T extends readonly unknown[]> = { -readonly [I in keyof T]: ArgType<T[I]> };

/** A kernel's function type, from its schema entry. */
export type KernelFunction<S extends KernelSpec> = (...args: ArgTypes<S['args']>) => S extends { returns: 'number' } ? number : void;

/** A call's checked arguments by name, with the derived sizes: what an implementation receives. */
export type KernelValues<S extends KernelSpec> = { [A in S['args'][number] as A['name']]: ArgType<A> } &
  { [D in keyof S['derive']]: number };
