/** Gradient clipping against PyTorch, learning-rate schedulers, and safetensors save/load. */
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { backend, useBackend } from '../lib/backend/index.js';
import type { Backend } from '../lib/backend/types.js';
import { load, nn, optim, save, Tensor, tensor, zeros } from '../lib/index.js';
import { maxError, native, tsBackend } from './helpers.js';

interface Stored { shape: number[]; data: number[] }
const fixtures = JSON.parse(readFileSync(join(__dirname, 'fixtures', 'nets.json'), 'utf8')) as {
  clip: { grads: Stored[]; cases: { normType: number | 'inf'; maxNorm: number; total: number; clipped: number[][] }[] };
  safetensors: Record<string, Stored>;
};
const initial = backend();
afterAll(() => useBackend(initial));

describe.each([['native', native], ['ts', tsBackend]] as [string, Backend][])('clipGradNorm against PyTorch on %s', (_, b) => {
  it.each(fixtures.clip.cases.map((c) => [String(c.normType), c.maxNorm, c] as const))('normType %s, maxNorm %f', (_n, _m, c) => {
    useBackend(b);
    const params = fixtures.clip.grads.map((g) => {
      const p = zeros(g.shape, { requiresGrad: true });
      p.grad = tensor(Float32Array.from(g.data), g.shape);
      return p;
    });
    const total = nn.utils.clipGradNorm(params, c.maxNorm, { normType: c.normType === 'inf' ? Infinity : c.normType });
    expect(Math.abs(total - c.total) / c.total).toBeLessThan(1e-5);
    params.forEach((p, i) => expect(maxError(p.grad!.data, c.clipped[i])).toBeLessThan(1e-5));
  });
});

describe('gradient tools', () => {
  it('clipGradNorm skips parameters without gradients, reports non-finite norms when asked', () => {
    const a = zeros([2], { requiresGrad: true }), none = zeros([3], { requiresGrad: true });
    a.grad = tensor([3, 4]);
    expect(nn.utils.clipGradNorm([a, none], 1)).toBeCloseTo(5, 6);
    expect(Array.from(a.grad.data).map((v) => +v.toFixed(5))).toEqual([0.6, 0.8]);
    a.grad = tensor([NaN, 1]);
    expect(() => nn.utils.clipGradNorm([a], 1, { errorIfNonfinite: true })).toThrow(RangeError);
    expect(() => nn.utils.clipGradNorm([a], 1, { errorIfNonfinite: true })).toThrow(/total norm of order 2 for gradients is non-finite \(NaN\)/);
    expect(() => nn.utils.clipGradNorm([a], -1)).toThrow(new RangeError('clipGradNorm: expected maxNorm >= 0 but received -1'));
    expect(() => nn.utils.clipGradNorm([null as never], 1)).toThrow(new TypeError('clipGradNorm: expected params[0] to be a Tensor but received null'));
    expect(nn.utils.clipGradNorm([none], 1)).toBe(0);
  });

  it('clipGradValue clamps each gradient', () => {
    const a = zeros([4], { requiresGrad: true });
    a.grad = tensor([-3, -0.2, 0.4, 9]);
    nn.utils.clipGradValue([a], 0.5);
    expect(Array.from(a.grad.data)).toEqual([-0.5, Math.fround(-0.2), Math.fround(0.4), 0.5]);
  });
});

describe('learning-rate schedulers', () => {
  const opt = () => new optim.SGD([zeros([1], { requiresGrad: true })], { lr: 0.1 });
  it('StepLR', () => {
    const o = opt(), s = new optim.StepLR(o, { stepSize: 2, gamma: 0.5 });
    const lrs = [s.getLastLr()[0]];
    for (let i = 0; i < 4; i++) {
      s.step();
      lrs.push(s.getLastLr()[0]);
    }
    expect(lrs).toEqual([0.1, 0.1, 0.05, 0.05, 0.025]);
    expect(() => new optim.StepLR(o, { stepSize: 0 })).toThrow(RangeError);
  });
  it('CosineAnnealingLR', () => {
    const o = opt(), s = new optim.CosineAnnealingLR(o, { tMax: 4, etaMin: 0.01 });
    const lrs: number[] = [];
    for (let i = 0; i < 4; i++) {
      s.step();
      lrs.push(s.getLastLr()[0]);
    }
    const want = [1, 2, 3, 4].map((e) => 0.01 + (0.09 * (1 + Math.cos((Math.PI * e) / 4))) / 2);
    lrs.forEach((v, i) => expect(v).toBeCloseTo(want[i], 12));
    expect(o.paramGroups[0].options.lr).toBeCloseTo(0.01, 12);
  });
});

describe('safetensors', () => {
  const dir = mkdtempSync(join(tmpdir(), 'stablegrad-st-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('loads a file written by Python from the format definition (PyTorch state dict, F32/I64/F64)', () => {
    const sd = load(join(__dirname, 'fixtures', 'pytorch_state.safetensors'));
    expect(Object.keys(sd)).toEqual(Object.keys(fixtures.safetensors));
    for (const [k, v] of Object.entries(fixtures.safetensors)) {
      expect(sd[k].shape, k).toEqual(v.shape);
      expect(maxError(sd[k].data, v.data, 1e-12), k).toBeLessThan(1e-7);
    }
    const net = new nn.Sequential(new nn.Linear(4, 3), new nn.BatchNorm1d(3), new nn.ReLU(), new nn.Linear(3, 2));
    const { ['extra.f64']: _extra, ...modelState } = sd;
    net.loadStateDict(modelState);
    expect(net.stateDict()['1.num_batches_tracked'].item()).toBe(1);
  });

  it('round-trips a model state dict, with num_batches_tracked as I64 and the header padded to 8 bytes', () => {
    const net = new nn.Sequential(new nn.Linear(5, 4), new nn.BatchNorm1d(4));
    net.forward(tensor(Float32Array.from({ length: 15 }, (_, i) => Math.sin(i)), [3, 5]));
    const file = join(dir, 'model.safetensors');
    save(net.stateDict(), file);
    const bytes = readFileSync(file);
    const headerLength = Number(bytes.readBigUInt64LE(0));
    expect(headerLength % 8).toBe(0);
    const header = JSON.parse(bytes.subarray(8, 8 + headerLength).toString());
    expect(header['1.num_batches_tracked']).toEqual({ dtype: 'I64', shape: [], data_offsets: expect.any(Array) });
    expect(header['0.weight'].dtype).toBe('F32');
    const back = load(file);
    for (const [k, t] of Object.entries(net.stateDict())) {
      expect(back[k].shape).toEqual(t.shape);
      expect(Array.from(back[k].data)).toEqual(Array.from(t.data));
    }
    expect(readdirSync(dir).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });

  it('rejects truncated and corrupt files with an error naming the file', () => {
    const good = join(dir, 'good.safetensors');
    save({ w: tensor([1, 2, 3]) }, good);
    const bytes = readFileSync(good);
    const cases: [string, Buffer, RegExp][] = [
      ['empty', Buffer.alloc(0), /fewer than the 8-byte header length/],
      ['truncated-header', bytes.subarray(0, 12), /runs past the end of the file/],
      ['truncated-data', bytes.subarray(0, bytes.length - 4), /data offsets \[0,12\] outside the 8 bytes of data/],
      ['not-json', Buffer.concat([bytes.subarray(0, 8), Buffer.from('{'.padEnd(Number(bytes.readBigUInt64LE(0)), 'x')), bytes.subarray(8 + Number(bytes.readBigUInt64LE(0)))]), /the header is not JSON/],
    ];
    for (const [name, content, message] of cases) {
      const f = join(dir, `${name}.safetensors`);
      writeFileSync(f, content);
      expect(() => load(f), name).toThrow(RangeError);
      expect(() => load(f), name).toThrow(message);
      expect(() => load(f), name).toThrow(f);
    }
  });

  it('a failed save leaves the old file and no temporary file', () => {
    const file = join(dir, 'keep.safetensors');
    save({ w: tensor([1]) }, file);
    expect(() => save({ w: 'x' as unknown as Tensor }, file)).toThrow(new TypeError('save: expected w to be a Tensor but received string'));
    expect(() => save({ w: tensor([2]) }, join(dir, 'missing-folder', 'x.safetensors'))).toThrow(/ENOENT/);
    expect(Array.from(load(file).w.data)).toEqual([1]);
    expect(existsSync(join(dir, 'missing-folder'))).toBe(false);
  });
});
