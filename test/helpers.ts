import { evaluate, parse, type Value } from '../lib/backend/expr.js';
import type { KernelSpec } from '../lib/backend/schema.js';
import { loadNative } from '../lib/backend/native.js';
import { tsBackend } from '../lib/backend/ts/index.js';
import type { Backend, Isa } from '../lib/backend/types.js';
import { noGrad, Tensor } from '../lib/tensor.js';
import { expect } from 'vitest';

export { tsBackend };

/**
 * The environment for a program other than Node: without the sanitizer runtimes that
 * `npm run test:asan` preloads into Node (pkill deadlocks under them; TSan's cannot share a
 * process with ASan's).
 */
export function toolEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const { LD_PRELOAD: _preload, ...env } = process.env;
  return { ...env, ...extra };
}
export const native: Backend = loadNative();
export const detectedIsa = native.info().detectedIsa as Isa;
/**
 * Every ISA this machine can run, lowest first. STABLEGRAD_TEST_ISA=name (the emulated runs of
 * scripts/test-emulated.sh) says which ISA the addon must pick on this CPU, and keeps only that one.
 */
const buildIsas = native.info().isas;
const onlyIsa = process.env.STABLEGRAD_TEST_ISA;
if (onlyIsa !== undefined && onlyIsa !== detectedIsa)
  throw new Error(`STABLEGRAD_TEST_ISA=${onlyIsa}, but the addon detected ${detectedIsa} on this CPU`);
export const runnableIsas: Isa[] = onlyIsa !== undefined ? [detectedIsa]
  : buildIsas.filter((isa) => buildIsas.indexOf(isa) <= buildIsas.indexOf(detectedIsa));

/** The native backend capped at `isa` while fn runs (then restored to the CPU's best). */
export function withIsa<T>(isa: Isa, fn: () => T): T {
  native.setIsa(isa);
  try {
    return fn();
  } finally {
    native.setIsa(detectedIsa);
  }
}

/** Deterministic uniform and normal numbers (mulberry32 + Box-Muller). */
export class Rng {
  private s: number;
  constructor(seed: number) {
    this.s = seed >>> 0;
  }
  uniform(): number {
    let t = (this.s = (this.s + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  normal(): number {
    const u = 1 - this.uniform(), v = this.uniform();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }
  f32(n: number, scale = 1, shift = 0): Float32Array {
    const a = new Float32Array(n);
    for (let i = 0; i < n; i++) a[i] = this.normal() * scale + shift;
    return a;
  }
  int(n: number, hi: number): Int32Array {
    const a = new Int32Array(n);
    for (let i = 0; i < n; i++) a[i] = Math.floor(this.uniform() * hi);
    return a;
  }
}

/**
 * The largest |a - b| / (|b| + atol) over both arrays: relative for values of the array's own size,
 * absolute near zero, where float32 results that cancel (a BatchNorm gradient with N = 2, a loss
 * that is 0 in exact arithmetic) are rounding noise of the inputs' magnitude. atol defaults to 1% of
 * the largest |b|. NaN must match NaN.
 */
export function maxError(a: ArrayLike<number>, b: ArrayLike<number>, atol?: number): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} != ${b.length}`);
  const floor = atol ?? Math.max(1e-30, 0.01 * maxAbs(b));
  let worst = 0;
  for (let i = 0; i < a.length; i++) {
    if (Number.isNaN(a[i]) || Number.isNaN(b[i])) {
      if (Number.isNaN(a[i]) !== Number.isNaN(b[i])) return Infinity;
      continue;
    }
    if (a[i] === b[i]) continue;
    worst = Math.max(worst, Math.abs(a[i] - b[i]) / (floor + Math.abs(b[i])));
  }
  return worst;
}

/** The first index where a and b differ in bits, as "i: a vs b", or null when they are identical. */
export function firstBitDifference(a: Float32Array, b: Float32Array): string | null {
  if (a.length !== b.length) return `lengths ${a.length} vs ${b.length}`;
  const ua = new Uint32Array(a.buffer, a.byteOffset, a.length), ub = new Uint32Array(b.buffer, b.byteOffset, b.length);
  for (let i = 0; i < a.length; i++) if (ua[i] !== ub[i]) return `${i}: ${a[i]} vs ${b[i]}`;
  return null;
}

export function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) if (Math.abs(a[i]) > m) m = Math.abs(a[i]);
  return m;
}

export function copy(a: Float32Array): Float32Array {
  return new Float32Array(a);
}

/** Central differences of f (a scalar function of x) against x.grad after f(x).backward(). */
export function gradcheck(name: string, f: (x: Tensor) => Tensor, x: Tensor, h = 1e-2, tol = 1e-2): void {
  const leaf = new Tensor(new Float32Array(x.data), [...x.shape], true);
  f(leaf).backward();
  const grad = leaf.grad!.data;
  const scale = Math.max(1e-3, ...Array.from(grad, Math.abs));
  noGrad(() => {
    for (let i = 0; i < x.size; i++) {
      const saved = x.data[i];
      x.data[i] = saved + h;
      const up = f(x).item();
      x.data[i] = saved - h;
      const down = f(x).item();
      x.data[i] = saved;
      const fd = (up - down) / (2 * h);
      if (!(Math.abs(fd - grad[i]) / scale <= tol)) expect.fail(`${name}: d/dx[${i}] finite difference ${fd} vs autograd ${grad[i]}`);
    }
  });
}

export type Kind = 'f32' | 'f32?' | 'f32 any length' | 'u8 any length' | 'i32' | 'size' | 'num' | 'bool';
export interface Arg { name: string; kind: Kind; value: unknown; atLeast?: boolean }

/**
 * A valid call of a kernel, from its schema: the example's sizes and scalars (else sizes 2,
 * numbers 0.5, flags false), and arrays of the lengths the schema requires for them (zeros; an
 * array of any length as long as the example's `len(name)`, else 5); `sizes` overrides the example's;
 * an array longer than maxLength is an error (not allocated).
 */
export function validCall(spec: KernelSpec, sizes: Record<string, number> = {}, maxLength = Infinity): Arg[] {
  const example: Record<string, number | boolean> = { ...spec.example, ...sizes };
  const values = new Map<string, Value>();
  const get = (n: string): Value => {
    if (!values.has(n)) values.set(n, evaluate(parse(spec.derive![n as keyof typeof spec.derive] as string), get));
    return values.get(n)!;
  };
  for (const a of spec.args)
    if (a.kind === 'size' || a.kind === 'num' || a.kind === 'flag')
      values.set(a.name, example[a.name] ?? (a.kind === 'size' ? 2 : a.kind === 'num' ? 0.5 : false));
  return spec.args.map((a): Arg => {
    if (a.kind === 'size' || a.kind === 'num') return { name: a.name, kind: a.kind, value: values.get(a.name) };
    if (a.kind === 'flag') return { name: a.name, kind: 'bool', value: values.get(a.name) };
    const n = a.len ? (evaluate(parse(a.len), get) as number) : (example[`len(${a.name})`] as number | undefined) ?? 5;
    if (n > maxLength) throw new RangeError(`${a.name} would need ${n} elements`);
    const value = a.kind === 'i32' ? new Int32Array(n) : a.kind === 'u8' ? new Uint8Array(n) : new Float32Array(n);
    values.set(a.name, value);
    const kind: Kind = a.kind === 'u8' ? 'u8 any length' : a.len === null ? 'f32 any length' : a.kind;
    return { name: a.name, kind, value, atLeast: a.atLeast };
  });
}

/** Runs fn on both backends with identical inputs and returns both results. */
export function both<T>(fn: (b: Backend) => T): [T, T] {
  return [fn(native), fn(tsBackend)];
}
