/**
 * The training loop with gradient-health monitoring. After every backward pass the monitor records
 * the loss and the L2 norm of every parameter's gradient. A step whose loss or any gradient is not
 * finite is skipped (no optimizer update), counted, and reported with the parameter whose gradient
 * went non-finite first in backpropagation order (from the output toward the input); after
 * maxBadSteps consecutive bad steps training stops with an error that says what happened and what
 * to try.
 */
import { isLibraryDataset, type DataLoader, type Target } from '../data/dataset.js';
import * as distributed from '../distributed/index.js';
import { release } from '../memory.js';
import { CrossEntropyLoss } from '../nn/loss.js';
import { isLibraryModule, type Module } from '../nn/module.js';
import { DistributedDataParallel } from '../nn/parallel.js';
import { clipGradNorm as clip } from '../nn/utils.js';
import type { Optimizer } from '../optim/optimizer.js';
import type { GeneratorState } from '../random.js';
import { argmax, gradSumSquares, noGrad, Tensor } from '../tensor.js';

/**
 * A loss of the model's output and the batch's targets: a loss module (nn.CrossEntropyLoss,
 * nn.MSELoss, anything with forward(output, target)) or a function; a mean over the batch.
 */
export type Loss<Y extends Target = Target> = { forward(output: Tensor, target: Y): Tensor } | ((output: Tensor, target: Y) => Tensor);

/** A figure of one batch's output and targets (a mean over the batch), averaged over the test set. */
export type Metric<Y extends Target = Target> = (output: Tensor, target: Y) => number;

function lossFunction<Y extends Target>(loss: Loss<Y>): (output: Tensor, target: Y) => Tensor {
  if (typeof loss === 'function') return loss;
  if (loss && typeof loss.forward === 'function') return (o, t) => loss.forward(o, t);
  throw new TypeError(`fit: expected loss to be a loss module (with forward) or a function of (output, target) but received ${typeof loss}`);
}

/** The loss evaluation reports: the training loss without label smoothing, which only shapes training. */
function evaluationLoss<Y extends Target>(loss: Loss<Y>): Loss<Y> {
  return loss instanceof CrossEntropyLoss && loss.labelSmoothing !== 0 ? new CrossEntropyLoss({ reduction: loss.reduction }) : loss;
}

const countOf = (y: Target) => (y instanceof Tensor ? y.shape[0] : y.length);

export interface StepRecord {
  epoch: number;
  /** steps since the start of training, from 0 */
  step: number;
  loss: number;
  /** the first parameter group's learning rate at this step */
  lr: number;
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
  /** the loss over the test set (without label smoothing), null without one */
  testLoss: number | null;
  /** for class-index targets, the fraction of the test set classified right; else null */
  testAccuracy: number | null;
  /** each of fit's metrics over the test set (empty without one) */
  testMetrics: Record<string, number>;
  samplesPerSec: number;
  seconds: number;
  skippedSteps: number;
}

/**
 * How far training has got within an epoch, after a step: what a checkpoint taken there needs for
 * the run to go on as if never stopped (fit's `resume`). Plain JSON.
 */
export interface EpochProgress {
  epoch: number;
  /** batches of this epoch done */
  batch: number;
  /** steps taken since the start of training */
  step: number;
  /** the train loader's generator at the epoch's start (before it drew the epoch's order) */
  loaderState: GeneratorState;
  /** this epoch's sums so far: loss x samples and samples over good steps, all samples, skipped steps, seconds */
  lossSum: number;
  lossCount: number;
  samples: number;
  skipped: number;
  seconds: number;
}

export interface FitOptions<Y extends Target = Target> {
  train: DataLoader<Y>;
  test?: DataLoader<Y>;
  optimizer: Optimizer<{ lr: number }>;
  loss: Loss<Y>;
  /** figures computed over the test set each epoch, by name (see Metric) */
  metrics?: Record<string, Metric<Y>>;
  epochs: number;
  /** clip the total gradient norm to this (nn.utils.clipGradNorm) before each step */
  clipGradNorm?: number;
  /** stop after this many consecutive skipped steps (default 10) */
  maxBadSteps?: number;
  /** stop after this many steps in all (default: no limit) */
  maxSteps?: number;
  /**
   * the epoch to begin with, for a run resumed from a checkpoint (default 1: epochs before it are
   * done); training ends after epoch `epochs`
   */
  startEpoch?: number;
  /** the number of steps already taken, for a resumed run (default 0) */
  startStep?: number;
  /**
   * for a run resumed from a checkpoint taken within an epoch: the progress onStep was given then
   * (it sets the epoch and step; the model, optimizer and generators come from the checkpoint)
   */
  resume?: EpochProgress;
  /** after each step, with how far the epoch has got (for a checkpoint within the epoch) */
  onStep?(record: StepRecord, progress: EpochProgress): void;
  /** after each test batch of the evaluation that ends an epoch (for a progress line) */
  onEvaluate?(samplesDone: number, samplesTotal: number): void;
  onEpoch?(record: EpochRecord): void;
}

/** Training stopped because the loss or the gradients kept being non-finite. */
export class TrainingDivergedError extends Error {
  constructor(message: string, readonly firstBadStep: StepRecord) {
    super(message);
    this.name = 'TrainingDivergedError';
  }
}

export interface Evaluation {
  /** mean loss per sample */
  loss: number;
  /** for class-index targets, the fraction classified right (the largest output); else null */
  accuracy: number | null;
  /** each metric's mean per sample */
  metrics: Record<string, number>;
}

/**
 * Mean loss (and accuracy, for class-index targets, and any metrics) of model over loader, in
 * evaluation mode without recording.
 * @example const { loss, accuracy } = evaluate(model, testLoader, new nn.CrossEntropyLoss());
 */
export function evaluate<Y extends Target>(model: Module, loader: DataLoader<Y>, loss: Loss<Y>,
  options: { metrics?: Record<string, Metric<Y>>; onBatch?(samplesDone: number, samplesTotal: number): void } = {}): Evaluation {
  const lossOf = lossFunction(loss), metrics = Object.entries(options.metrics ?? {});
  const wasTraining = model.training;
  model.eval();
  let total = 0, correct = 0, count = 0, classified = true;
  const sums = metrics.map(() => 0);
  try {
    noGrad(() => {
      for (const [x, y] of loader) {
        const output = model.forward(x) as Tensor, n = countOf(y);
        total += lossOf(output, y).item() * n;
        metrics.forEach(([, metric], i) => (sums[i] += metric(output, y) * n));
        if (y instanceof Int32Array && output.ndim === 2) {
          const predicted = argmax(output, 1).values;
          for (let i = 0; i < n; i++) if (predicted[i] === y[i]) correct++;
        } else classified = false;
        count += n;
        options.onBatch?.(count, loader.dataset.length);
      }
    });
  } finally {
    model.train(wasTraining);
  }
  if (distributed.isInitialized() && distributed.worldSize() > 1) {
    // each rank evaluated its shard: the sums of all
    const all = Float32Array.of(total, correct, count, classified ? 0 : 1, ...sums);
    distributed.allReduce(all);
    [total, correct, count, classified] = [all[0], all[1], all[2], all[3] === 0];
    sums.forEach((_, i) => (sums[i] = all[4 + i]));
  }
  const per = Math.max(count, 1);
  return { loss: total / per, accuracy: classified ? correct / per : null, metrics: Object.fromEntries(metrics.map(([name], i) => [name, sums[i] / per])) };
}

/**
 * The rest of an epoch stopped after progress.batch batches: its order comes from the loader's
 * generator as it was at the epoch's start, and the generator then goes on from where it is now.
 */
function remainingBatches<Y extends Target>(train: DataLoader<Y>, progress: EpochProgress): IterableIterator<[Tensor, Y]> {
  const now = train.generator.getState();
  train.generator.setState(progress.loaderState);
  try {
    return train.batches(progress.batch);
  } finally {
    train.generator.setState(now);
  }
}

/**
 * Trains model for options.epochs epochs, monitoring gradient health at every step.
 * @example
 * fit(model, { train, test, optimizer: new optim.SGD(model.parameters(), { lr: 0.01 }),
 *   loss: new nn.CrossEntropyLoss(), epochs: 10, onEpoch: (r) => console.log(r) });
 * @throws {TrainingDivergedError} after maxBadSteps consecutive non-finite steps
 */
export function fit<Y extends Target>(model: Module, options: FitOptions<Y>): { epochs: EpochRecord[]; skippedSteps: number } {
  const { train, test, optimizer } = options;
  const lossOf = lossFunction(options.loss), testLoss = evaluationLoss(options.loss);
  const maxBad = options.maxBadSteps ?? 10;
  // a DistributedDataParallel's parameters under the names of the module it wraps
  const named: [string, Tensor][] = (model instanceof DistributedDataParallel ? model.module as Module : model).namedParameters();
  const records: EpochRecord[] = [];
  const resume = options.resume;
  let step = resume?.step ?? options.startStep ?? 0, skippedTotal = 0, consecutiveBad = 0;
  const startEpoch = resume?.epoch ?? options.startEpoch ?? 1;
  // under distributed training: steps decided and reported for all ranks (see distributed/)
  const ranks = distributed.isInitialized() ? distributed.worldSize() : 1;
  if (!Number.isInteger(startEpoch) || startEpoch < 1) throw new RangeError(`fit: expected startEpoch to be a positive integer but received ${startEpoch}`);
  if (!Number.isInteger(step) || step < 0) throw new RangeError(`fit: expected startStep to be a non-negative integer but received ${step}`);
  let firstBad: StepRecord | null = null;
  let previous: Record<string, number> | null = null; // gradient norms of the last good step
  // the monitor: each parameter's gradient norm, taken as backward completes that gradient, and the
  // first to go non-finite in backpropagation order (under distributed training, after backward has
  // averaged them: see the step)
  let gradNorms: Record<string, number> = {};
  let firstNonFinite: string | undefined;
  const hooks = ranks > 1 ? [] : named.map(([name, p]) => p.registerPostAccumulateGradHook((t) => {
    const norm = Math.sqrt(gradSumSquares(t));
    gradNorms[name] = norm;
    if (!Number.isFinite(norm)) firstNonFinite ??= name;
  }));
  // Each batch's array goes back to the allocator after its step when nothing else can hold it: the
  // dataset is one of the library's (a new array every batch) and the model one of its modules.
  const ownBatches = isLibraryModule(model) && isLibraryDataset(train.dataset);
  try {
  for (let epoch = startEpoch; epoch <= options.epochs; epoch++) {
    model.train();
    const start = process.hrtime.bigint();
    const within = epoch === startEpoch ? resume : undefined;
    let lossSum = within?.lossSum ?? 0, lossCount = within?.lossCount ?? 0, samples = within?.samples ?? 0, skipped = within?.skipped ?? 0;
    let batch = within?.batch ?? 0;
    const seconds = () => (within?.seconds ?? 0) + Number(process.hrtime.bigint() - start) / 1e9;
    const loaderState = within?.loaderState ?? train.generator.getState();
    for (const [x, y] of within ? remainingBatches(train, within) : train.batches()) {
      if (options.maxSteps !== undefined && step >= options.maxSteps) break;
      optimizer.zeroGrad();
      gradNorms = Object.fromEntries(named.map(([name]) => [name, 0]));
      firstNonFinite = undefined;
      const loss = lossOf(model.forward(x), y);
      loss.backward();
      let value = loss.item(), n = countOf(y);
      if (ranks > 1) {
        // one decision for every rank: the global mean loss, and the (averaged) gradients' norms
        for (const [name, p] of named) gradNorms[name] = Math.sqrt(gradSumSquares(p));
        const bad = named.some(([name]) => !Number.isFinite(gradNorms[name]));
        const sums = Float32Array.of(value * n, n, bad ? 1 : 0);
        distributed.allReduce(sums);
        [value, n] = [sums[0] / sums[1], sums[1]];
        firstNonFinite = [...named].reverse().find(([name]) => !Number.isFinite(gradNorms[name]))?.[0];
        if (sums[2] > 0 && !firstNonFinite) firstNonFinite = 'a parameter on another rank';
      }
      let reason: StepRecord['reason'], culprit: string | undefined;
      if (!Number.isFinite(value)) {
        reason = 'loss';
        culprit = previous ? Object.entries(previous).reduce((a, b) => (b[1] > a[1] ? b : a))[0] : undefined;
      } else {
        culprit = firstNonFinite;
        if (culprit) reason = 'gradient';
      }
      const record: StepRecord = {
        epoch, step, loss: value, lr: optimizer.paramGroups[0].options.lr, gradNorms, skipped: reason !== undefined, reason, culprit,
      };
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
        lossSum += value * n;
        lossCount += n;
      }
      samples += n;
      if (ownBatches) {
        release(x.values);
        if (y instanceof Tensor) release(y.values);
      }
      step++;
      batch++;
      options.onStep?.(record, { epoch, batch, step, loaderState, lossSum, lossCount, samples, skipped, seconds: seconds() });
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
    const epochSeconds = seconds();
    const evaluation = test ? evaluate(model, test, testLoss, { metrics: options.metrics, onBatch: options.onEvaluate }) : null;
    const record: EpochRecord = {
      epoch, trainLoss: lossCount ? lossSum / lossCount : NaN, testLoss: evaluation?.loss ?? null,
      testAccuracy: evaluation?.accuracy ?? null, testMetrics: evaluation?.metrics ?? {}, samplesPerSec: samples / epochSeconds, seconds: epochSeconds,
      skippedSteps: skipped,
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
