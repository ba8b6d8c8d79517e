/** Inputs at the edges of what floats hold, and files and keys an attacker or a careless user can pass. */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { backend, useBackend } from '../lib/backend/index.js';
import { load, loadMnist, nn, save, tensor } from '../lib/index.js';
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

describe('files', () => {
  const dir = mkdtempSync(join(tmpdir(), 'stablegrad-robust-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  /** A safetensors file from a header object (or its text) and raw data bytes. */
  function file(name: string, header: object | string, data: Uint8Array, lengthDelta = 0): string {
    const json = Buffer.from(typeof header === 'string' ? header : JSON.stringify(header)), length = Buffer.alloc(8);
    length.writeBigUInt64LE(BigInt(json.length + lengthDelta));
    const path = join(dir, name);
    writeFileSync(path, Buffer.concat([length, json, data]));
    return path;
  }
  const f32 = (n: number) => ({ dtype: 'F32', shape: [n] });

  it('load() refuses layouts that do not tile the data exactly, duplicate keys and unknown dtypes, saying what is wrong', () => {
    const data = new Uint8Array(16);
    expect(() => load(file('alias.safetensors', { a: { ...f32(2), data_offsets: [0, 8] }, b: { ...f32(2), data_offsets: [0, 8] } }, data)))
      .toThrow(/b's data \(bytes 0-8\) overlaps the tensor before it|a's data \(bytes 0-8\) overlaps/);
    expect(() => load(file('gap.safetensors', { a: { ...f32(2), data_offsets: [4, 12] } }, data))).toThrow(/the data starts before a \(bytes 0-4 belong to no tensor\)/);
    expect(() => load(file('short.safetensors', { a: { ...f32(2), data_offsets: [0, 8] } }, data))).toThrow('the tensors end at byte 8 of the data but the file holds 16');
    expect(() => load(file('dup.safetensors', '{"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}, "a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}', data)))
      .toThrow('the header names "a" twice');
    expect(() => load(file('proto-dtype.safetensors', { a: { dtype: 'toString', shape: [4], data_offsets: [0, 16] } }, data))).toThrow(/unsupported dtype "toString"/);
    const good = { a: { ...f32(4), data_offsets: [0, 16] } };
    expect(() => load(file('shifted.safetensors', good, data, -1))).toThrow(RangeError); // a header length off by one
    expect(load(file('good.safetensors', good, data)).a.shape).toEqual([4]);
  });

  it('keys are data: __proto__, toString and constructor are keys like any other', () => {
    const path = file('proto.safetensors', '{"__proto__": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}', new Uint8Array(4));
    const loaded = load(path);
    expect(Object.keys(loaded)).toEqual(['__proto__']);
    expect(Object.getPrototypeOf(loaded)).toBe(Object.prototype);
    const model = new nn.Linear(1, 1);
    expect(() => model.loadStateDict(loaded)).toThrow('loadStateDict: missing keys: weight, bias; unexpected keys: __proto__');
    const odd = { ...model.stateDict(), toString: tensor([1]), constructor: tensor([1]) };
    expect(() => model.loadStateDict(odd)).toThrow('loadStateDict: unexpected keys: toString, constructor');
    expect(model.loadStateDict(odd, { strict: false }).unexpectedKeys).toEqual(['toString', 'constructor']);
  });

  it('the temporary file of a save that was killed is removed by the next save to the same path', () => {
    const dead = spawnSync(process.execPath, ['-e', '0']).pid!;
    const leftover = join(dir, `.m.safetensors.${dead}.tmp`), other = join(dir, `.other.safetensors.${dead}.tmp`);
    writeFileSync(leftover, 'half a file');
    writeFileSync(other, 'not ours');
    save(new nn.Linear(2, 2).stateDict(), join(dir, 'm.safetensors'));
    expect(existsSync(leftover)).toBe(false);
    expect(existsSync(other)).toBe(true);
  });

  it('loadMnist refuses labels outside 0-9 and bad limits, naming the file', () => {
    const mnist = join(dir, 'mnist');
    mkdirSync(mnist);
    const idx = (type: number, dims: number[], body: Uint8Array) => {
      const head = Buffer.alloc(4 + 4 * dims.length);
      head.writeUInt8(type, 2);
      head.writeUInt8(dims.length, 3);
      dims.forEach((d, i) => head.writeUInt32BE(d, 4 + 4 * i));
      return Buffer.concat([head, body]);
    };
    writeFileSync(join(mnist, 'train-images-idx3-ubyte'), idx(0x08, [2, 28, 28], new Uint8Array(2 * 784)));
    writeFileSync(join(mnist, 'train-labels-idx1-ubyte'), idx(0x08, [2], Uint8Array.of(3, 200)));
    expect(() => loadMnist({ dir: mnist })).toThrow(`loadMnist: ${join(mnist, 'train-labels-idx1-ubyte')} has label 200 at 1, not 0-9`);
    expect(loadMnist({ dir: mnist, limit: 1 }).length).toBe(1);
    for (const limit of [-5, NaN, 2.5]) expect(() => loadMnist({ dir: mnist, limit })).toThrow(`loadMnist: expected limit to be a non-negative integer but received ${limit}`);
  });
});
