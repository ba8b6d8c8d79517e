// npm run bench: native (each ISA, 1 thread and all threads) against the TypeScript fallback, in
// one process run. Every workload is validated against the fallback before it is timed.
//   GEMM: GFLOP/s for square sizes 128..1024 (C = A.B, row-major, no transposes)
//   BatchNorm: training forward + backward (dx, dweight, dbias) for (256, 1024) and (64, 64, 32, 32)
import { createRequire } from 'node:module';
import os from 'node:os';

const require = createRequire(import.meta.url);
const { loadNative } = require('../dist/cjs/backend/native.js');
const { tsBackend } = require('../dist/cjs/backend/ts/index.js');

const native = loadNative();
const detected = native.info().detectedIsa;
const allThreads = native.info().threads;
const isas = ['scalar', 'avx2', 'avx512'].slice(0, ['scalar', 'avx2', 'avx512'].indexOf(detected) + 1);

function random(n, seed) {
  const a = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    a[i] = s / 2 ** 32 - 0.5;
  }
  return a;
}

/** Best time per call, in seconds: calls fn until minSeconds have passed (at least `min` calls). */
function time(fn, minSeconds = 0.4, min = 3) {
  fn(); // warm up (packing buffers, pool threads, JIT)
  let best = Infinity, total = 0, calls = 0;
  while (calls < min || total < minSeconds) {
    const t0 = process.hrtime.bigint();
    fn();
    const dt = Number(process.hrtime.bigint() - t0) / 1e9;
    best = Math.min(best, dt);
    total += dt;
    calls++;
  }
  return best;
}

function maxRelError(a, b) {
  let scale = 0, worst = 0;
  for (let i = 0; i < b.length; i++) scale = Math.max(scale, Math.abs(b[i]));
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]) / (scale + 1e-30));
  return worst;
}

function check(what, a, b, tol) {
  const err = maxRelError(a, b);
  if (!(err <= tol)) throw new Error(`validation failed for ${what}: error ${err} > ${tol}`);
}

function withConfig(isa, threads, fn) {
  native.setIsa(isa);
  native.setThreads(threads);
  try {
    return fn();
  } finally {
    native.setIsa(detected);
    native.setThreads(allThreads);
  }
}

const pad = (s, n) => String(s).padStart(n);
const configs = isas.flatMap((isa) => [[isa, 1], ...(allThreads > 1 ? [[isa, allThreads]] : [])]);

console.log(`stablegrad bench: ${os.cpus()[0].model}, ${allThreads} threads, best ISA ${detected}, node ${process.version}`);

// ---- GEMM ----
console.log('\nGEMM C = A.B, square, GFLOP/s (best of repeated runs)');
console.log(`${pad('size', 6)}${configs.map(([i, t]) => pad(`${i}/${t}t`, 13)).join('')}${pad('ts', 10)}${pad('best/ts', 10)}`);
for (const n of [128, 256, 512, 1024]) {
  const A = random(n * n, 1), B = random(n * n, 2);
  const flops = 2 * n * n * n;
  const ref = new Float32Array(n * n);
  const tsSeconds = time(() => tsBackend.sgemm(ref, A, B, n, n, n, false, false, 1, 0, n, n, n), n >= 1024 ? 0 : 0.4, 1);
  const row = [];
  for (const [isa, threads] of configs) {
    const C = new Float32Array(n * n);
    const gflops = withConfig(isa, threads, () => {
      native.sgemm(C, A, B, n, n, n, false, false, 1, 0, n, n, n);
      check(`sgemm ${n} on ${isa}/${threads}t`, C, ref, 1e-5);
      return flops / time(() => native.sgemm(C, A, B, n, n, n, false, false, 1, 0, n, n, n)) / 1e9;
    });
    row.push(gflops);
  }
  const tsGflops = flops / tsSeconds / 1e9;
  console.log(`${pad(n, 6)}${row.map((g) => pad(g.toFixed(1), 13)).join('')}${pad(tsGflops.toFixed(2), 10)}${pad(`${(Math.max(...row) / tsGflops).toFixed(0)}x`, 10)}`);
}

// ---- BatchNorm ----
console.log('\nBatchNorm training forward + backward, time per call (best of repeated runs)');
console.log(`${pad('shape', 18)}${configs.map(([i, t]) => pad(`${i}/${t}t`, 13)).join('')}${pad('ts', 11)}${pad('best/ts', 10)}`);
for (const shape of [[256, 1024], [64, 64, 32, 32]]) {
  const [N, C] = shape, S = shape.slice(2).reduce((p, v) => p * v, 1), n = N * C * S;
  const x = random(n, 3), dy = random(n, 4), w = random(C, 5), bias = random(C, 6);
  const run = (b) => {
    const out = { y: new Float32Array(n), mean: new Float32Array(C), invstd: new Float32Array(C),
      rm: new Float32Array(C), rv: new Float32Array(C).fill(1), dx: new Float32Array(n), dw: new Float32Array(C), db: new Float32Array(C) };
    const step = () => {
      b.batchnormForwardTrain(out.y, out.mean, out.invstd, out.rm, out.rv, x, w, bias, N, C, S, 1e-5, 0.1, false);
      b.batchnormBackward(out.dx, out.dw, out.db, dy, x, out.mean, out.invstd, w, null, N, C, S, true);
    };
    return { out, step };
  };
  const ref = run(tsBackend);
  ref.step();
  const tsSeconds = time(ref.step, 0.5, 2);
  const row = [];
  for (const [isa, threads] of configs) {
    const r = run(native);
    row.push(withConfig(isa, threads, () => {
      r.step();
      for (const k of ['y', 'dx', 'dw', 'db']) check(`batchnorm ${k} ${shape} on ${isa}/${threads}t`, r.out[k], ref.out[k], 1e-4);
      return time(r.step);
    }));
  }
  const fmt = (s) => (s >= 1e-3 ? `${(s * 1e3).toFixed(2)} ms` : `${(s * 1e6).toFixed(0)} us`);
  console.log(`${pad(`(${shape.join(', ')})`, 18)}${row.map((s) => pad(fmt(s), 13)).join('')}${pad(fmt(tsSeconds), 11)}${pad(`${(tsSeconds / Math.min(...row)).toFixed(0)}x`, 10)}`);
}
