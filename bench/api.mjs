// The public API against its own kernels, against fit(), and against PyTorch's modules: what a user
// who writes their own loop gets. Part of `npm run bench`; `node bench/api.mjs` runs it alone.
//   seed epoch   the README's ten-line loop against fit() on MNIST, native and fallback: each in
//                its own process, the two alternating, the median of the rounds
//   matmul       Tensor matmul (inside noGrad) against backend().sgemm into one reused array:
//                medians of repeated calls, the two alternating call by call
//   BatchNorm    nn.BatchNorm2d(64) on (64, 64, 32, 32) and nn.BatchNorm1d(1024) on (256, 1024),
//                forward+backward through the module, against PyTorch's module, and against the
//                DRAM bandwidth and the kernels alone in rounds that each measure the triad
//   memory       RSS of the seed model at step 1,000 and step 10,000, in the loop and in fit()
// Every result is checked before it is timed. Ends with the targets of issue 28 as ratios.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { fixed, median, ms, table, triadWorkload } from './util.mjs';

const require = createRequire(import.meta.url);
const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..');
const PYTHON = '/usr/bin/python3';

// ---- child processes: one measurement each, as JSON on the last line ------------------------------

const CHILD_EPOCH = `
const sg = require('./dist/cjs/index.js');
const [mode, steps] = [process.argv[1], Number(process.argv[2])];
const train = sg.loadMnist({ train: true, flatten: true });
sg.manualSeed(0);
const model = sg.makeModel('seed');
const opt = new sg.optim.SGD(model.parameters(), { lr: 0.01 });
const lossFn = new sg.nn.CrossEntropyLoss();
const loader = new sg.DataLoader(train, { batchSize: 64, shuffle: true, seed: 0 });
const epochs = [], rss = {};
const note = (step) => { if (step === 1000 || step === 10000) rss[step] = process.memoryUsage().rss; };
if (mode === 'fit') {
  let step = 0;
  sg.fit(model, { train: loader, optimizer: opt, loss: lossFn, epochs: Math.ceil(steps / loader.length), maxSteps: steps,
    onStep: () => note(++step), onEpoch: (r) => epochs.push({ samplesPerSec: r.samplesPerSec, loss: r.trainLoss }) });
} else {
  let step = 0;
  while (step < steps) {
    const start = process.hrtime.bigint();
    let samples = 0, total = 0;
    for (const [images, labels] of loader) {
      opt.zeroGrad();
      const loss = lossFn.forward(model.forward(images), labels);
      loss.backward();
      opt.step();
      samples += labels.length;
      total += loss.item() * labels.length;
      note(++step);
      if (step >= steps) break;
    }
    epochs.push({ samplesPerSec: samples / (Number(process.hrtime.bigint() - start) / 1e9), loss: total / samples });
  }
}
console.log(JSON.stringify({ epochs, rss, backend: sg.backendInfo().name }));
`;

function child(code, args, env = {}) {
  const r = spawnSync(process.execPath, ['-e', code, ...args.map(String)], {
    cwd: root, encoding: 'utf8', env: { ...process.env, ...env }, maxBuffer: 1 << 24,
  });
  if (r.status !== 0) throw new Error(`bench child failed: ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop());
}

const targets = [];
/** A target met when value >= goal, or value <= goal with atMost. */
const target = (what, value, goal, atMost = false) =>
  targets.push({ what, value, goal: `${atMost ? '<=' : '>='} ${goal}`, met: value !== undefined && (atMost ? value <= goal : value >= goal) });
const notes = [];

const sg = require('../dist/cjs/index.js');
const { backendInfo, backend, nn, noGrad, randn, matmul, manualSeed } = sg;
const native = backend();
const threads = backendInfo().threads;
console.log(`stablegrad API bench: ${os.cpus()[0].model}, ${threads} threads, ${backendInfo().name} ${backendInfo().isa}, node ${process.version}`);

let torchVersion = null;
if (existsSync(PYTHON)) {
  try {
    torchVersion = JSON.parse(execFileSync(PYTHON, [join(here, 'reference.py'), 'probe'], { encoding: 'utf8' })).torch;
  } catch { /* reported below */ }
}
if (!torchVersion) notes.push(`torch is not importable by ${PYTHON}: no PyTorch reference (apt-get install python3-torch)`);

// ---- the seed epoch: the README loop against fit() -------------------------------------------------

console.log('\nThe seed model, one epoch on MNIST: the README\'s loop against fit() (each run a fresh process, the two');
console.log('alternating; epoch 1 includes the allocator warming up, epoch 2 is the steady state; medians of the rounds;');
console.log('loop/fit is the median of each round\'s ratio, its two runs back to back, with the rounds\' range)');
const epochRows = [];
for (const [name, env, rounds] of [['native', {}, 5], ['fallback', { STABLEGRAD_BACKEND: 'ts' }, 3]]) {
  const runs = { loop: [], fit: [] };
  const steps = 2 * 938;
  for (let r = 0; r < rounds; r++)
    for (const mode of ['fit', 'loop']) {
      const out = child(CHILD_EPOCH, [mode, steps], env);
      if (!(out.epochs[0].loss < 1)) throw new Error(`${mode} did not train: loss ${out.epochs[0].loss}`);
      runs[mode].push(out.epochs.map((e) => e.samplesPerSec));
    }
  for (const e of [0, 1]) {
    const loop = median(runs.loop.map((r) => r[e])), fit = median(runs.fit.map((r) => r[e]));
    // paired: the host's drift between rounds (tens of percent) cancels within a round
    const ratios = runs.loop.map((r, i) => r[e] / runs.fit[i][e]), ratio = median(ratios);
    epochRows.push([`${name}, epoch ${e + 1}`, fixed(loop, 0), fixed(fit, 0), `${ratio.toFixed(3)}x`,
      `${Math.min(...ratios).toFixed(2)}-${Math.max(...ratios).toFixed(2)}`]);
    target(`README loop vs fit(), ${name}, seed epoch ${e + 1}`, ratio, 0.95);
  }
}
table(['', 'loop samples/s', 'fit samples/s', 'loop/fit', 'rounds'], epochRows, [22, 16, 16, 10, 12]);

/** Seconds one call of fn takes. */
const seconds = (fn) => {
  const t0 = process.hrtime.bigint();
  fn();
  return Number(process.hrtime.bigint() - t0) / 1e9;
};

// ---- matmul through the Tensor API against the kernel ------------------------------------------------

console.log('\nmatmul(a, b) of square tensors inside noGrad, against backend().sgemm into one reused output array');
console.log('(the two alternating call by call, after a warm-up of matmul calls until the allocator holds enough memory:');
console.log('new memory costs page faults once; GFLOP/s of the median call, the typical one, and of the best)');
const mmRows = [];
for (const [n, calls] of [[256, 1000], [1024, 100], [2048, 30]]) {
  manualSeed(n);
  const a = randn([n, n]), b = randn([n, n]), C = new Float32Array(n * n);
  const kernel = () => native.sgemm(C, a.values, b.values, n, n, n, false, false, 1, 0, n, n, n);
  kernel();
  const check = noGrad(() => matmul(a, b)).values;
  for (let i = 0; i < C.length; i += 997) if (Math.abs(check[i] - C[i]) > 1e-4 * (1 + Math.abs(C[i]))) throw new Error(`matmul ${n}: mismatch at ${i}`);
  const { memoryStats } = require('../dist/cjs/memory.js');
  const warm = { start: process.hrtime.bigint(), calls: 0, blocks: memoryStats().newBlocks };
  for (let quiet = 0; quiet < 2 * calls; warm.calls++) { // until 2 * calls have made no new block
    const before = memoryStats().newBlocks;
    noGrad(() => matmul(a, b));
    quiet = memoryStats().newBlocks === before ? quiet + 1 : 0;
  }
  const warmSeconds = Number(process.hrtime.bigint() - warm.start) / 1e9, newMiB = ((memoryStats().newBlocks - warm.blocks) * n * n * 4) / 2 ** 20;
  const viaTensor = [], viaKernel = [];
  for (let i = 0; i < calls; i++) {
    viaTensor.push(seconds(() => noGrad(() => matmul(a, b))));
    viaKernel.push(seconds(kernel));
  }
  const gf = (s) => (2 * n ** 3) / s / 1e9;
  const [tm, km] = [gf(median(viaTensor)), gf(median(viaKernel))];
  const mean = (v) => v.reduce((p, q) => p + q, 0) / v.length;
  mmRows.push([n, fixed(tm), fixed(km), `${(tm / km).toFixed(3)}x`, fixed(gf(mean(viaTensor))), fixed(gf(mean(viaKernel))),
    `${warm.calls} calls, ${(1e3 * warmSeconds).toFixed(0)} ms, ${newMiB.toFixed(0)} MiB new`]);
  target(`matmul ${n} through the Tensor API vs the kernel (medians)`, tm / km, 0.9);
}
table(['size', 'matmul', 'kernel', 'ratio', 'mean matmul', 'mean kernel', 'warm-up'], mmRows, [6, 10, 10, 9, 13, 13, 34]);

// ---- BatchNorm modules ---------------------------------------------------------------------------------

console.log('\nBatchNorm forward+backward through the module in training mode (y = bn.forward(x); y.backward(dy), x.grad and');
console.log('the parameters\' gradients cleared each call as a user would): median and best of calls back to back, against');
console.log('PyTorch\'s module likewise. Then against the memory bound and the kernel, in rounds: each round times the triad');
console.log('twice (best of a few calls): from DRAM, with each array 128 MiB (STREAM\'s rule: at least 4x the last-level');
console.log('cache), and at the footprint of the module\'s arrays, which a large L3 partly holds; then 10 module calls');
console.log('alternating with 10 calls of the two kernels into reused arrays, so that both are held against the bandwidth of');
console.log('their own minute (the host\'s drifts by tens of percent). "of bound" = median over rounds of (bytes that must move:');
console.log('x, y, dy read or written, x again, dx = 5 arrays) / the round\'s DRAM triad bandwidth / the round\'s median call;');
console.log('"of footprint triad" likewise against the footprint\'s triad');
// n floats in memory like the allocator's blocks (2 MiB aligned and on huge pages where the system
// gives them, from 2 MiB on), so that the triad and the kernel alone run on the pages the module's arrays do
const pooledArray = (n) => {
  const block = native.memory.alignedBlock(4 * n);
  return new Float32Array(block.buffer, block.byteOffset, n);
};
// a function that gives the triad's bandwidth (bytes/s), best of `calls`, over three arrays of bytes/3 in all
const triadAt = (footprint, calls) => {
  const { call, bytes } = triadWorkload(native, footprint, pooledArray);
  return () => {
    let best = Infinity;
    for (let i = 0; i < calls; i++) best = Math.min(best, seconds(call));
    return bytes / best;
  };
};
const dramTriad = triadAt(3 * (128 << 20), 3);
const bnCases = [[[64, 64, 32, 32], [threads]], [[256, 1024], [...new Set([1, threads])]]];
const bnRows = [];
for (const [shape, threadList] of bnCases)
  for (const t of threadList) {
    native.setThreads(t);
    manualSeed(1);
    const C = shape[1], n = shape.reduce((p, d) => p * d, 1), N = shape[0], S = n / (N * C);
    const bn = shape.length === 4 ? new nn.BatchNorm2d(C) : new nn.BatchNorm1d(C);
    const x = randn(shape, { requiresGrad: true }), dy = randn(shape);
    const call = () => {
      x.grad = null;
      bn.zeroGrad();
      bn.forward(x).backward(dy);
    };
    const k = { y: pooledArray(n), dx: pooledArray(n), mean: new Float32Array(C), invstd: new Float32Array(C),
      rm: new Float32Array(C), rv: new Float32Array(C).fill(1), w: new Float32Array(C).fill(1), b: new Float32Array(C),
      dw: new Float32Array(C), db: new Float32Array(C) };
    const kernel = () => {
      native.batchnormForwardTrain(k.y, k.mean, k.invstd, k.rm, k.rv, x.values, k.w, k.b, N, C, S, 1e-5, 0.1, false);
      native.batchnormBackward(k.dx, k.dw, k.db, dy.values, x.values, k.mean, k.invstd, k.w, null, N, C, S, true);
    };
    call();
    kernel();
    // check: the gradient of a BatchNorm with weight 1 sums to 0 over each channel, and the kernel's is the module's
    const g = x.grad.values;
    let worst = 0;
    for (let c = 0; c < C; c++) {
      let s = 0;
      for (let i = 0; i < N; i++) for (let j = 0; j < S; j++) s += g[(i * C + c) * S + j];
      worst = Math.max(worst, Math.abs(s));
    }
    if (!(worst < 1e-2)) throw new Error(`BatchNorm ${shape}: gradient sums ${worst}`);
    for (let i = 0; i < n; i += 997) if (Math.abs(g[i] - k.dx[i]) > 1e-5) throw new Error(`BatchNorm ${shape}: kernel and module differ at ${i}`);
    const footprintTriad = triadAt(4 * 4 * n, 5);
    // the module back to back, as PyTorch's is timed
    const samples = [];
    for (let total = 0; samples.length < 20 || total < 1; total += samples[samples.length - 1]) samples.push(seconds(call));
    const moduleTimes = [], kernelTimes = [], shares = { module: [], kernel: [], moduleFootprint: [], kernelFootprint: [] };
    for (let round = 0, total = 0; round < 10 || total < 1; round++) {
      // the time the 5 arrays take at each bandwidth of this round
      const [bound, footprintBound] = [dramTriad(), footprintTriad()].map((bw) => (5 * 4 * n) / bw);
      const mod = [], ker = [];
      for (let i = 0; i < 10; i++) {
        mod.push(seconds(call));
        ker.push(seconds(kernel));
      }
      moduleTimes.push(...mod);
      kernelTimes.push(...ker);
      shares.module.push(bound / median(mod));
      shares.kernel.push(bound / median(ker));
      shares.moduleFootprint.push(footprintBound / median(mod));
      shares.kernelFootprint.push(footprintBound / median(ker));
      total += mod.reduce((p, q) => p + q, 0);
    }
    const [med, best, share] = [median(samples), Math.min(...samples), median(shares.module)];
    const percent = (a) => `${(100 * median(a)).toFixed(0)}%`;
    let torch = null;
    if (torchVersion) {
      const out = JSON.parse(execFileSync(PYTHON, [join(here, 'reference.py'), 'modules', String(t), shape.join('x')],
        { encoding: 'utf8', env: { ...process.env, OPENBLAS_NUM_THREADS: '1' } }));
      torch = out.batchnorm[shape.join(',')];
    }
    const label = `${shape.length === 4 ? 'BatchNorm2d' : 'BatchNorm1d'} (${shape.join(', ')}) ${t}t`;
    bnRows.push([label, ms(med), ms(best), ms(torch?.median), ms(torch?.best), torch ? `${(torch.best / med).toFixed(2)}x` : '-',
      torch ? `${(torch.median / med).toFixed(1)}x` : '-', ms(median(moduleTimes)), ms(median(kernelTimes)), percent(shares.module),
      percent(shares.kernel), percent(shares.moduleFootprint), percent(shares.kernelFootprint)]);
    // the targets are at the machine's thread count; BatchNorm1d on one thread is shown, not a target
    if (torch && t === threads) target(`${label} vs PyTorch's module (our median against its best)`, torch.best / med, shape.length === 4 ? 2.5 : 1.8);
    if (shape.length === 4) target(`${label}, fraction of the DRAM bound (median)`, share, 0.85);
  }
native.setThreads(threads);
table(['', 'median', 'best', 'torch median', 'torch best', 'vs best', 'vs median', 'rounds: module', 'kernel', 'of bound',
  'kernel', 'of footprint triad', 'kernel'], bnRows, [32, 10, 10, 14, 12, 9, 11, 16, 10, 10, 8, 20, 8]);

// ---- memory -------------------------------------------------------------------------------------------

console.log('\nRSS of the seed model\'s training process at step 1,000 and step 10,000 (MiB)');
const rssRows = [];
for (const mode of ['loop', 'fit']) {
  const out = child(CHILD_EPOCH, [mode, 10000]);
  const [a, b] = [out.rss[1000], out.rss[10000]];
  rssRows.push([mode === 'loop' ? "the README's loop" : 'fit()', fixed(a / 2 ** 20), fixed(b / 2 ** 20), `${(100 * (b / a - 1)).toFixed(1)}%`]);
  target(`RSS growth from step 1,000 to 10,000, ${mode}`, b / a - 1, 0.05, true);
}
table(['', 'step 1,000', 'step 10,000', 'growth'], rssRows, [20, 12, 13, 9]);

console.log('\nTargets (issue 28), each measured in this run');
table(['target', 'value', 'goal', 'met'], targets.map((t) => [t.what, fixed(t.value, 3), t.goal, t.met ? 'yes' : 'NO']),
  [80, 8, 9, 5]);
console.log(`${targets.filter((t) => t.met).length} of ${targets.length} met`);
for (const n of notes) console.log(`note: ${n}`);
