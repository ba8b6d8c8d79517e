/**
 * Work proportional to the data: every kernel, on both backends, with each size set to 0 (and, where
 * the arrays stay empty, another size at 2^31 - 1), returns at once with a result or a clear error,
 * never a crash, a hang or a write into an empty array. BatchNorm through the modules on an empty
 * spatial dimension (which crashed the native addon) is checked too.
 */
import { describe, expect, it } from 'vitest';
import { KERNELS } from '../lib/backend/schema.js';
import type { Backend, KernelName } from '../lib/backend/types.js';
import { backend, useBackend } from '../lib/backend/index.js';
import { nn, randn } from '../lib/index.js';
import { native, tsBackend, validCall } from './helpers.js';

const HUGE = 2 ** 31 - 1;

/** The calls to make: per size, that size at 0, then at 0 with each other size at HUGE when no array grows. */
function cases(name: KernelName): { sizes: Record<string, number>; args: unknown[] }[] {
  const spec = KERNELS[name];
  const sizeNames = spec.args.filter((a) => a.kind === 'size').map((a) => a.name);
  const out: { sizes: Record<string, number>; args: unknown[] }[] = [];
  for (const zero of sizeNames)
    for (const huge of [null, ...sizeNames.filter((n) => n !== zero)]) {
      const sizes = { [zero]: 0, ...(huge ? { [huge]: HUGE } : {}) };
      let args;
      try {
        args = validCall(spec, sizes, 1 << 20);
      } catch {
        continue; // the sizes make an array too long to allocate, or one that cannot exist
      }
      out.push({ sizes, args: args.map((a) => a.value) });
    }
  return out;
}

function call(b: Backend, name: KernelName, args: unknown[]): string {
  try {
    (b[name] as (...a: unknown[]) => unknown)(...args);
    return 'returned';
  } catch (e) {
    expect(e, `${name}: ${(e as Error).message}`).toSatisfy((x: unknown) => x instanceof RangeError || x instanceof TypeError);
    expect((e as Error).message.startsWith(`${name}:`), (e as Error).message).toBe(true);
    return 'rejected';
  }
}

describe('zero-size calls return at once on both backends', () => {
  it.each(Object.keys(KERNELS) as KernelName[])('%s', (name) => {
    for (const { sizes, args } of cases(name))
      for (const [label, b] of [['native', native], ['ts', tsBackend]] as const) {
        const started = performance.now();
        const copy = args.map((a) => (ArrayBuffer.isView(a) ? (a as Float32Array).slice() : a));
        const n = call(b, name, copy);
        expect(performance.now() - started, `${label} ${name} ${JSON.stringify(sizes)} took`).toBeLessThan(500);
        expect(n, `${label} ${name} ${JSON.stringify(sizes)}`).toMatch(/returned|rejected/);
      }
  });
});

describe('BatchNorm modules on an empty spatial dimension', () => {
  it.each([['native', native], ['ts', tsBackend]] as const)('%s: eval forward and backward give empty results and zero parameter gradients', (_, b) => {
    const initial = backend();
    useBackend(b);
    try {
      const bn1 = new nn.BatchNorm1d(19);
      bn1.eval();
      expect(bn1.forward(randn([5, 19, 0])).shape).toEqual([5, 19, 0]);
      const bn2 = new nn.BatchNorm2d(3);
      bn2.eval();
      const x = randn([2, 3, 4, 0], { requiresGrad: true });
      bn2.forward(x).sum().backward();
      expect(x.grad!.shape).toEqual([2, 3, 4, 0]);
      expect(Array.from(bn2.weight!.grad!.data)).toEqual([0, 0, 0]);
      expect(Array.from(bn2.bias!.grad!.data)).toEqual([0, 0, 0]);
      bn2.train();
      expect(() => bn2.forward(randn([2, 3, 4, 0]))).toThrow('Expected more than 1 value per channel when training, got input size [2, 3, 4, 0]');
    } finally {
      useBackend(initial);
    }
  });
});
