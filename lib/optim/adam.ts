import { backend } from '../backend/index.js';
import { Tensor } from '../tensor.js';
import { checkNumber, Optimizer, type ParamsArg } from './optimizer.js';

export interface AdamOptions {
  lr: number;
  betas: [number, number];
  eps: number;
  weightDecay: number;
}

interface AdamState {
  step: number;
  expAvg: Float32Array;
  expAvgSq: Float32Array;
}

abstract class AdamBase extends Optimizer<AdamOptions> {
  private readonly states = new Map<Tensor, AdamState>();
  constructor(name: string, params: ParamsArg<AdamOptions>, defaults: AdamOptions, private readonly decoupled: boolean) {
    super(name, params, defaults);
  }
  protected validate(o: AdamOptions): void {
    checkNumber(this.name, 'lr', o.lr, 0);
    checkNumber(this.name, 'eps', o.eps, 0);
    checkNumber(this.name, 'weightDecay', o.weightDecay, 0);
    if (!Array.isArray(o.betas) || o.betas.length !== 2) throw new TypeError(`${this.name}: expected betas to be [beta1, beta2]`);
    checkNumber(this.name, 'betas[0]', o.betas[0], 0, 1);
    checkNumber(this.name, 'betas[1]', o.betas[1], 0, 1);
  }
  step(): void {
    for (const { params, options: o } of this.paramGroups)
      for (const p of params) {
        const grad = p.gradValue;
        if (!grad) continue;
        let s = this.states.get(p);
        if (!s) this.states.set(p, (s = { step: 0, expAvg: new Float32Array(p.size), expAvgSq: new Float32Array(p.size) }));
        s.step++;
        backend().adamStep(p.values, s.expAvg, s.expAvgSq, grad.values, o.lr, o.betas[0], o.betas[1], o.eps, o.weightDecay, s.step, this.decoupled);
      }
  }
  protected stateOf(p: Tensor) {
    const s = this.states.get(p);
    return s ? { step: s.step, exp_avg: new Tensor(s.expAvg, [...p.shape]), exp_avg_sq: new Tensor(s.expAvgSq, [...p.shape]) } : undefined;
  }
  protected setStateOf(p: Tensor, state: Record<string, Tensor | number>): void {
    const { step, exp_avg: avg, exp_avg_sq: sq } = state;
    if (typeof step === 'number' && avg instanceof Tensor && sq instanceof Tensor)
      this.states.set(p, { step, expAvg: avg.values.slice(), expAvgSq: sq.values.slice() });
    else this.states.delete(p);
  }
  protected stateLayout() {
    return { step: 'number' as const, exp_avg: 'tensor' as const, exp_avg_sq: 'tensor' as const };
  }
}

/**
 * Adam, as torch.optim.Adam: weightDecay is an L2 penalty added to the gradient.
 * @example new optim.Adam(model.parameters(), { lr: 1e-3 })
 * @throws {RangeError} on an out-of-range option
 */
export class Adam extends AdamBase {
  constructor(params: ParamsArg<AdamOptions>, options: Partial<AdamOptions> = {}) {
    super('Adam', params, { lr: 1e-3, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0, ...options }, false);
  }
}

/**
 * AdamW, as torch.optim.AdamW: decoupled weight decay (default 1e-2) applied to the weights.
 * @example new optim.AdamW(model.parameters(), { lr: 1e-3, weightDecay: 0.05 })
 * @throws {RangeError} on an out-of-range option
 */
export class AdamW extends AdamBase {
  constructor(params: ParamsArg<AdamOptions>, options: Partial<AdamOptions> = {}) {
    super('AdamW', params, { lr: 1e-3, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 1e-2, ...options }, true);
  }
}
