/** Conv2d (im2col + one GEMM for the batch), MaxPool2d and AvgPool2d, LayerNorm. */
import { backend } from '../backend/index.js';
import { checkPositiveInt, pyFloat } from '../check.js';
import { allocate, allocateInt32, allocateZeroed, release } from '../memory.js';
import { add, fmt, mean, mul, ones, pow, record, sizeOf, sub, Tensor, zeros } from '../tensor.js';
import { uniformTensor } from './layers.js';
import { libraryModules, Module } from './module.js';

type Pair = number | [number, number];

function pair(fn: string, name: string, v: Pair, min: number): [number, number] {
  const p = typeof v === 'number' ? [v, v] : v;
  if (!Array.isArray(p) || p.length !== 2 || !p.every((d) => Number.isInteger(d) && d >= min))
    throw new RangeError(`${fn}: expected ${name} to be an integer >= ${min} or a pair of them but received ${JSON.stringify(v)}`);
  return [p[0], p[1]];
}

function outSize(fn: string, x: Tensor, [KH, KW]: number[], [SH, SW]: number[], [PH, PW]: number[]): [number, number] {
  const [, , H, W] = x.shape;
  const OH = Math.floor((H + 2 * PH - KH) / SH) + 1, OW = Math.floor((W + 2 * PW - KW) / SW) + 1;
  if (OH < 1 || OW < 1) throw new RangeError(`${fn}: kernel ${KH}x${KW} with padding ${PH}x${PW} does not fit input ${fmt(x.shape)}`);
  return [OH, OW];
}

/**
 * 2-D convolution over (N, C, H, W), as PyTorch's Conv2d (cross-correlation; weight (out, in, KH,
 * KW) and bias initialised uniform in +-1/sqrt(in*KH*KW)). The batch is one GEMM over its im2col
 * matrix in each direction.
 * @example const conv = new nn.Conv2d(1, 32, 3, { padding: 1 }); conv.forward(x) // (N, 1, 28, 28) -> (N, 32, 28, 28)
 * @throws {RangeError} on a wrong input shape or a kernel that does not fit
 */
export class Conv2d extends Module {
  readonly weight: Tensor;
  readonly bias: Tensor | null;
  readonly kernelSize: [number, number];
  readonly stride: [number, number];
  readonly padding: [number, number];
  constructor(readonly inChannels: number, readonly outChannels: number, kernelSize: Pair,
    options: { stride?: Pair; padding?: Pair; bias?: boolean } = {}) {
    super();
    checkPositiveInt('Conv2d', 'inChannels', inChannels);
    checkPositiveInt('Conv2d', 'outChannels', outChannels);
    this.kernelSize = pair('Conv2d', 'kernelSize', kernelSize, 1);
    this.stride = pair('Conv2d', 'stride', options.stride ?? 1, 1);
    this.padding = pair('Conv2d', 'padding', options.padding ?? 0, 0);
    const bound = 1 / Math.sqrt(inChannels * this.kernelSize[0] * this.kernelSize[1]);
    this.weight = this.registerParameter('weight', uniformTensor([outChannels, inChannels, ...this.kernelSize], bound))!;
    this.bias = this.registerParameter('bias', options.bias ?? true ? uniformTensor([outChannels], bound) : null);
  }

  override extraRepr(): string {
    const padding = this.padding.some((p) => p !== 0) ? `, padding=${tuple(this.padding)}` : '';
    return `${this.inChannels}, ${this.outChannels}, kernel_size=${tuple(this.kernelSize)}, stride=${tuple(this.stride)}${padding}` +
      (this.bias === null ? ', bias=false' : '');
  }

  forward(x: Tensor): Tensor {
    if (x.ndim !== 4 || x.shape[1] !== this.inChannels)
      throw new RangeError(`Conv2d(${this.inChannels}, ${this.outChannels}) expected input of shape [N, ${this.inChannels}, H, W] but received ${fmt(x.shape)}`);
    const [N, C, H, W] = x.shape, [KH, KW] = this.kernelSize, [SH, SW] = this.stride, [PH, PW] = this.padding;
    const [OH, OW] = outSize('Conv2d', x, this.kernelSize, this.stride, this.padding);
    const OC = this.outChannels, CKK = C * KH * KW, P = OH * OW, NP = Math.max(N * P, 1);
    const k = backend(), w = this.weight, b = this.bias;
    // col (CKK, N*P): every image's patches side by side, so the batch is one GEMM; kept for the
    // backward, and returned to the allocator once that has run
    const col = allocate(CKK * N * P);
    k.im2col(col, x.values, N, C, H, W, KH, KW, SH, SW, PH, PW);
    // out (OC, N*P) = W (OC, CKK) . col; y (N, OC, P) is out with its first two dimensions swapped,
    // plus the bias, in one pass
    const out = allocate(OC * N * P);
    k.sgemm(out, w.values, col, OC, N * P, CKK, false, false, 1, 0, CKK, NP, NP);
    const y = allocate(N * OC * P); // convOutput writes every value
    k.convOutput(y, out, b?.values ?? null, N, OC, P);
    release(out);
    const result = record('conv2d', y, [N, OC, OH, OW], b ? [x, w, b] : [x, w], (g) => {
      // gT (OC, N*P): g (N, OC, P) with its first two dimensions swapped, and db (OC) = the sums of
      // its rows, in the same pass (as 96 sum calls they cost the cnn model 0.5 ms a step)
      const gT = allocate(OC * N * P);
      const db = b?.requiresGrad ? allocate(OC) : null;
      k.convOutputBackward(gT, db, g, N, OC, P);
      let dx: Float32Array | null = null, dw: Float32Array | null = null;
      if (w.requiresGrad) {
        dw = allocate(OC * CKK); // dW (OC, CKK) = gT (OC, N*P) . col^T
        k.sgemm(dw, gT, col, OC, CKK, N * P, false, true, 1, 0, NP, NP, CKK);
      }
      if (x.requiresGrad) {
        const dcol = allocate(CKK * N * P); // dcol (CKK, N*P) = W^T . gT
        k.sgemm(dcol, w.values, gT, CKK, N * P, OC, true, false, 1, 0, CKK, NP, NP);
        dx = allocate(x.size);
        k.col2im(dx, dcol, N, C, H, W, KH, KW, SH, SW, PH, PW);
        release(dcol);
      }
      release(gT);
      release(col); // a node runs backward once
      return b ? [dx, dw, db] : [dx, dw];
    });
    if (!result.requiresGrad) release(col); // no backward will read it
    return result;
  }
}

function checkImage(fn: string, x: Tensor): void {
  if (x.ndim !== 4) throw new RangeError(`${fn} expected input of shape [N, C, H, W] but received ${fmt(x.shape)}`);
}

/** Kernel size, stride (default: the kernel size) and padding of a pooling layer. */
abstract class Pool2d extends Module {
  readonly kernelSize: [number, number];
  readonly stride: [number, number];
  readonly padding: [number, number];
  constructor(name: string, kernelSize: Pair, options: { stride?: Pair; padding?: Pair }) {
    super();
    this.kernelSize = pair(name, 'kernelSize', kernelSize, 1);
    this.stride = pair(name, 'stride', options.stride ?? this.kernelSize, 1);
    this.padding = pair(name, 'padding', options.padding ?? 0, 0);
  }
  override extraRepr(): string {
    return `kernel_size=${tuple(this.kernelSize)}, stride=${tuple(this.stride)}, padding=${tuple(this.padding)}`;
  }
}

/** A pair as PyTorch prints it: (3, 3). */
const tuple = (p: readonly number[]) => (p.length === 1 ? `(${p[0]},)` : `(${p.join(', ')})`);

/**
 * 2-D max pooling (stride defaults to the kernel size; NaN propagates), as PyTorch's MaxPool2d.
 * @example new nn.MaxPool2d(2).forward(x) // (N, C, 28, 28) -> (N, C, 14, 14)
 * @throws {RangeError} on a non-4-D input or padding above half the kernel
 */
export class MaxPool2d extends Pool2d {
  constructor(kernelSize: Pair, options: { stride?: Pair; padding?: Pair } = {}) {
    super('MaxPool2d', kernelSize, options);
    if (2 * this.padding[0] > this.kernelSize[0] || 2 * this.padding[1] > this.kernelSize[1])
      throw new RangeError(`MaxPool2d: padding should be at most half the kernel size but received padding ${this.padding} for kernel ${this.kernelSize}`);
  }
  forward(x: Tensor): Tensor {
    checkImage('MaxPool2d', x);
    const [N, C, H, W] = x.shape, [OH, OW] = outSize('MaxPool2d', x, this.kernelSize, this.stride, this.padding);
    const y = allocate(N * C * OH * OW), idx = allocateInt32(y.length); // the kernel writes both in full
    backend().maxPool2d(y, idx, x.values, N, C, H, W, ...this.kernelSize, ...this.stride, ...this.padding);
    const result = record('maxPool2d', y, [N, C, OH, OW], [x], (g) => {
      const dx = allocate(x.size); // the kernel writes all of it
      backend().maxPool2dBackward(dx, g, idx, N, C, H, W, OH, OW);
      release(idx);
      return [dx];
    });
    if (!result.requiresGrad) release(idx);
    return result;
  }
}

/**
 * 2-D average pooling; padding counts as zeros in the average (PyTorch's countIncludePad = true).
 * @example new nn.AvgPool2d(2).forward(x)
 * @throws {RangeError} on a non-4-D input or a kernel that does not fit
 */
export class AvgPool2d extends Pool2d {
  constructor(kernelSize: Pair, options: { stride?: Pair; padding?: Pair } = {}) {
    super('AvgPool2d', kernelSize, options);
  }
  forward(x: Tensor): Tensor {
    checkImage('AvgPool2d', x);
    const [N, C, H, W] = x.shape, [KH, KW] = this.kernelSize, [SH, SW] = this.stride, [PH, PW] = this.padding;
    const [OH, OW] = outSize('AvgPool2d', x, this.kernelSize, this.stride, this.padding);
    // each output averages the in-image part of its window over the full window size
    const windows = (visit: (o: number, i: number) => void) => {
      for (let p = 0; p < N * C; p++)
        for (let oh = 0; oh < OH; oh++)
          for (let ow = 0; ow < OW; ow++)
            for (let h = Math.max(oh * SH - PH, 0); h < Math.min(oh * SH - PH + KH, H); h++)
              for (let w = Math.max(ow * SW - PW, 0); w < Math.min(ow * SW - PW + KW, W); w++)
                visit((p * OH + oh) * OW + ow, p * H * W + h * W + w);
    };
    const scale = 1 / (KH * KW), y = allocateZeroed(N * C * OH * OW), xv = x.values;
    windows((o, i) => (y[o] += xv[i] * scale));
    return record('avgPool2d', y, [N, C, OH, OW], [x], (g) => {
      const dx = allocateZeroed(x.size);
      windows((o, i) => (dx[i] += g[o] * scale));
      return [dx];
    });
  }
}

/**
 * Layer normalization over the trailing normalizedShape dimensions (biased variance), as PyTorch's
 * LayerNorm, composed from differentiable tensor ops.
 * @example new nn.LayerNorm([4, 5]).forward(x) // x (..., 4, 5)
 * @throws {RangeError} when the input's trailing dimensions are not normalizedShape
 */
export class LayerNorm extends Module {
  readonly normalizedShape: number[];
  readonly eps: number;
  readonly weight: Tensor | null;
  readonly bias: Tensor | null;
  constructor(normalizedShape: number | number[], options: { eps?: number; elementwiseAffine?: boolean } = {}) {
    super();
    this.normalizedShape = typeof normalizedShape === 'number' ? [normalizedShape] : [...normalizedShape];
    if (!this.normalizedShape.length || !this.normalizedShape.every((d) => Number.isInteger(d) && d >= 1))
      throw new RangeError(`LayerNorm: expected normalizedShape of positive integers but received ${JSON.stringify(normalizedShape)}`);
    this.eps = options.eps ?? 1e-5;
    const affine = options.elementwiseAffine ?? true;
    this.weight = this.registerParameter('weight', affine ? ones(this.normalizedShape) : null);
    this.bias = this.registerParameter('bias', affine ? zeros(this.normalizedShape) : null);
  }
  override extraRepr(): string {
    return `${tuple(this.normalizedShape)}, eps=${pyFloat(this.eps)}, elementwise_affine=${this.weight !== null}`;
  }
  forward(x: Tensor): Tensor {
    const d = this.normalizedShape.length, tail = x.shape.slice(-d);
    if (x.ndim < d || tail.some((s, i) => s !== this.normalizedShape[i]))
      throw new RangeError(`LayerNorm(${fmt(this.normalizedShape)}) expected input of shape [..., ${this.normalizedShape.join(', ')}] but received ${fmt(x.shape)}`);
    const inner = sizeOf(this.normalizedShape);
    const rows = x.reshape(-1, inner);
    const centered = sub(rows, mean(rows, 1, { keepdim: true }));
    const variance = mean(mul(centered, centered), 1, { keepdim: true });
    let y = mul(centered, pow(add(variance, this.eps), -0.5)).reshape(x.shape);
    if (this.weight) y = mul(y, this.weight);
    if (this.bias) y = add(y, this.bias);
    return y;
  }
}

libraryModules.add(Conv2d, MaxPool2d, AvgPool2d, LayerNorm);
