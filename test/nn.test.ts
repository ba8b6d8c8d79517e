/**
 * nn modules, losses and optimizers against PyTorch 1.13 (test/fixtures/nets.json) on both
 * backends: outputs, loss, every parameter gradient, running statistics, evaluation output, and
 * the full state after three steps of each optimizer, within 1e-4 relative.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { backend, useBackend } from '../lib/backend/index.js';
import type { Backend } from '../lib/backend/types.js';
import { nn, optim, Tensor, tensor, zeros } from '../lib/index.js';
import { maxError, native, tsBackend } from './helpers.js';

interface Stored { shape: number[]; data: number[] }
interface NetCase {
  name: string; init: Record<string, Stored>; x: Stored; y: number[]; xEval: Stored; out: number[]; loss: number;
  grads: Record<string, number[]>; stateAfter: Record<string, Stored>; outEval: number[];
  optimizers: { name: string; losses: number[]; state: Record<string, Stored> }[];
}
interface LayerCase {
  name: string; x: Stored; state: Record<string, Stored>; y: Stored; g: number[]; dx: number[]; grads: Record<string, number[]>;
}
const fixtures = JSON.parse(readFileSync(join(__dirname, 'fixtures', 'nets.json'), 'utf8')) as { nets: NetCase[]; layers: LayerCase[] };

/** The stablegrad twin of each fixture net and layer, by the fixture's name. */
const NETS: Record<string, () => nn.Module> = {
  'Linear-BatchNorm1d-ReLU-Linear': () => new nn.Sequential(new nn.Linear(6, 5), new nn.BatchNorm1d(5), new nn.ReLU(), new nn.Linear(5, 3)),
  'Conv2d-BatchNorm2d-ReLU-MaxPool2d-Flatten-Linear': () => new nn.Sequential(new nn.Conv2d(2, 4, 3, { padding: 1 }),
    new nn.BatchNorm2d(4), new nn.ReLU(), new nn.MaxPool2d(2), new nn.Flatten(), new nn.Linear(4 * 3 * 3, 3)),
};
const LAYERS: Record<string, () => nn.Module> = {
  'Conv2d(3, 5, 3, stride 2, padding 1)': () => new nn.Conv2d(3, 5, 3, { stride: 2, padding: 1 }),
  'Conv2d(2, 3, (2, 3), no bias)': () => new nn.Conv2d(2, 3, [2, 3], { bias: false }),
  'MaxPool2d(3, stride 2)': () => new nn.MaxPool2d(3, { stride: 2 }),
  'AvgPool2d(2)': () => new nn.AvgPool2d(2),
  'AvgPool2d(3, stride 2, padding 1)': () => new nn.AvgPool2d(3, { stride: 2, padding: 1 }),
  'LayerNorm([4, 5])': () => new nn.LayerNorm([4, 5]),
  'LayerNorm(6, no affine)': () => new nn.LayerNorm(6, { elementwiseAffine: false }),
};

const toTensor = (s: Stored) => tensor(Float32Array.from(s.data), s.shape);
const initial = backend();
afterAll(() => useBackend(initial));

function close(what: string, actual: ArrayLike<number>, expected: number[], atol?: number): void {
  const err = maxError(actual, expected, atol);
  if (!(err <= 1e-4)) expect.fail(`${what}: max error ${err}`);
}

function build(c: NetCase): nn.Module {
  const net = NETS[c.name]();
  net.loadStateDict(Object.fromEntries(Object.entries(c.init).map(([k, v]) => [k, toTensor(v)])));
  return net;
}

function expectState(what: string, net: nn.Module, state: Record<string, Stored>, noiseDriven: string[] = [], bound = 0): void {
  const own = net.stateDict();
  expect(Object.keys(own)).toEqual(Object.keys(state));
  for (const [k, v] of Object.entries(state)) {
    if (!noiseDriven.includes(k)) close(`${what}: ${k}`, own[k].data, v.data);
    else for (const [i, e] of v.data.entries()) expect(Math.abs(own[k].data[i] - e), `${what}: ${k}[${i}]`).toBeLessThanOrEqual(bound);
  }
}

const targets = fixtures.nets.flatMap((c) => [['native', native, c], ['ts', tsBackend, c]] as [string, Backend, NetCase][]);
describe.each(targets)('%s: %s against PyTorch', (_, b, mlp) => {
  const makeMlp = () => build(mlp);
  it('train-mode output, loss, gradients and running statistics; eval-mode output', () => {
    useBackend(b);
    const net = makeMlp();
    const x = toTensor(mlp.x);
    const out = net.forward(x);
    close('output', out.data, mlp.out);
    const loss = new nn.CrossEntropyLoss().forward(out, mlp.y);
    expect(loss.item()).toBeCloseTo(mlp.loss, 5);
    loss.backward();
    // The first Linear's bias feeds BatchNorm, which subtracts the batch mean: its gradient is 0 in
    // exact arithmetic and float32 rounding noise in PyTorch and here alike. Gradients are therefore
    // compared with an absolute floor of 1% of the net's largest gradient.
    const gradScale = Math.max(...Object.values(mlp.grads).flat().map(Math.abs));
    for (const [name, p] of net.namedParameters()) close(`grad ${name}`, p.grad!.data, mlp.grads[name], 0.01 * gradScale);
    expectState('after one training forward', net, mlp.stateAfter);
    net.eval();
    close('eval output', net.forward(toTensor(mlp.xEval)).data, mlp.outEval);
  });

  it.each(mlp.optimizers.map((o) => [o.name, o] as const))('three steps of %s', (name, o) => {
    useBackend(b);
    const net = makeMlp();
    const ps = net.parameters();
    const opt = name.startsWith('SGD momentum 0.9') ? new optim.SGD(ps, { lr: 0.1, momentum: 0.9, nesterov: true, weightDecay: 1e-3 })
      : name.startsWith('SGD') ? new optim.SGD(ps, { lr: 0.05, momentum: 0.5, dampening: 0.1 })
        : name.startsWith('Adam ') ? new optim.Adam(ps, { lr: 1e-2, weightDecay: 1e-2 })
          : new optim.AdamW(ps, { lr: 1e-2 });
    const x = toTensor(mlp.x), lossFn = new nn.CrossEntropyLoss();
    for (let step = 0; step < 3; step++) {
      opt.zeroGrad();
      const loss = lossFn.forward(net.forward(x), mlp.y);
      expect(loss.item()).toBeCloseTo(o.losses[step], 4);
      loss.backward();
      opt.step();
    }
    // AdamW has no L2 term to dominate the noise gradient of 0.bias (see above): Adam's normalised
    // step moves it by up to lr in the direction of the noise's sign, so it can only be bounded;
    // BatchNorm's running mean (the mean of x W^T + b) inherits that drift, scaled by momentum.
    if (name === 'AdamW') expectState(name, net, o.state, ['0.bias', '1.running_mean'], 2 * 3 * 1e-2);
    else expectState(name, net, o.state);
  });
});

describe.each([['native', native], ['ts', tsBackend]] as [string, Backend][])('layers against PyTorch on %s', (_, b) => {
  it.each(fixtures.layers.map((c) => [c.name, c] as const))('%s', (name, c) => {
    useBackend(b);
    const layer = LAYERS[name]();
    if (Object.keys(c.state).length) layer.loadStateDict(Object.fromEntries(Object.entries(c.state).map(([k, v]) => [k, toTensor(v)])));
    const x = new Tensor(Float32Array.from(c.x.data), c.x.shape, true);
    const y = layer.forward(x);
    expect(y.shape).toEqual(c.y.shape);
    close(`${name} output`, y.data, c.y.data);
    y.backward(tensor(Float32Array.from(c.g), c.y.shape));
    close(`${name} dx`, x.grad!.data, c.dx);
    for (const [k, p] of layer.namedParameters()) close(`${name} grad ${k}`, p.grad!.data, c.grads[k]);
  });
});

describe('modules', () => {
  it('state-dict keys and order are PyTorch\'s', () => {
    const net = new nn.Sequential(new nn.Linear(784, 500), new nn.BatchNorm1d(500), new nn.ReLU(), new nn.Linear(500, 10));
    expect(Object.keys(net.stateDict())).toEqual(['0.weight', '0.bias', '1.weight', '1.bias', '1.running_mean',
      '1.running_var', '1.num_batches_tracked', '3.weight', '3.bias']);
    expect(net.parameters()).toHaveLength(6);
    expect(net.buffers()).toHaveLength(3);
    expect(net.children()).toHaveLength(4);
    expect(net.eval().training).toBe(false);
    expect(net.children().every((m) => !m.training)).toBe(true);
  });

  it('BatchNorm: cumulative average with momentum null, no buffers without tracking, batch stats in eval then', () => {
    const bn = new nn.BatchNorm1d(2, { momentum: null });
    bn.forward(tensor([[1, 2], [3, 6]]));
    bn.forward(tensor([[5, 0], [7, 0]]));
    expect(bn.numBatchesTracked!.item()).toBe(2);
    expect(Array.from(bn.runningMean!.data)).toEqual([4, 2]); // (2 + 6) / 2, (4 + 0) / 2
    expect(Array.from(bn.runningVar!.data)).toEqual([2, 4]); // unbiased: (2 + 2) / 2, (8 + 0) / 2
    const free = new nn.BatchNorm1d(2, { trackRunningStats: false });
    expect(Object.keys(free.stateDict())).toEqual(['weight', 'bias']);
    free.eval();
    expect(Array.from(free.forward(tensor([[1, 2], [3, 6]])).data).map((v) => Math.round(v * 1e4) / 1e4)).toEqual([-1, -1, 1, 1]);
  });

  it('BatchNorm errors name the module and both shapes; one value per channel is rejected before any state changes', () => {
    expect(() => new nn.BatchNorm2d(64).forward(zeros([8, 32, 28, 28])))
      .toThrow(new RangeError('BatchNorm2d(64) expected input of shape [N, 64, H, W] but received [8, 32, 28, 28]'));
    expect(() => new nn.BatchNorm1d(500).forward(zeros([8, 784])))
      .toThrow(new RangeError('BatchNorm1d(500) expected input of shape [N, 500] or [N, 500, L] but received [8, 784]'));
    const bn = new nn.BatchNorm1d(4);
    expect(() => bn.forward(zeros([1, 4]))).toThrow(new RangeError('Expected more than 1 value per channel when training, got input size [1, 4]'));
    expect(bn.numBatchesTracked!.item()).toBe(0);
    expect(() => new nn.Linear(784, 500).forward(zeros([8, 100]))).toThrow(new RangeError('Linear(784, 500) expected input of shape [N, 784] but received [8, 100]'));
  });

  it('loadStateDict lists every missing, unexpected and mis-shaped key', () => {
    const net = new nn.Sequential(new nn.Linear(3, 2), new nn.BatchNorm1d(2));
    const sd = net.stateDict();
    const bad: Record<string, Tensor> = { ...sd, '0.weight': zeros([3, 2]), extra: zeros([1]) };
    delete bad['1.running_var'];
    expect(() => net.loadStateDict(bad)).toThrow(new RangeError(
      'loadStateDict: missing keys: 1.running_var; unexpected keys: extra; size mismatch for 0.weight: expected [2, 3] but received [3, 2]'));
    const loose = { ...sd };
    delete loose['1.running_var'];
    expect(net.loadStateDict(loose, { strict: false })).toEqual({ missingKeys: ['1.running_var'], unexpectedKeys: [] });
  });

  it('losses reject bad targets', () => {
    const logits = zeros([2, 3]), ce = new nn.CrossEntropyLoss();
    expect(() => ce.forward(logits, [0, 3])).toThrow(new RangeError('crossEntropy: target 3 at index 1 is out of range for 3 classes'));
    expect(() => ce.forward(logits, [0])).toThrow(new RangeError('crossEntropy: expected 2 targets (one per row of the input) but received 1'));
    expect(() => ce.forward(logits, [0, 1.5])).toThrow(new TypeError('crossEntropy: expected integer class indices but targets[1] is 1.5'));
    expect(() => ce.forward(logits, 'ab' as never)).toThrow(TypeError);
    expect(ce.forward(logits, Uint8Array.of(0, 2)).item()).toBeCloseTo(Math.log(3), 6);
    expect(() => new nn.MSELoss().forward(zeros([2]), zeros([3]))).toThrow(new RangeError('mseLoss: expected target of shape [2] but received [3]'));
  });

  it('optimizers: parameter groups with their own weight decay, and a PyTorch-shaped stateDict', () => {
    const w = tensor([1, 2], undefined, { requiresGrad: true }), g = tensor([3], undefined, { requiresGrad: true });
    const opt = new optim.SGD([{ params: [w], weightDecay: 0.5 }, { params: [g] }], { lr: 0.1, momentum: 0.9 });
    w.grad = tensor([0, 0]);
    g.grad = tensor([1]);
    opt.step();
    expect(Array.from(w.data)).toEqual([Math.fround(1 - 0.1 * 0.5), Math.fround(2 - 0.1 * 1)]);
    expect(Array.from(g.data)).toEqual([Math.fround(3 - 0.1)]);
    const sd = opt.stateDict();
    expect(sd.param_groups.map((p) => [p.weight_decay, p.params])).toEqual([[0.5, [0]], [0, [1]]]);
    expect(Object.keys(sd.state)).toEqual(['0', '1']);
    expect(() => new optim.SGD([w], { lr: -1 })).toThrow(new RangeError('SGD: expected lr in [0, inf) but received -1'));
    expect(() => new optim.SGD([w], { lr: 0.1, nesterov: true })).toThrow(/Nesterov momentum requires a momentum/);
  });
});
