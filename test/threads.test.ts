/**
 * The thread pool: results do not depend on the thread count (GEMM and BatchNorm give every output
 * element to exactly one thread, summing in the same order), and resizing it back and forth, even
 * right before and after work, neither hangs nor loses work; its job hand-off is free of data races
 * under ThreadSanitizer. The fallback's threaded GEMM keeps the same promise.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { gemmWorkers, rangeCount, workerPatience } from '../lib/backend/ts/gemm-threads.js';
import { maxError, native, Rng, toolEnv, tsBackend } from './helpers.js';

const initial = native.info().threads;
// bitwise equality, by bytes (vitest's deep equality walks typed arrays element by element, slowly)
const bytes = (a: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);
const sameBits = (a: Float32Array, b: Float32Array) => bytes(a).equals(bytes(b));
afterAll(() => native.setThreads(initial));

describe('thread pool', () => {
  it('GEMM, BatchNorm and the conv bias gradient are bitwise identical on 1, 2, 3 and 5 threads', () => {
    const rng = new Rng(21);
    const [M, N, K] = [257, 190, 301];
    const A = rng.f32(M * K), B = rng.f32(K * N), x = rng.f32(64 * 37 * 49), dy = rng.f32(x.length);
    // a batch-sized product (one row block: split by columns), a batch through a wide A.B^T (rows of B
    // split: C^T = B . A^T), a narrow one (one column panel: split
    // by rows), narrow A.B^T ones (dot products, rows split), one-row products (walked without
    // packing) both ways, and BatchNorm's (N, C) layout over many row blocks
    const A2 = rng.f32(64 * 300), B2 = rng.f32(300 * 500), B3 = rng.f32(10 * 500), x2 = rng.f32(1000 * 37), dy2 = rng.f32(x2.length);
    const x3 = rng.f32(3 * 37 * 1024), dy3 = rng.f32(x3.length); // planes of 1024: walked channel by channel
    const A4 = rng.f32(70 * 5000), B4 = rng.f32(9 * 5000); // narrow A.B^T over a long K: dot products in K blocks
    const g = rng.f32(64 * 7 * 196); // a conv output's gradient (N, OC, P): channels split, each summed by one thread
    const batchnorm = (input: Float32Array, grad: Float32Array, n: number, S: number) => {
      const y = new Float32Array(input.length), mean = new Float32Array(37), invstd = new Float32Array(37);
      native.batchnormForwardTrain(y, mean, invstd, null, null, input, null, null, n, 37, S, 1e-5, 0.1, false);
      const dx = new Float32Array(input.length), dw = new Float32Array(37);
      native.batchnormBackward(dx, dw, null, grad, input, mean, invstd, Float32Array.from(mean, () => 1.5), null, n, 37, S, true);
      // and with a fused ReLU (y masks the gradient; its sums take two rows per visit, not four)
      const dxRelu = new Float32Array(input.length), dwRelu = new Float32Array(37);
      native.batchnormBackward(dxRelu, dwRelu, null, grad, input, mean, invstd, null, y, n, 37, S, true);
      return [y, mean, invstd, dx, dw, dxRelu, dwRelu];
    };
    const run = (threads: number) => {
      expect(native.setThreads(threads)).toBe(threads);
      const C = new Float32Array(M * N), C2 = new Float32Array(64 * 500), C3 = new Float32Array(128 * 10);
      const row = new Float32Array(500), rowT = new Float32Array(500);
      native.sgemm(C, A, B, M, N, K, false, true, 1, 0, K, K, N);
      native.sgemm(C2, A2, B2, 64, 500, 300, false, false, 1, 0, 300, 500, 500);
      const Cw = new Float32Array(64 * 500); // x (64, 300) . W^T, W (500, 300)
      native.sgemm(Cw, A2, B2, 64, 500, 300, false, true, 1, 0, 300, 300, 500);
      // the narrow ones with 128 rows: at 64 (320,000 multiply-adds) they run on one thread
      native.sgemm(C3, B2.subarray(0, 128 * 500), B3, 128, 10, 500, false, true, 1, 0, 500, 500, 10);
      native.sgemm(row, A2, B2, 1, 500, 300, false, false, 1, 0, 300, 500, 500);
      native.sgemm(rowT, A2, B2, 1, 500, 300, false, true, 1, 0, 300, 300, 500);
      const C4 = new Float32Array(70 * 9), C5 = new Float32Array(128 * 10);
      native.sgemm(C4, A4, B4, 70, 9, 5000, false, true, 1, 0, 5000, 5000, 9);
      native.sgemm(C5, B2.subarray(0, 128 * 500), B3, 128, 10, 500, false, false, 1, 0, 500, 10, 10);
      const gT = new Float32Array(g.length), dbias = new Float32Array(7);
      native.convOutputBackward(gT, dbias, g, 64, 7, 196);
      return [C, C2, Cw, C3, row, rowT, C4, C5, dbias, ...batchnorm(x, dy, 64, 49), ...batchnorm(x2, dy2, 1000, 1), ...batchnorm(x3, dy3, 3, 1024)];
    };
    const one = run(1);
    for (const t of [2, 3, 5]) {
      const other = run(t);
      for (const [i, a] of other.entries()) expect(sameBits(a, one[i]), `output ${i} on ${t} threads`).toBe(true);
    }
  });

  it('survives rapid resizing interleaved with parallel work', () => {
    const rng = new Rng(22);
    const A = rng.f32(200 * 200), C = new Float32Array(200 * 200), ref = new Float32Array(200 * 200);
    native.setThreads(1);
    native.sgemm(ref, A, A, 200, 200, 200, false, false, 1, 0, 200, 200, 200);
    for (let i = 0; i < 200; i++) {
      native.setThreads(1 + (i % 4));
      if (i % 3 === 0) {
        native.sgemm(C, A, A, 200, 200, 200, false, false, 1, 0, 200, 200, 200);
        expect(sameBits(C, ref), `iteration ${i}`).toBe(true);
      }
    }
  });

  it('hands out every chunk exactly once, with no data race under ThreadSanitizer', () => {
    const root = join(__dirname, '..'), dir = mkdtempSync(join(tmpdir(), 'stablegrad-tsan-'));
    try {
      const exe = join(dir, 'pool_stress');
      execFileSync('g++', ['-std=c++17', '-O1', '-g', '-fsanitize=thread', `-I${join(root, 'native', 'kernels')}`,
        join(root, 'test', 'native', 'pool_stress.cpp'), join(root, 'native', 'kernels', 'threadpool.cpp'), '-o', exe, '-pthread'], { env: toolEnv() });
      // halt_on_error: a race fails the run with TSan's report on stderr
      const out = execFileSync(exe, ['20000'], { encoding: 'utf8', env: toolEnv({ TSAN_OPTIONS: 'halt_on_error=1' }) });
      expect(out).toMatch(/ 0 errors/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);
});

describe("the fallback's GEMM threads", () => {
  const initialTs = tsBackend.info().threads;
  afterAll(() => tsBackend.setThreads(initialTs));

  // [M, N, K, transA, transB, beta, lda, ldb, ldc]: split by columns (N >= M) and by rows, every
  // transpose, C read back (beta != 0), strided operands and a strided C (copied back row by row),
  // ranges fewer than threads, and one below the size worth a thread
  const cases: [number, number, number, boolean, boolean, number, number, number, number][] = [
    [64, 500, 784, false, true, 0, 784, 784, 500],
    [64, 784, 500, false, false, 1, 500, 784, 784],
    [500, 300, 64, true, false, 0, 500, 300, 300],
    [301, 37, 519, true, true, 0.5, 301, 519, 40],
    [70, 90, 900, false, false, -2, 903, 97, 95],
    [9, 2000, 300, false, false, 0, 300, 2000, 2000],
    [64, 10, 500, false, true, 0, 500, 500, 10],
  ];
  const run = (threads: number) => {
    expect(tsBackend.setThreads(threads)).toBe(threads);
    return cases.map(([M, N, K, ta, tb, beta, lda, ldb, ldc], i) => {
      const rng = new Rng(40 + i);
      const A = rng.f32((ta ? K : M) * lda), B = rng.f32((tb ? N : K) * ldb), C = rng.f32(M * ldc);
      tsBackend.sgemm(C, A, B, M, N, K, ta, tb, 1.25, beta, lda, ldb, ldc);
      return C;
    });
  };

  it('is bitwise identical on 1, 2, 3 and 4 threads, and matches native', () => {
    tsBackend.setThreads(4);
    expect(cases.map(([M, N, K]) => rangeCount(M, N, K, 1.25))).toEqual([4, 4, 4, 2, 2, 2, 1]);
    const one = run(1);
    for (const t of [2, 3, 4]) {
      const other = run(t);
      for (const [i, c] of other.entries()) expect(sameBits(c, one[i]), `case ${i} on ${t} threads`).toBe(true);
    }
    native.setThreads(initial);
    cases.forEach(([M, N, K, ta, tb, beta, lda, ldb, ldc], i) => {
      const rng = new Rng(40 + i);
      const A = rng.f32((ta ? K : M) * lda), B = rng.f32((tb ? N : K) * ldb), C = rng.f32(M * ldc);
      native.sgemm(C, A, B, M, N, K, ta, tb, 1.25, beta, lda, ldb, ldc);
      expect(maxError(one[i], C), `case ${i} against native`).toBeLessThan(1e-4);
    });
  });

  it('survives resizing between products, and a larger product after a smaller one', () => {
    const rng = new Rng(23);
    const A = rng.f32(300 * 300);
    const product = (n: number) => {
      const C = new Float32Array(n * n);
      tsBackend.sgemm(C, A, A, n, n, n, false, false, 1, 0, 300, 300, n);
      return C;
    };
    tsBackend.setThreads(1);
    const ref = { 150: product(150), 300: product(300) };
    for (let i = 0; i < 12; i++) {
      tsBackend.setThreads(1 + (i % 4));
      const n = i % 2 ? 300 : 150;
      expect(sameBits(product(n), ref[n]), `iteration ${i}`).toBe(true);
    }
  });

  it('computes every range when a worker dies during a product or between products', async () => {
    const rng = new Rng(24);
    const A = rng.f32(256 * 256), B = rng.f32(256 * 256), C0 = rng.f32(256 * 256);
    const product = () => {
      const C = C0.slice();
      tsBackend.sgemm(C, A, B, 256, 256, 256, false, false, 1, 0.5, 256, 256, 256);
      return C;
    };
    tsBackend.setThreads(1);
    const ref = product();
    tsBackend.setThreads(2);
    expect(sameBits(product(), ref)).toBe(true);
    const patience = { ...workerPatience };
    const warn = vi.spyOn(process, 'emitWarning').mockImplementation(() => {});
    try {
      // during: terminated while this thread never yields, so no 'exit' event has run when the range is posted
      const [first] = gemmWorkers();
      void first.terminate();
      for (const t = Date.now(); Date.now() - t < 300; );
      Object.assign(workerPatience, { slackMs: 200, factor: 0 });
      const t0 = Date.now();
      expect(sameBits(product(), ref), 'the product the worker died in').toBe(true);
      expect(Date.now() - t0).toBeLessThan(3_000);
      expect(warn.mock.calls.map((c) => (c[1] as { code?: string })?.code)).toEqual(['STABLEGRAD_FALLBACK_WORKER_LOST']);
      // a new worker takes the next product
      Object.assign(workerPatience, patience);
      expect(sameBits(product(), ref), 'the next product').toBe(true);
      const [second] = gemmWorkers();
      expect(second).not.toBe(first);
      // between products: its 'exit' event has run, so it is dropped before any range is posted to it
      await second.terminate();
      const t1 = Date.now();
      expect(sameBits(product(), ref), 'after a death between products').toBe(true);
      expect(Date.now() - t1).toBeLessThan(workerPatience.slackMs);
      expect(gemmWorkers()).toHaveLength(1);
      expect(gemmWorkers()[0]).not.toBe(second);
      expect(warn).toHaveBeenCalledTimes(1);
    } finally {
      Object.assign(workerPatience, patience);
      warn.mockRestore();
    }
  });

  it('lets the process exit with its workers idle', () => {
    const code = `const { tsBackend } = require('./dist/cjs/backend/ts/index.js'); tsBackend.setThreads(2);
      const A = new Float32Array(256 * 256).fill(1), C = new Float32Array(256 * 256);
      tsBackend.sgemm(C, A, A, 256, 256, 256, false, false, 1, 0, 256, 256, 256); console.log(C[0], C[C.length - 1]);`;
    const r = spawnSync(process.execPath, ['-e', code], { cwd: join(__dirname, '..'), encoding: 'utf8', timeout: 20_000 });
    expect(r.signal).toBeNull();
    expect(r.stdout.trim()).toBe('256 256');
  });

  it('computes on one thread, with one warning, when its workers cannot start', () => {
    const dir = mkdtempSync(join(tmpdir(), 'stablegrad-no-worker-'));
    try {
      // the compiled backend without its worker script, as a bundle that left it out would be
      cpSync(join(__dirname, '..', 'dist', 'cjs'), dir, { recursive: true });
      rmSync(join(dir, 'backend', 'ts', 'gemm-worker.js'));
      const code = `const { tsBackend } = require(${JSON.stringify(join(dir, 'backend', 'ts', 'index.js'))}); tsBackend.setThreads(2);
        const A = new Float32Array(256 * 256).fill(1), C = new Float32Array(256 * 256);
        for (let i = 0; i < 3; i++) tsBackend.sgemm(C, A, A, 256, 256, 256, false, false, 1, 0, 256, 256, 256);
        console.log(C[0], C[C.length - 1], tsBackend.info().threads);`;
      const r = spawnSync(process.execPath, ['-e', code], { encoding: 'utf8', timeout: 20_000 });
      expect(r.stdout.trim()).toBe('256 256 1');
      expect(r.stderr.match(/STABLEGRAD_FALLBACK_THREADS/g)).toHaveLength(1);
      expect(r.stderr).toMatch(/the fallback's GEMM runs on 1 thread\(s\), not 2: a worker thread cannot start: \S+gemm-worker\.js is missing/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
