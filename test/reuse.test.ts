/**
 * The training step reuses memory (gradients added straight into .grad, zeroGrad(false)'s lazy
 * zeroing, gradient scratch arrays taken back by backward, Conv2d's patch arrays given back after
 * its backward, the DataLoader's reused batch arrays, BatchNorm+ReLU fused in Sequential). Each must
 * give exactly the numbers of the plain path.
 */
import { describe, expect, it } from 'vitest';
import { DataLoader, fit, manualSeed, nn, noGrad, optim, Tensor, tensor, TensorDataset } from '../lib/index.js';
import { gradScratch, recycle, StepMemory, uninitialized } from '../lib/tensor.js';

function randomTensor(shape: number[], seed: number): Tensor {
  let s = seed >>> 0;
  const t = tensor(new Array(shape.reduce((p, d) => p * d, 1)).fill(0), shape);
  for (let i = 0; i < t.size; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    t.data[i] = s / 2 ** 32 - 0.5;
  }
  return t;
}

function seedModel(): nn.Sequential {
  manualSeed(7);
  return new nn.Sequential(new nn.Linear(12, 9), new nn.BatchNorm1d(9), new nn.ReLU(), new nn.Linear(9, 4));
}

/** Three SGD steps; the gradients after each, by parameter name. */
function train(setToNone: boolean): Record<string, number[]>[] {
  const model = seedModel();
  const opt = new optim.SGD(model.parameters(), { lr: 0.1, momentum: 0.9 });
  const loss = new nn.CrossEntropyLoss();
  const grads: Record<string, number[]>[] = [];
  for (let step = 0; step < 3; step++) {
    opt.zeroGrad(setToNone);
    loss.forward(model.forward(randomTensor([8, 12], step + 1)), Int32Array.from([0, 1, 2, 3, 0, 1, 2, 3])).backward();
    grads.push(Object.fromEntries([...model.namedParameters()].map(([name, p]) => [name, [...p.grad!.data]])));
    opt.step();
  }
  return grads;
}

describe('memory reuse in the training step', () => {
  it('zeroGrad(false) then backward gives the gradients of zeroGrad() then backward, step after step', () => {
    expect(train(false)).toEqual(train(true));
  });

  it('zeroGrad(false) keeps the .grad tensor, which reads as zeros until backward refills it', () => {
    const model = seedModel();
    const loss = new nn.CrossEntropyLoss();
    const x = randomTensor([8, 12], 1), y = Int32Array.from([0, 1, 2, 3, 0, 1, 2, 3]);
    loss.forward(model.forward(x), y).backward();
    const weight = (model.layers[0] as nn.Linear).weight;
    const held = weight.grad!;
    const first = [...held.data];
    model.zeroGrad(false);
    expect(weight.grad).toBe(held);
    expect([...held.data].every((v) => v === 0)).toBe(true);
    loss.forward(model.forward(x), y).backward();
    expect(weight.grad).toBe(held);
    expect([...held.data]).toEqual(first);
  });

  it('backward without zeroGrad adds onto the existing gradients (beta = 1 into .grad)', () => {
    const model = seedModel();
    model.eval(); // the same forward twice: fixed statistics
    const loss = new nn.CrossEntropyLoss();
    const x = randomTensor([8, 12], 3), y = Int32Array.from([3, 2, 1, 0, 3, 2, 1, 0]);
    loss.forward(model.forward(x), y).backward();
    const once = [...model.parameters()].map((p) => [...p.grad!.data]);
    loss.forward(model.forward(x), y).backward();
    [...model.parameters()].forEach((p, i) => p.grad!.data.forEach((v, j) => expect(v).toBeCloseTo(2 * once[i][j], 6)));
    // Conv2d's bias gradient, which its kernel overwrites, too
    manualSeed(8);
    const conv = new nn.Conv2d(2, 3, 3, { padding: 1 });
    const image = randomTensor([2, 2, 5, 5], 9);
    conv.forward(image).sum().backward();
    const convOnce = [...conv.parameters()].map((p) => [...p.grad!.data]);
    conv.forward(image).sum().backward();
    [...conv.parameters()].forEach((p, i) => p.grad!.data.forEach((v, j) => expect(v).toBeCloseTo(2 * convOnce[i][j], 5)));
  });

  it('a gradient handed to the user is never reused by a later backward', () => {
    const x = randomTensor([5, 7], 4);
    x.requiresGrad = true;
    x.relu().sum().backward();
    const kept = [...x.grad!.data];
    const other = randomTensor([5, 7], 5);
    other.requiresGrad = true;
    other.relu().mul(3).sum().backward();
    expect([...x.grad!.data]).toEqual(kept);
  });

  it('Conv2d reuses its patch array only once its backward has run: graphs in flight keep their own', () => {
    manualSeed(3);
    const conv = new nn.Conv2d(2, 3, 3, { padding: 1 });
    const inputs = [randomTensor([2, 2, 5, 5], 8), randomTensor([2, 2, 5, 5], 9)];
    const gradsOf = (backwardOrder: number[]) => {
      // the forwards of both inputs, plus one without grad in between (its array is reused at once),
      // then the backwards in the given order; the weight gradient of each is read from col
      const outs = inputs.map((x, i) => {
        if (i === 1) noGrad(() => conv.forward(randomTensor([2, 2, 5, 5], 10)));
        return conv.forward(x);
      });
      return backwardOrder.map((i) => {
        conv.zeroGrad();
        outs[i].mul(outs[i]).sum().backward();
        return [...conv.weight.grad!.data];
      });
    };
    const alone = inputs.map((x) => {
      conv.zeroGrad();
      const y = conv.forward(x);
      y.mul(y).sum().backward();
      return [...conv.weight.grad!.data];
    });
    const [second, first] = gradsOf([1, 0]);
    expect(first).toEqual(alone[0]);
    expect(second).toEqual(alone[1]);
    // and after a step's backward the array goes back and the next forward refills it
    expect(gradsOf([0, 1])).toEqual(alone);
  });

  it('pooling, activation, dropout and matmul gradients do not depend on what their reused scratch arrays held', () => {
    // each op's backward takes its input gradient from the scratch pool: fill the pool's arrays of
    // that size with 0, then with 7 (draining what it held first), and the gradients must not change
    const pollute = (n: number, value: number) => {
      const held = [0, 1, 2, 3].map(() => gradScratch(n)); // the pool keeps at most four per size
      for (const a of held) recycle(a.fill(value));
    };
    const cases: [string, number, (x: Tensor) => Tensor][] = [
      ['MaxPool2d', 2 * 3 * 8 * 8, (x) => new nn.MaxPool2d(2).forward(x.reshape([2, 3, 8, 8]))],
      ['AvgPool2d', 2 * 3 * 8 * 8, (x) => new nn.AvgPool2d(2).forward(x.reshape([2, 3, 8, 8]))],
      ['LeakyReLU', 40, (x) => new nn.LeakyReLU(0.1).forward(x)],
      ['sigmoid', 40, (x) => x.sigmoid()],
      ['tanh', 40, (x) => x.tanh()],
      ['Dropout', 40, (x) => {
        manualSeed(5);
        return new nn.Dropout(0.3).forward(x);
      }],
      ['matmul', 40, (x) => x.reshape([5, 8]).matmul(randomTensor([8, 3], 16))],
    ];
    for (const [name, n, op] of cases) {
      const gradient = (value: number) => {
        pollute(n, value);
        const x = randomTensor([n], 17);
        x.requiresGrad = true;
        // x.mul(1): the op's input is not a leaf, so its gradient goes through the engine and back to the pool
        const y = op(x.mul(1));
        y.mul(randomTensor(y.shape, 18)).sum().backward();
        return [...x.grad!.data];
      };
      expect(gradient(7), name).toEqual(gradient(0));
    }
  });

  it('Sequential fuses BatchNorm+ReLU with the values and gradients of the separate modules', () => {
    const run = (fused: boolean) => {
      const model = seedModel();
      const x = randomTensor([8, 12], 6);
      const out = fused ? model.forward(x) : model.layers.reduce((h, m) => m.forward(h), x);
      out.sum().backward();
      return { out: [...out.data], grads: [...model.parameters()].map((p) => [...p.grad!.data]) };
    };
    const fused = run(true), separate = run(false);
    fused.out.forEach((v, i) => expect(v).toBeCloseTo(separate.out[i], 6));
    fused.grads.forEach((g, i) => g.forEach((v, j) => expect(v).toBeCloseTo(separate.grads[i][j], 6)));
  });

  it('DataLoader.batches({ reuse: true }) yields the batches of plain iteration, in one pair of arrays', () => {
    const data = new TensorDataset(randomTensor([10, 3], 8), Int32Array.from({ length: 10 }, (_, i) => i));
    const plain = [...new DataLoader(data, { batchSize: 4, shuffle: true, seed: 1 })].map(([x, y]) => [[...x.data], [...y]]);
    const loader = new DataLoader(data, { batchSize: 4, shuffle: true, seed: 1 });
    const seen: Float32Array[] = [];
    const reused = [];
    for (const [x, y] of loader.batches({ reuse: true })) {
      seen.push(x.data);
      reused.push([[...x.data], [...y]]);
    }
    expect(reused).toEqual(plain);
    expect(seen[1]).toBe(seen[0]); // the same array for the full batches; the short last one is new
  });

  describe('fit() reusing the memory of activations from step to step', () => {
    /** keeps what passes through it: the tensor, its array and a clone */
    class Keep extends nn.Module {
      kept: Tensor | null = null;
      keptView: Tensor | null = null;
      copy: Tensor | null = null;
      arrays: Float32Array[] = [];
      forward(x: Tensor): Tensor {
        this.kept = x;
        this.keptView = x.reshape([-1]).detach();
        this.copy = x.clone();
        this.arrays.push(x.data);
        return x;
      }
    }
    const run = (reuseActivations: boolean | undefined) => {
      const model = seedModel(), keep = new Keep();
      model.layers.splice(1, 0, keep); // after the first Linear: its output comes from the step's memory
      // 20 rows in batches of 8: two full steps, a short one, twice
      const data = new TensorDataset(randomTensor([20, 12], 11), Int32Array.from({ length: 20 }, (_, i) => i % 4));
      const losses: number[] = [];
      fit(model, {
        train: new DataLoader(data, { batchSize: 8, shuffle: true, seed: 2 }), epochs: 2,
        optimizer: new optim.SGD(model.parameters(), { lr: 0.1, momentum: 0.9 }), loss: new nn.CrossEntropyLoss(),
        reuseActivations, onStep: (r) => losses.push(r.loss),
      });
      return { params: [...model.parameters()].map((p) => [...p.data]), losses, keep };
    };

    it('gives the losses and parameters of fresh arrays, bit for bit, writing each step into the last ones', () => {
      const reused = run(undefined), fresh = run(false);
      expect(reused.losses).toHaveLength(6);
      expect(reused.losses).toEqual(fresh.losses);
      expect(reused.params).toEqual(fresh.params);
      const [a, b] = [reused.keep.arrays, fresh.keep.arrays];
      expect([a[0], a[1]]).toContain(a[3]); // the second epoch's first step wrote into an array of the first's
      expect([a[0], a[1]]).not.toContain(a[2]); // the short batch has its own size
      expect([b[0], b[1]]).not.toContain(b[3]);
    });

    it('every op that takes its output from the step memory writes all of it: memory filled with NaN changes nothing', () => {
      // the memory's free arrays hold NaN before the step (any size the ops ask for, several each),
      // so a value an op left unwritten would show as NaN in its output or its gradients
      const cases: [string, number[], () => nn.Module][] = [
        ['Linear', [6, 5], () => new nn.Linear(5, 4)],
        ['BatchNorm1d+ReLU', [6, 5], () => new nn.Sequential(new nn.BatchNorm1d(5), new nn.ReLU())],
        ['Conv2d', [2, 2, 5, 5], () => new nn.Conv2d(2, 3, 3, { padding: 1 })],
        ['BatchNorm2d', [2, 3, 4, 4], () => new nn.BatchNorm2d(3)],
        ['MaxPool2d', [2, 3, 6, 6], () => new nn.MaxPool2d(2)],
        ['Dropout', [6, 5], () => new nn.Dropout(0.3)],
        ['LeakyReLU', [6, 5], () => new nn.LeakyReLU(0.1)],
      ];
      for (const [name, shape, make] of cases) {
        const step = (memory: StepMemory | null) => {
          manualSeed(6);
          const module = make();
          const x = randomTensor(shape, 19);
          x.requiresGrad = true;
          memory?.open();
          try {
            const y = module.forward(x);
            y.mul(randomTensor(y.shape, 20)).sum().backward();
            return [[...y.data], [...x.grad!.data], ...[...module.parameters()].map((p) => [...p.grad!.data])];
          } finally {
            memory?.close();
          }
        };
        const poisoned = new StepMemory();
        poisoned.open();
        for (let i = 0; i < 4; i++) for (const n of [30, 24, 5, 3, 150, 96, 54]) uninitialized(n).fill(NaN);
        poisoned.close();
        expect(step(poisoned), name).toEqual(step(null));
      }
    });

    it('an activation kept past its step throws when read, naming the way out; its clone and fresh arrays stay readable', () => {
      const { keep } = run(undefined);
      expect(keep.kept!.shape).toEqual([4, 9]);
      expect(() => keep.kept!.data).toThrow(
        /^this tensor \(shape \[4, 9\]\) was made during a fit\(\) training step, and its memory now holds a later step's values: keep a copy \(tensor\.clone\(\)\) during the step, or pass reuseActivations: false to fit\(\)$/);
      expect(() => keep.keptView!.data).toThrow(/^this tensor \(shape \[36\]\) was made during a fit\(\) training step/);
      expect(keep.copy!.size).toBe(36);
      const fresh = run(false).keep;
      expect([...fresh.kept!.data]).toEqual([...keep.copy!.data]);
    });
  });
});
