/**
 * Checkpoints: everything a training run needs to go on after a restart, in one safetensors file
 * written atomically. Tensors: `model.<key>` (the state dict), `optimizer.state.<i>.<name>`;
 * metadata (strings): the optimizer's param_groups and numeric state, the scheduler's state, the
 * epoch and step, the random generators' states and any extra JSON.
 */
import type { Module } from '../nn/module.js';
import type { Optimizer, OptimizerStateDict } from '../optim/optimizer.js';
import type { LRScheduler } from '../optim/lr_scheduler.js';
import { defaultGenerator, type Generator, type GeneratorState } from '../random.js';
import { Tensor } from '../tensor.js';
import { readSafetensors, save } from './safetensors.js';

export interface CheckpointParts {
  model: Module;
  optimizer?: Optimizer<{ lr: number }>;
  scheduler?: LRScheduler;
  /** generators besides the global one, by name (a DataLoader's `generator`, for its shuffled order) */
  generators?: Record<string, Generator>;
}

export interface CheckpointInfo {
  /** epochs completed */
  epoch: number;
  /** optimizer steps taken */
  step: number;
  /** anything JSON the caller saved */
  extra?: unknown;
}

const FORMAT = 'stablegrad.checkpoint.v1', MODEL = 'model.';

/**
 * @internal The model's state dict in a safetensors file: a checkpoint's model entries, or every
 * tensor of a model file (what `stablegrad eval` loads from either).
 */
export function modelState(file: { tensors: Record<string, Tensor>; metadata: Record<string, string> }): Record<string, Tensor> {
  if (file.metadata['stablegrad.format'] !== FORMAT) return file.tensors;
  return Object.fromEntries(Object.entries(file.tensors).filter(([k]) => k.startsWith(MODEL)).map(([k, t]) => [k.slice(MODEL.length), t]));
}

/**
 * Saves model, optimizer, scheduler, epoch, step and the random generators' states to path,
 * atomically (a crash leaves the previous file whole).
 * @example saveCheckpoint('run/checkpoint.safetensors', { model, optimizer, epoch, step, generators: { loader: loader.generator } });
 */
export function saveCheckpoint(path: string, parts: CheckpointParts & CheckpointInfo): void {
  const { model, optimizer, scheduler, generators = {}, epoch, step, extra } = parts;
  for (const [name, v] of [['epoch', epoch], ['step', step]] as const)
    if (!Number.isInteger(v) || v < 0) throw new RangeError(`saveCheckpoint: expected ${name} to be a non-negative integer but received ${v}`);
  const tensors: Record<string, Tensor> = {};
  for (const [k, t] of Object.entries(model.stateDict())) tensors[MODEL + k] = t;
  const metadata: Record<string, string> = { 'stablegrad.format': FORMAT, epoch: String(epoch), step: String(step) };
  if (optimizer) {
    const sd = optimizer.stateDict(), numbers: Record<string, Record<string, number>> = {};
    for (const [i, entry] of Object.entries(sd.state))
      for (const [name, v] of Object.entries(entry)) {
        if (v instanceof Tensor) tensors[`optimizer.state.${i}.${name}`] = v;
        else (numbers[i] ??= {})[name] = v;
      }
    metadata['optimizer.name'] = optimizer.name;
    metadata['optimizer.param_groups'] = JSON.stringify(sd.param_groups);
    metadata['optimizer.state'] = JSON.stringify(numbers);
  }
  if (scheduler) metadata.scheduler = JSON.stringify(scheduler.stateDict());
  const rng: Record<string, GeneratorState> = { default: defaultGenerator.getState() };
  for (const [name, g] of Object.entries(generators)) rng[name] = g.getState();
  metadata.rng = JSON.stringify(rng);
  if (extra !== undefined) metadata.extra = JSON.stringify(extra);
  save(tensors, path, metadata);
}

/**
 * Restores what saveCheckpoint wrote into the given model, optimizer, scheduler and generators
 * (and the global generator), and returns the epoch, step and extra.
 * @example const { epoch, step } = loadCheckpoint('run/checkpoint.safetensors', { model, optimizer });
 * @throws {RangeError} when the file is not a checkpoint or a part does not fit (naming it); nothing is changed then
 */
export function loadCheckpoint(path: string, parts: CheckpointParts): CheckpointInfo {
  const file = readSafetensors(path), { tensors, metadata } = file;
  const bad = (why: string): never => {
    throw new RangeError(`loadCheckpoint: ${path}: ${why}`);
  };
  if (metadata['stablegrad.format'] !== FORMAT) bad(`not a stablegrad checkpoint (it has no ${FORMAT} metadata; a model file loads with load())`);
  const json = (key: string): unknown => {
    try {
      return JSON.parse(metadata[key]);
    } catch {
      return bad(`its ${key} metadata is not JSON`);
    }
  };
  const model = modelState(file), optimizerTensors: Record<string, Record<string, Tensor>> = {};
  for (const [k, t] of Object.entries(tensors)) {
    if (k.startsWith(MODEL)) continue;
    const m = /^optimizer\.state\.(\d+)\.(.+)$/.exec(k);
    if (!m) bad(`unexpected tensor ${k}`);
    (optimizerTensors[m![1]] ??= {})[m![2]] = t;
  }
  const rng = json('rng') as Record<string, GeneratorState>;
  for (const name of Object.keys(parts.generators ?? {})) if (!rng[name]) bad(`it holds no state for generator ${name} (it has ${Object.keys(rng).join(', ')})`);
  if (parts.optimizer && !metadata['optimizer.param_groups']) bad('it holds no optimizer state');
  if (parts.scheduler && !metadata.scheduler) bad('it holds no scheduler state');
  // every part is checked before any is changed: model (shapes), then optimizer and scheduler (which check all first)
  const before = Object.fromEntries(Object.entries(parts.model.stateDict()).map(([k, t]) => [k, t.values.slice()]));
  parts.model.loadStateDict(model);
  try {
    if (parts.optimizer) {
      if (metadata['optimizer.name'] !== parts.optimizer.name) bad(`its optimizer is ${metadata['optimizer.name']}, not ${parts.optimizer.name}`);
      const numbers = json('optimizer.state') as Record<string, Record<string, number>>;
      const state: OptimizerStateDict['state'] = {};
      for (const i of new Set([...Object.keys(numbers), ...Object.keys(optimizerTensors)]))
        state[Number(i)] = { ...numbers[i], ...optimizerTensors[i] };
      parts.optimizer.loadStateDict({ state, param_groups: json('optimizer.param_groups') as OptimizerStateDict['param_groups'] });
    }
    if (parts.scheduler) parts.scheduler.loadStateDict(json('scheduler') as Record<string, number>);
  } catch (e) {
    for (const [k, t] of Object.entries(parts.model.stateDict())) t.values.set(before[k]);
    throw e;
  }
  defaultGenerator.setState(rng.default);
  for (const [name, g] of Object.entries(parts.generators ?? {})) g.setState(rng[name]);
  const epoch = Number(metadata.epoch), step = Number(metadata.step);
  return { epoch, step, ...(metadata.extra !== undefined ? { extra: json('extra') } : {}) };
}
