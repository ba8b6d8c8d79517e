import { loadNative } from '../lib/backend/native.js';
import { tsBackend } from '../lib/backend/ts/index.js';
import type { Backend, Isa } from '../lib/backend/types.js';
import { noGrad, Tensor } from '../lib/tensor.js';
import { expect } from 'vitest';

export { tsBackend };
export const native: Backend = loadNative();
export const detectedIsa = native.info().detectedIsa as Isa;
/** Every ISA this machine can run, lowest first. */
export const runnableIsas: Isa[] = (['scalar', 'avx2', 'avx512'] as Isa[]).filter(
  (isa) => ['scalar', 'avx2', 'avx512'].indexOf(isa) <= ['scalar', 'avx2', 'avx512'].indexOf(detectedIsa),
);

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

