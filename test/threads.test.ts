/**
 * The thread pool: results do not depend on the thread count (GEMM and BatchNorm give every output
 * element to exactly one thread, summing in the same order), and resizing it back and forth, even
 * right before and after work, neither hangs nor loses work; its job hand-off is free of data races
 * under ThreadSanitizer.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { native, Rng } from './helpers.js';

const initial = native.info().threads;
// bitwise equality, by bytes (vitest's deep equality walks typed arrays element by element, slowly)
const bytes = (a: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);
const sameBits = (a: Float32Array, b: Float32Array) => bytes(a).equals(bytes(b));
afterAll(() => native.setThreads(initial));

describe('thread pool', () => {
  it('GEMM and BatchNorm are bitwise identical on 1, 2, 3 and 5 threads', () => {
    const rng = new Rng(21);
    const [M, N, K] = [257, 190, 301];
    const A = rng.f32(M * K), B = rng.f32(K * N), x = rng.f32(64 * 37 * 49), dy = rng.f32(x.length);
    // a batch-sized product (one row block: split by columns), a narrow one (one column panel: split
    // by rows), one-row products (walked without packing) both ways, and BatchNorm's (N, C) layout
    // over many row blocks
    const A2 = rng.f32(64 * 300), B2 = rng.f32(300 * 500), B3 = rng.f32(10 * 500), x2 = rng.f32(1000 * 37), dy2 = rng.f32(x2.length);
    const x3 = rng.f32(3 * 37 * 1024), dy3 = rng.f32(x3.length); // planes of 1024: walked channel by channel
    const batchnorm = (input: Float32Array, grad: Float32Array, n: number, S: number) => {
      const y = new Float32Array(input.length), mean = new Float32Array(37), invstd = new Float32Array(37);
      native.batchnormForwardTrain(y, mean, invstd, null, null, input, null, null, n, 37, S, 1e-5, 0.1, false);
      const dx = new Float32Array(input.length), dw = new Float32Array(37);
      native.batchnormBackward(dx, dw, null, grad, input, mean, invstd, Float32Array.from(mean, () => 1.5), null, n, 37, S, true);
      return [y, mean, invstd, dx, dw];
    };
    const run = (threads: number) => {
      expect(native.setThreads(threads)).toBe(threads);
      const C = new Float32Array(M * N), C2 = new Float32Array(64 * 500), C3 = new Float32Array(64 * 10);
      const row = new Float32Array(500), rowT = new Float32Array(500);
      native.sgemm(C, A, B, M, N, K, false, true, 1, 0, K, K, N);
      native.sgemm(C2, A2, B2, 64, 500, 300, false, false, 1, 0, 300, 500, 500);
      native.sgemm(C3, B2.subarray(0, 64 * 500), B3, 64, 10, 500, false, true, 1, 0, 500, 500, 10);
      native.sgemm(row, A2, B2, 1, 500, 300, false, false, 1, 0, 300, 500, 500);
      native.sgemm(rowT, A2, B2, 1, 500, 300, false, true, 1, 0, 300, 300, 500);
      return [C, C2, C3, row, rowT, ...batchnorm(x, dy, 64, 49), ...batchnorm(x2, dy2, 1000, 1), ...batchnorm(x3, dy3, 3, 1024)];
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
        join(root, 'test', 'native', 'pool_stress.cpp'), join(root, 'native', 'kernels', 'threadpool.cpp'), '-o', exe, '-pthread']);
      // halt_on_error: a race fails the run with TSan's report on stderr
      const out = execFileSync(exe, ['20000'], { encoding: 'utf8', env: { ...process.env, TSAN_OPTIONS: 'halt_on_error=1' } });
      expect(out).toMatch(/ 0 errors/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);
});
