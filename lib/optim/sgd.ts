import { backend } from '../backend/index.js';
import { Tensor } from '../tensor.js';
import { checkNumber, Optimizer, type ParamsArg } from './optimizer.js';

export interface SGDOptions {
  lr: number;
  momentum: number;
  dampening: number;
  /** L2 penalty added to the gradient */
  weightDecay: number;
  nesterov: boolean;
}

/**
 * Stochastic gradient descent with momentum, dampening, Nesterov momentum and weight decay, as
 * torch.optim.SGD (one fused kernel per parameter).
 * @example
 * const opt = new optim.SGD([
 *   { params: weights, weightDecay: 5e-4 },
 *   { params: bnParams, weightDecay: 0 },
 * ], { lr: 0.01, momentum: 0.9 });
 * @throws {RangeError} on a negative lr, momentum or weight decay, or nesterov without momentum
 */
export class SGD extends Optimizer<SGDOptions> {
  private readonly buffers = new Map<Tensor, Float32Array>();
  constructor(params: ParamsArg<SGDOptions>, options: Partial<SGDOptions> & { lr: number }) {
    super('SGD', params, { momentum: 0, dampening: 0, weightDecay: 0, nesterov: false, ...options });
  }
  protected validate(o: SGDOptions): void {
    checkNumber('SGD', 'lr', o.lr, 0);
    checkNumber('SGD', 'momentum', o.momentum, 0);
    checkNumber('SGD', 'dampening', o.dampening, 0);
    checkNumber('SGD', 'weightDecay', o.weightDecay, 0);
    if (o.nesterov && (o.momentum <= 0 || o.dampening !== 0))
      throw new RangeError('SGD: Nesterov momentum requires a momentum and zero dampening');
  }
  step(): void {
    for (const { params, options: o } of this.paramGroups)
      for (const p of params) {
        const grad = p.gradValue;
        if (!grad) continue;
        let buf = this.buffers.get(p) ?? null;
        const first = buf === null;
        if (o.momentum !== 0 && !buf) this.buffers.set(p, (buf = new Float32Array(p.size)));
        backend().sgdStep(p.values, o.momentum !== 0 ? buf : null, grad.values, o.lr, o.momentum, o.dampening, o.weightDecay, o.nesterov, first);
      }
  }
  protected stateOf(p: Tensor) {
    const buf = this.buffers.get(p);
    return buf ? { momentum_buffer: new Tensor(buf, [...p.shape]) } : undefined;
  }
  protected setStateOf(p: Tensor, state: Record<string, Tensor | number>): void {
    const buf = state.momentum_buffer;
    if (buf instanceof Tensor) this.buffers.set(p, buf.values.slice());
    else this.buffers.delete(p);
  }
  protected stateLayout() {
    return { momentum_buffer: 'tensor' as const };
  }
}
