/** fit/evaluate with the gradient-health monitor, on real MNIST slices. */
import { describe, expect, it } from 'vitest';
import { add, backend, DataLoader, evaluate, fit, loadMnist, randn, TensorDataset, tensor, makeModel, manualSeed, mul, nn, optim, relu, sum, type Tensor, TrainingDivergedError, type StepRecord } from '../lib/index.js';

const train = loadMnist({ train: true, flatten: true, limit: 3200 });
const test = loadMnist({ train: false, flatten: true, limit: 1000 });

describe('fit', () => {
  it('trains the seed model, reporting per-epoch metrics and per-step gradient norms', () => {
    manualSeed(1);
    const model = makeModel('seed');
    const steps: StepRecord[] = [];
    const result = fit(model, {
      train: new DataLoader(train, { batchSize: 64, shuffle: true, seed: 1 }), test: new DataLoader(test, { batchSize: 500 }),
      optimizer: new optim.SGD(model.parameters(), { lr: 0.01, momentum: 0.9 }), loss: new nn.CrossEntropyLoss(), epochs: 2,
      clipGradNorm: 5, onStep: (s) => steps.push(s),
    });
    expect(result.epochs).toHaveLength(2);
    const [e1, e2] = result.epochs;
    expect(Object.keys(e2)).toEqual(['epoch', 'trainLoss', 'testLoss', 'testAccuracy', 'testMetrics', 'samplesPerSec', 'seconds', 'skippedSteps']);
    expect(e2.trainLoss).toBeLessThan(e1.trainLoss);
    expect(e2.testAccuracy).toBeGreaterThan(0.85);
    expect(e2.skippedSteps).toBe(0);
    expect(steps).toHaveLength(100);
    expect(Object.keys(steps[0].gradNorms)).toEqual(['0.weight', '0.bias', '1.weight', '1.bias', '3.weight', '3.bias']);
    expect(steps.every((s) => !s.skipped && Object.values(s.gradNorms).every(Number.isFinite))).toBe(true);
  });

  it('the gradient norms (noted by linear\'s weight product, else a pass) equal a pass over each gradient, also for a weight used twice', () => {
    // the head's weight goes through two linear ops and into a sum of squares: backward adds the
    // three parts before the monitor's hook reads the norm, which must be of all three (a note
    // left from one linear's product would differ)
    class Shared extends nn.Module {
      readonly body = this.registerModule('body', new nn.Linear(784, 32)) as nn.Linear;
      readonly head = this.registerModule('head', new nn.Linear(32, 10)) as nn.Linear;
      forward(x: Tensor): Tensor {
        const h = relu(this.body.forward(x));
        const logits = add(this.head.forward(h), this.head.forward(mul(h, 0.5)));
        // scaled by 1 + 0.001 * sum(W^2): W's gradient through the sum is not zero (a constant added
        // to every logit would get none from the cross-entropy)
        return mul(logits, add(mul(sum(mul(this.head.weight, this.head.weight)), 0.001), 1));
      }
    }
    for (const model of [(manualSeed(3), makeModel('seed')), (manualSeed(3), new Shared())]) {
      const named = model.namedParameters();
      let checked = 0;
      fit(model, {
        train: new DataLoader(train, { batchSize: 64, shuffle: true, seed: 3 }),
        optimizer: new optim.SGD(model.parameters(), { lr: 0.01 }), loss: new nn.CrossEntropyLoss(), epochs: 1, maxSteps: 5,
        onStep: (s) => { // after the optimizer's step, which leaves the gradients as they were
          for (const [name, p] of named) {
            const pass = Math.sqrt(backend().sumSquares(p.grad!.data));
            expect(Math.abs(s.gradNorms[name] - pass)).toBeLessThanOrEqual(1e-6 * pass);
            checked++;
          }
        },
      });
      expect(checked).toBe(5 * named.length);
    }
  });

  it('the explosion demonstration: over 50 steps deep-nobn goes non-finite and is skipped with the culprit named, deep stays finite', () => {
    const run = (name: 'deep' | 'deep-nobn') => {
      manualSeed(2);
      const model = makeModel(name), steps: StepRecord[] = [];
      const opts = {
        train: new DataLoader(train, { batchSize: 64, shuffle: true, seed: 2 }),
        optimizer: new optim.SGD(model.parameters(), { lr: 0.01 }), loss: new nn.CrossEntropyLoss(), epochs: 1,
        maxSteps: 50, maxBadSteps: 1000, onStep: (s: StepRecord) => steps.push(s),
      };
      const result = fit(model, opts);
      return { steps, result, model };
    };
    const deep = run('deep');
    expect(deep.steps).toHaveLength(50);
    expect(deep.steps.every((s) => Number.isFinite(s.loss) && !s.skipped)).toBe(true);
    expect(deep.steps[0].loss).toBeGreaterThan(2);
    expect(deep.steps[49].loss).toBeLessThan(deep.steps[0].loss);

    const noBn = run('deep-nobn');
    const bad = noBn.steps.filter((s) => s.skipped);
    expect(bad.length).toBeGreaterThan(40);
    expect(noBn.steps.findIndex((s) => s.skipped)).toBeLessThanOrEqual(2); // PyTorch: NaN by step 2
    expect(bad[0].reason).toBeDefined();
    expect(noBn.model.namedParameters().map(([n]) => n)).toContain(bad[0].culprit);
    expect(noBn.result.skippedSteps).toBe(bad.length);
  });

  it('stops after maxBadSteps consecutive bad steps with an error that says what to try', () => {
    manualSeed(2);
    const model = makeModel('deep-nobn');
    let error: unknown;
    try {
      fit(model, {
        train: new DataLoader(train, { batchSize: 64 }), optimizer: new optim.SGD(model.parameters(), { lr: 0.01 }),
        loss: new nn.CrossEntropyLoss(), epochs: 1, maxBadSteps: 5,
      });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(TrainingDivergedError);
    expect((error as Error).message).toMatch(/^training diverged: 5 consecutive steps had a non-finite loss or gradient; at the first bad step \(epoch 1, step \d+\) (the loss itself was not finite: the forward pass overflowed after an update whose largest gradient was [\w.]+'s|the gradient of [\w.]+ went non-finite first)\. Try a lower learning rate \(now 0\.01\), adding BatchNorm after the linear layers, or clipping gradients \(clipGradNorm\)\.$/);
  });
});

describe('fit and evaluate with any targets and losses', () => {
  it('regression: float targets, MSELoss, a user metric, no accuracy', () => {
    manualSeed(3);
    const x = randn([512, 4]), trueW = tensor([[1], [-2], [0.5], [3]]);
    const y = x.matmul(trueW).add(1).detach();
    const data = new TensorDataset(x, y);
    const model = new nn.Sequential(new nn.Linear(4, 1));
    const mae = (out: Tensor, target: Tensor) => out.sub(target).abs().mean().item();
    const result = fit(model, {
      train: new DataLoader(data, { batchSize: 32, shuffle: true, seed: 3 }), test: new DataLoader(data, { batchSize: 100 }),
      optimizer: new optim.SGD(model.parameters(), { lr: 0.05 }), loss: new nn.MSELoss(), epochs: 5, metrics: { mae },
    });
    const last = result.epochs.at(-1)!;
    expect(last.testAccuracy).toBeNull();
    expect(last.testLoss!).toBeLessThan(1e-3);
    expect(last.testMetrics.mae).toBeLessThan(0.03);
    expect(last.testMetrics.mae).toBeGreaterThan(0);
    expect(evaluate(model, new DataLoader(data, { batchSize: 64 }), (o, t) => o.sub(t).pow(2).mean()).loss).toBeCloseTo(last.testLoss!, 6);
  });

  it('a loss function of (output, target) trains; the test loss is the loss without label smoothing', () => {
    manualSeed(4);
    const model = makeModel('seed');
    const smoothed = new nn.CrossEntropyLoss({ labelSmoothing: 0.1 });
    const result = fit(model, {
      train: new DataLoader(train.slice(640), { batchSize: 64 }), test: new DataLoader(test.slice(500), { batchSize: 250 }),
      optimizer: new optim.SGD(model.parameters(), { lr: 0.05 }), loss: smoothed, epochs: 1,
    });
    const plain = evaluate(model, new DataLoader(test.slice(500), { batchSize: 100 }), new nn.CrossEntropyLoss());
    const withSmoothing = evaluate(model, new DataLoader(test.slice(500), { batchSize: 100 }), smoothed);
    expect(result.epochs[0].testLoss).toBeCloseTo(plain.loss, 5);
    expect(withSmoothing.loss).toBeGreaterThan(plain.loss);
    expect(plain.accuracy).toBe(result.epochs[0].testAccuracy);

    const viaFunction = fit(makeModel('seed'), {
      train: new DataLoader(train.slice(640), { batchSize: 64 }), optimizer: new optim.SGD(model.parameters(), { lr: 0.05 }),
      loss: (out, y) => new nn.CrossEntropyLoss().forward(out, y), epochs: 1,
    });
    expect(Number.isFinite(viaFunction.epochs[0].trainLoss)).toBe(true);
    expect(() => fit(model, { train: new DataLoader(train.slice(64)), optimizer: new optim.SGD(model.parameters(), { lr: 0.1 }),
      loss: 3 as never, epochs: 1 })).toThrow('fit: expected loss to be a loss module (with forward) or a function of (output, target) but received number');
  });

  it('TensorDataset checks float targets against the inputs', () => {
    expect(() => new TensorDataset(randn([4, 2]), randn([3, 1]))).toThrow('TensorDataset: inputs of shape [4, 2] hold 4 samples but there are 3 targets (targets of shape [3, 1])');
    expect(() => new TensorDataset(randn([4, 2]), [1, 2] as never)).toThrow(TypeError);
    const [xb, yb] = new TensorDataset(randn([4, 2]), tensor([[1, 10], [2, 20], [3, 30], [4, 40]])).batch([3, 1]);
    expect(xb.shape).toEqual([2, 2]);
    expect(yb.toArray()).toEqual([[4, 40], [2, 20]]);
  });
});
