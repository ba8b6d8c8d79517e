/** Learning-rate schedulers, as torch.optim.lr_scheduler (closed forms; step() once per epoch). */
import { checkPositiveInt } from '../check.js';
import type { Optimizer } from './optimizer.js';

export abstract class LRScheduler {
  /** Epochs stepped so far. */
  lastEpoch = 0;
  baseLrs: number[];
  constructor(readonly optimizer: Optimizer<{ lr: number }>) {
    this.baseLrs = optimizer.paramGroups.map((g) => g.options.lr);
  }
  /** The schedule's settings by PyTorch's names (step_size, gamma, ...). */
  protected abstract settings(): Record<string, number>;
  protected abstract setSettings(settings: Record<string, number>): void;

  /**
   * PyTorch's layout: the settings, last_epoch, base_lrs and _last_lr (the optimizer's learning
   * rates live in the optimizer's own state dict).
   */
  stateDict(): Record<string, number | number[]> {
    return { ...this.settings(), last_epoch: this.lastEpoch, base_lrs: [...this.baseLrs], _last_lr: this.getLastLr() };
  }

  /** Restores what stateDict() returned. @throws {RangeError} when it does not fit this scheduler */
  loadStateDict(dict: Record<string, number | number[]>): void {
    const fn = `${this.constructor.name}.loadStateDict`;
    const { last_epoch: lastEpoch, base_lrs: baseLrs, _last_lr: _, ...settings } = dict ?? {};
    if (!Number.isInteger(lastEpoch) || (lastEpoch as number) < 0) throw new RangeError(`${fn}: expected last_epoch to be a non-negative integer but received ${String(lastEpoch)}`);
    if (!Array.isArray(baseLrs) || baseLrs.length !== this.baseLrs.length || !baseLrs.every(Number.isFinite))
      throw new RangeError(`${fn}: expected base_lrs to be ${this.baseLrs.length} numbers (one per parameter group) but received ${JSON.stringify(baseLrs)}`);
    const known = Object.keys(this.settings());
    for (const [k, v] of Object.entries(settings))
      if (!known.includes(k) || typeof v !== 'number') throw new RangeError(`${fn}: unexpected setting ${k}=${JSON.stringify(v)} (expected ${known.join(', ')})`);
    this.setSettings(settings as Record<string, number>);
    this.lastEpoch = lastEpoch as number;
    this.baseLrs = [...baseLrs];
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
  stepSize: number;
  gamma: number;
  constructor(optimizer: Optimizer<{ lr: number }>, options: { stepSize: number; gamma?: number }) {
    super(optimizer);
    this.stepSize = checkPositiveInt('StepLR', 'stepSize', options?.stepSize);
    this.gamma = options.gamma ?? 0.1;
  }
  protected lrAt(baseLr: number, epoch: number): number {
    return baseLr * this.gamma ** Math.floor(epoch / this.stepSize);
  }
  protected settings() {
    return { step_size: this.stepSize, gamma: this.gamma };
  }
  protected setSettings(s: Record<string, number>): void {
    this.stepSize = checkPositiveInt('StepLR', 'step_size', s.step_size ?? this.stepSize);
    this.gamma = s.gamma ?? this.gamma;
  }
}

/**
 * lr = etaMin + (baseLr - etaMin) * (1 + cos(pi * epoch / tMax)) / 2.
 * @example const sched = new optim.CosineAnnealingLR(opt, { tMax: 10 });
 * @throws {RangeError} when tMax is not a positive integer
 */
export class CosineAnnealingLR extends LRScheduler {
  tMax: number;
  etaMin: number;
  constructor(optimizer: Optimizer<{ lr: number }>, options: { tMax: number; etaMin?: number }) {
    super(optimizer);
    this.tMax = checkPositiveInt('CosineAnnealingLR', 'tMax', options?.tMax);
    this.etaMin = options.etaMin ?? 0;
  }
  protected lrAt(baseLr: number, epoch: number): number {
    return this.etaMin + ((baseLr - this.etaMin) * (1 + Math.cos((Math.PI * epoch) / this.tMax))) / 2;
  }
  protected settings() {
    return { T_max: this.tMax, eta_min: this.etaMin };
  }
  protected setSettings(s: Record<string, number>): void {
    this.tMax = checkPositiveInt('CosineAnnealingLR', 'T_max', s.T_max ?? this.tMax);
    this.etaMin = s.eta_min ?? this.etaMin;
  }
}
