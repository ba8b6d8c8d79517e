/**
 * The training loop with gradient-health monitoring. After every backward pass the monitor records
 * the loss and the L2 norm of every parameter's gradient. A step whose loss or any gradient is not
 * finite is skipped (no optimizer update), counted, and reported with the parameter whose gradient
 * went non-finite first in backpropagation order (from the output toward the input); after
 * maxBadSteps consecutive bad steps training stops with an error that says what happened and what
 * to try.
 */
import { ByteImageDataset, TensorDataset, type DataLoader } from '../data/dataset.js';
import { release } from '../memory.js';
import { isLibraryModule, type Module } from '../nn/module.js';
import { clipGradNorm as clip } from '../nn/utils.js';
import type { Optimizer } from '../optim/optimizer.js';
import { argmax, gradSumSquares, noGrad, type Tensor } from '../tensor.js';

export interface Loss {
  forward(logits: Tensor, targets: Int32Array): Tensor;
}

export interface StepRecord {
  epoch: number;
  /** steps since the start of training, from 0 */
  step: number;
  loss: number;
  /** L2 norm of each parameter's gradient, by parameter name (before clipping) */
  gradNorms: Record<string, number>;
  skipped: boolean;
  /** for a skipped step: 'gradient' when a gradient went non-finite with a finite loss, 'loss' when the loss itself did */
  reason?: 'gradient' | 'loss';
  /**
   * for a skipped step, the parameter to blame: the first (in backpropagation order, from the output
   * toward the input) with a non-finite gradient; when the loss itself is not finite, the parameter
   * with the largest gradient at the previous step, whose update made the forward pass overflow
   */
  culprit?: string;
}

export interface EpochRecord {
  epoch: number;
  trainLoss: number;
  testLoss: number | null;
  testAccuracy: number | null;
  samplesPerSec: number;
  seconds: number;
  skippedSteps: number;
}

export interface FitOptions {
  train: DataLoader;
  test?: DataLoader;
  optimizer: Optimizer<{ lr: number }>;
  loss: Loss;
  epochs: number;
  /** clip the total gradient norm to this (nn.utils.clipGradNorm) before each step */
  clipGradNorm?: number;
  /** stop after this many consecutive skipped steps (default 10) */
  maxBadSteps?: number;
  /** stop after this many steps in all (default: no limit) */
  maxSteps?: number;
  onStep?(record: StepRecord): void;
  onEpoch?(record: EpochRecord): void;
}

/** Training stopped because the loss or the gradients kept being non-finite. */
export class TrainingDivergedError extends Error {
  constructor(message: string, readonly firstBadStep: StepRecord) {
    super(message);
    this.name = 'TrainingDivergedError';
  }
}

/**
 * Mean loss and accuracy of model over loader, in evaluation mode without recording.
 * @example const { loss, accuracy } = evaluate(model, testLoader, new nn.CrossEntropyLoss());
 */
export function evaluate(model: Module, loader: DataLoader, loss: Loss): { loss: number; accuracy: number } {
  const wasTraining = model.training;
  model.eval();
  let total = 0, correct = 0, count = 0;
  noGrad(() => {
    for (const [x, y] of loader) {
      const logits = model.forward(x);
      total += loss.forward(logits, y).item() * y.length;
      const predicted = argmax(logits, 1).values;
      for (let i = 0; i < y.length; i++) if (predicted[i] === y[i]) correct++;
      count += y.length;
    }
  });
  model.train(wasTraining);
  return { loss: total / Math.max(count, 1), accuracy: correct / Math.max(count, 1) };
}

/**
 * Trains model for options.epochs epochs, monitoring gradient health at every step.
 * @example
 * fit(model, { train, test, optimizer: new optim.SGD(model.parameters(), { lr: 0.01 }),
 *   loss: new nn.CrossEntropyLoss(), epochs: 10, onEpoch: (r) => console.log(r) });
 * @throws {TrainingDivergedError} after maxBadSteps consecutive non-finite steps
 */
export function fit(model: Module, options: FitOptions): { epochs: EpochRecord[]; skippedSteps: number } {
  const { train, test, optimizer, loss: lossFn } = options;
  const maxBad = options.maxBadSteps ?? 10;
  const named = model.namedParameters();
  const records: EpochRecord[] = [];
  let step = 0, skippedTotal = 0, consecutiveBad = 0;
  let firstBad: StepRecord | null = null;
  let previous: Record<string, number> | null = null; // gradient norms of the last good step
  // the monitor: each parameter's gradient norm, taken as backward completes that gradient, and the
  // first to go non-finite in backpropagation order
  let gradNorms: Record<string, number> = {};
  let firstNonFinite: string | undefined;
  const hooks = named.map(([name, p]) => p.registerPostAccumulateGradHook((t) => {
    const norm = Math.sqrt(gradSumSquares(t));
    gradNorms[name] = norm;
    if (!Number.isFinite(norm)) firstNonFinite ??= name;
  }));
  // Each batch's array goes back to the allocator after its step when nothing else can hold it: the
  // dataset is one of the library's (a new array every batch) and the model one of its modules.
  const ownBatches = isLibraryModule(model) && [TensorDataset, ByteImageDataset].includes(train.dataset.constructor as never);
  try {
  for (let epoch = 1; epoch <= options.epochs; epoch++) {
    model.train();
    const start = process.hrtime.bigint();
    let lossSum = 0, lossCount = 0, samples = 0, skipped = 0;
    for (const [x, y] of train) {
      if (options.maxSteps !== undefined && step >= options.maxSteps) break;
      optimizer.zeroGrad();
      gradNorms = Object.fromEntries(named.map(([name]) => [name, 0]));
      firstNonFinite = undefined;
      const loss = lossFn.forward(model.forward(x), y);
      loss.backward();
      const value = loss.item();
      let reason: StepRecord['reason'], culprit: string | undefined;
      if (!Number.isFinite(value)) {
        reason = 'loss';
        culprit = previous ? Object.entries(previous).reduce((a, b) => (b[1] > a[1] ? b : a))[0] : undefined;
      } else {
        culprit = firstNonFinite;
        if (culprit) reason = 'gradient';
      }
      const record: StepRecord = { epoch, step, loss: value, gradNorms, skipped: reason !== undefined, reason, culprit };
      if (!record.skipped) previous = gradNorms;
      if (record.skipped) {
        skipped++;
        consecutiveBad++;
        firstBad ??= record;
        optimizer.zeroGrad();
      } else {
        consecutiveBad = 0;
        if (options.clipGradNorm !== undefined) clip(model.parameters(), options.clipGradNorm);
        optimizer.step();
        lossSum += value * y.length;
        lossCount += y.length;
      }
      samples += y.length;
      if (ownBatches) release(x.values);
      options.onStep?.(record);
      step++;
      if (consecutiveBad >= maxBad) {
        const b = firstBad!;
        const where = b.reason === 'gradient' ? `the gradient of ${b.culprit} went non-finite first`
          : `the loss itself was not finite: the forward pass overflowed${b.culprit ? ` after an update whose largest gradient was ${b.culprit}'s` : ''}`;
        throw new TrainingDivergedError(
          `training diverged: ${consecutiveBad} consecutive steps had a non-finite loss or gradient; at the first bad step ` +
          `(epoch ${firstBad!.epoch}, step ${firstBad!.step}) ${where}. Try a lower learning rate (now ` +
          `${optimizer.paramGroups[0].options.lr}), adding BatchNorm after the linear layers, or clipping gradients (clipGradNorm).`,
          firstBad!);
      }
    }
    const seconds = Number(process.hrtime.bigint() - start) / 1e9;
    const evaluation = test ? evaluate(model, test, lossFn) : null;
    const record: EpochRecord = {
      epoch, trainLoss: lossCount ? lossSum / lossCount : NaN, testLoss: evaluation?.loss ?? null,
      testAccuracy: evaluation?.accuracy ?? null, samplesPerSec: samples / seconds, seconds, skippedSteps: skipped,
    };
    skippedTotal += skipped;
    records.push(record);
    options.onEpoch?.(record);
    if (options.maxSteps !== undefined && step >= options.maxSteps) break;
  }
  } finally {
    for (const h of hooks) h.remove();
  }
  return { epochs: records, skippedSteps: skippedTotal };
}
