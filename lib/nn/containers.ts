/** ModuleList and ModuleDict: children held by index or by key, registered as PyTorch's. */
import { Module } from './module.js';

/** @internal modules[i], negative i from the end */
export function moduleAt(fn: string, modules: Module[], i: number): Module {
  const at = i < 0 ? i + modules.length : i;
  if (!Number.isInteger(i) || at < 0 || at >= modules.length)
    throw new RangeError(`${fn}: index ${i} is out of range for ${modules.length} modules`);
  return modules[at];
}

function noForward(container: string): never {
  throw new Error(`${container} has no forward: call its modules' forward`);
}

function checkModule(fn: string, m: unknown): Module {
  if (!(m instanceof Module)) throw new TypeError(`${fn}: expected a Module but received ${m === null ? 'null' : typeof m}`);
  return m;
}

/**
 * A list of modules registered under their indices (`0.weight`, `1.weight`, ...), for a module
 * that builds a variable number of layers. It has no forward of its own.
 * @example
 * const blocks = new nn.ModuleList([new nn.Linear(4, 4), new nn.Linear(4, 4)]);
 * for (const block of blocks) h = block.forward(h);
 */
export class ModuleList<M extends Module = Module> extends Module implements Iterable<M> {
  constructor(modules: Iterable<M> = []) {
    super();
    for (const m of modules) this.append(m);
  }
  forward(): never {
    return noForward('ModuleList');
  }
  get length(): number {
    return this.children().length;
  }
  /** The module at index i (negative counts from the end). @throws {RangeError} out of range */
  at(i: number): M {
    return moduleAt('ModuleList', this.children(), i) as M;
  }
  /** Replaces the module at index i. @throws {RangeError} out of range */
  set(i: number, m: M): this {
    const list = this.children();
    moduleAt('ModuleList', list, i);
    this.registerModule(String(i < 0 ? i + list.length : i), checkModule('ModuleList.set', m));
    return this;
  }
  append(m: M): this {
    this.registerModule(String(this.length), checkModule('ModuleList.append', m));
    return this;
  }
  extend(modules: Iterable<M>): this {
    for (const m of modules) this.append(m);
    return this;
  }
  [Symbol.iterator](): Iterator<M> {
    return (this.children() as M[])[Symbol.iterator]();
  }
}

/**
 * Modules by name, registered under their keys in insertion order (`encoder.weight`). Keys must
 * not name a member of the class (such as `forward` or `keys`), as in PyTorch.
 * @example
 * const heads = new nn.ModuleDict({ digit: new nn.Linear(16, 10), parity: new nn.Linear(16, 2) });
 * heads.get('digit').forward(h);
 */
export class ModuleDict<M extends Module = Module> extends Module {
  constructor(modules: Record<string, M> | Iterable<[string, M]> = {}) {
    super();
    const entries = Symbol.iterator in modules ? modules as Iterable<[string, M]> : Object.entries(modules);
    for (const [k, m] of entries) this.set(k, m);
  }
  forward(): never {
    return noForward('ModuleDict');
  }
  get size(): number {
    return this.children().length;
  }
  /** @throws {RangeError} when there is no module under key */
  get(key: string): M {
    const m = this.namedChildren().find(([k]) => k === key)?.[1];
    if (!m) throw new RangeError(`ModuleDict: no module under key ${JSON.stringify(key)} (keys: ${this.keys().join(', ')})`);
    return m as M;
  }
  has(key: string): boolean {
    return this.keys().includes(key);
  }
  set(key: string, m: M): this {
    this.registerModule(key, checkModule('ModuleDict.set', m));
    return this;
  }
  /** Removes key, returning its module (undefined when absent). */
  delete(key: string): M | undefined {
    if (!this.has(key)) return undefined;
    const m = this.get(key);
    delete (this as unknown as Record<string, unknown>)[key];
    return m;
  }
  keys(): string[] {
    return this.namedChildren().map(([k]) => k);
  }
  values(): M[] {
    return this.children() as M[];
  }
  entries(): [string, M][] {
    return this.namedChildren() as [string, M][];
  }
}
