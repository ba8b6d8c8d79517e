/**
 * Blocked GEMM in TypeScript, shaped like the native one (native/kernels/gemm.cpp) at JavaScript
 * scale: op(A) and op(B) blocks are packed into 4-row and 2-column panels (transposes folded into
 * the packing, edges zero-padded), and a 4x2 micro-kernel keeps its 8 accumulators in locals for
 * the whole K block, so the inner loop does 8 multiply-adds per 6 loads and no stores.
 * C (M, N) = alpha * op(A) (M, K) . op(B) (K, N) + beta * C
 */

const MR = 4, NR = 2, KC = 512, MC = 64, NC = 256;
// exported by name, not as `export const`: the CommonJS build would turn every use of an exported
// const into a property load of `exports`, and the micro-kernel's loop slows by a third
export { MR, NR };
const packA = new Float64Array(MC * KC);
const packB = new Float64Array(KC * NC);

export function sgemm(C: Float32Array, A: Float32Array, B: Float32Array, M: number, N: number, K: number,
  transA: boolean, transB: boolean, alpha: number, beta: number, lda: number, ldb: number, ldc: number): void {
  if (M === 0 || N === 0) return;
  if (beta !== 1) {
    for (let i = 0; i < M; i++) {
      const row = i * ldc;
      if (beta === 0) C.fill(0, row, row + N);
      else for (let j = 0; j < N; j++) C[row + j] *= beta;
    }
  }
  if (K === 0 || alpha === 0) return;
  if (M === 1) {
    rowProduct(C, A, B, N, K, transA ? lda : 1, transB, alpha, ldb);
    return;
  }
  for (let jc = 0; jc < N; jc += NC) {
    const nc = Math.min(NC, N - jc);
    for (let pc = 0; pc < K; pc += KC) {
      const kc = Math.min(KC, K - pc), kcEven = (kc + 1) & ~1;
      packPanels(packB, B, ldb, !transB, jc, nc, pc, kc, kcEven, NR);
      for (let ic = 0; ic < M; ic += MC) {
        const mc = Math.min(MC, M - ic);
        packPanels(packA, A, lda, transA, ic, mc, pc, kc, kcEven, MR);
        for (let jr = 0; jr < nc; jr += NR)
          for (let ir = 0; ir < mc; ir += MR)
            microkernel(kcEven, ir * kcEven, jr * kcEven, C, (ic + ir) * ldc + jc + jr, ldc, alpha,
              Math.min(MR, mc - ir), Math.min(NR, nc - jr));
      }
    }
  }
}

let rowSums = new Float64Array(0);

/**
 * M = 1: C (1, N) += alpha * a . op(B) (K, N), a (K) being op(A)'s one row at stride aStep (a bias
 * gradient ones . g, a batch of one through a linear layer). Packing would copy all of op(B) into
 * panels to feed one of the micro-kernel's four rows (1 x 500 x 64 took 150 us); these walks read
 * op(B) once, in memory order, and sum each output in double in k order, as native/kernels/gemm.cpp's
 * sgemm_row does in float.
 */
function rowProduct(C: Float32Array, A: Float32Array, B: Float32Array, N: number, K: number, aStep: number,
  transB: boolean, alpha: number, ldb: number): void {
  if (transB) {
    // op(B)[k][j] = B[j][k]: C[j] is the dot product of a with B's row j
    for (let j = 0; j < N; j++) {
      let sum = 0;
      for (let k = 0, b = j * ldb; k < K; k++, b++) sum += A[k * aStep] * B[b];
      C[j] += alpha * sum;
    }
    return;
  }
  // B's rows added into per-column sums, four rows per pass over the sums
  if (rowSums.length < N) rowSums = new Float64Array(N);
  const sums = rowSums;
  sums.fill(0, 0, N);
  let k = 0;
  for (; k + 4 <= K; k += 4) {
    const a0 = A[k * aStep], a1 = A[(k + 1) * aStep], a2 = A[(k + 2) * aStep], a3 = A[(k + 3) * aStep];
    const b0 = k * ldb, b1 = b0 + ldb, b2 = b1 + ldb, b3 = b2 + ldb;
    for (let j = 0; j < N; j++) sums[j] = sums[j] + a0 * B[b0 + j] + a1 * B[b1 + j] + a2 * B[b2 + j] + a3 * B[b3 + j];
  }
  for (; k < K; k++) {
    const a = A[k * aStep], b = k * ldb;
    for (let j = 0; j < N; j++) sums[j] += a * B[b + j];
  }
  for (let j = 0; j < N; j++) C[j] += alpha * sums[j];
}

/**
 * dst <- `count` rows (or columns) of a matrix from `first` on, over k in [p0, p0 + kc), as
 * (kcEven, width) panels: panel q holds rows first + q*width ..., element (k, i) at q*width*kcEven +
 * k*width + i. Row r, column k of the matrix is src[r*ld + k], or src[k*ld + r] when kMajor.
 * Rows past count and k past kc are zero. op(A)'s rows are A's rows unless transposed; op(B)'s
 * columns are B's rows when transposed.
 */
function packPanels(dst: Float64Array, src: Float32Array, ld: number, kMajor: boolean, first: number, count: number,
  p0: number, kc: number, kcEven: number, width: number): void {
  if (kMajor) {
    // a k-row of every panel is contiguous in src: one loop along it per k, dealing the values out
    // to the panels in turn (a loop per panel and k moved two values per loop for B's panels:
    // 10 x 500 x 64 spent ~40% of its time packing)
    const panelStride = width * kcEven;
    for (let k = 0; k < kc; k = (k + 1) | 0) {
      const s = (p0 + k) * ld + first;
      let o = k * width, i = 0;
      for (let q = 0; q < count; q = (q + 1) | 0) {
        dst[(o + i) | 0] = src[(s + q) | 0];
        if (++i === width) {
          i = 0;
          o += panelStride;
        }
      }
      if (i !== 0) for (; i < width; i = (i + 1) | 0) dst[(o + i) | 0] = 0; // the last panel's rows past count
    }
  } else {
    for (let q = 0; q < count; q += width) {
      const base = q * kcEven, rows = Math.min(width, count - q), r0 = first + q;
      let i = 0;
      // two rows of the panel per loop along k (one row per loop spent as much on the loop as on
      // the copy: 64 x 500 x 784 packs all of W, 392k values, for every product)
      for (; i + 1 < rows; i = (i + 2) | 0) {
        const s0 = (r0 + i) * ld + p0, s1 = s0 + ld;
        for (let k = 0, o = base + i; k < kc; k = (k + 1) | 0, o = (o + width) | 0) {
          const v0 = src[(s0 + k) | 0], v1 = src[(s1 + k) | 0];
          dst[o] = v0;
          dst[(o + 1) | 0] = v1;
        }
      }
      for (; i < width; i = (i + 1) | 0) {
        if (i >= rows) {
          for (let k = 0; k < kc; k = (k + 1) | 0) dst[(base + k * width + i) | 0] = 0;
          continue;
        }
        const s = (r0 + i) * ld + p0;
        for (let k = 0, o = base + i; k < kc; k = (k + 1) | 0, o = (o + width) | 0) dst[o] = src[(s + k) | 0];
      }
    }
  }
  if (kc !== kcEven) for (let base = 0; base < count * kcEven; base += width * kcEven) dst.fill(0, base + kc * width, base + kcEven * width);
}

const tile = new Float64Array(MR * NR);

// The loop is written for what V8's optimizing compiler makes of it: 8 accumulators, 4 A values
// and one B value fit x64's 16 registers (a 4x4 tile's 16 accumulators were partly spilled to the
// stack); indices are int32 (`| 0`) so they need no overflow checks; k is unrolled by two over K
// blocks padded to an even length. Measured on the packed 64x512x256 block: 4x4 4.4 GFLOP/s, 4x4 with int32 indices
// 5.2, this 4x2 unrolled by two 6.2.
function microkernel(kcEven: number, a: number, b: number, C: Float32Array, c: number, ldc: number, alpha: number,
  mr: number, nr: number): void {
  const pa = packA, pb = packB;
  let c00 = 0, c01 = 0, c10 = 0, c11 = 0, c20 = 0, c21 = 0, c30 = 0, c31 = 0;
  for (const end = (a + kcEven * MR) | 0; a < end; a = (a + 2 * MR) | 0, b = (b + 2 * NR) | 0) {
    {
      const a0 = pa[a], a1 = pa[(a + 1) | 0], a2 = pa[(a + 2) | 0], a3 = pa[(a + 3) | 0];
      { const bj = pb[b]; c00 += a0 * bj; c10 += a1 * bj; c20 += a2 * bj; c30 += a3 * bj; }
      { const bj = pb[(b + 1) | 0]; c01 += a0 * bj; c11 += a1 * bj; c21 += a2 * bj; c31 += a3 * bj; }
    }
    {
      const a0 = pa[(a + 4) | 0], a1 = pa[(a + 5) | 0], a2 = pa[(a + 6) | 0], a3 = pa[(a + 7) | 0];
      { const bj = pb[(b + 2) | 0]; c00 += a0 * bj; c10 += a1 * bj; c20 += a2 * bj; c30 += a3 * bj; }
      { const bj = pb[(b + 3) | 0]; c01 += a0 * bj; c11 += a1 * bj; c21 += a2 * bj; c31 += a3 * bj; }
    }
  }
  if (mr === MR && nr === NR) {
    C[c] += alpha * c00; C[c + 1] += alpha * c01; c += ldc;
    C[c] += alpha * c10; C[c + 1] += alpha * c11; c += ldc;
    C[c] += alpha * c20; C[c + 1] += alpha * c21; c += ldc;
    C[c] += alpha * c30; C[c + 1] += alpha * c31;
    return;
  }
  tile[0] = c00; tile[1] = c01; tile[2] = c10; tile[3] = c11;
  tile[4] = c20; tile[5] = c21; tile[6] = c30; tile[7] = c31;
  for (let i = 0; i < mr; i++)
    for (let j = 0; j < nr; j++) C[c + i * ldc + j] += alpha * tile[i * NR + j];
}
