/** Inputs at the edges of what floats hold, and files and keys an attacker or a careless user can pass. */
import { describe, expect, it } from 'vitest';
import { backend, useBackend } from '../lib/backend/index.js';
import { nn, tensor } from '../lib/index.js';
import { native, tsBackend } from './helpers.js';

const BACKENDS = [['native', native], ['ts', tsBackend]] as const;

function onBackend<T>(b: typeof native, fn: () => T): T {
  const initial = backend();
  useBackend(b);
  try {
    return fn();
  } finally {
    useBackend(initial);
  }
}

describe('BatchNorm at the edges of float', () => {
  it.each(BACKENDS)('%s: an Inf in a channel makes its outputs and running variance NaN, as PyTorch', (_, b) => onBackend(b, () => {
    for (const layout of [[4, 1], [2, 1, 2], [1, 1, 16, 16]]) {
      const values = Float32Array.from({ length: layout.reduce((p, d) => p * d, 1) }, (_, i) => (i === 2 ? Infinity : i + 1));
      const bn = layout.length === 4 ? new nn.BatchNorm2d(1) : new nn.BatchNorm1d(1);
      const y = bn.forward(tensor(values, layout));
      expect(Array.from(y.data).every(Number.isNaN), `${layout}`).toBe(true);
      expect(bn.running_var!.data[0]).toBeNaN();
      expect(bn.running_mean!.data[0]).toBe(Infinity);
    }
  }));

  it.each(BACKENDS)('%s: finite values near 3e19 do not overflow the variance', (_, b) => onBackend(b, () => {
    const x = [3e19, -3e19, 1e19, 2e19];
    for (const layout of [[4, 1], [2, 1, 2], [1, 1, 2, 2]]) {
      const bn = layout.length === 4 ? new nn.BatchNorm2d(1) : new nn.BatchNorm1d(1);
      const y = Array.from(bn.forward(tensor(Float32Array.from(x), layout)).data);
      // in double: mean 7.5e18, biased variance 5.1875e38
      const xs = Array.from(Float32Array.from(x)), mean = xs.reduce((a, v) => a + v, 0) / 4;
      const variance = xs.reduce((a, v) => a + (v - mean) ** 2, 0) / 4;
      y.forEach((v, i) => expect(v, `${layout}[${i}]`).toBeCloseTo((xs[i] - mean) / Math.sqrt(variance), 5));
      expect(bn.running_var!.data[0] / (0.9 + (0.1 * variance * 4) / 3)).toBeCloseTo(1, 5);
    }
  }));
});
