// Distributed training, side by side in one run (npm run bench:distributed): MPI allreduce from JS
// against the same libmpi from C, and the seed and cnn models' samples/s on 1 and 2 ranks of one
// kernel thread each (global batch 64), against PyTorch DDP (gloo) where python3-torch is installed.
// Needs Open MPI (apt-get install openmpi-bin libopenmpi-dev) and npm run build:mpi.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { fixed, median, table } from './util.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const env = { ...process.env, OMPI_ALLOW_RUN_AS_ROOT: '1', OMPI_ALLOW_RUN_AS_ROOT_CONFIRM: '1' };
const mpirun = (np, cmd) => execFileSync('mpirun', ['--oversubscribe', '-np', String(np), ...cmd], { env, encoding: 'utf8' }).trim();
const worker = join(here, 'distributed-worker.cjs');
const targets = [];
const target = (what, value, goal) => targets.push([what, fixed(value, 2), `>= ${goal}`, value >= goal ? 'met' : 'NOT met']);

console.log(`CPU: ${execFileSync('lscpu', { encoding: 'utf8' }).match(/Model name:\s*(.*)/)?.[1]}, ${execFileSync('nproc', { encoding: 'utf8' }).trim()} cores; ` +
  `${execFileSync('mpirun', ['--version'], { encoding: 'utf8' }).split('\n')[0]}\n`);

// allreduce: JS (distributed.allReduce, with its length check) against C, best of rounds, 2 ranks
const dir = mkdtempSync(join(tmpdir(), 'stablegrad-bench-'));
execFileSync('mpicc', ['-O2', '-o', join(dir, 'allreduce'), join(here, 'allreduce.c')]);
const sizes = [4, 1_600_000, 64 << 20];
const parse = (out) => Object.fromEntries(out.split('\n').map((l) => l.split(' ').map(Number)));
const c = parse(mpirun(2, [join(dir, 'allreduce'), ...sizes.map(String)]));
const js = parse(mpirun(2, [process.execPath, worker, 'allreduce', ...sizes.map(String)]));
const busBandwidth = (bytes, s) => (2 * (2 - 1) / 2) * bytes / s / 1e9; // allreduce bus bandwidth, 2 ranks
table(['allreduce, 2 ranks', 'C', 'JS', 'C GB/s', 'JS GB/s', 'JS / C'], sizes.map((b) => [
  b < 1024 ? `${b} B` : `${fixed(b / 2 ** 20, 1)} MiB`, `${fixed(c[b] * 1e6)} us`, `${fixed(js[b] * 1e6)} us`,
  fixed(busBandwidth(b, c[b]), 2), fixed(busBandwidth(b, js[b]), 2), fixed(c[b] / js[b], 2),
]));
for (const b of sizes.slice(1)) target(`allreduce ${fixed(b / 2 ** 20, 1)} MiB: bus bandwidth vs C`, c[b] / js[b], 0.8);

// training: samples/s, median of 3 runs each
const runs = (np, args) => median([0, 1, 2].map(() => Number(mpirun(np, [process.execPath, worker, 'train', ...args]))));
const seed1 = runs(1, ['seed', '300']), seed2 = runs(2, ['seed', '300']), seed2sync = runs(2, ['seed', '300', 'sync']);
const seedAlone = runs(2, ['seed', '300', 'alone']);
const cnn1 = runs(1, ['cnn', '30']), cnn2 = runs(2, ['cnn', '30']), cnn2sync = runs(2, ['cnn', '30', 'sync']);
const cnnAlone = runs(2, ['cnn', '30', 'alone']);
let torch1 = null, torch2 = null;
if (spawnSync('/usr/bin/python3', ['-c', 'import torch']).status === 0) {
  const py = (np) => median([0, 1, 2].map(() => Number(execFileSync('/usr/bin/python3', [join(here, 'ddp_torch.py'), String(np), '300'], { encoding: 'utf8' }).trim())));
  torch1 = py(1);
  torch2 = py(2);
}
console.log('');
table(['samples/s, global batch 64, 1 thread per rank', '1 rank', '2 ranks', '2 ranks, SyncBatchNorm', '2 / 1', 'PyTorch DDP 1 rank', 'PyTorch DDP 2 ranks'], [
  ['seed', fixed(seed1, 0), fixed(seed2, 0), fixed(seed2sync, 0), fixed(seed2 / seed1, 2), fixed(torch1, 0), fixed(torch2, 0)],
  ['seed, 2 ranks not communicating (the hardware\'s bound)', '-', fixed(seedAlone, 0), '-', fixed(seedAlone / seed1, 2), '-', '-'],
  ['cnn', fixed(cnn1, 0), fixed(cnn2, 0), fixed(cnn2sync, 0), fixed(cnn2 / cnn1, 2), '-', '-'],
  ['cnn, 2 ranks not communicating', '-', fixed(cnnAlone, 0), '-', fixed(cnnAlone / cnn1, 2), '-', '-'],
]);
// what a step's communication costs: the 2-rank step against the step of ranks that do not communicate
const stepUs = (samplesPerSec) => (64 / samplesPerSec) * 1e6;
for (const [name, withComm, without] of [['seed', seed2, seedAlone], ['cnn', cnn2, cnnAlone]])
  console.log(`${name}: a 2-rank step takes ${fixed(stepUs(withComm), 0)} us, ${fixed(stepUs(without), 0)} without communicating: ` +
    `communication costs ${fixed(stepUs(withComm) - stepUs(without), 0)} us a step`);
if (torch2) target('seed, 2 ranks: vs PyTorch DDP (gloo), 2 ranks', seed2 / torch2, 3);
target('seed, 2 ranks vs 1 rank', seed2 / seed1, 1);
target('cnn, 2 ranks vs 1 rank', cnn2 / cnn1, 1.85);
console.log('');
table(['target', 'measured', 'goal', ''], targets);
