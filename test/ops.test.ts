/** The Tensor ops of a training script and module printing, against PyTorch (test/fixtures/make_ops_fixtures.py). */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { describe, expect, it } from 'vitest';
import {
  abs, argmin, cat, chunk, clamp, eq, flatten, ge, gt, indexSelect, le, lt, matmul, maximum, min, minimum, narrow, ne, neg,
  nn, select, split, sqrt, square, stack, std, sum, tensor, Tensor, variance, where, zeros, arange,
} from '../lib/index.js';

interface Case {
  name: string;
  inputs: { shape: number[]; data: number[] }[];
  outputs: { shape: number[]; data: number[] }[];
  weights: number[][];
  grads: (number[] | null)[];
}
const fixtures = JSON.parse(readFileSync(join(__dirname, 'fixtures', 'ops.json'), 'utf8')) as {
  cases: Case[];
  modules: Record<string, { repr: string; keys: string[] }>;
  tensors: Record<string, { shape: number[]; data: (number | string)[]; repr: string }>; // 'NaN', 'Infinity' as strings
};

type Op = (...inputs: Tensor[]) => Tensor | Tensor[];
const OPS: Record<string, Op> = {
  cat_dim0: (a, b) => cat([a, b], 0),
  cat_dim_last: (a, b) => cat([a, b], -1),
  stack_dim1: (a, b) => stack([a, b], 1),
  split_size: (x) => split(x, 2, 0),
  split_sizes: (x) => x.split([1, 2, 3], 1),
  chunk: (x) => chunk(x, 3),
  narrow: (x) => narrow(x, 1, 1, 3),
  narrow_negative_start: (x) => x.narrow(0, -2, 2),
  select: (x) => select(x, 1, -1),
  index_select_repeats: (x) => indexSelect(x, 0, [2, 0, 2]),
  index_select_dim1: (x) => x.indexSelect(1, Int32Array.of(4, 1)),
  unsqueeze: (x) => x.unsqueeze(1),
  squeeze_all: (x) => x.squeeze(),
  squeeze_dim: (x) => x.squeeze(1),
  flatten: (x) => flatten(x, 1, 2),
  view: (x) => x.view(3, -1),
  permute: (x) => x.permute(2, 0, 1),
  matmul_batched: matmul,
  matmul_broadcast: matmul,
  matmul_3d_2d: matmul,
  matmul_1d_3d: matmul,
  matmul_3d_1d: (a, b) => a.matmul(b),
  sqrt: sqrt,
  abs: abs,
  neg: neg,
  square: square,
  clamp: (x) => clamp(x, -0.5, 0.5),
  clamp_min: (x) => x.clamp(0.2),
  maximum_broadcast: maximum,
  minimum_ties: minimum,
  min_dim: (x) => min(x, 1),
  min_all: (x) => x.min(),
  argmin_dim: (x) => argmin(x, 0),
  var_dim: (x) => x.var(1),
  var_all_biased: (x) => variance(x, undefined, { unbiased: false }),
  std_keepdim: (x) => std(x, 0, { keepdim: true }),
  eq: eq, ne: ne, gt: gt, ge: ge, lt: lt, le: le,
  where: (c, a, b) => where(gt(c, 0), a, b),
};

function close(actual: ArrayLike<number>, expected: number[], what: string): void {
  expect(actual.length, `${what} length`).toBe(expected.length);
  for (let i = 0; i < expected.length; i++)
    expect(Math.abs(actual[i] - expected[i]), `${what}[${i}]: ${actual[i]} vs ${expected[i]}`).toBeLessThanOrEqual(1e-5 + 1e-5 * Math.abs(expected[i]));
}

describe('Tensor ops match PyTorch, values and gradients', () => {
  it('covers every fixture case', () => expect(Object.keys(OPS).sort()).toEqual(fixtures.cases.map((c) => c.name).sort()));
  it.each(fixtures.cases.map((c) => [c.name, c] as const))('%s', (name, c) => {
    const inputs = c.inputs.map((x, i) => tensor(Float32Array.from(x.data), x.shape, { requiresGrad: c.grads[i] !== null }));
    const result = OPS[name](...inputs);
    const outs = Array.isArray(result) ? result : [result];
    expect(outs.length).toBe(c.outputs.length);
    outs.forEach((o, i) => {
      expect(o.shape, `output ${i} shape`).toEqual(c.outputs[i].shape);
      close(o.data, c.outputs[i].data, `output ${i}`);
    });
    if (c.grads.every((g) => g === null)) {
      for (const o of outs) expect(o.requiresGrad).toBe(false);
      return;
    }
    outs.map((o, i) => sum(o.mul(tensor(Float32Array.from(c.weights[i]), o.shape)))).reduce((a, b) => a.add(b)).backward();
    c.grads.forEach((g, i) => {
      if (g) close(inputs[i].grad!.data, g, `grad ${i}`);
    });
  });
});

describe('bad arguments name what was expected', () => {
  it('cat and stack: shapes', () => {
    expect(() => cat([zeros([2, 3]), zeros([2, 4])])).toThrow(/cat: expected tensors\[1\] of shape \[2, 4\].*received \[2, 4\]|cat: expected tensors\[1\] of shape \[2, 3\]/);
    expect(() => cat([])).toThrow(RangeError);
    expect(() => stack([zeros([2]), zeros([3])])).toThrow('stack: expected every tensor of shape [2] but tensors[1] has shape [3]');
  });
  it('slices and indices out of range', () => {
    expect(() => narrow(zeros([4, 5]), 1, 3, 3)).toThrow('narrow: start 3 and length 3 are out of range for dimension 1 of size 5 (shape [4, 5])');
    expect(() => select(zeros([2, 3]), 0, 2)).toThrow(RangeError);
    expect(() => indexSelect(zeros([2, 3]), 1, [0, 3])).toThrow('indexSelect: index[1] = 3 is out of range for a dimension of size 3');
    expect(() => split(zeros([5]), [2, 2])).toThrow('split: expected sizes adding up to 5 (dimension 0 of [5]) but received [2, 2]');
    expect(() => zeros([2, 3]).permute(0, 0)).toThrow(RangeError);
    expect(() => matmul(zeros([2, 3, 4]), zeros([5, 2]))).toThrow('matmul: shapes [2, 3, 4] and [5, 2] cannot be multiplied (4 != 5)');
    expect(() => matmul(zeros([2, 3, 4]), zeros([3, 4, 2]))).toThrow(RangeError);
    expect(() => clamp(zeros([1]))).toThrow('clamp: expected at least one of min and max');
  });
});

describe('shapes and values of the view ops', () => {
  it('split, chunk and views share or copy as documented', () => {
    expect(split(arange(5), 2).map((t) => t.size)).toEqual([2, 2, 1]);
    expect(chunk(arange(6), 4).map((t) => t.size)).toEqual([2, 2, 2]); // as torch.chunk: fewer pieces than asked
    const x = arange(6).reshape(2, 3);
    expect(x.view(3, 2).data).toBe(x.data);
    expect(x.unsqueeze(0).shape).toEqual([1, 2, 3]);
    expect(flatten(tensor(3)).shape).toEqual([1]);
    expect(x.numel()).toBe(6);
  });
});

describe('printing', () => {
  it('tensors print their values as PyTorch lays them out, with shape and autograd state', () => {
    expect(String(tensor([[1, 2], [3, 4]]))).toBe('tensor([[1., 2.],\n        [3., 4.]], shape=[2, 2])');
    expect(tensor([1.5, -2]).toString()).toBe('tensor([ 1.5000, -2.0000], shape=[2])');
    expect(String(tensor(2.5))).toBe('tensor(2.5000)');
    const w = tensor([1, 2], undefined, { requiresGrad: true });
    expect(String(w)).toBe('tensor([1., 2.], shape=[2], requiresGrad=true)');
    expect(inspect(w.mul(2))).toBe('tensor([2., 4.], shape=[2], gradFn=<MulBackward>)');
    expect(String(zeros([0, 3]))).toBe('tensor([], shape=[0, 3])');
  });
  it.each(Object.entries(fixtures.tensors))('%s prints as PyTorch lays it out, with its shape', (_, t) => {
    const shape = t.shape.length ? `, shape=[${t.shape.join(', ')}]` : '';
    expect(String(tensor(Float32Array.from(t.data, Number), t.shape))).toBe(t.repr.replace(/\)$/, `${shape})`));
  });
  it('modules print as PyTorch prints them', () => {
    const nets: Record<string, nn.Module> = {
      mlp: new nn.Sequential(new nn.Linear(784, 500), new nn.BatchNorm1d(500), new nn.ReLU(), new nn.Linear(500, 10, { bias: false })),
      cnn: new nn.Sequential(new nn.Conv2d(1, 32, 3, { padding: 1 }), new nn.BatchNorm2d(32, { momentum: null }),
        new nn.LeakyReLU(0.2), new nn.Dropout(0.25), new nn.Flatten(), new nn.LayerNorm(10), new nn.Sigmoid(), new nn.Tanh()),
      containers: new nn.Sequential(new nn.ModuleList([new nn.Linear(2, 2)]), new nn.ModuleDict({ head: new nn.Linear(2, 1) })),
    };
    for (const [name, net] of Object.entries(nets)) {
      expect(inspect(net), name).toBe(fixtures.modules[name].repr);
      expect(Object.keys(net.stateDict()), name).toEqual(fixtures.modules[name].keys);
    }
  });
});
