/**
 * Every kernel called with wrong argument counts, wrong kinds, wrong lengths, negative and
 * fractional sizes and non-finite scalars, each bad call made from a valid one that its schema
 * (lib/backend/schema.ts) describes. Each call must throw the right class with a message that names
 * the function and the argument, identical word for word between the native binding and the
 * TypeScript fallback; afterwards the process still computes correctly.
 */
import { describe, expect, it } from 'vitest';
import { KERNELS } from '../lib/backend/schema.js';
import { ISAS, type Backend, type KernelName } from '../lib/backend/types.js';
import { native, tsBackend, validCall, type Arg } from './helpers.js';

const CALLS = Object.fromEntries(Object.entries(KERNELS).map(([name, spec]) => [name, validCall(spec)])) as Record<KernelName, Arg[]>;

function fresh(args: Arg[]): unknown[] {
  return args.map((a) => (ArrayBuffer.isView(a.value) ? new (a.value.constructor as Float32ArrayConstructor)((a.value as Float32Array).length) : a.value));
}

/** The error a call throws, as [class name, message] ('none' when it returns). */
function outcome(b: Backend, name: KernelName, args: unknown[]): [string, string] {
  try {
    (b[name] as (...a: unknown[]) => unknown)(...args);
    return ['none', ''];
  } catch (e) {
    return [(e as Error).constructor.name, (e as Error).message];
  }
}

function expectBoth(name: KernelName, args: unknown[], cls: string, pattern: RegExp): void {
  const n = outcome(native, name, args), t = outcome(tsBackend, name, args);
  expect(n, `native ${name}(${args.map(String).join(', ')})`).toEqual([cls, expect.stringMatching(pattern)]);
  expect(t, `ts ${name}`).toEqual(n);
}

describe('bad input gives the same TypeError/RangeError from native and the fallback', () => {
  it.each(Object.keys(CALLS) as KernelName[])('%s', (name) => {
    const spec = CALLS[name];
    // the valid call works on both
    expect(outcome(native, name, fresh(spec))).toEqual(['none', '']);
    expect(outcome(tsBackend, name, fresh(spec))).toEqual(['none', '']);
    // wrong argument counts
    expectBoth(name, fresh(spec).slice(0, -1), 'TypeError', new RegExp(`^${name}: expected ${spec.length} arguments but received ${spec.length - 1}$`));
    expectBoth(name, [...fresh(spec), 0], 'TypeError', new RegExp(`^${name}: expected ${spec.length} arguments but received ${spec.length + 1}$`));
    for (const [i, arg] of spec.entries()) {
      const call = (value: unknown) => {
        const args = fresh(spec);
        args[i] = value;
        return args;
      };
      const at = `^${name}: expected ${arg.name} `;
      switch (arg.kind) {
        case 'f32 any length':
          expectBoth(name, call(new Float64Array(3)), 'TypeError', new RegExp(`${at}to be a Float32Array but received Float64Array$`));
          expectBoth(name, call(null), 'TypeError', new RegExp(`${at}to be a Float32Array but received null$`));
          break;
        case 'u8 any length':
          expectBoth(name, call(new Int8Array(3)), 'TypeError', new RegExp(`${at}to be a Uint8Array but received Int8Array$`));
          expectBoth(name, call(new Float32Array(3)), 'TypeError', new RegExp(`${at}to be a Uint8Array but received Float32Array$`));
          break;
        case 'f32':
        case 'f32?': {
          const nullable = arg.kind === 'f32?' ? ' or null' : '';
          expectBoth(name, call(new Float64Array((arg.value as Float32Array).length)), 'TypeError',
            new RegExp(`${at}to be a Float32Array${nullable} but received Float64Array$`));
          expectBoth(name, call([1, 2, 3]), 'TypeError', new RegExp(`${at}to be a Float32Array${nullable} but received Array$`));
          expectBoth(name, call(undefined), 'TypeError', new RegExp(`${at}to be a Float32Array${nullable} but received undefined$`));
          const len = (arg.value as Float32Array).length;
          const want = arg.atLeast ? `to have at least ${len} elements but received ${len - 1}` : `to have length ${len} but received ${len - 1}`;
          expectBoth(name, call(new Float32Array(len - 1)), 'RangeError', new RegExp(`${at}${want}$`));
          if (!arg.atLeast)
            expectBoth(name, call(new Float32Array(len + 1)), 'RangeError', new RegExp(`${at}to have length ${len} but received ${len + 1}$`));
          break;
        }
        case 'i32':
          expectBoth(name, call(new Float32Array((arg.value as Int32Array).length)), 'TypeError',
            new RegExp(`${at}to be a Int32Array but received Float32Array$`));
          expectBoth(name, call(new Int32Array((arg.value as Int32Array).length + 1)), 'RangeError',
            new RegExp(`${at}to have length \\d+ but received \\d+$`));
          break;
        case 'size':
          expectBoth(name, call('2'), 'TypeError', new RegExp(`${at}to be a number but received string$`));
          expectBoth(name, call(-1), 'RangeError', new RegExp(`${at}to be an integer from \\d to 2147483647 but received -1$`));
          expectBoth(name, call(2.5), 'RangeError', new RegExp(`${at}to be an integer from \\d to 2147483647 but received 2.5$`));
          expectBoth(name, call(2 ** 40), 'RangeError', new RegExp(`${at}to be an integer from \\d to 2147483647 but received 1099511627776$`));
          break;
        case 'num':
          expectBoth(name, call(null), 'TypeError', new RegExp(`${at}to be a number but received null$`));
          expectBoth(name, call(NaN), 'RangeError', new RegExp(`${at}to be a finite number but received NaN$`));
          expectBoth(name, call(-Infinity), 'RangeError', new RegExp(`${at}to be a finite number but received -Infinity$`));
          break;
        case 'bool':
          expectBoth(name, call(1), 'TypeError', new RegExp(`${at}to be a boolean but received number$`));
          break;
      }
    }
  });

  it('sizes that the arrays cannot hold, out-of-range indices and overlapping outputs', () => {
    const z = (n: number) => new Float32Array(n);
    // a GEMM whose sizes outgrow its arrays
    expectBoth('sgemm', [z(8), z(6), z(12), 3, 4, 3, false, false, 1, 0, 3, 4, 4], 'RangeError',
      /^sgemm: expected C to have at least 12 elements but received 8$/);
    expectBoth('sgemm', [z(8), z(6), z(12), 2, 4, 3, false, false, 1, 0, 2, 4, 4], 'RangeError', /^sgemm: expected lda >= 3 but received 2$/);
    expectBoth('sgemm', [z(8), z(6), z(12), 2, 4, 3, true, true, 1, 0, 3, 3, 4], 'RangeError', /^sgemm: expected A to have at least 8 elements but received 6$/);
    expectBoth('sgemmSumSquares', [z(8), z(6), z(12), 2, 4, 3, true, true, 1, 0, 3, 3, 4], 'RangeError',
      /^sgemmSumSquares: expected A to have at least 8 elements but received 6$/);
    const buf = z(20);
    expectBoth('sgemm', [buf.subarray(0, 8), buf.subarray(4, 10), z(12), 2, 4, 3, false, false, 1, 0, 3, 4, 4], 'RangeError',
      /^sgemm: C must not overlap A$/);
    expectBoth('sgemmBias', [z(6), z(6), z(12), z(4), 2, 4, 3, false, false, 1, 3, 4, 4], 'RangeError',
      /^sgemmBias: expected C to have at least 8 elements but received 6$/);
    expectBoth('sgemmBias', [buf.subarray(0, 8), z(6), z(12), buf.subarray(6, 10), 2, 4, 3, false, false, 1, 3, 4, 4],
      'RangeError', /^sgemmBias: C must not overlap bias$/);
    expectBoth('softmaxCrossEntropy', [z(2), z(6), Int32Array.of(0, 3), 2, 3, 0], 'RangeError',
      /^softmaxCrossEntropy: targets\[1\] = 3 is out of range \[0, 3\)$/);
    expectBoth('softmaxCrossEntropy', [z(2), z(6), Int32Array.of(-1, 0), 2, 3, 0], 'RangeError',
      /^softmaxCrossEntropy: targets\[0\] = -1 is out of range \[0, 3\)$/);
    expectBoth('softmaxCrossEntropy', [z(2), z(6), Int32Array.of(0, 0), 2, 3, 1.5], 'RangeError',
      /^softmaxCrossEntropy: expected labelSmoothing to be in \[0, 1\] but received 1.5$/);
    expectBoth('maxPool2dBackward', [z(32), z(8), Int32Array.of(0, 1, 2, 3, 4, 5, 6, 16), 1, 2, 4, 4, 2, 2], 'RangeError',
      /^maxPool2dBackward: indices\[7\] = 16 is out of range \[0, 16\)$/);
    expectBoth('im2col', [z(32), z(32), 1, 2, 4, 4, 5, 2, 1, 1, 0, 0], 'RangeError',
      /^im2col: kernel 5x2 does not fit input 4x4 with padding 0x0$/);
    expectBoth('maxPool2d', [z(18), new Int32Array(18), z(32), 1, 2, 4, 4, 2, 2, 1, 1, 2, 0], 'RangeError',
      /^maxPool2d: expected padding at most half the kernel but received padding 2x0 for kernel 2x2$/);
    expectBoth('sgdStep', [z(5), null, z(5), 0.1, 0.9, 0, 0, false, true], 'TypeError',
      /^sgdStep: expected momentumBuffer to be a Float32Array when momentum != 0 but received null$/);
    expectBoth('adamStep', [z(5), z(5), z(5), z(5), 1e-3, 0.9, 0.999, 1e-8, 0, 0, false], 'RangeError',
      /^adamStep: expected step to be an integer from 1 to 2147483647 but received 0$/);
    expectBoth('maxRows', [z(2), new Int32Array(2), z(0), 2, 0], 'RangeError',
      /^maxRows: expected K to be an integer from 1 to 2147483647 but received 0$/);
    // src holds 3 whole rows of 3 (and 2 spare values): index 3 is past them, -1 before them
    expectBoth('gatherRows', [z(6), z(11), Int32Array.of(0, 3), 2, 3], 'RangeError',
      /^gatherRows: indices\[1\] = 3 is out of range \[0, 3\) \(the rows of src\)$/);
    expectBoth('gatherRows', [z(6), z(11), Int32Array.of(-1, 0), 2, 3], 'RangeError',
      /^gatherRows: indices\[0\] = -1 is out of range \[0, 3\) \(the rows of src\)$/);
    const shared = z(12);
    expectBoth('gatherRows', [shared.subarray(0, 6), shared, Int32Array.of(0, 1), 2, 3], 'RangeError',
      /^gatherRows: out must not overlap src$/);
    expectBoth('batchnormStats', [z(3), z(3), z(0), 2, 3, 0], 'RangeError',
      /^batchnormStats: expected at least 1 value per channel but received input size \[2, 3, 0\]$/);
    expectBoth('batchnormBackwardApply', [z(24), z(24), z(24), z(3), z(3), null, z(3), z(3), null, 0, 2, 3, 4], 'RangeError',
      /^batchnormBackwardApply: expected count to be an integer from 1 to 2147483647 but received 0$/);
    // an output over the indices or targets the kernel reads would change them as it writes
    const rows = new Float32Array(8);
    expectBoth('gatherRows', [rows.subarray(0, 6), z(9), new Int32Array(rows.buffer, 16, 2), 2, 3], 'RangeError',
      /^gatherRows: out must not overlap indices$/);
    expectBoth('gatherBytes', [rows.subarray(0, 6), new Uint8Array(9), new Int32Array(rows.buffer, 16, 2), 2, 3, z(1), z(1)],
      'RangeError', /^gatherBytes: out must not overlap indices$/);
    expectBoth('softmaxCrossEntropy', [rows.subarray(0, 2), z(6), new Int32Array(rows.buffer, 4, 2), 2, 3, 0], 'RangeError',
      /^softmaxCrossEntropy: losses must not overlap targets$/);
    expectBoth('softmaxCrossEntropyBackward', [rows.subarray(0, 6), z(6), new Int32Array(rows.buffer, 20, 2), z(2), 2, 3, 0],
      'RangeError', /^softmaxCrossEntropyBackward: dlogits must not overlap targets$/);
    // gatherBytes: three rows of 3 bytes in src; D a whole number of channels; out apart from src
    const u8 = (n: number) => new Uint8Array(n), one = Float32Array.of(1);
    expectBoth('gatherBytes', [z(6), u8(11), Int32Array.of(0, 3), 2, 3, one, one], 'RangeError',
      /^gatherBytes: indices\[1\] = 3 is out of range \[0, 3\) \(the rows of src\)$/);
    expectBoth('gatherBytes', [z(6), u8(11), Int32Array.of(0, 1), 2, 3, z(2), z(2)], 'RangeError',
      /^gatherBytes: expected D to be a multiple of the channels \(the length of offset\) but received D = 3 for 2 channels$/);
    expectBoth('gatherBytes', [z(6), u8(11), Int32Array.of(0, 1), 2, 3, z(0), z(0)], 'RangeError',
      /^gatherBytes: expected offset to have at least 1 elements but received 0$/);
    expectBoth('gatherBytes', [z(6), u8(11), Int32Array.of(0, 1), 2, 3, z(3), z(2)], 'RangeError',
      /^gatherBytes: expected scale to have length 3 but received 2$/);
    const bytes = new Float32Array(6);
    expectBoth('gatherBytes', [bytes, new Uint8Array(bytes.buffer, 4, 9), Int32Array.of(0, 1), 2, 3, one, one], 'RangeError',
      /^gatherBytes: out must not overlap src$/);
    const conv48 = z(48 + 3);
    expectBoth('convOutput', [conv48.subarray(0, 24), conv48.subarray(24, 48), conv48.subarray(20, 23), 2, 3, 4], 'RangeError',
      /^convOutput: y must not overlap bias$/);
    expectBoth('convOutputBackward', [z(24), conv48.subarray(46, 49), conv48.subarray(24, 48), 2, 3, 4], 'RangeError',
      /^convOutputBackward: dbias must not overlap g$/);
    expectBoth('convOutputBackward', [conv48.subarray(0, 24), conv48.subarray(22, 25), z(24), 2, 3, 4], 'RangeError',
      /^convOutputBackward: dbias must not overlap gT$/);
  });

  it('the runtime settings reject bad values', () => {
    expect(() => native.setIsa('sse9' as never)).toThrow(new RangeError(`setIsa: expected isa to be one of ${ISAS.join(', ')} but received 'sse9'`));
    for (const b of [native, tsBackend]) {
      const threads = b.info().threads;
      expect(() => b.setThreads(0)).toThrow(new RangeError('setThreads: expected threads to be an integer from 1 to 2147483647 but received 0'));
      expect(() => b.setThreads(1000)).toThrow(new RangeError('setThreads: expected threads to be at most 256 but received 1000'));
      expect(b.info().threads, b.name).toBe(threads);
    }
  });

  it('the process survives all of the above and still computes', () => {
    const C = new Float32Array(4);
    native.sgemm(C, Float32Array.of(1, 2, 3, 4), Float32Array.of(5, 6, 7, 8), 2, 2, 2, false, false, 1, 0, 2, 2, 2);
    expect([...C]).toEqual([19, 22, 43, 50]);
  });
});
