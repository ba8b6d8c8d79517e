// Two builds side by side, for "no regression beyond noise": the seed model's fit() epochs and the
// kernel figures of `npm run bench` (GEMM, the seed products, BatchNorm), each measured in a fresh
// process, the two builds alternating round after round; medians of the rounds and their ratio.
//   node bench/ab.mjs <root of build A> <root of build B> [rounds]
// Each root is a checkout with dist/ and its native addon built (npm run build).
import { spawnSync } from 'node:child_process';
import { resolve } from 'node:path';
import { median, table } from './util.mjs';

const [rootA, rootB] = process.argv.slice(2, 4).map((p) => resolve(p));
const rounds = Number(process.argv[4] ?? 5);
if (!rootA || !rootB) throw new Error('usage: node bench/ab.mjs <root A> <root B> [rounds]');

// One round in one process: every figure, as JSON. Kernel figures are the best of repeated calls
// into reused arrays (as bench/index.mjs times them); the epochs are fit()'s own samples/s. The child
// runs in the other checkout, which may not have bench/util.mjs: its helpers are its own.
const CHILD = `
const sg = require('./dist/cjs/index.js');
const k = sg.backend();
const figures = {};
const random = (n, seed) => { const a = new Float32Array(n); let s = seed >>> 0; for (let i = 0; i < n; i++) { s = (Math.imul(s, 1664525) + 1013904223) >>> 0; a[i] = s / 2 ** 32 - 0.5; } return a; };
const best = (fn, seconds = 0.3) => { fn(); let b = Infinity, total = 0, calls = 0; while (calls < 3 || total < seconds) { const t0 = process.hrtime.bigint(); fn(); const dt = Number(process.hrtime.bigint() - t0) / 1e9; b = Math.min(b, dt); total += dt; calls++; } return b; };
for (const n of [256, 1024, 2048]) {
  const A = random(n * n, 1), B = random(n * n, 2), C = new Float32Array(n * n);
  figures['sgemm ' + n + ' GFLOP/s'] = 2 * n ** 3 / best(() => k.sgemm(C, A, B, n, n, n, false, false, 1, 0, n, n, n)) / 1e9;
}
for (const [name, M, N, K, ta, tb] of [['forward', 64, 500, 784, false, true], ['weight grad', 500, 784, 64, true, false], ['input grad', 64, 784, 500, false, false]]) {
  const A = random(M * K, 3), B = random(K * N, 4), C = new Float32Array(M * N);
  figures['seed ' + name + ' GFLOP/s'] = 2 * M * N * K / best(() => k.sgemm(C, A, B, M, N, K, ta, tb, 1, 0, ta ? M : K, tb ? K : N, N)) / 1e9;
}
for (const shape of [[64, 64, 32, 32], [32, 128, 16, 16], [256, 1024], [64, 500]]) {
  const [N, C] = shape, S = shape.slice(2).reduce((p, v) => p * v, 1), n = N * C * S;
  const x = random(n, 5), dy = random(n, 6), w = Float32Array.from(random(C, 7), (v) => v + 1), b = random(C, 8);
  const y = new Float32Array(n), dx = new Float32Array(n), mean = new Float32Array(C), invstd = new Float32Array(C);
  const rm = new Float32Array(C), rv = new Float32Array(C).fill(1), dw = new Float32Array(C), db = new Float32Array(C);
  figures['BatchNorm train ' + shape.join('x') + ' us'] = 1e6 * best(() => {
    k.batchnormForwardTrain(y, mean, invstd, rm, rv, x, w, b, N, C, S, 1e-5, 0.1, false);
    k.batchnormBackward(dx, dw, db, dy, x, mean, invstd, w, null, N, C, S, true);
  });
  figures['BatchNorm eval ' + shape.join('x') + ' us'] = 1e6 * best(() => k.batchnormForwardEval(y, x, rm, rv, w, b, N, C, S, 1e-5, false));
}
const train = sg.loadMnist({ train: true, flatten: true });
sg.manualSeed(0);
const model = sg.makeModel('seed');
const r = sg.fit(model, { train: new sg.DataLoader(train, { batchSize: 64, shuffle: true, seed: 0 }),
  optimizer: new sg.optim.SGD(model.parameters(), { lr: 0.01 }), loss: new sg.nn.CrossEntropyLoss(), epochs: 2 });
figures['fit seed epoch 1 samples/s'] = r.epochs[0].samplesPerSec;
figures['fit seed epoch 2 samples/s'] = r.epochs[1].samplesPerSec;
console.log(JSON.stringify(figures));
`;

function round(root) {
  const r = spawnSync(process.execPath, ['-e', CHILD], { cwd: root, encoding: 'utf8', maxBuffer: 1 << 24 });
  if (r.status !== 0) throw new Error(`${root}: ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop());
}

const runs = { A: [], B: [] };
for (let i = 0; i < rounds; i++) {
  // alternate which build goes first, so that neither always follows the other
  for (const side of i % 2 ? ['B', 'A'] : ['A', 'B']) runs[side].push(round(side === 'A' ? rootA : rootB));
  process.stderr.write(`round ${i + 1}/${rounds}\n`);
}
console.log(`A: ${rootA}\nB: ${rootB}\n${rounds} rounds; medians; B/A > 1 means B is better (time figures inverted)`);
table(['figure', 'A', 'B', 'B/A', 'B/A range'], Object.keys(runs.A[0]).map((key) => {
  const a = median(runs.A.map((r) => r[key])), b = median(runs.B.map((r) => r[key]));
  const time = key.endsWith(' us'), ratio = time ? a / b : b / a;
  const per = runs.A.map((r, i) => (time ? r[key] / runs.B[i][key] : runs.B[i][key] / r[key]));
  return [key, a.toFixed(1), b.toFixed(1), ratio.toFixed(3), `${Math.min(...per).toFixed(2)}-${Math.max(...per).toFixed(2)}`];
}), [36, 12, 12, 12, 12]);
