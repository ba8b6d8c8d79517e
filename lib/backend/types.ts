/**
 * The backend contract: every kernel stablegrad runs, as one typed surface that both the native
 * addon (native/binding.cpp) and the pure-TypeScript fallback (./ts) implement with the same
 * semantics and the same error messages. Arguments follow the kernels: outputs first, then inputs,
 * then sizes and scalars. Arrays are float32, row-major and contiguous unless a leading dimension
 * (lda, ldb, ldc) says otherwise. See native/kernels/kernels.h for each kernel's definition.
 */

/** Instruction sets of the native kernels, lowest first. */
export type Isa = 'scalar' | 'avx2' | 'avx512';
export const ISAS: readonly Isa[] = ['scalar', 'avx2', 'avx512'];

export interface KernelInfo {
  /** The ISA whose kernels run now. */
  isa: Isa | 'none';
  /** The best ISA this CPU supports ('none' for the TypeScript fallback). */
  detectedIsa: Isa | 'none';
  threads: number;
}

/**
 * The allocator's native side (native/memory.cpp, used by lib/memory.ts): aligned blocks, and weak
 * references that the garbage collector clears as it collects.
 */
export interface MemoryHost {
  /** `bytes` bytes at a 64-byte-aligned address, in a fresh ArrayBuffer */
  alignedBlock(bytes: number): Uint8Array;
  /** a weak reference to o; its id */
  watch(o: object): number;
  unwatch(id: number): void;
  isCollected(id: number): boolean;
  /** the ids of watched objects that have been collected (as many as fit in out), now forgotten; their count */
  collectDead(out: Int32Array): number;
}

export interface Backend {
  readonly name: 'native' | 'ts';
  /** weak references for the allocator; null for the fallback, which has none */
  readonly memory: MemoryHost | null;
  info(): KernelInfo;
  /** Caps the ISA (the CPU's best is used when lower); returns the ISA now in effect. */
  setIsa(isa: Isa): Isa | 'none';
  /** Sets the worker thread count (>= 1); returns the count now in effect. */
  setThreads(threads: number): number;

  /** C (M, N) = alpha * op(A) (M, K) . op(B) (K, N) + beta * C; beta = 0 never reads C. */
  sgemm(C: Float32Array, A: Float32Array, B: Float32Array, M: number, N: number, K: number, transA: boolean,
    transB: boolean, alpha: number, beta: number, lda: number, ldb: number, ldc: number): void;
  /**
   * sgemm, returning the sum of the squares of C's M x N values as it leaves them (a weight gradient
   * and what gradient-health monitoring needs of it; the native backend sums them as it stores C
   * where the product is blocked and packed, instead of a pass over C).
   */
  sgemmSumSquares(C: Float32Array, A: Float32Array, B: Float32Array, M: number, N: number, K: number,
    transA: boolean, transB: boolean, alpha: number, beta: number, lda: number, ldb: number, ldc: number): number;
  /**
   * C (M, N) = alpha * op(A) . op(B) + bias (N) on every row (a linear layer's forward, PyTorch's
   * addmm with beta 1); C is only written. The native backend adds the bias where it stores C.
   */
  sgemmBias(C: Float32Array, A: Float32Array, B: Float32Array, bias: Float32Array, M: number, N: number, K: number,
    transA: boolean, transB: boolean, alpha: number, lda: number, ldb: number, ldc: number): void;

  /** x, y (N, C, S); statistics (C). Updates runningMean/runningVar (unbiased) by the factor momentum. */
  batchnormForwardTrain(y: Float32Array, saveMean: Float32Array, saveInvstd: Float32Array,
    runningMean: Float32Array | null, runningVar: Float32Array | null, x: Float32Array,
    weight: Float32Array | null, bias: Float32Array | null, N: number, C: number, S: number, eps: number,
    momentum: number, relu: boolean): void;
  batchnormForwardEval(y: Float32Array, x: Float32Array, runningMean: Float32Array, runningVar: Float32Array,
    weight: Float32Array | null, bias: Float32Array | null, N: number, C: number, S: number, eps: number,
    relu: boolean): void;
  /** mean/invstd: the saved batch statistics (train) or running mean and 1/sqrt(runningVar + eps). */
  batchnormBackward(dx: Float32Array | null, dweight: Float32Array | null, dbias: Float32Array | null,
    dy: Float32Array, x: Float32Array, mean: Float32Array, invstd: Float32Array, weight: Float32Array | null,
    y: Float32Array | null, N: number, C: number, S: number, train: boolean): void;

  add(out: Float32Array, a: Float32Array, b: Float32Array): void;
  mul(out: Float32Array, a: Float32Array, b: Float32Array): void;
  scale(out: Float32Array, x: Float32Array, alpha: number): void;
  /** y += alpha * x */
  axpy(y: Float32Array, x: Float32Array, alpha: number): void;
  relu(out: Float32Array, x: Float32Array): void;
  reluBackward(dx: Float32Array, dy: Float32Array, x: Float32Array): void;
  leakyRelu(out: Float32Array, x: Float32Array, slope: number): void;
  leakyReluBackward(dx: Float32Array, dy: Float32Array, x: Float32Array, slope: number): void;
  sigmoid(out: Float32Array, x: Float32Array): void;
  /** y = sigmoid(x) */
  sigmoidBackward(dx: Float32Array, dy: Float32Array, y: Float32Array): void;
  tanh(out: Float32Array, x: Float32Array): void;
  /** y = tanh(x) */
  tanhBackward(dx: Float32Array, dy: Float32Array, y: Float32Array): void;
  sum(x: Float32Array): number;
  sumSquares(x: Float32Array): number;
  /** x (R, K): each row's max and argmax (the first NaN wins, as in PyTorch). */
  maxRows(max: Float32Array, argmax: Int32Array, x: Float32Array, R: number, K: number): void;
  /** out (R, D) = the rows indices[r] of src (rows of D values): a batch gathered from a dataset. */
  gatherRows(out: Float32Array, src: Float32Array, indices: Int32Array, R: number, D: number): void;
  /**
   * out (R, D) = (the bytes of row indices[r] of src - offset[c]) * scale[c], c the value's plane
   * when a row is offset.length equal planes (channels), each operation rounded to float: a batch
   * of 8-bit images gathered and normalised.
   */
  gatherBytes(out: Float32Array, src: Uint8Array, indices: Int32Array, R: number, D: number, offset: Float32Array,
    scale: Float32Array): void;

  /** logits (R, K), targets (R) in [0, K): per-row losses of softmax cross-entropy. */
  softmaxCrossEntropy(losses: Float32Array, logits: Float32Array, targets: Int32Array, R: number, K: number,
    labelSmoothing: number): void;
  softmaxCrossEntropyBackward(dlogits: Float32Array, logits: Float32Array, targets: Int32Array,
    dlosses: Float32Array, R: number, K: number, labelSmoothing: number): void;

  sgdStep(param: Float32Array, momentumBuffer: Float32Array | null, grad: Float32Array, lr: number,
    momentum: number, dampening: number, weightDecay: number, nesterov: boolean, firstStep: boolean): void;
  adamStep(param: Float32Array, expAvg: Float32Array, expAvgSq: Float32Array, grad: Float32Array, lr: number,
    beta1: number, beta2: number, eps: number, weightDecay: number, step: number, decoupled: boolean): void;

  /** x (N, C, H, W) -> col (C*KH*KW, N*OH*OW): the whole batch's patches side by side, for one GEMM */
  im2col(col: Float32Array, x: Float32Array, N: number, C: number, H: number, W: number, KH: number, KW: number,
    SH: number, SW: number, PH: number, PW: number): void;
  /** col (C*KH*KW, N*OH*OW) -> dx (N, C, H, W), summing overlapping entries */
  col2im(dx: Float32Array, col: Float32Array, N: number, C: number, H: number, W: number, KH: number, KW: number,
    SH: number, SW: number, PH: number, PW: number): void;
  /** out (OC, N, P) -> y (N, OC, P), its first two dimensions swapped, plus bias (OC) when given: Conv2d's output */
  convOutput(y: Float32Array, out: Float32Array, bias: Float32Array | null, N: number, OC: number, P: number): void;
  /** g (N, OC, P) -> gT (OC, N, P), swapped back; dbias (OC), when given, = g summed over N and P */
  convOutputBackward(gT: Float32Array, dbias: Float32Array | null, g: Float32Array, N: number, OC: number, P: number): void;
  /** y, indices (N, C, OH, OW); indices are h*W + w within each plane */
  maxPool2d(y: Float32Array, indices: Int32Array, x: Float32Array, N: number, C: number, H: number, W: number,
    KH: number, KW: number, SH: number, SW: number, PH: number, PW: number): void;
  maxPool2dBackward(dx: Float32Array, dy: Float32Array, indices: Int32Array, N: number, C: number, H: number,
    W: number, OH: number, OW: number): void;
}

/** The kernel names of the contract, for tests that walk every kernel. */
export type KernelName = Exclude<keyof Backend, 'name' | 'memory' | 'info' | 'setIsa' | 'setThreads'>;

