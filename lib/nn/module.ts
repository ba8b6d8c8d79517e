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

/**
 * A learnable tensor: assigned to a module's property, it is registered as a parameter under the
 * property's name (PyTorch's nn.Parameter). It shares the values of the tensor it wraps.
 * @example this.scale = new nn.Parameter(ones([4]));
 */
export class Parameter extends Tensor {
  constructor(data: Tensor, requiresGrad = true) {
    if (!(data instanceof Tensor)) throw new TypeError(`Parameter: expected a Tensor but received ${describeValue(data)}`);
    super(data.data, [...data.shape], requiresGrad);
  }
}

function describeValue(v: unknown): string {
  return v === null ? 'null' : typeof v === 'object' ? (v as object).constructor?.name ?? 'an object' : typeof v;
}

/** A value that assignment to a property registers as a parameter: a Parameter or a leaf tensor that requires grad. */
function isParameterValue(v: unknown): v is Tensor {
  return v instanceof Parameter || (v instanceof Tensor && v.requiresGrad && v.node === null);
}

/**
 * A module's members, in the order their properties were first assigned (property order, as
 * PyTorch's registration order). Parameters are properties holding a Parameter or a leaf tensor
 * that requires grad, or registered with registerParameter (which may hold null); buffers are
 * registered with registerBuffer; children are properties holding a Module.
 */
interface Members {
  params: [string, Tensor | null][];
  buffers: [string, Tensor | null][];
  modules: [string, Module][];
}

export abstract class Module {
  /** Whether the module is in training mode (see train() and eval()). */
  training = true;
  /** names registered as parameters (kept so even when their value is null or stops requiring grad) and as buffers */
  readonly #parameterNames = new Set<string>();
  readonly #bufferNames = new Set<string>();

  /** The module's computation: each subclass defines it, with any arguments and result. */
  abstract forward(...args: any[]): any; // eslint-disable-line @typescript-eslint/no-explicit-any

  #members(): Members {
    const members: Members = { params: [], buffers: [], modules: [] };
    const self = this as unknown as Record<string, unknown>;
    for (const key of Object.keys(this)) {
      const v = self[key];
      if (this.#bufferNames.has(key)) {
        if (v !== null && v !== undefined && !(v instanceof Tensor))
          throw new TypeError(`${this.constructor.name}: buffer '${key}' must be a Tensor or null but holds ${describeValue(v)}`);
        members.buffers.push([key, v ?? null]);
      } else if (v instanceof Module) {
        members.modules.push([key, v]);
      } else if (this.#parameterNames.has(key) || isParameterValue(v)) {
        if (v !== null && v !== undefined && !(v instanceof Tensor))
          throw new TypeError(`${this.constructor.name}: parameter '${key}' must be a Tensor or null but holds ${describeValue(v)}`);
        this.#parameterNames.add(key); // a parameter stays one when frozen (requiresGrad = false)
        members.params.push([key, v ?? null]);
      }
    }
    return members;
  }

  #checkName(fn: string, name: string): void {
    if (typeof name !== 'string' || name === '' || name.includes('.'))
      throw new TypeError(`${fn}: expected name to be a non-empty string without '.' but received ${JSON.stringify(name)}`);
    if (name in this && !Object.prototype.hasOwnProperty.call(this, name))
      throw new RangeError(`${fn}: '${name}' is already a member of ${this.constructor.name} (a method or accessor)`);
  }

  /**
   * Registers t as a learnable tensor under name, as the property of that name (null: an absent
   * optional parameter, e.g. no bias). Assigning a Parameter to a property does the same.
   */
  registerParameter<T extends Tensor | null>(name: string, t: T): T {
    this.#checkName('registerParameter', name);
    if (t !== null && !(t instanceof Tensor)) throw new TypeError(`registerParameter: expected a Tensor or null but received ${describeValue(t)}`);
    if (t) t.requiresGrad = true;
    this.#parameterNames.add(name);
    (this as unknown as Record<string, unknown>)[name] = t;
    return t;
  }

  /** Registers a non-learnable state tensor (running statistics) under name, as the property of that name. */
  registerBuffer<T extends Tensor | null>(name: string, t: T): T {
    this.#checkName('registerBuffer', name);
    if (t !== null && !(t instanceof Tensor)) throw new TypeError(`registerBuffer: expected a Tensor or null but received ${describeValue(t)}`);
    this.#bufferNames.add(name);
    (this as unknown as Record<string, unknown>)[name] = t;
    return t;
  }

  /** Registers m as a child under name, as the property of that name; assigning a Module to a property does the same. */
  registerModule<M extends Module>(name: string, m: M): M {
    this.#checkName('registerModule', name);
    if (!(m instanceof Module)) throw new TypeError(`registerModule: expected a Module but received ${describeValue(m)}`);
    (this as unknown as Record<string, unknown>)[name] = m;
    return m;
  }

  /** The settings shown inside this module's printed form (PyTorch's extra_repr), e.g. 'in_features=4, out_features=2, bias=true'. */
  extraRepr(): string {
    return '';
  }

  /**
   * The module's structure as PyTorch prints it: its name and settings, each child on its own line.
   * @example String(new nn.Sequential(new nn.Linear(4, 2), new nn.ReLU()))
   * // 'Sequential(\n  (0): Linear(in_features=4, out_features=2, bias=true)\n  (1): ReLU()\n)'
   */
  toString(): string {
    const extra = this.extraRepr(), children = this.namedChildren();
    if (!children.length) return `${this.constructor.name}(${extra})`;
    const lines = [...(extra ? extra.split('\n') : []), ...children.map(([n, m]) => `(${n}): ${String(m)}`)];
    return `${this.constructor.name}(\n${lines.map((l) => '  ' + l.replace(/\n/g, '\n  ')).join('\n')}\n)`;
  }

  /** console.log and util.inspect print toString(). */
  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return this.toString();
  }

  /** Every parameter of this module and its descendants, each once. */
  parameters(): Tensor[] {
    return [...new Set(this.namedParameters().map(([, t]) => t))];
  }

  /** [name, parameter] pairs with PyTorch's dotted names. @example model.namedParameters()[0][0] // '0.weight' */
  namedParameters(prefix = ''): [string, Tensor][] {
    const { params, modules } = this.#members();
    const own = params.filter((e): e is [string, Tensor] => e[1] !== null).map(([n, t]): [string, Tensor] => [prefix + n, t]);
    return [...own, ...modules.flatMap(([n, m]) => m.namedParameters(`${prefix}${n}.`))];
  }

  /** Every buffer (running statistics) of this module and its descendants. */
  buffers(): Tensor[] {
    return this.namedBuffers().map(([, t]) => t);
  }

  namedBuffers(prefix = ''): [string, Tensor][] {
    const { buffers, modules } = this.#members();
    const own = buffers.filter((e): e is [string, Tensor] => e[1] !== null).map(([n, t]): [string, Tensor] => [prefix + n, t]);
    return [...own, ...modules.flatMap(([n, m]) => m.namedBuffers(`${prefix}${n}.`))];
  }

  /** The direct sub-modules. */
  children(): Module[] {
    return this.#members().modules.map(([, m]) => m);
  }

  namedChildren(): [string, Module][] {
    return this.#members().modules;
  }

  /** This module and every descendant, with dotted names ('' for this one), depth first. */
  namedModules(prefix = ''): [string, Module][] {
    return [[prefix, this], ...this.namedChildren().flatMap(([n, m]) => m.namedModules(prefix ? `${prefix}.${n}` : n))];
  }

  /** This module and every descendant, depth first. */
  modules(): Module[] {
    return this.namedModules().map(([, m]) => m);
  }

  /** Sets training mode (BatchNorm uses batch statistics, Dropout drops) on this module and its descendants. */
  train(mode = true): this {
    this.training = mode;
    for (const m of this.children()) m.train(mode);
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
    const { params, buffers, modules } = this.#members();
    for (const [n, t] of [...params, ...buffers]) if (t) out[prefix + n] = t;
    for (const [n, m] of modules) Object.assign(out, m.stateDict(`${prefix}${n}.`));
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
    // keys are data: a key named toString or __proto__ is one like any other
    const has = (o: object, k: string) => Object.prototype.hasOwnProperty.call(o, k);
    const missingKeys = Object.keys(own).filter((k) => !has(dict, k));
    const unexpectedKeys = Object.keys(dict).filter((k) => !has(own, k));
    const problems: string[] = [];
    for (const [k, v] of Object.entries(dict)) {
      if (!has(own, k)) continue;
      if (!(v instanceof Tensor)) throw new TypeError(`loadStateDict: expected ${k} to be a Tensor but received ${v === null ? 'null' : typeof v}`);
      const want = own[k].shape;
      if (v.shape.length !== want.length || v.shape.some((d, i) => d !== want[i]))
        problems.push(`size mismatch for ${k}: expected ${fmt(want)} but received ${fmt(v.shape)}`);
    }
    if (strict && missingKeys.length) problems.unshift(`missing keys: ${missingKeys.join(', ')}`);
    if (strict && unexpectedKeys.length) problems.splice(strict && missingKeys.length ? 1 : 0, 0, `unexpected keys: ${unexpectedKeys.join(', ')}`);
    if (problems.length) throw new RangeError(`loadStateDict: ${problems.join('; ')}`);
    for (const [k, t] of Object.entries(own)) if (has(dict, k)) t.values.set(dict[k].values);
    return { missingKeys, unexpectedKeys };
  }
}
