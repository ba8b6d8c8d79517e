/** Conv2d (im2col + one GEMM for the batch), MaxPool2d and AvgPool2d, LayerNorm. */
import { backend } from '../backend/index.js';
import { checkPositiveInt } from '../check.js';
import {
  add, fmt, gradOverwrite, gradScratch, gradTarget, mean, mul, ones, pow, record, recycle, sizeOf, sub, Tensor, uninitialized, uninitializedInt32, zeros,
} from '../tensor.js';
import { uniformTensor } from './layers.js';
import { Module } from './module.js';

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

  forward(x: Tensor): Tensor {
    if (x.ndim !== 4 || x.shape[1] !== this.inChannels)
      throw new RangeError(`Conv2d(${this.inChannels}, ${this.outChannels}) expected input of shape [N, ${this.inChannels}, H, W] but received ${fmt(x.shape)}`);
    const [N, C, H, W] = x.shape, [KH, KW] = this.kernelSize, [SH, SW] = this.stride, [PH, PW] = this.padding;
    const [OH, OW] = outSize('Conv2d', x, this.kernelSize, this.stride, this.padding);
    const OC = this.outChannels, CKK = C * KH * KW, P = OH * OW, NP = Math.max(N * P, 1);
    const k = backend(), w = this.weight, b = this.bias;
    // col (CKK, N*P): every image's patches side by side, so the batch is one GEMM. im2col writes all
    // of it, so it comes from the scratch pool and goes back once the backward has used it (14 MB
    // for the cnn model's second layer: allocating it fresh cost page faults and zeroing every step)
    const col = gradScratch(CKK * N * P);
    k.im2col(col, x.data, N, C, H, W, KH, KW, SH, SW, PH, PW);
    // out (OC, N*P) = W (OC, CKK) . col; y (N, OC, P) is out with its first two dimensions swapped,
    // plus the bias, in one pass
    const out = temporary(0, OC * N * P);
    k.sgemm(out, w.data, col, OC, N * P, CKK, false, false, 1, 0, CKK, NP, NP);
    const y = uninitialized(N * OC * P); // convOutput writes every value
    k.convOutput(y, out, b?.data ?? null, N, OC, P);
    const result = record('conv2d', y, [N, OC, OH, OW], b ? [x, w, b] : [x, w], (g) => {
      // gT (OC, N*P): g (N, OC, P) with its first two dimensions swapped, and db (OC) = the sums of
      // its rows, in the same pass (as 96 sum calls they cost the cnn model 0.5 ms a step)
      const gT = temporary(0, OC * N * P);
      const db = b?.requiresGrad ? gradOverwrite(b) : null;
      k.convOutputBackward(gT, db?.data ?? null, g, N, OC, P);
      db?.finish();
      let dx: Float32Array | null = null, dw: Float32Array | null = null;
      if (w.requiresGrad) {
        const t = gradTarget(w); // dW (OC, CKK) = gT (OC, N*P) . col^T
        k.sgemm(t.data, gT, col, OC, CKK, N * P, false, true, 1, t.beta, NP, NP, CKK);
        dw = t.returned;
      }
      if (x.requiresGrad) {
        const dcol = temporary(1, CKK * N * P); // dcol (CKK, N*P) = W^T . gT
        k.sgemm(dcol, w.data, gT, CKK, N * P, OC, true, false, 1, 0, CKK, NP, NP);
        dx = gradScratch(x.size);
        k.col2im(dx, dcol, N, C, H, W, KH, KW, SH, SW, PH, PW);
      }
      recycle(col); // this backward runs once (the graph is released after it)
      return b ? [dx, dw, db?.returned ?? null] : [dx, dw];
    });
    if (!result.requiresGrad) recycle(col); // no backward will read it
    return result;
  }
}

// Arrays that live only inside one forward or backward call (JavaScript runs one at a time), kept
// across calls: a training step needs the same multi-megabyte sizes every time, and fresh ones would
// cost page faults and zeroing on every step.
const temporaries: Float32Array[] = [];
function temporary(slot: number, n: number): Float32Array {
  if (!(temporaries[slot]?.length >= n)) temporaries[slot] = new Float32Array(n);
  return temporaries[slot].subarray(0, n);
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
}

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
    const y = uninitialized(N * C * OH * OW), idx = uninitializedInt32(y.length); // the kernel writes both in full
    backend().maxPool2d(y, idx, x.data, N, C, H, W, ...this.kernelSize, ...this.stride, ...this.padding);
    return record('maxPool2d', y, [N, C, OH, OW], [x], (g) => {
      const dx = gradScratch(x.size); // the kernel writes all of it
      backend().maxPool2dBackward(dx, g, idx, N, C, H, W, OH, OW);
      return [dx];
    });
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
    const scale = 1 / (KH * KW), y = new Float32Array(N * C * OH * OW);
    windows((o, i) => (y[o] += x.data[i] * scale));
    return record('avgPool2d', y, [N, C, OH, OW], [x], (g) => {
      const dx = gradScratch(x.size).fill(0);
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
