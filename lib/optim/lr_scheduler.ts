/** Learning-rate schedulers, as torch.optim.lr_scheduler (closed forms; step() once per epoch). */
import { checkPositiveInt } from '../check.js';
import type { Optimizer } from './optimizer.js';

abstract class LRScheduler {
  /** Epochs stepped so far. */
  lastEpoch = 0;
  readonly baseLrs: number[];
  constructor(readonly optimizer: Optimizer<{ lr: number }>) {
    this.baseLrs = optimizer.paramGroups.map((g) => g.options.lr);
  }
  protected abstract lrAt(baseLr: number, epoch: number): number;
  /** Advances one epoch and sets each group's learning rate. */
  step(): void {
    this.lastEpoch++;
    this.optimizer.paramGroups.forEach((g, i) => (g.options.lr = this.lrAt(this.baseLrs[i], this.lastEpoch)));
  }
  /** The learning rate of each group now. */
  getLastLr(): number[] {
    return this.optimizer.paramGroups.map((g) => g.options.lr);
  }
}

/**
 * lr = baseLr * gamma^floor(epoch / stepSize).
 * @example const sched = new optim.StepLR(opt, { stepSize: 30, gamma: 0.1 }); // after each epoch: sched.step()
 * @throws {RangeError} when stepSize is not a positive integer
 */
export class StepLR extends LRScheduler {
  readonly stepSize: number;
  readonly gamma: number;
  constructor(optimizer: Optimizer<{ lr: number }>, options: { stepSize: number; gamma?: number }) {
    super(optimizer);
    this.stepSize = checkPositiveInt('StepLR', 'stepSize', options?.stepSize);
    this.gamma = options.gamma ?? 0.1;
  }
  protected lrAt(baseLr: number, epoch: number): number {
    return baseLr * this.gamma ** Math.floor(epoch / this.stepSize);
  }
}

/**
 * lr = etaMin + (baseLr - etaMin) * (1 + cos(pi * epoch / tMax)) / 2.
 * @example const sched = new optim.CosineAnnealingLR(opt, { tMax: 10 });
 * @throws {RangeError} when tMax is not a positive integer
 */
export class CosineAnnealingLR extends LRScheduler {
  readonly tMax: number;
  readonly etaMin: number;
  constructor(optimizer: Optimizer<{ lr: number }>, options: { tMax: number; etaMin?: number }) {
    super(optimizer);
    this.tMax = checkPositiveInt('CosineAnnealingLR', 'tMax', options?.tMax);
    this.etaMin = options.etaMin ?? 0;
  }
  protected lrAt(baseLr: number, epoch: number): number {
    return this.etaMin + ((baseLr - this.etaMin) * (1 + Math.cos((Math.PI * epoch) / this.tMax))) / 2;
  }
}
