/** Loss modules over nn.functional's crossEntropy and mseLoss. */
import type { Tensor } from '../tensor.js';
import { crossEntropy, mseLoss, type Reduction } from './functional.js';

/**
 * Softmax cross-entropy from logits (N, K) and class indices (a Tensor, Int32Array, Uint8Array or
 * number[]), as PyTorch's CrossEntropyLoss.
 * @example const loss = new nn.CrossEntropyLoss().forward(logits, labels); loss.backward();
 * @throws {TypeError} when targets are not class indices
 * @throws {RangeError} on an out-of-range class index or a count mismatch
 */
export class CrossEntropyLoss {
  readonly reduction: Reduction;
  readonly labelSmoothing: number;
  constructor(options: { reduction?: Reduction; labelSmoothing?: number } = {}) {
    this.reduction = options.reduction ?? 'mean';
    this.labelSmoothing = options.labelSmoothing ?? 0;
  }
  forward(logits: Tensor, target: Tensor | Int32Array | Uint8Array | number[]): Tensor {
    return crossEntropy(logits, target, { reduction: this.reduction, labelSmoothing: this.labelSmoothing });
  }
}

/**
 * Mean squared error, as PyTorch's MSELoss.
 * @example new nn.MSELoss().forward(prediction, target)
 * @throws {RangeError} when the shapes differ
 */
export class MSELoss {
  readonly reduction: Reduction;
  constructor(options: { reduction?: Reduction } = {}) {
    this.reduction = options.reduction ?? 'mean';
  }
  forward(input: Tensor, target: Tensor): Tensor {
    return mseLoss(input, target, { reduction: this.reduction });
  }
}
