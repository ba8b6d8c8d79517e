/**
 * The Tensor layer on both backends: values of every op, finite-difference checks of every op's
 * gradient (with broadcasting), autograd semantics (accumulation, noGrad, graph release), and
 * bad input.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { backend, useBackend } from '../lib/backend/index.js';
import type { Backend } from '../lib/backend/types.js';
import {
  add, arange, argmax, div, exp, log, logSoftmax, manualSeed, matmul, max, mean, mul, noGrad, ones, pow, rand, randn,
  relu, sigmoid, softmax, sub, sum, tanh, Tensor, tensor, zeros,
} from '../lib/index.js';
import { gradcheck, native, tsBackend } from './helpers.js';

const initial = backend();
afterAll(() => useBackend(initial));

describe.each([['native', native], ['ts', tsBackend]] as [string, Backend][])('Tensor on %s', (_, b) => {
  it('computes values as PyTorch does', () => {
    useBackend(b);
    const x = tensor([[1, -2, 3], [4, 5, -6]]);
    expect(add(x, tensor([10, 20, 30])).toArray()).toEqual([[11, 18, 33], [14, 25, 24]]);
    expect(sub(x, tensor([[1], [2]])).toArray()).toEqual([[0, -3, 2], [2, 3, -8]]);
    expect(mul(x, 2).toArray()).toEqual([[2, -4, 6], [8, 10, -12]]);
    expect(div(tensor([1, 2]), tensor([4, 8])).toArray()).toEqual([0.25, 0.25]);
    expect(matmul(x, tensor([[1], [0], [1]])).toArray()).toEqual([[4], [-2]]);
    expect(matmul(tensor([1, 2]), tensor([[1, 2], [3, 4]])).toArray()).toEqual([7, 10]);
    expect(sum(x).item()).toBe(5);
    expect(sum(x, 0).toArray()).toEqual([5, 3, -3]);
    expect(sum(x, -1, { keepdim: true }).shape).toEqual([2, 1]);
    expect(mean(x, 1).toArray()).toEqual([2 / 3, 1].map((v) => Math.fround(v)));
    expect(max(x, 1).toArray()).toEqual([3, 5]);
    expect(argmax(x, 1).toArray()).toEqual([2, 1]);
    expect(argmax(x).item()).toBe(4);
    expect(relu(x).toArray()).toEqual([[1, 0, 3], [4, 5, 0]]);
    expect(x.transpose().toArray()).toEqual([[1, 4], [-2, 5], [3, -6]]);
    expect(x.reshape(3, -1).shape).toEqual([3, 2]);
    expect(pow(tensor([2, 3]), 2).toArray()).toEqual([4, 9]);
    const sm = softmax(tensor([[1, 2, 3]]), 1).data;
    expect(sm[2]).toBeCloseTo(Math.exp(3) / (Math.exp(1) + Math.exp(2) + Math.exp(3)), 6);
    expect(logSoftmax(tensor([[1000, 1000]]), 1).toArray()).toEqual([[-Math.fround(Math.LN2), -Math.fround(Math.LN2)]]);
    expect(arange(5).toArray()).toEqual([0, 1, 2, 3, 4]);
    expect(arange(1, 2, 0.25).toArray()).toEqual([1, 1.25, 1.5, 1.75]);
    expect(zeros([2, 2]).toArray()).toEqual([[0, 0], [0, 0]]);
    expect(ones([3]).toArray()).toEqual([1, 1, 1]);
  });

  it('gradients of every op match finite differences (with broadcasting)', () => {
    useBackend(b);
    manualSeed(1);
    const x = randn([3, 4]), w = randn([3, 4]), row = randn([4]), col = randn([3, 1]);
    const pos = add(rand([3, 4]), 0.5);
    const s = (t: Tensor) => sum(mul(t, w));
    gradcheck('add (broadcast)', (t) => s(add(t, row)), x);
    gradcheck('add (broadcast, as the smaller side)', (t) => sum(mul(add(x, t), w)), row.reshape(4));
    gradcheck('sub', (t) => s(sub(col, t)), x);
    gradcheck('sub (broadcast, as the column)', (t) => sum(mul(sub(x, t), w)), col);
    gradcheck('mul', (t) => s(mul(t, t)), x);
    gradcheck('mul (broadcast)', (t) => sum(mul(mul(x, t), w)), row);
    gradcheck('div', (t) => s(div(x, t)), pos);
    gradcheck('div (numerator)', (t) => s(div(t, pos)), x);
    gradcheck('matmul (left)', (t) => sum(mul(matmul(t, randnFixed([4, 2])), randnFixed([3, 2]))), x);
    gradcheck('matmul (right)', (t) => sum(mul(matmul(randnFixed([2, 3]), t), randnFixed([2, 4]))), x);
    gradcheck('matmul (vector)', (t) => sum(mul(matmul(t, randnFixed([4, 2])), randnFixed([2]))), row);
    gradcheck('sum(dim)', (t) => sum(mul(sum(t, 0), row)), x);
    gradcheck('mean(dim, keepdim)', (t) => sum(mul(mean(t, 1, { keepdim: true }), col)), x);
    gradcheck('max(dim)', (t) => sum(mul(max(t, 1), randnFixed([3]))), x);
    gradcheck('pow', (t) => s(pow(t, 3)), x);
    gradcheck('exp', (t) => s(exp(t)), x);
    gradcheck('log', (t) => s(log(t)), pos);
    gradcheck('relu', (t) => s(relu(t)), awayFromZero(x));
    gradcheck('sigmoid', (t) => s(sigmoid(t)), x);
    gradcheck('tanh', (t) => s(tanh(t)), x);
    gradcheck('softmax(dim 1)', (t) => s(softmax(t, 1)), x);
    gradcheck('softmax(dim 0)', (t) => s(softmax(t, 0)), x);
    gradcheck('logSoftmax', (t) => s(logSoftmax(t, 1)), x);
    gradcheck('transpose', (t) => sum(mul(t.transpose(), w.transpose())), x);
    gradcheck('reshape', (t) => sum(mul(t.reshape(2, 6), w.reshape(2, 6))), x);
    gradcheck('a shared input used twice', (t) => sum(mul(relu(t), sigmoid(t))), awayFromZero(x));
  });
});

function randnFixed(shape: number[]): Tensor {
  const t = new Tensor(new Float32Array(shape.reduce((p, d) => p * d, 1)).map((_, i) => Math.sin(i + 1)), shape);
  return t;
}

function awayFromZero(x: Tensor): Tensor {
  return new Tensor(x.data.map((v) => (v >= 0 ? v + 0.1 : v - 0.1)), [...x.shape]);
}

describe('autograd semantics', () => {
  it('accumulates into leaves across backward calls and releases the graph', () => {
    const x = tensor([1, 2, 3], undefined, { requiresGrad: true });
    const y = sum(mul(x, x));
    y.backward();
    expect(x.grad!.toArray()).toEqual([2, 4, 6]);
    expect(() => y.backward()).toThrow(/backward through the graph a second time/);
    sum(mul(x, 3)).backward();
    expect(x.grad!.toArray()).toEqual([5, 7, 9]);
  });

  it('records nothing inside noGrad, and a leaf without requiresGrad gets no gradient', () => {
    const w = tensor([1, 2], undefined, { requiresGrad: true }), c = tensor([3, 4]);
    const y = noGrad(() => mul(w, c));
    expect(y.requiresGrad).toBe(false);
    expect(y.node).toBeNull();
    const z = sum(mul(w, c));
    z.backward();
    expect(c.grad).toBeNull();
    expect(w.grad!.toArray()).toEqual([3, 4]);
  });

  it('backward takes an explicit gradient for non-scalar outputs', () => {
    const x = tensor([1, 2], undefined, { requiresGrad: true });
    const y = mul(x, 3);
    expect(() => y.backward()).toThrow(new RangeError('backward: grad can be implicitly created only for scalar outputs, but the shape is [2]'));
    y.backward(tensor([1, 10]));
    expect(x.grad!.toArray()).toEqual([3, 30]);
  });

  it('clone copies the values into a new array, and the gradient flows back through it', () => {
    const x = tensor([[1, -2], [3, 4]], undefined, { requiresGrad: true });
    const c = x.clone();
    expect(c.data).not.toBe(x.data);
    expect(c.toArray()).toEqual([[1, -2], [3, 4]]);
    c.data[0] = 9;
    expect(x.data[0]).toBe(1);
    mul(c, tensor([[1, 2], [3, 4]])).sum().backward();
    expect(x.grad!.toArray()).toEqual([[1, 2], [3, 4]]);
  });

  it('manualSeed makes randn, rand reproducible', () => {
    manualSeed(42);
    const a = randn([5]).toArray(), r = rand([5]).toArray();
    manualSeed(42);
    expect(randn([5]).toArray()).toEqual(a);
    expect(rand([5]).toArray()).toEqual(r);
    manualSeed(43);
    expect(randn([5]).toArray()).not.toEqual(a);
  });

  it('rejects bad input with messages that name the op and the shapes', () => {
    expect(() => add(zeros([2, 3]), zeros([4]))).toThrow(new RangeError('add: shapes [2, 3] and [4] cannot be broadcast together (dimension 1: 3 vs 4)'));
    expect(() => matmul(zeros([2, 3]), zeros([2, 3]))).toThrow(new RangeError('matmul: shapes [2, 3] and [2, 3] cannot be multiplied (3 != 2)'));
    expect(() => zeros([2, 3]).reshape(4, 2)).toThrow(new RangeError('reshape: shape [4, 2] is invalid for input of shape [2, 3] (6 values)'));
    expect(() => sum(zeros([2, 3]), 2)).toThrow(new RangeError('sum: dimension 2 is out of range for a tensor with 2 dimensions'));
    expect(() => tensor([[1, 2], [3]])).toThrow(new RangeError('tensor: nested arrays must be rectangular: expected 2 items at depth 1 but received 1'));
    expect(() => tensor([1, 'a' as never])).toThrow(new TypeError('tensor: expected a number at depth 1 but received string'));
    expect(() => tensor([1, 2, 3], [2, 2])).toThrow(new RangeError('tensor: shape [2, 2] holds 4 values but data has 3'));
    expect(() => zeros([2, -1])).toThrow(new RangeError('zeros: expected shape to hold non-negative integers but received [2, -1]'));
    expect(() => tensor([1, 2]).item()).toThrow(new RangeError('item: expected a tensor with one element but its shape is [2]'));
    expect(() => add(zeros([1]), 'x' as never)).toThrow(new TypeError('add: expected a Tensor or a number but received string'));
    expect(() => manualSeed(-1)).toThrow(RangeError);
  });
});
