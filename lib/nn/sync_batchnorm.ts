/**
 * SyncBatchNorm: BatchNorm over the global batch of data-parallel training. In training, each rank
 * computes its batch's per-channel statistics (the stats phase kernel), one allGather brings every
 * rank's (count, mean, variance), and their merge normalizes every rank's values; backward reduces
 * the per-channel sums of dy and dy*(x - mean) with one allReduce before the apply phase. In
 * evaluation, or in a world of one, it is plain BatchNorm.
 */
import { backend } from '../backend/index.js';
import * as distributed from '../distributed/index.js';
import { allocate } from '../memory.js';
import { fmt, record, Tensor } from '../tensor.js';
import { mergeBatchNormStats } from './functional.js';
import { BatchNorm1d, BatchNorm2d, BatchNormBase, type BatchNormOptions } from './layers.js';
import { libraryModules, Module } from './module.js';

/**
 * Batch normalization with statistics over every rank's batch, for inputs (N, C, ...), as PyTorch's
 * nn.SyncBatchNorm (which PyTorch runs on GPUs only).
 * @example const model = nn.SyncBatchNorm.convert(makeModel('seed')); // every BatchNorm1d/2d replaced
 * @throws {RangeError} on a wrong channel count, or one value per channel over all ranks in training
 */
export class SyncBatchNorm extends BatchNormBase {
  constructor(numFeatures: number, options: BatchNormOptions = {}) {
    super('SyncBatchNorm', numFeatures, options);
  }

  checkInput(x: Tensor): void {
    if (x.ndim < 2 || x.shape[1] !== this.numFeatures)
      throw new RangeError(`SyncBatchNorm(${this.numFeatures}) expected input of shape [N, ${this.numFeatures}, ...] but received ${fmt(x.shape)}`);
  }

  override forwardWith(x: Tensor, relu: boolean): Tensor {
    if (!this.training || !distributed.isInitialized() || distributed.worldSize() === 1) return super.forwardWith(x, relu);
    this.checkInput(x);
    const k = backend(), [N, C] = x.shape, S = x.size / Math.max(N * C, 1);
    // this rank's statistics as [count, mean..., variance...], then every rank's, merged
    const mine = new Float32Array(1 + 2 * C);
    mine[0] = N * S;
    if (N * S > 0) k.batchnormStats(mine.subarray(1, 1 + C), mine.subarray(1 + C), x.values, N, C, S);
    const all = distributed.gatherNow(mine), width = 1 + 2 * C;
    const parts = Array.from({ length: all.length / width }, (_, r) => all.subarray(r * width, (r + 1) * width)).filter((p) => p[0] > 0)
      .map((p) => ({ count: p[0], mean: p.subarray(1, 1 + C), variance: p.subarray(1 + C) }));
    const global = mergeBatchNormStats(parts);
    if (global.count <= 1) throw new RangeError(`Expected more than 1 value per channel when training, got input size ${fmt(x.shape)} on ${parts.length} ranks`);
    const { mean, variance, count } = global;
    const invstd = Float32Array.from(variance, (v) => 1 / Math.sqrt(v + this.eps));
    if (this.running_mean && this.running_var && this.num_batches_tracked) {
      const f = this.momentum ?? 1 / (this.num_batches_tracked.values[0] + 1), rm = this.running_mean.values, rv = this.running_var.values;
      for (let c = 0; c < C; c++) {
        rm[c] = (1 - f) * rm[c] + f * mean[c];
        rv[c] = (1 - f) * rv[c] + (f * variance[c] * count) / (count - 1); // the global unbiased variance
      }
      this.num_batches_tracked.values[0] += 1;
    }
    const w = this.weight?.values ?? null, b = this.bias?.values ?? null;
    const y = allocate(x.size); // the kernel writes every value
    k.batchnormApply(y, x.values, mean, invstd, w, b, N, C, S, relu);
    const inputs = [x, ...(this.weight ? [this.weight] : []), ...(this.bias ? [this.bias] : [])];
    const weight = this.weight, bias = this.bias;
    return record(relu ? 'syncBatchNormRelu' : 'syncBatchNorm', y, [...x.shape], inputs, (g) => {
      const sums = new Float32Array(2 * C), sumDy = sums.subarray(0, C), sumDyXmu = sums.subarray(C);
      k.batchnormBackwardReduce(sumDy, sumDyXmu, g, x.values, mean, relu ? y : null, N, C, S);
      // the parameters' gradients from this rank's sums (DistributedDataParallel averages them)
      const dw = weight?.requiresGrad ? Float32Array.from(sumDyXmu, (v, c) => v * invstd[c]) : null;
      const db = bias?.requiresGrad ? sumDy.slice() : null;
      distributed.reduceNow(sums);
      const dx = x.requiresGrad ? allocate(x.size) : null;
      if (dx) k.batchnormBackwardApply(dx, g, x.values, mean, invstd, w, sumDy, sumDyXmu, relu ? y : null, count, N, C, S);
      return [dx, ...(weight ? [dw] : []), ...(bias ? [db] : [])];
    });
  }

  /**
   * module with every BatchNorm1d and BatchNorm2d replaced by a SyncBatchNorm that shares its
   * parameters and buffers (module itself when it is one).
   */
  static convert<M extends Module>(module: M): M {
    if (module instanceof BatchNorm1d || module instanceof BatchNorm2d) {
      const sync = new SyncBatchNorm(module.numFeatures, {
        eps: module.eps, momentum: module.momentum, affine: module.weight !== null, trackRunningStats: module.running_mean !== null,
      });
      for (const name of ['weight', 'bias', 'running_mean', 'running_var', 'num_batches_tracked'] as const)
        (sync as unknown as Record<string, unknown>)[name] = module[name];
      sync.training = module.training;
      return sync as unknown as M;
    }
    for (const [name, child] of module.namedChildren()) {
      const converted = SyncBatchNorm.convert(child);
      if (converted !== child) (module as unknown as Record<string, unknown>)[name] = converted;
    }
    return module;
  }
}

libraryModules.add(SyncBatchNorm);
