/**
 * The reports of `stablegrad train` and `stablegrad explode`: loss, learning rate and throughput,
 * every parameter's gradient norm grouped by kind, and the gradient's flow through the layers (norm
 * against depth at chosen steps, and a layer-by-step heatmap), the point of BatchNorm made visible.
 */
import { BatchNorm1d, BatchNorm2d } from '../nn/layers.js';
import type { Module } from '../nn/module.js';
import type { EpochRecord, StepRecord } from '../train/fit.js';
import { heatmap, lineChart, reportPage, thin, type Series } from './report.js';

type Kind = 'weights' | 'biases' | 'BatchNorm';

/** Each parameter's kind, in the model's order (input to output). */
export function parameterKinds(model: Module): [string, Kind][] {
  const bn = new Set(model.namedModules().filter(([, m]) => m instanceof BatchNorm1d || m instanceof BatchNorm2d).map(([n]) => n));
  return model.namedParameters().map(([name]) => {
    const owner = name.slice(0, name.lastIndexOf('.'));
    return [name, bn.has(owner) ? 'BatchNorm' : name.endsWith('bias') ? 'biases' : 'weights'];
  });
}

/** The weight matrices by depth: the layers a gradient flows through. */
const layerWeights = (kinds: [string, Kind][]) => kinds.filter(([, k]) => k === 'weights').map(([n]) => n);
const short = (name: string) => name.replace(/\.weight$/, '');

/** Steps worth comparing: the first, a few along the way, the last, and around the first non-finite one. */
function chosenSteps(steps: StepRecord[]): StepRecord[] {
  if (!steps.length) return [];
  const at = (f: number) => steps[Math.min(steps.length - 1, Math.round(f * (steps.length - 1)))];
  const firstBad = steps.findIndex((s) => Object.values(s.gradNorms).some((v) => !Number.isFinite(v)));
  const picks = firstBad >= 0 ? [steps[0], steps[Math.max(0, firstBad - 1)], steps[firstBad], at(1)] : [at(0), at(0.1), at(0.5), at(1)];
  return [...new Set(picks)];
}

/** log10 range of the finite positive gradient norms of some runs' weights, for charts that share a scale. */
function normDomain(runs: { steps: StepRecord[]; layers: string[] }[]): [number, number] | undefined {
  const logs = runs.flatMap((r) => r.steps.flatMap((s) => r.layers.map((n) => s.gradNorms[n]))).filter((v) => Number.isFinite(v) && v > 0).map(Math.log10);
  if (!logs.length) return undefined;
  let lo = Infinity, hi = -Infinity;
  for (const v of logs) {
    lo = Math.min(lo, v);
    hi = Math.max(hi, v);
  }
  return [Math.floor(lo * 2) / 2, Math.ceil(hi * 2) / 2];
}

/** Each weight layer's gradient norm against its depth, at the chosen steps. */
function flowChart(title: string, steps: StepRecord[], layers: string[], domain?: [number, number]): string {
  const series: Series[] = chosenSteps(steps).map((s) => ({ name: `step ${s.step}`, points: layers.map((n, i): [number, number] => [i + 1, s.gradNorms[n]]) }));
  return lineChart(title, series, {
    xTitle: 'layer', yTitle: 'gradient L2 norm', logY: true, integerX: true, markNonFinite: true, yDomain: domain, depthColors: true,
    xNames: Object.fromEntries(layers.map((n, i) => [i + 1, `${i + 1} (${short(n)})`])),
  });
}

function flowHeatmap(title: string, steps: StepRecord[], layers: string[], domain?: [number, number]): string {
  const kept = thin(steps, 150);
  return heatmap(title, layers.map(short), kept.map((s) => s.step), (r, c) => kept[c].gradNorms[layers[r]],
    { xTitle: 'step', yTitle: 'layer', valueTitle: 'gradient L2 norm', domain });
}

function normsByStep(title: string, steps: StepRecord[], names: string[], domain?: [number, number]): string {
  const kept = thin(steps);
  return lineChart(title, names.map((n) => ({ name: n, points: kept.map((s): [number, number] => [s.step, s.gradNorms[n]]) })),
    { xTitle: 'step', yTitle: 'gradient L2 norm', logY: true, integerX: true, markNonFinite: true, depthColors: names.length > 3, yDomain: domain });
}

/** The report of one training run. */
export function trainReport(config: { model: string; dataset: string; epochs: number }, model: Module, epochs: EpochRecord[],
  steps: StepRecord[], failure: string | null): string {
  const last = epochs[epochs.length - 1];
  const summary = [
    `${config.model} on ${config.dataset}, ${epochs.length} of ${config.epochs} epochs`,
    ...(last ? [`final test accuracy ${(100 * last.testAccuracy!).toFixed(2)}%, test loss ${last.testLoss!.toFixed(4)}`] : []),
    `${steps.filter((s) => s.skipped).length} steps skipped for non-finite loss or gradients`,
    ...(failure ? [failure] : []),
  ];
  const kinds = parameterKinds(model), layers = layerWeights(kinds);
  const perEpoch = (key: 'trainLoss' | 'testLoss') => epochs.map((e): [number, number] => [e.epoch, e[key]!]);
  const kept = thin(steps);
  const group = (kind: Kind) => kinds.filter(([, k]) => k === kind).map(([n]) => n);
  const epochChart = { xTitle: 'epoch', integerX: true };
  return reportPage(`stablegrad: ${config.model} on ${config.dataset}`, summary, [
    [lineChart('Loss per epoch', [{ name: 'train', points: perEpoch('trainLoss') }, { name: 'test', points: perEpoch('testLoss') }],
      { ...epochChart, yTitle: 'loss', markNonFinite: true }),
    lineChart('Test accuracy per epoch', [{ name: 'test accuracy', points: epochs.map((e) => [e.epoch, 100 * e.testAccuracy!]) }],
      { ...epochChart, yTitle: 'accuracy (%)' })],
    lineChart('Loss per step (faint: each step; line: smoothed)', [{ name: 'loss', points: kept.map((s) => [s.step, s.loss]) }],
      { xTitle: 'step', yTitle: 'loss', integerX: true, markNonFinite: true, smooth: true }),
    [lineChart('Learning rate', [{ name: 'lr', points: kept.map((s) => [s.step, s.lr]) }], { xTitle: 'step', yTitle: 'learning rate', integerX: true }),
    lineChart('Throughput per epoch', [{ name: 'samples/s', points: epochs.map((e) => [e.epoch, e.samplesPerSec]) }], { ...epochChart, yTitle: 'samples/s' })],
    flowChart('Gradient flow: each layer\'s gradient norm, input to output', steps, layers),
    flowHeatmap('Gradient norm by layer (input at the top) and step', steps, layers),
    ...(['weights', 'biases', 'BatchNorm'] as const).filter((k) => group(k).length)
      .map((k) => normsByStep(`Gradient norm per step: ${k === 'BatchNorm' ? 'BatchNorm weights and biases' : k}`, steps, group(k))),
  ]);
}

/** The explode report: the two models side by side, each chart pair on the same scale. */
export function explodeReport(summary: string[], runs: { name: string; label: string; model: Module; steps: StepRecord[] }[]): string {
  const withLayers = runs.map((r) => ({ ...r, layers: layerWeights(parameterKinds(r.model)) }));
  const domain = normDomain(withLayers);
  const losses = withLayers.flatMap((r) => r.steps.map((s) => s.loss)).filter((v) => Number.isFinite(v) && v > 0).map(Math.log10);
  const lossDomain: [number, number] | undefined = losses.length ? [Math.floor(Math.min(...losses)), Math.ceil(Math.max(...losses))] : undefined;
  const pair = (make: (r: (typeof withLayers)[number]) => string) => withLayers.map(make);
  return reportPage('What BatchNorm is for: 16 layers with and without it', summary, [
    pair((r) => flowChart(`${r.label}: gradient norm by layer, input to output`, r.steps, r.layers, domain)),
    pair((r) => flowHeatmap(`${r.label}: by layer (input at top) and step`, r.steps, r.layers, domain)),
    pair((r) => lineChart(`${r.label}: loss per step`, [{ name: 'loss', points: thin(r.steps).map((s): [number, number] => [s.step, s.loss]) }],
      { xTitle: 'step', yTitle: 'loss', logY: true, integerX: true, markNonFinite: true, yDomain: lossDomain })),
    pair((r) => normsByStep(`${r.label}: weight gradient norms per step`, r.steps, r.layers, domain)),
  ]);
}
