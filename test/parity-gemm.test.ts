/**
 * GEMM, native (each ISA this CPU runs) against the TypeScript fallback on random inputs, on each of
 * its paths (see native/kernels/gemm.cpp), within the float32 rounding bound of a dot product.
 * A file of its own beside parity.test.ts: the two run side by side.
 */
import { describe, expect, it } from 'vitest';
import { both, copy, firstBitDifference, native, Rng, runnableIsas, tsBackend, withIsa } from './helpers.js';

const SIZES = [1, 7, 17, 33, 100];

/**
 * GEMM error against the classic bound for float32 dot products of length K:
 * |C - C'| <= gamma_K * (|alpha| * sum_k |op(A)_ik| |op(B)_kj| + |beta| |C0_ij|), gamma_K ~ K * 2^-24,
 * evaluated per element. Returns the worst |C - C'| / bound; a sound implementation stays below 2.
 */
function gemmBoundRatio(cn: Float32Array, ct: Float32Array, A: Float32Array, B: Float32Array, C0: Float32Array,
  M: number, N: number, K: number, ta: boolean, tb: boolean, alpha: number, beta: number, lda: number, ldb: number,
  ldc: number): number {
  const bound = Float32Array.from(C0, Math.abs);
  tsBackend.sgemm(bound, Float32Array.from(A, Math.abs), Float32Array.from(B, Math.abs), M, N, K, ta, tb,
    Math.abs(alpha), Math.abs(beta), lda, ldb, ldc);
  const gamma = (K + 2) * 2 ** -24;
  let worst = 0;
  for (let i = 0; i < M; i++)
    for (let j = 0; j < N; j++) {
      const o = i * ldc + j, diff = Math.abs(cn[o] - ct[o]);
      if (Number.isNaN(diff)) return Infinity; // a NaN on one side only (both NaN: also a failure here)
      if (diff > 0) worst = Math.max(worst, diff / (gamma * bound[o] + 1e-30));
    }
  return worst;
}

/**
 * sgemm on both backends from copies of C0, checked against the rounding bound (beta * C0 counts
 * only when beta is not 0: C0 may then hold NaN, which the product must not read) and for C's
 * padding (columns N .. ldc-1) left as it was; returns native's C.
 */
function checkGemm(A: Float32Array, B: Float32Array, C0: Float32Array, M: number, N: number, K: number, ta: boolean,
  tb: boolean, alpha: number, beta: number, lda: number, ldb: number, ldc: number): Float32Array {
  const [cn, ct] = both((b) => {
    const C = copy(C0);
    b.sgemm(C, A, B, M, N, K, ta, tb, alpha, beta, lda, ldb, ldc);
    return C;
  });
  const err = gemmBoundRatio(cn, ct, A, B, beta === 0 ? new Float32Array(C0.length) : C0, M, N, K, ta, tb, alpha, beta,
    lda, ldb, ldc);
  if (err > 2) expect.fail(`M=${M} N=${N} K=${K} transA=${ta} transB=${tb}: error ${err}`);
  for (let i = 0; i < M; i++) // the padding of C is not written
    for (let j = N; j < ldc; j++) expect(Object.is(cn[i * ldc + j], C0[i * ldc + j])).toBe(true);
  return cn;
}

/** The sum of the squares of C's M x N values (rows ldc apart), in double. */
function squaresOf(C: Float32Array, M: number, N: number, ldc: number): number {
  let total = 0;
  for (let i = 0; i < M; i++) for (let j = 0; j < N; j++) total += C[i * ldc + j] ** 2;
  return total;
}

/**
 * sgemm C = alpha * A . B^T + beta * C for each (M, N, K), native against the fallback within the
 * rounding bound, with lda = K + 3, ldb = K + ldbPad, ldc = N + 2 (the padding of C must stay as it
 * was); odd M with alpha -1.5 and beta 0.25, even M with 1 and 0.
 */
function checkABt(rng: Rng, shapes: number[][], ldbPad: number): void {
  for (const [M, N, K] of shapes) {
    const [alpha, beta] = M % 2 ? [-1.5, 0.25] : [1, 0];
    const lda = K + 3, ldb = K + ldbPad, ldc = N + 2;
    // C0 large enough that beta * C0 stands out of the bound of a long K's rounding
    checkGemm(rng.f32(M * lda), rng.f32(N * ldb), rng.f32(M * ldc, 100), M, N, K, false, true, alpha, beta, lda, ldb,
      ldc);
  }
}

describe.each(runnableIsas)('native %s GEMM vs the TypeScript fallback', (isa) => {
  it('sgemm: every transpose, alpha/beta, sizes 1..100, padded leading dimensions', () => {
    withIsa(isa, () => {
      const rng = new Rng(1);
      for (const M of SIZES)
        for (const N of SIZES)
          for (const K of SIZES)
            for (const [ta, tb] of [[false, false], [false, true], [true, false], [true, true]] as const) {
              const pad = (M + N + K) % 3; // some calls use leading dimensions wider than the matrix
              const lda = Math.max(ta ? M : K, 1) + pad, ldb = Math.max(tb ? K : N, 1) + pad, ldc = N + pad;
              const A = rng.f32((ta ? K : M) * lda), B = rng.f32((tb ? N : K) * ldb), C0 = rng.f32(M * ldc);
              const [alpha, beta] = [[1, 0], [0.5, 1], [-1.5, 0.25]][(M + K) % 3];
              const [cn, ct] = both((b) => {
                const C = copy(C0);
                b.sgemm(C, A, B, M, N, K, ta, tb, alpha, beta, lda, ldb, ldc);
                return C;
              });
              const err = gemmBoundRatio(cn, ct, A, B, C0, M, N, K, ta, tb, alpha, beta, lda, ldb, ldc);
              if (err > 2) expect.fail(`M=${M} N=${N} K=${K} transA=${ta} transB=${tb}: error ${err}`);
            }
    });
  });

  it('sgemm: blocked sizes past one cache block (M=300, N=3100, K=520), a batch product with K in two rounds of packed A, one-row products, every transpose, and beta=0 ignores NaN in C', () => {
    withIsa(isa, () => {
      const rng = new Rng(2);
      for (const [M, N, K] of [[300, 70, 520], [13, 3100, 200], [500, 500, 500], [64, 500, 784], [500, 784, 64], [8, 64, 7000], [1, 3100, 520], [1, 500, 784]])
        for (const [ta, tb] of [[false, false], [false, true], [true, false], [true, true]]) {
          const A = rng.f32(M * K), B = rng.f32(K * N);
          const lda = ta ? M : K, ldb = tb ? K : N;
          const [cn, ct] = both((b) => {
            const C = new Float32Array(M * N).fill(NaN);
            b.sgemm(C, A, B, M, N, K, ta, tb, 1, 0, lda, ldb, N);
            return C;
          });
          expect(gemmBoundRatio(cn, ct, A, B, new Float32Array(M * N), M, N, K, ta, tb, 1, 0, lda, ldb, N)).toBeLessThan(2);
        }
    });
  });

  it('sgemm: a few rows of A against a wide B^T (native: C^T = B . A^T with B read in place), alpha/beta, padded leading dimensions', () => {
    // M across the panels of A^T (8, 16 and 64 wide) and past the path's 64; N across the row tiles
    // (4, 6), the chunks (480) and the threads' runs, and just past the dot path; K across its
    // blocks of 128 and the 8 x 8 transposes
    withIsa(isa, () => checkABt(new Rng(11), [[64, 500, 784], [2, 12, 64], [7, 13, 65], [9, 97, 127], [63, 1001, 129],
      [33, 250, 1000], [64, 33, 3000], [17, 2049, 300], [8, 95, 200], [65, 100, 200], [64, 11, 64]], 5));
  });

  it('sgemm: up to 12 rows of op(A) against B not transposed (native: B read in place, K in blocks of 128), alpha/beta, padded leading dimensions, beta = 0 ignores NaN in C', () => {
    // M across every tile height of the path and just past it (13 is packed again); N across the
    // strips' widths (16 to 64 columns) and their masked right edges; K across the blocks of 128
    // (300: three blocks of 100, each after the first adding onto C); 10 x 500 x 784 on two threads
    withIsa(isa, () => {
      const rng = new Rng(13);
      let shape = 0;
      for (const M of [2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13])
        for (const [N, K] of [[1, 5], [17, 129], [33, 64], [49, 300], [100, 7], [500, 64]])
          for (const ta of [false, true]) {
            const [alpha, beta] = [[1, 0], [0.5, 1], [-1.5, 0.25]][shape++ % 3];
            const lda = (ta ? M : K) + 2, ldb = N + 3, ldc = N + 1;
            const A = rng.f32((ta ? K : M) * lda), B = rng.f32(K * ldb), C0 = rng.f32(M * ldc, 100);
            if (beta === 0) C0.fill(NaN);
            checkGemm(A, B, C0, M, N, K, ta, false, alpha, beta, lda, ldb, ldc);
          }
      for (const ta of [false, true]) {
        const [M, N, K] = [10, 500, 784], A = rng.f32(M * K), B = rng.f32(K * N);
        const [cn, ct] = both((b) => {
          const C = new Float32Array(M * N).fill(NaN);
          b.sgemm(C, A, B, M, N, K, ta, false, 1, 0, ta ? M : K, N, N);
          return C;
        });
        expect(gemmBoundRatio(cn, ct, A, B, new Float32Array(M * N), M, N, K, ta, false, 1, 0, ta ? M : K, N, N)).toBeLessThan(2);
      }
    });
  });

  it('sgemm: B read in place (not transposed, one K block, rows an odd number of cache lines apart), masked right edge, both layouts of A, two threads, alpha/beta', () => {
    // ldb 784 floats: rows 49 lines apart (native AVX-512 reads B in place; the other ISAs pack it).
    // N 780 leaves a 12-column edge past the last whole vector; 500 rows go in two row blocks on two
    // threads, 40 x 780 x 16 on one; K 81 spans 254 KB of B, K 84 (packed) 263 KB
    withIsa(isa, () => {
      const rng = new Rng(15);
      for (const [M, N, K] of [[500, 784, 64], [500, 780, 64], [40, 780, 16], [600, 770, 81], [600, 770, 84]])
        for (const ta of [false, true])
          for (const [alpha, beta] of [[1, 0], [-0.5, 1]]) {
            const lda = (ta ? M : K) + 1, ldb = 784, ldc = N + 3;
            // B ends at its last value: the edge's masked loads must not read past it
            const A = rng.f32((ta ? K : M) * lda), B = rng.f32((K - 1) * ldb + N), C0 = rng.f32(M * ldc, 100);
            if (beta === 0) C0.fill(NaN, 0, M * ldc - 3); // the padding of the last row stays a number
            const cn = checkGemm(A, B, C0, M, N, K, ta, false, alpha, beta, lda, ldb, ldc);
            const Cs = copy(C0);
            const sum = native.sgemmSumSquares(Cs, A, B, M, N, K, ta, false, alpha, beta, lda, ldb, ldc);
            expect(firstBitDifference(Cs, cn)).toBeNull();
            const exact = squaresOf(Cs, M, N, ldc);
            expect(Math.abs(sum - exact)).toBeLessThanOrEqual(1e-6 * exact);
          }
    });
  });

  it('sgemmSumSquares: C as sgemm leaves it, and the sum of its squares, on every path (summed in the blocked product\'s stores, else after it); infinite A gives Infinity, not NaN', () => {
    withIsa(isa, () => {
      const rng = new Rng(14);
      // [M, N, K, ta, tb]: blocked and packed (one and several row blocks, K blocks, NC blocks, two
      // threads), a batch split by columns, a wide B^T, dot products, a few rows, one row, K = 0
      for (const [M, N, K, ta, tb] of [[20, 50, 30, false, false], [500, 784, 64, true, false], [300, 70, 520, false, false],
        [13, 3100, 200, true, true], [64, 500, 784, false, false], [64, 500, 784, false, true], [9, 10, 384, false, true],
        [10, 500, 64, true, false], [1, 37, 50, false, false], [5, 6, 0, false, false]] as const)
        for (const [alpha, beta, pad] of [[1, 0, 0], [-0.5, 1, 3]]) {
          const lda = Math.max(ta ? M : K, 1) + pad, ldb = Math.max(tb ? K : N, 1) + pad, ldc = N + pad;
          const A = rng.f32((ta ? K : M) * lda), B = rng.f32((tb ? N : K) * ldb), C0 = rng.f32(M * ldc);
          if (beta === 0) C0.fill(NaN);
          const Cs = copy(C0), Cp = copy(C0), Ct = copy(C0);
          const sum = native.sgemmSumSquares(Cs, A, B, M, N, K, ta, tb, alpha, beta, lda, ldb, ldc);
          native.sgemm(Cp, A, B, M, N, K, ta, tb, alpha, beta, lda, ldb, ldc);
          const sumTs = tsBackend.sgemmSumSquares(Ct, A, B, M, N, K, ta, tb, alpha, beta, lda, ldb, ldc);
          expect(firstBitDifference(Cs, Cp)).toBeNull(); // the same product as sgemm's
          const exact = squaresOf(Cs, M, N, ldc);
          const where = `M=${M} N=${N} K=${K} ta=${ta} tb=${tb} beta=${beta}`;
          if (Math.abs(sum - exact) > 1e-6 * exact) expect.fail(`${where}: ${sum} against ${exact}`);
          if (Math.abs(sumTs - sum) > 1e-5 * exact + 1e-6) expect.fail(`${where}: fallback ${sumTs} against ${sum}`);
        }
      // A's first row infinite: C's first row is +Infinity; the packed tiles' padding columns hold
      // Infinity * 0 = NaN, which must not reach the sum
      const [M, N, K] = [20, 50, 30];
      const A = rng.f32(M * K), B = Float32Array.from(rng.f32(K * N), Math.abs);
      A[0] = Infinity;
      B.fill(0.5, 0, N);
      for (const b of [native, tsBackend])
        expect(b.sgemmSumSquares(new Float32Array(M * N), A, B, M, N, K, false, false, 1, 0, K, N, N)).toBe(Infinity);
    });
  });

  it('sgemmBias: the bias on every row, on every path (one row, dot products, a batch against a wide B^T, a few rows against B in K blocks, a batch, row blocks, K = 0, alpha = 0), padded leading dimensions', () => {
    withIsa(isa, () => {
      const rng = new Rng(12);
      for (const [M, N, K, ta, tb, alpha] of [[1, 37, 50, false, true, 1], [1, 37, 50, false, false, 1], [9, 10, 384, false, true, 1],
        [64, 500, 784, false, true, 1], [7, 13, 65, false, true, -0.5], [64, 100, 70, false, false, 1], [300, 70, 90, true, false, 2],
        [200, 60, 50, false, true, 1], [5, 6, 0, false, true, 1], [5, 6, 7, false, false, 0], [10, 70, 300, true, false, 1],
        [3, 500, 64, false, false, -1]] as const) {
        const lda = (ta ? M : K) + 3, ldb = (tb ? K : N) + 1, ldc = N + 2;
        const A = rng.f32((ta ? K : M) * lda), B = rng.f32((tb ? N : K) * ldb), bias = rng.f32(N, 10);
        const C0 = rng.f32(M * ldc, 100);
        const [cn, ct] = both((b) => {
          const C = copy(C0);
          b.sgemmBias(C, A, B, bias, M, N, K, ta, tb, alpha, lda, ldb, ldc);
          return C;
        });
        // the bound of a product with beta 1 onto C's rows filled with the bias
        const rows = copy(C0);
        for (let i = 0; i < M; i++) rows.set(bias, i * ldc);
        const err = gemmBoundRatio(cn, ct, A, B, rows, M, N, K, ta, tb, alpha, 1, lda, ldb, ldc);
        if (err > 2) expect.fail(`M=${M} N=${N} K=${K} ta=${ta} tb=${tb}: error ${err}`);
        for (let i = 0; i < M; i++) { // the padding of C is not written
          for (let j = N; j < ldc; j++) expect(cn[i * ldc + j]).toBe(C0[i * ldc + j]);
          if (K === 0 || alpha === 0) for (let j = 0; j < N; j++) expect(cn[i * ldc + j]).toBe(bias[j]);
        }
      }
    });
  });

  it('sgemm: narrow A.B^T over a long K (native: dot products in K blocks), alpha/beta, padded leading dimensions', () => {
    // N on both sides of the dot path's limits (N <= 32 at K >= 384, N <= 12 at K >= 128, N <= 4 at
    // any K; 33 and 13 are packed again); M across the dot tile's and row blocks' edges; K across
    // its blocks and vector widths
    withIsa(isa, () => checkABt(new Rng(10), [[32, 9, 50176], [70, 15, 4099], [5, 1, 2049], [131, 4, 37], [3, 16, 3000],
      [9, 10, 384], [3, 32, 3000], [3, 33, 3000], [9, 12, 128], [9, 13, 128]], 1));
  });

});
