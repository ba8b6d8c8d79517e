/**
 * Module: the base of every layer, PyTorch's nn.Module with JavaScript naming. Parameters,
 * buffers and children are kept in registration order, which fixes the state-dict order and keys
 * exactly as PyTorch's (`0.weight`, `1.running_mean`, `1.num_batches_tracked`).
 */
import { fmt, Tensor, zeroGradOf } from '../tensor.js';

/**
 * @internal The library's own module classes, whose forward passes their input to nothing but the
 * library's ops and keeps no reference to it (see Sequential.forward). Not their subclasses.
 */
export const libraryModules = {
  classes: new Set<unknown>(),
  add(...classes: unknown[]): void {
    for (const c of classes) this.classes.add(c);
  },
};

/**
 * @internal m is an instance of one of the library's own classes, its forward not replaced, and so
 * are all its descendants (a Sequential of them).
 */
export function isLibraryModule(m: Module): boolean {
  const cls = m.constructor as { prototype: Module };
  return libraryModules.classes.has(cls) && m.forward === cls.prototype.forward && m.children().every(isLibraryModule);
}

export abstract class Module {
  /** Whether the module is in training mode (see train() and eval()). */
  training = true;
  private readonly params = new Map<string, Tensor | null>();
  private readonly bufs = new Map<string, Tensor | null>();
  private readonly mods = new Map<string, Module>();

  abstract forward(input: Tensor): Tensor;

  /** Registers a learnable tensor under name (null: an absent optional parameter, e.g. no bias). */
  protected registerParameter(name: string, t: Tensor | null): Tensor | null {
    if (t) t.requiresGrad = true;
    this.params.set(name, t);
    return t;
  }

  /** Registers a non-learnable state tensor (running statistics) under name. */
  protected registerBuffer(name: string, t: Tensor | null): Tensor | null {
    this.bufs.set(name, t);
    return t;
  }

  protected registerModule(name: string, m: Module): Module {
    this.mods.set(name, m);
    return m;
  }

  /** Every parameter of this module and its descendants, each once. */
  parameters(): Tensor[] {
    return [...new Set(this.namedParameters().map(([, t]) => t))];
  }

  /** [name, parameter] pairs with PyTorch's dotted names. @example model.namedParameters()[0][0] // '0.weight' */
  namedParameters(prefix = ''): [string, Tensor][] {
    const own = [...this.params].filter((e): e is [string, Tensor] => e[1] !== null).map(([n, t]): [string, Tensor] => [prefix + n, t]);
    return [...own, ...[...this.mods].flatMap(([n, m]) => m.namedParameters(`${prefix}${n}.`))];
  }

  /** Every buffer (running statistics) of this module and its descendants. */
  buffers(): Tensor[] {
    return this.namedBuffers().map(([, t]) => t);
  }

  namedBuffers(prefix = ''): [string, Tensor][] {
    const own = [...this.bufs].filter((e): e is [string, Tensor] => e[1] !== null).map(([n, t]): [string, Tensor] => [prefix + n, t]);
    return [...own, ...[...this.mods].flatMap(([n, m]) => m.namedBuffers(`${prefix}${n}.`))];
  }

  /** The direct sub-modules. */
  children(): Module[] {
    return [...this.mods.values()];
  }

  namedChildren(): [string, Module][] {
    return [...this.mods];
  }

  /** Sets training mode (BatchNorm uses batch statistics, Dropout drops) on this module and its descendants. */
  train(mode = true): this {
    this.training = mode;
    for (const m of this.mods.values()) m.train(mode);
    return this;
  }

  /** Evaluation mode: train(false). */
  eval(): this {
    return this.train(false);
  }

  /** Clears the gradients of every parameter: sets them to null, or zeroes them in place (see Optimizer.zeroGrad). */
  zeroGrad(setToNone = true): void {
    for (const p of this.parameters()) zeroGradOf(p, setToNone);
  }

  /**
   * Parameters and buffers by PyTorch's keys, in PyTorch's order: each module's own parameters,
   * then its own buffers, then its children's. The tensors are the module's own (not copies).
   * @example Object.keys(model.stateDict()) // ['0.weight', '0.bias', '1.weight', '1.bias', '1.running_mean', ...]
   */
  stateDict(prefix = ''): Record<string, Tensor> {
    const out: Record<string, Tensor> = {};
    for (const [n, t] of this.params) if (t) out[prefix + n] = t;
    for (const [n, t] of this.bufs) if (t) out[prefix + n] = t;
    for (const [n, m] of this.mods) Object.assign(out, m.stateDict(`${prefix}${n}.`));
    return out;
  }

  /**
   * Copies values from dict into this module's parameters and buffers.
   * @param options.strict (default true) every key must match: missing and unexpected keys are errors
   * @returns the keys that were missing and unexpected (empty lists when strict)
   * @throws {RangeError} listing every missing, unexpected (when strict) and mis-shaped key at once
   * @throws {TypeError} when a value is not a Tensor
   */
  loadStateDict(dict: Record<string, Tensor>, options: { strict?: boolean } = {}): { missingKeys: string[]; unexpectedKeys: string[] } {
    const strict = options.strict ?? true;
    const own = this.stateDict();
    const missingKeys = Object.keys(own).filter((k) => !(k in dict));
    const unexpectedKeys = Object.keys(dict).filter((k) => !(k in own));
    const problems: string[] = [];
    for (const [k, v] of Object.entries(dict)) {
      if (!(k in own)) continue;
      if (!(v instanceof Tensor)) throw new TypeError(`loadStateDict: expected ${k} to be a Tensor but received ${v === null ? 'null' : typeof v}`);
      const want = own[k].shape;
      if (v.shape.length !== want.length || v.shape.some((d, i) => d !== want[i]))
        problems.push(`size mismatch for ${k}: expected ${fmt(want)} but received ${fmt(v.shape)}`);
    }
    if (strict && missingKeys.length) problems.unshift(`missing keys: ${missingKeys.join(', ')}`);
    if (strict && unexpectedKeys.length) problems.splice(strict && missingKeys.length ? 1 : 0, 0, `unexpected keys: ${unexpectedKeys.join(', ')}`);
    if (problems.length) throw new RangeError(`loadStateDict: ${problems.join('; ')}`);
    for (const [k, t] of Object.entries(own)) if (k in dict) t.values.set(dict[k].values);
    return { missingKeys, unexpectedKeys };
  }
}
