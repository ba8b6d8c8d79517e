/** Gradient tools: clipping by total norm and by value, as torch.nn.utils. */
import { backend } from '../backend/index.js';
import { Tensor } from '../tensor.js';
import { Conv2d } from './conv.js';
import { BatchNorm1d, BatchNorm2d, Linear } from './layers.js';

/** The gradients of params that have one, about to be changed in place (their noted sums of squares forgotten). */
function gradsOf(fn: string, params: Tensor[] | Iterable<Tensor>): Float32Array[] {
  const list = [...params];
  list.forEach((p, i) => {
    if (!(p instanceof Tensor)) throw new TypeError(`${fn}: expected params[${i}] to be a Tensor but received ${p === null ? 'null' : typeof p}`);
  });
  return list.filter((p) => p.gradValue !== null).map((p) => {
    p.gradSquares = undefined;
    return p.gradValue!.values;
  });
}

/**
 * Scales the gradients of params in place so that their total norm is at most maxNorm, and returns
 * the total norm before clipping, computed as PyTorch's clip_grad_norm_ does: the normType-norm of
 * the per-parameter normType-norms (normType Infinity: the largest |gradient|).
 * @example const total = nn.utils.clipGradNorm(model.parameters(), 1.0);
 * @throws {RangeError} when maxNorm or normType is invalid, or, with errorIfNonfinite, when the
 *   total norm is NaN or infinite
 */
export function clipGradNorm(params: Tensor[] | Iterable<Tensor>, maxNorm: number,
  options: { normType?: number; errorIfNonfinite?: boolean } = {}): number {
  const normType = options.normType ?? 2;
  if (!(typeof maxNorm === 'number' && maxNorm >= 0)) throw new RangeError(`clipGradNorm: expected maxNorm >= 0 but received ${maxNorm}`);
  if (!(typeof normType === 'number' && normType > 0)) throw new RangeError(`clipGradNorm: expected normType > 0 (or Infinity) but received ${normType}`);
  const grads = gradsOf('clipGradNorm', params);
  if (grads.length === 0) return 0;
  let total: number;
  if (normType === Infinity) {
    total = 0;
    for (const g of grads) for (let i = 0; i < g.length; i++) total = Math.abs(g[i]) > total || g[i] !== g[i] ? Math.abs(g[i]) : total;
  } else if (normType === 2) {
    total = Math.sqrt(grads.reduce((s, g) => s + backend().sumSquares(g), 0));
  } else {
    let s = 0;
    for (const g of grads) {
      let gs = 0;
      for (let i = 0; i < g.length; i++) gs += Math.abs(g[i]) ** normType;
      s += gs; // (sum_i |g_i|^p)^(1/p) per parameter, then the p-norm of those: the same sum
    }
    total = s ** (1 / normType);
  }
  if (options.errorIfNonfinite && !Number.isFinite(total))
    throw new RangeError(`clipGradNorm: the total norm of order ${normType} for gradients is non-finite (${total}), so it cannot be clipped; set errorIfNonfinite: false to scale the gradients by the non-finite norm anyway`);
  const coef = Math.min(1, maxNorm / (total + 1e-6));
  if (coef < 1 || Number.isNaN(coef)) for (const g of grads) backend().scale(g, g, coef);
  return total;
}

/**
 * Clamps every gradient of params to [-value, value] in place.
 * @example nn.utils.clipGradValue(model.parameters(), 0.5)
 * @throws {RangeError} when value is negative or not finite
 */
export function clipGradValue(params: Tensor[] | Iterable<Tensor>, value: number): void {
  if (!(typeof value === 'number' && value >= 0 && Number.isFinite(value)))
    throw new RangeError(`clipGradValue: expected a finite value >= 0 but received ${value}`);
  for (const g of gradsOf('clipGradValue', params))
    for (let i = 0; i < g.length; i++) g[i] = g[i] > value ? value : g[i] < -value ? -value : g[i];
}

/** Per-channel scale gamma/sqrt(var + eps) and shift beta - mean*scale of a BatchNorm in eval mode. */
function bnAffine(fn: string, bn: BatchNorm1d | BatchNorm2d, channels: number): { scale: Float64Array; shift: Float64Array } {
  if (!bn.runningMean || !bn.runningVar) throw new RangeError(`${fn}: the BatchNorm must track running statistics to be fused`);
  if (bn.numFeatures !== channels)
    throw new RangeError(`${fn}: the layer has ${channels} output channels but the BatchNorm normalises ${bn.numFeatures}`);
  const scale = new Float64Array(channels), shift = new Float64Array(channels);
  for (let c = 0; c < channels; c++) {
    scale[c] = (bn.weight ? bn.weight.values[c] : 1) / Math.sqrt(bn.runningVar.values[c] + bn.eps);
    shift[c] = (bn.bias ? bn.bias.values[c] : 0) - bn.runningMean.values[c] * scale[c];
  }
  return { scale, shift };
}

/** Copies weight * scale[row] and bias * scale + shift into a fresh layer's parameters. */
function fold(weight: Tensor, bias: Tensor | null, into: { weight: Tensor; bias: Tensor | null }, scale: Float64Array, shift: Float64Array): void {
  const rows = scale.length, per = weight.size / rows;
  for (let r = 0; r < rows; r++) {
    for (let i = 0; i < per; i++) into.weight.values[r * per + i] = weight.values[r * per + i] * scale[r];
    into.bias!.values[r] = (bias ? bias.values[r] : 0) * scale[r] + shift[r];
  }
}

/**
 * A Linear equal to bn(linear(x)) in evaluation mode: the BatchNorm folded into weight and bias,
 * for inference without the normalisation pass.
 * @example const fused = nn.utils.fuseLinearBnEval(model.layers[0], model.layers[1]);
 * @throws {RangeError} when the BatchNorm does not match the layer or tracks no statistics
 */
export function fuseLinearBnEval(linear: Linear, bn: BatchNorm1d): Linear {
  const { scale, shift } = bnAffine('fuseLinearBnEval', bn, linear.outFeatures);
  const fused = new Linear(linear.inFeatures, linear.outFeatures).eval();
  fold(linear.weight, linear.bias, fused, scale, shift);
  return fused;
}

/**
 * A Conv2d equal to bn(conv(x)) in evaluation mode.
 * @example const fused = nn.utils.fuseConvBnEval(conv, bn2d);
 * @throws {RangeError} when the BatchNorm does not match the layer or tracks no statistics
 */
export function fuseConvBnEval(conv: Conv2d, bn: BatchNorm2d): Conv2d {
  const { scale, shift } = bnAffine('fuseConvBnEval', bn, conv.outChannels);
  const fused = new Conv2d(conv.inChannels, conv.outChannels, conv.kernelSize, { stride: conv.stride, padding: conv.padding }).eval();
  fold(conv.weight, conv.bias, fused, scale, shift);
  return fused;
}
