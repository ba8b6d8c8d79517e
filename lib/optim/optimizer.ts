/** Optimizer base: parameter groups with per-group options, zeroGrad, and a PyTorch-shaped stateDict. */
import { fmt, Tensor, zeroGradOf } from '../tensor.js';

export interface ParamGroup<O> {
  params: Tensor[];
  options: O;
}

export type ParamsArg<O> = Tensor[] | ({ params: Tensor[] } & Partial<O>)[];

export abstract class Optimizer<O extends { lr: number }> {
  readonly paramGroups: ParamGroup<O>[];

  constructor(readonly name: string, params: ParamsArg<O>, defaults: O) {
    if (!Array.isArray(params) || params.length === 0)
      throw new TypeError(`${name}: expected params to be a non-empty array of Tensors or parameter groups`);
    const groups = params[0] instanceof Tensor ? [{ params: params as Tensor[] }] : (params as ({ params: Tensor[] } & Partial<O>)[]);
    this.paramGroups = groups.map((g, i) => {
      if (!g || !Array.isArray(g.params) || !g.params.every((p) => p instanceof Tensor))
        throw new TypeError(`${name}: expected parameter group ${i} to have params: Tensor[]`);
      const { params: ps, ...overrides } = g;
      const options = { ...defaults, ...overrides } as O;
      this.validate(options);
      return { params: ps, options };
    });
  }

  protected abstract validate(options: O): void;

  /** One update of every parameter that has a gradient. */
  abstract step(): void;

  /**
   * Clears the gradients of every parameter in every group: sets them to null (setToNone, the
   * default, as PyTorch), or zeroes them in place, keeping the arrays for the next backward to add
   * into (PyTorch's set_to_none=False; a .grad read earlier then changes with the next backward).
   */
  zeroGrad(setToNone = true): void {
    for (const g of this.paramGroups) for (const p of g.params) zeroGradOf(p, setToNone);
  }

  /** A parameter's state (buffers as the optimizer's own arrays), or undefined before its first step. */
  protected abstract stateOf(p: Tensor): Record<string, Tensor | number> | undefined;

  /** Sets a parameter's state from a state dict's entry (already checked to fit p). */
  protected abstract setStateOf(p: Tensor, state: Record<string, Tensor | number>): void;

  /** The state entries of one parameter: each tensor's size, or 'number'. */
  protected abstract stateLayout(): Record<string, 'tensor' | 'number'>;

  /**
   * PyTorch's layout: { state: { index: { momentum_buffer | step, exp_avg, exp_avg_sq } },
   * param_groups: [{ lr, weight_decay, ..., params: [indices] }] }, indices counting parameters
   * across groups, option names as PyTorch's; the buffers are copies.
   * @example Object.keys(new optim.SGD(model.parameters(), { lr: 0.1 }).stateDict()) // ['state', 'param_groups']
   */
  stateDict(): OptimizerStateDict {
    const state: OptimizerStateDict['state'] = {};
    let index = 0;
    const param_groups = this.paramGroups.map((g) => ({
      ...Object.fromEntries(Object.entries(g.options).map(([k, v]) => [snakeCase(k), Array.isArray(v) ? [...v] : v])),
      params: g.params.map((p) => {
        const s = this.stateOf(p);
        if (s) state[index] = Object.fromEntries(Object.entries(s).map(([k, v]) => [k, v instanceof Tensor ? new Tensor(v.values.slice(), [...v.shape]) : v]));
        return index++;
      }),
    }));
    return { state, param_groups };
  }

  /**
   * Restores options and per-parameter state from stateDict()'s layout (values copied), as
   * PyTorch's load_state_dict: the groups and their sizes must match this optimizer's.
   * @throws {RangeError} when the groups, a parameter's state or an option do not fit, naming which
   */
  loadStateDict(dict: OptimizerStateDict): void {
    const fn = `${this.name}.loadStateDict`;
    if (!dict || typeof dict !== 'object' || !Array.isArray(dict.param_groups) || typeof dict.state !== 'object' || dict.state === null)
      throw new TypeError(`${fn}: expected { state, param_groups } as stateDict() returns`);
    if (dict.param_groups.length !== this.paramGroups.length)
      throw new RangeError(`${fn}: the state dict has ${dict.param_groups.length} parameter groups but the optimizer has ${this.paramGroups.length}`);
    const params = this.paramGroups.flatMap((g) => g.params);
    const options = dict.param_groups.map((group, i) => {
      const mine = this.paramGroups[i];
      if (!Array.isArray(group.params) || group.params.length !== mine.params.length)
        throw new RangeError(`${fn}: parameter group ${i} holds ${group.params?.length} parameters in the state dict but ${mine.params.length} here`);
      const o = { ...mine.options } as Record<string, unknown>;
      for (const [k, v] of Object.entries(group)) {
        if (k === 'params') continue;
        const key = camelCase(k);
        if (k in PYTORCH_NEUTRAL && !(key in o)) {
          if (v !== PYTORCH_NEUTRAL[k]) throw new RangeError(`${fn}: parameter group ${i} sets ${k}=${JSON.stringify(v)}, which ${this.name} does not do`);
          continue;
        }
        if (!(key in o)) throw new RangeError(`${fn}: parameter group ${i} has an option ${k} that ${this.name} does not know`);
        o[key] = Array.isArray(v) ? [...v] : v;
      }
      this.validate(o as O);
      return o as O;
    });
    const layout = this.stateLayout(), states = new Map<Tensor, Record<string, Tensor | number>>();
    for (const [key, entry] of Object.entries(dict.state)) {
      const p = params[Number(key)];
      if (!p) throw new RangeError(`${fn}: state for parameter ${key}, but there are ${params.length} parameters`);
      for (const [name, kind] of Object.entries(layout)) {
        const v = entry?.[name];
        if (kind === 'number' ? typeof v !== 'number' : !(v instanceof Tensor) || v.size !== p.size)
          throw new RangeError(`${fn}: state ${key}.${name} should be ${kind === 'number' ? 'a number' : `a tensor of ${p.size} values (shape ${fmt(p.shape)})`}` +
            ` but is ${v instanceof Tensor ? `of shape ${fmt(v.shape)}` : typeof v}`);
      }
      states.set(p, entry);
    }
    // everything checked: now change the optimizer
    this.paramGroups.forEach((g, i) => (g.options = options[i]));
    for (const p of params) this.setStateOf(p, states.get(p) ?? {});
  }
}

/** stateDict()'s layout (PyTorch's). */
export interface OptimizerStateDict {
  state: Record<number, Record<string, Tensor | number>>;
  param_groups: (Record<string, unknown> & { params: number[] })[];
}

/** PyTorch's options that this library does not have, at the values that change nothing (accepted on load). */
const PYTORCH_NEUTRAL: Record<string, unknown> = { maximize: false, foreach: null, differentiable: false, amsgrad: false, capturable: false, fused: false };

const snakeCase = (k: string) => k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
const camelCase = (k: string) => k.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase());

export function checkNumber(fn: string, name: string, v: unknown, lo: number, hi = Infinity, loOpen = false): void {
  if (typeof v !== 'number') throw new TypeError(`${fn}: expected ${name} to be a number but received ${typeof v}`);
  if (!(loOpen ? v > lo : v >= lo) || !(v <= hi) || !Number.isFinite(v))
    throw new RangeError(`${fn}: expected ${name} in ${loOpen ? '(' : '['}${lo}, ${hi === Infinity ? 'inf)' : `${hi}]`} but received ${v}`);
}
