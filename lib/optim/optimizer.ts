/** Optimizer base: parameter groups with per-group options, zeroGrad, and a PyTorch-shaped stateDict. */
import { Tensor, zeroGradOf } from '../tensor.js';

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

  /** Per-parameter state by the parameter's index across groups, as PyTorch. */
  protected abstract stateOf(p: Tensor): Record<string, Tensor | number> | undefined;

  /**
   * { state: { index: { ...buffers } }, paramGroups: [{ ...options, params: [indices] }] }, with the
   * buffers as copies.
   */
  stateDict(): { state: Record<number, Record<string, Tensor | number>>; paramGroups: (O & { params: number[] })[] } {
    const state: Record<number, Record<string, Tensor | number>> = {};
    let index = 0;
    const paramGroups = this.paramGroups.map((g) => ({
      ...g.options,
      params: g.params.map((p) => {
        const s = this.stateOf(p);
        if (s) state[index] = Object.fromEntries(Object.entries(s).map(([k, v]) => [k, v instanceof Tensor ? new Tensor(v.values.slice(), [...v.shape]) : v]));
        return index++;
      }),
    }));
    return { state, paramGroups };
  }
}

export function checkNumber(fn: string, name: string, v: unknown, lo: number, hi = Infinity, loOpen = false): void {
  if (typeof v !== 'number') throw new TypeError(`${fn}: expected ${name} to be a number but received ${typeof v}`);
  if (!(loOpen ? v > lo : v >= lo) || !(v <= hi) || !Number.isFinite(v))
    throw new RangeError(`${fn}: expected ${name} in ${loOpen ? '(' : '['}${lo}, ${hi === Infinity ? 'inf)' : `${hi}]`} but received ${v}`);
}
