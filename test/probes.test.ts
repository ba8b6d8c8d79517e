/**
 * The machine probes npm run bench reports against (native only, not part of the Backend
 * contract): fmaPeak counts the FLOPs it did, triad computes STREAM's a = b + s*c, and both reject
 * bad input like every binding.
 */
import { describe, expect, it } from 'vitest';
import { native, runnableIsas, withIsa } from './helpers.js';

interface Probes {
  fmaPeak(iters: number): number;
  triad(a: Float32Array, b: Float32Array, c: Float32Array, s: number): void;
  setThreads(n: number): number;
  info(): { threads: number };
}
const probes = native as unknown as Probes;
const LANES: Record<string, number> = { scalar: 4, avx2: 8, avx512: 16, neon: 4 };

describe.each(runnableIsas)('machine probes on %s', (isa) => {
  it('fmaPeak returns 2 FLOPs per lane, per FMA, for 12 chains on every pool thread', () => {
    withIsa(isa, () => {
      const threads = probes.info().threads;
      expect(probes.fmaPeak(1000)).toBe(2 * LANES[isa] * 12 * 1000 * threads);
    });
  });

  it('triad computes a = b + s*c over every length, tails included', () => {
    withIsa(isa, () => {
      for (const n of [0, 1, 7, 17, 100, 70_000]) {
        const b = Float32Array.from({ length: n }, (_, i) => Math.sin(i)), c = Float32Array.from({ length: n }, (_, i) => Math.cos(i));
        const a = new Float32Array(n).fill(NaN);
        probes.triad(a, b, c, 3);
        for (let i = 0; i < n; i++) expect(a[i]).toBeCloseTo(b[i] + 3 * c[i], 5);
      }
    });
  });
});

describe('machine probes reject bad input', () => {
  it('with the binding messages', () => {
    expect(() => probes.fmaPeak(0)).toThrow(new RangeError('fmaPeak: expected iters to be an integer from 1 to 2147483647 but received 0'));
    expect(() => probes.fmaPeak('9' as never)).toThrow(new TypeError('fmaPeak: expected iters to be a number but received string'));
    const z = (n: number) => new Float32Array(n);
    expect(() => probes.triad(z(4), z(3), z(4), 1)).toThrow(new RangeError('triad: expected b to have length 4 but received 3'));
    expect(() => probes.triad(z(4), new Float64Array(4) as never, z(4), 1)).toThrow(new TypeError('triad: expected b to be a Float32Array but received Float64Array'));
    expect(() => probes.triad(z(4), z(4), z(4), NaN)).toThrow(new RangeError('triad: expected s to be a finite number but received NaN'));
  });
});
