/** Resumable training: optimizer and scheduler state dicts (PyTorch's layout and values), checkpoints, bit-exact resume. */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  DataLoader, fit, Generator, getRngState, loadCheckpoint, loadMnist, manualSeed, nn, optim, randn, save, saveCheckpoint, setRngState,
  tensor, type EpochProgress, type Tensor,
} from '../lib/index.js';

const fixtures = JSON.parse(readFileSync(join(__dirname, 'fixtures', 'ops.json'), 'utf8')).optimizers as Record<string, {
  state: Record<string, Record<string, number | number[]>>; param_groups: Record<string, unknown>[]; weight: number[]; bias: number[];
}>;
const dir = mkdtempSync(join(tmpdir(), 'stablegrad-checkpoint-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function twoSteps(make: (ps: Tensor[]) => optim.SGD | optim.Adam) {
  const w = tensor([[1, -2], [0.5, 3]], undefined, { requiresGrad: true }), b = tensor([0.25, -0.75], undefined, { requiresGrad: true });
  const opt = make([w, b]);
  const step = (k: number) => {
    w.grad = tensor([[0.1, -0.2], [0.3, 0.4]]).mul(k + 1);
    b.grad = tensor([-0.5, 0.6]).mul(k + 1);
    opt.step();
  };
  step(0);
  step(1);
  return { w, b, opt, step };
}

const MAKERS = {
  sgd: (ps: Tensor[]) => new optim.SGD(ps, { lr: 0.1, momentum: 0.9, weightDecay: 0.01, nesterov: true }),
  adam: (ps: Tensor[]) => new optim.Adam(ps, { lr: 0.01, betas: [0.8, 0.99], eps: 1e-6, weightDecay: 0.1 }),
  adamw: (ps: Tensor[]) => new optim.AdamW(ps, { lr: 0.01 }),
};

describe('optimizer state dicts', () => {
  it.each(Object.keys(MAKERS) as (keyof typeof MAKERS)[])('%s: PyTorch\'s layout and values after two steps', (name) => {
    const { w, b, opt } = twoSteps(MAKERS[name]);
    const want = fixtures[name], sd = opt.stateDict();
    expect(Object.keys(sd)).toEqual(['state', 'param_groups']);
    for (const [k, v] of Object.entries(sd.param_groups[0])) expect(v, k).toEqual(want.param_groups[0][k]);
    expect(Object.keys(sd.state)).toEqual(Object.keys(want.state));
    for (const [i, entry] of Object.entries(want.state))
      for (const [k, v] of Object.entries(entry)) {
        const mine = sd.state[Number(i)][k];
        if (typeof v === 'number') expect(mine, `${i}.${k}`).toBe(v);
        else Array.from((mine as Tensor).data).forEach((x, j) => expect(x, `${i}.${k}[${j}]`).toBeCloseTo(v[j], 6));
      }
    Array.from(w.data).forEach((x, j) => expect(x).toBeCloseTo(want.weight[j], 6));
    Array.from(b.data).forEach((x, j) => expect(x).toBeCloseTo(want.bias[j], 6));
  });

  it.each(Object.keys(MAKERS) as (keyof typeof MAKERS)[])('%s: loadStateDict continues exactly, and takes PyTorch\'s own state dict', (name) => {
    const a = twoSteps(MAKERS[name]);
    const fresh = { w: tensor(Array.from(a.w.data), [2, 2], { requiresGrad: true }), b: tensor(Array.from(a.b.data), undefined, { requiresGrad: true }) };
    const opt = MAKERS[name]([fresh.w, fresh.b]);
    opt.loadStateDict(a.opt.stateDict());
    a.step(2);
    fresh.w.grad = tensor([[0.1, -0.2], [0.3, 0.4]]).mul(3);
    fresh.b.grad = tensor([-0.5, 0.6]).mul(3);
    opt.step();
    expect(Array.from(fresh.w.data)).toEqual(Array.from(a.w.data));
    expect(Array.from(fresh.b.data)).toEqual(Array.from(a.b.data));
    // PyTorch's state dict, with its extra options at their neutral values
    const pt = fixtures[name], state: Record<number, Record<string, Tensor | number>> = {};
    for (const [i, entry] of Object.entries(pt.state))
      state[Number(i)] = Object.fromEntries(Object.entries(entry).map(([k, v]) => [k, typeof v === 'number' ? v : tensor(v)]));
    opt.loadStateDict({ state, param_groups: pt.param_groups as never });
    expect(opt.stateDict().param_groups[0].lr).toBe(pt.param_groups[0].lr);
  });

  it('loadStateDict names what does not fit, and changes nothing then', () => {
    const { opt } = twoSteps(MAKERS.sgd);
    const sd = opt.stateDict();
    expect(() => opt.loadStateDict({ ...sd, param_groups: [...sd.param_groups, sd.param_groups[0]] }))
      .toThrow('SGD.loadStateDict: the state dict has 2 parameter groups but the optimizer has 1');
    expect(() => opt.loadStateDict({ ...sd, state: { 0: { momentum_buffer: tensor([1, 2, 3]) } } }))
      .toThrow('SGD.loadStateDict: state 0.momentum_buffer should be a tensor of 4 values (shape [2, 2]) but is of shape [3]');
    expect(() => opt.loadStateDict({ ...sd, param_groups: [{ ...sd.param_groups[0], amsgrad: true }] }))
      .toThrow('SGD.loadStateDict: parameter group 0 sets amsgrad=true, which SGD does not do');
    expect(() => opt.loadStateDict({ ...sd, param_groups: [{ ...sd.param_groups[0], lr: -1 }] })).toThrow(RangeError);
    expect(opt.stateDict()).toEqual(sd);
  });

  it('schedulers: stateDict and loadStateDict', () => {
    const opt = MAKERS.sgd([randn([2], { requiresGrad: true })]);
    const a = new optim.StepLR(opt, { stepSize: 2, gamma: 0.5 });
    a.step();
    a.step();
    a.step();
    expect(a.stateDict()).toEqual({ step_size: 2, gamma: 0.5, last_epoch: 3, base_lrs: [0.1], _last_lr: [0.05] });
    const b = new optim.StepLR(MAKERS.sgd([randn([2], { requiresGrad: true })]), { stepSize: 7 });
    b.loadStateDict(a.stateDict());
    b.step();
    a.step();
    expect(b.getLastLr()).toEqual(a.getLastLr());
    const c = new optim.CosineAnnealingLR(opt, { tMax: 10 });
    expect(() => c.loadStateDict(a.stateDict())).toThrow('CosineAnnealingLR.loadStateDict: unexpected setting step_size=2 (expected T_max, eta_min)');
  });

  it('generators: getState and setState replay the same numbers', () => {
    manualSeed(5);
    randn([3]);
    const s = getRngState();
    const first = randn([5]).toArray();
    setRngState(s);
    expect(randn([5]).toArray()).toEqual(first);
    expect(() => new Generator().setState({ state: [0, 0, 0, 0], spareNormal: null })).toThrow(TypeError);
  });
});

describe('checkpoints', () => {
  const train = loadMnist({ train: true, flatten: true, limit: 1280 });
  function setup(loaderSeed: number | null = 9) {
    const model = new nn.Sequential(new nn.Linear(784, 64), new nn.BatchNorm1d(64), new nn.ReLU(), new nn.Dropout(0.2), new nn.Linear(64, 10));
    const optimizer = new optim.Adam(model.parameters(), { lr: 1e-3 });
    const scheduler = new optim.StepLR(optimizer, { stepSize: 1, gamma: 0.5 });
    const loader = new DataLoader(train, { batchSize: 64, shuffle: true, seed: loaderSeed ?? undefined });
    return { model, optimizer, scheduler, loader };
  }
  const run = (p: ReturnType<typeof setup>, startEpoch: number, epochs: number, startStep = 0) => fit(p.model, {
    train: p.loader, optimizer: p.optimizer, loss: new nn.CrossEntropyLoss(), epochs, startEpoch, startStep,
    onEpoch: () => p.scheduler.step(),
  });

  it('a run stopped after epoch 2 and resumed from its checkpoint ends with the same weights, bit for bit', () => {
    manualSeed(11);
    const whole = setup();
    run(whole, 1, 3);

    manualSeed(11);
    const first = setup();
    run(first, 1, 2);
    const path = join(dir, 'run.safetensors');
    saveCheckpoint(path, { ...first, generators: { loader: first.loader.generator }, epoch: 2, step: 40, extra: { note: 'x' } });
    manualSeed(999); // whatever happens in between
    randn([100]);

    const resumed = setup(); // fresh objects, as a new process would make
    const info = loadCheckpoint(path, { ...resumed, generators: { loader: resumed.loader.generator } });
    expect(info).toEqual({ epoch: 2, step: 40, extra: { note: 'x' } });
    run(resumed, info.epoch + 1, 3, info.step);
    const a = whole.model.stateDict(), b = resumed.model.stateDict();
    for (const k of Object.keys(a)) expect(Array.from(b[k].data), k).toEqual(Array.from(a[k].data));
    expect(resumed.scheduler.getLastLr()).toEqual(whole.scheduler.getLastLr());
  });

  it('a run stopped within an epoch resumes from the progress onStep gave, bit for bit (the loader seeded, or sharing the global generator with dropout)', () => {
    for (const loaderSeed of [9, null]) {
      manualSeed(11);
      const whole = setup(loaderSeed);
      const wholeEpochs = run(whole, 1, 3).epochs;

      manualSeed(11);
      const first = setup(loaderSeed), path = join(dir, 'within.safetensors'), stop = new Error('stop');
      try {
        fit(first.model, {
          train: first.loader, optimizer: first.optimizer, loss: new nn.CrossEntropyLoss(), epochs: 3, onEpoch: () => first.scheduler.step(),
          onStep: (_, progress) => {
            if (progress.step !== 27) return; // 7 batches into epoch 2 (20 a epoch)
            saveCheckpoint(path, { ...first, generators: { loader: first.loader.generator }, epoch: 1, step: 27, extra: { progress } });
            throw stop;
          },
        });
      } catch (e) {
        if (e !== stop) throw e;
      }
      manualSeed(999);
      randn([100]);

      const resumed = setup(loaderSeed);
      const info = loadCheckpoint(path, { ...resumed, generators: { loader: resumed.loader.generator } });
      const progress = (info.extra as { progress: EpochProgress }).progress;
      expect(progress).toMatchObject({ epoch: 2, batch: 7, step: 27, samples: 7 * 64 });
      const epochs = fit(resumed.model, {
        train: resumed.loader, optimizer: resumed.optimizer, loss: new nn.CrossEntropyLoss(), epochs: 3, resume: progress,
        onEpoch: () => resumed.scheduler.step(),
      }).epochs;
      const a = whole.model.stateDict(), b = resumed.model.stateDict();
      for (const k of Object.keys(a)) expect(Array.from(b[k].data), `${k}, loader seed ${loaderSeed}`).toEqual(Array.from(a[k].data));
      expect(epochs.map((r) => [r.epoch, r.trainLoss])).toEqual(wholeEpochs.slice(1).map((r) => [r.epoch, r.trainLoss]));
    }
  });

  it('loadCheckpoint refuses a file that is not one, or parts that do not fit, and changes nothing then', () => {
    const p = setup(), path = join(dir, 'model-only.safetensors');
    save(p.model.stateDict(), path);
    expect(() => loadCheckpoint(path, p)).toThrow(/not a stablegrad checkpoint/);
    const ck = join(dir, 'ck.safetensors');
    saveCheckpoint(ck, { model: p.model, optimizer: p.optimizer, epoch: 1, step: 1 });
    const other = setup(), before = Array.from(other.model.stateDict()['0.weight'].data);
    const sgd = new optim.SGD(other.model.parameters(), { lr: 0.1 });
    expect(() => loadCheckpoint(ck, { model: other.model, optimizer: sgd })).toThrow(/its optimizer is Adam, not SGD/);
    expect(Array.from(other.model.stateDict()['0.weight'].data)).toEqual(before);
    expect(() => loadCheckpoint(ck, { model: other.model, scheduler: other.scheduler })).toThrow(/holds no scheduler state/);
    writeFileSync(join(dir, 'junk.safetensors'), 'junk');
    expect(() => loadCheckpoint(join(dir, 'junk.safetensors'), p)).toThrow(RangeError);
  });
});
