/** Inputs at the edges of what floats hold, and files and keys an attacker or a careless user can pass. */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
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

describe('indices in shared memory cannot change between the check and the kernel', () => {
  it('another thread flipping indices to out-of-range values during native calls: errors or results, never a write outside the arrays', () => {
    const script = `
      const { Worker } = require('node:worker_threads');
      const { loadNative } = require(${JSON.stringify(join(__dirname, '..', 'dist', 'cjs', 'backend', 'native.js'))});
      const k = loadNative();
      const shared = new Int32Array(new SharedArrayBuffer(4 * 64));
      const worker = new Worker('const { workerData: a } = require("node:worker_threads"); for (;;) for (let i = 0; i < a.length; i++) a[i] = a[i] === 0 ? 1e9 : 0;', { eval: true, workerData: shared });
      const guard = 1 << 16, whole = new Float32Array(2 * guard + 64 * 16);
      const dx = whole.subarray(guard, guard + 64 * 16), out = whole.subarray(guard, guard + 64 * 4);
      let ok = 0, rejected = 0;
      const until = Date.now() + 400;
      while (Date.now() < until) {
        try { k.maxPool2dBackward(dx, new Float32Array(64), shared, 1, 1, 32, 32, 8, 8); ok++; } catch (e) { if (!(e instanceof RangeError)) throw e; rejected++; }
        try { k.gatherRows(out, new Float32Array(4 * 4), shared.subarray(0, 64), 64, 4); ok++; } catch (e) { if (!(e instanceof RangeError)) throw e; rejected++; }
      }
      worker.terminate();
      const outside = whole.subarray(0, guard).some((v) => v !== 0) || whole.subarray(guard + 64 * 16).some((v) => v !== 0);
      console.log(JSON.stringify({ ok, rejected, outside }));`;
    const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 60_000 });
    expect(r.status, r.stderr).toBe(0);
    const result = JSON.parse(r.stdout.trim());
    expect(result.outside).toBe(false);
    expect(result.ok + result.rejected).toBeGreaterThan(100);
  });
});
