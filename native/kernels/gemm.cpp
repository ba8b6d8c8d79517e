// Single-precision GEMM: C (M, N) = alpha * op(A) (M, K) . op(B) (K, N) + beta * C (+ bias (N) on
// every row). choose_path() below picks one of five algorithms for a product, by its shape:
//   row      M = 1 (a bias gradient ones . g, a batch of one): op(B) read once, nothing packed
//   dots     a narrow A . B^T (a classifier's last layer, a conv weight gradient): dot products
//            along K, both operands read along their rows
//   rows     2..12 rows of op(A) against B not transposed (a last layer's weight gradient g^T . h):
//            B read in place, the whole of M in one register tile
//   wide     a batch of up to 64 rows against a wide B^T (a linear layer's forward x . W^T): the
//            transpose C^T = W . x^T, with only x^T packed and W's rows read in place
//   blocked  everything else, the BLIS way: op(B) packed into NR-wide panels per KC block, op(A)
//            into MR-tall panels per MC block, an MR x NR register tile per microkernel call
// The first four avoid packing an operand that would be read once; their thresholds are where
// each beat the blocked product on the machines of docs/PERFORMANCE.md (its history has the
// figures). Threads: see each path; every output is summed in an order fixed by the shape, so the
// result is the same for any thread count.
#include <cstdlib>
#include <new>
#include <type_traits>

#include "kernels.h"
#include "simd.h"

namespace sg {
namespace SG_NS {
namespace {

// ---- tuning, per ISA: every tile size and threshold ---------------------------------------------

// blocked: MR x (NV vectors) accumulators (24 of 32 zmm on AVX-512, 12 of 16 ymm on AVX2, 24 of
// NEON's 32, 8 of 16 xmm on SSE2); AVX-512's 8 x 48 rather than 12 x 32 loads 11 values per 24 FMAs,
// not 14; NEON's 12 x 8 loads 3 vectors of A (each row's value is a lane: fmla by element) and 2 of
// B per 24. KC keeps a B micro-panel near half of L1, MC x KC of packed A near half of L2, KC x NC
// of packed B in L3 (NEON's: BLIS's Cortex-A57 and Neoverse blocking, not measured on hardware).
#if SG_ISA_AVX512
constexpr int MR = 8, NV = 3;
constexpr int64_t KC = 192, MC = 480, NC = 3072;
#elif SG_ISA_AVX2
constexpr int MR = 6, NV = 2;
constexpr int64_t KC = 384, MC = 192, NC = 2048;
#elif SG_ISA_NEON
constexpr int MR = 12, NV = 2;
constexpr int64_t KC = 512, MC = 120, NC = 3072;
#else
constexpr int MR = 4, NV = 2;
constexpr int64_t KC = 256, MC = 128, NC = 2048;
#endif
constexpr int NR = NV * VL;
static_assert(NC % NR == 0, "a packed (KC, NC) block holds whole panels");
// blocked: B not transposed, in one K block of at most kInPlaceBytes, is read in place when its rows
// are an odd number of whole lines apart (AVX-512 only, where it was measured; see sgemm_impl)
#if SG_ISA_AVX512
constexpr bool kBInPlace = true;
constexpr int64_t kInPlaceBytes = 256 << 10;
#else
constexpr bool kBInPlace = false;
constexpr int64_t kInPlaceBytes = 0;
#endif
// blocked, one row block split by columns: K blocks of op(A) packed at once, B panels per chunk
constexpr int64_t kSharedKBlocks = 16, kChunkPanels = 4;
// below this many multiply-adds one thread: the hand-off to another core, and its fetching the
// operands the caller's core just wrote, cost more than the split saves
constexpr double kParallelMinMadds = 1 << 19;

// rows: up to kRowsMaxM rows; a tile of R rows holds kRowsAccumulators vectors, 1..4 of B a row
// (fewer as R grows); K in blocks of kRowsKC rows of B, whose pages stay in the TLB for the next
// strip of columns
#if SG_ISA_AVX512 || SG_ISA_NEON
constexpr int kRowsAccumulators = 24;
#elif SG_ISA_AVX2
constexpr int kRowsAccumulators = 12;
#else
constexpr int kRowsAccumulators = 8;
#endif
template <int R>
constexpr int rows_vectors() { return kRowsAccumulators / R < 1 ? 1 : kRowsAccumulators / R < 4 ? kRowsAccumulators / R : 4; }
constexpr int64_t kRowsMaxM = 12, kRowsKC = 128;

// dots: A . B^T with N <= 4 at any K, N <= 12 from K = 128, N <= 32 from K = 384 (shorter dot
// products stay blocked: each output ends in a sum across a vector's lanes). The tile: kDotRA rows
// of A against kDotRB of B (20 of AVX-512's 32 registers, 12 of AVX2's 16); K in blocks of kDotKB
// whose rows stay in L2; a thread's kDotAcc vector sums hold up to kDotRows rows of C
constexpr int64_t kDotAnyKMaxN = 4, kDotShortMaxN = 12, kDotShortMinK = 128, kDotMaxN = 32, kDotMinK = 384;
#if SG_ISA_AVX512 || SG_ISA_NEON
constexpr int kDotRA = 4, kDotRB = 5;
#else
constexpr int kDotRA = 4, kDotRB = 3;
#endif
constexpr int64_t kDotKB = 2048, kDotRows = 64, kDotAcc = 1024;
static_assert(kDotAcc >= kDotMaxN * kDotRA, "at least one tile of rows of C for the widest N");

// wide: M from kWideMinM (AVX-512's narrowest panel is 16 wide: below 9 rows it is mostly padding)
// to kWideMaxM, N >= 12, K >= 64. The tiles, R rows of W x NVA vectors of x's rows (at least 8
// accumulators, for two FMA pipes of latency 4), the first whose panel (the last figure) fits M.
// K in blocks of kWideKC (a block's panels of x^T stay in L1), W's rows kWideChunk at a time (a
// multiple of every R and of the transposes' 8; C^T's chunk stays in L2).
#if SG_ISA_AVX512
#define SG_WIDE_TILES(X) X(12, 1, 16) X(8, 2, 32) X(8, 3, 48) X(6, 4, 64)
constexpr int64_t kWideMinM = 9;
#elif SG_ISA_AVX2
#define SG_WIDE_TILES(X) X(8, 1, 8) X(6, 2, 64)
constexpr int64_t kWideMinM = 2;
#elif SG_ISA_NEON
// 5 x 4, not AVX-512's 6 x 4: 24 accumulators, 4 vectors of x and 6 of W need 34 of the 32 registers
#define SG_WIDE_TILES(X) X(8, 2, 8) X(5, 4, 64)
constexpr int64_t kWideMinM = 2;
#else
#define SG_WIDE_TILES(X) X(4, 2, 64)
constexpr int64_t kWideMinM = 2;
#endif
constexpr int64_t kWideMaxM = 64, kWideKC = 128, kWideChunk = 480;

// ---- the choice ----------------------------------------------------------------------------------

enum class Path { kEmpty, kScale, kRow, kDots, kRows, kWide, kBlocked };

// The algorithm for a product of this shape (see the top of the file); kScale: no product to add
// (C = beta * C, plus the bias).
Path choose_path(int64_t M, int64_t N, int64_t K, bool trans_a, bool trans_b, float alpha) {
  if (M == 0 || N == 0) return Path::kEmpty;
  if (K == 0 || alpha == 0.0f) return Path::kScale;
  if (M == 1) return Path::kRow;
  if (!trans_a && trans_b &&
      (N <= kDotAnyKMaxN || (N <= kDotShortMaxN && K >= kDotShortMinK) || (N <= kDotMaxN && K >= kDotMinK)))
    return Path::kDots;
  if (!trans_b && M <= kRowsMaxM) return Path::kRows;
  if (!trans_a && trans_b && M >= kWideMinM && M <= kWideMaxM && N >= 12 && K >= 64) return Path::kWide;
  return Path::kBlocked;
}

// ---- packing and the microkernel (blocked) -------------------------------------------------------

// Packing buffers, owned by the calling thread and reused across calls (a training step calls GEMM
// with the same shapes thousands of times; fresh multi-megabyte allocations would page-fault).
struct Workspace {
  float* b = nullptr;  // one (KC, NC) slot of packed op(B) per thread
  float* a = nullptr;  // one (MC, KC) slot of packed op(A) per thread
  // a batch's packed op(A) (several K blocks of it), or sgemm_wide's block of A^T and chunk of C^T;
  // a slot per thread
  float* a_shared = nullptr;
  int64_t b_floats = 0, a_floats = 0, a_shared_floats = 0;
  ~Workspace() {
    std::free(b);
    std::free(a);
    std::free(a_shared);
  }
  // `slots` slots of packed B, and as many of packed A when with_a (not where op(A) goes to a_shared)
  void ensure(int slots, bool with_a) {
    grow(b, b_floats, KC * NC * slots);
    grow(a, a_floats, MC * KC * (with_a ? slots : 0));
  }
  void ensure_shared(int64_t floats) { grow(a_shared, a_shared_floats, floats); }
  // p <- at least `floats`, replacing a smaller buffer; when the allocation throws, p is null and
  // have is 0, so a later call tries again instead of using the null buffer
  static void grow(float*& p, int64_t& have, int64_t floats) {
    if (have >= floats) return;
    std::free(p);
    p = nullptr;
    have = 0;
    void* q = std::aligned_alloc(64, (size_t)floats * sizeof(float));
    if (!q) throw std::bad_alloc();
    p = static_cast<float*>(q);
    have = floats;
  }
};
thread_local Workspace workspace;

// ap <- op(A)[i0 : i0+mc, p0 : p0+kc] as ceil(mc/MR) panels, each (kc, MR) row-major; rows past mc are 0.
void pack_a(float* ap, const float* A, int64_t lda, bool trans_a, int64_t i0, int64_t mc, int64_t p0, int64_t kc) {
  for (int64_t ir = 0; ir < mc; ir += MR, ap += kc * MR) {
    const int64_t mr = imin(MR, mc - ir);
    if (!trans_a) {
      // a transpose: rows of A become columns of the panel. AVX-512's panels of 8 rows go through
      // 8 x 8 register transposes, four rows at a time through 4 x 4 ones (SSE, on every x86-64, and
      // NEON); the rest one float at a time.
      int64_t done = 0;
#if SG_ISA_AVX512
      if (mr == 8) {
        const float* src = A + (i0 + ir) * lda + p0;
        const int64_t kc8 = kc / 8 * 8;
        for (int64_t k = 0; k < kc8; k += 8) transpose8x8(ap + k * MR, MR, src + k, lda);
        for (int64_t i = 0; i < 8; i++)
          for (int64_t k = kc8; k < kc; k++) ap[k * MR + i] = src[i * lda + k];
        done = 8;
      }
#endif
#if SG_HAVE_TRANSPOSE4
      const int64_t kc4 = kc / 4 * 4;
      for (; done + 4 <= mr; done += 4) {
        const float* src = A + (i0 + ir + done) * lda + p0;
        for (int64_t k = 0; k < kc4; k += 4) transpose4x4(ap + k * MR + done, MR, src + k, lda);
        for (int64_t i = done; i < done + 4; i++)
          for (int64_t k = kc4; k < kc; k++) ap[k * MR + i] = src[(i - done) * lda + k];
      }
#endif
      for (int64_t i = done; i < mr; i++) {
        const float* src = A + (i0 + ir + i) * lda + p0;
        for (int64_t k = 0; k < kc; k++) ap[k * MR + i] = src[k];
      }
      for (int64_t i = mr; i < MR; i++)
        for (int64_t k = 0; k < kc; k++) ap[k * MR + i] = 0.0f;
    } else {
      for (int64_t k = 0; k < kc; k++) {
        const float* src = A + (p0 + k) * lda + i0 + ir;  // op(A)[i][k] = A[k][i]
        int64_t i = 0;
        for (; i < mr; i++) ap[k * MR + i] = src[i];
        for (; i < MR; i++) ap[k * MR + i] = 0.0f;
      }
    }
  }
}

// bp <- op(B)[p0 : p0+kc, jc + first*NR : jc + last*NR] as panels first..last-1 of the (kc, nc)
// block, each (kc, NR) at bp + p*kc*NR; columns past nc are 0.
// (W: the panel width, NR but for sgemm_wide's panels of op(A)^T)
template <int64_t W = NR>
void pack_b_panels(float* bp, const float* B, int64_t ldb, bool trans_b, int64_t p0, int64_t kc, int64_t jc,
                   int64_t nc, int64_t first, int64_t last) {
  static_assert(W % VL == 0 && W % 8 == 0, "whole vectors, and whole 8 x 8 transposes");
  if (!trans_b) {
    // Row by row of B, each panel's piece of it in turn: a B with long rows (a batch of conv patches)
    // has its rows pages apart, and walking one panel down them missed in memory at every row (the
    // prefetchers stop at page boundaries); along the rows it streams.
    for (int64_t k = 0; k < kc; k++) {
      const float* src = B + (p0 + k) * ldb + jc;
      for (int64_t p = first; p < last; p++) {
        float* dst = bp + p * kc * W + k * W;
        const int64_t j = p * W, nr = imin(W, nc - j);
        if (nr == W) {
          for (int64_t v = 0; v < W / VL; v++) vstore(dst + v * VL, vload(src + j + v * VL));
        } else {
          int64_t jj = 0;
          for (; jj < nr; jj++) dst[jj] = src[j + jj];
          for (; jj < W; jj++) dst[jj] = 0.0f;
        }
      }
    }
    return;
  }
  // op(B)[k][j] = B[j][k], whose rows run along k: panel by panel, 8 x 8 blocks transposed in
  // registers, the edges one float at a time
  for (int64_t p = first; p < last; p++) {
    float* panel = bp + p * kc * W;
    const int64_t j = jc + p * W, nr = imin(W, nc - p * W);
    const int64_t nr8 = nr / 8 * 8, kc8 = kc / 8 * 8;
    for (int64_t jj = 0; jj < nr8; jj += 8)
      for (int64_t k = 0; k < kc8; k += 8) transpose8x8(panel + k * W + jj, W, B + (j + jj) * ldb + p0 + k, ldb);
    // the zero padding in a loop of its own, which compiles to vector stores (one loop with the
    // copy did not)
    for (int64_t k = 0; k < kc; k++) {
      float* dst = panel + k * W;
      int64_t jj = k < kc8 ? nr8 : 0;
      for (; jj < nr; jj++) dst[jj] = B[(j + jj) * ldb + p0 + k];
      for (; jj < W; jj++) dst[jj] = 0.0f;
    }
  }
}

// c[0 : lanes] = alpha * acc + beta * c (+ bias[0 : lanes] unless null), where beta = 0 never
// reads c (NaN there does not leak); returns what it stored (whole vectors: lanes == VL)
inline vf store_c(float* c, vf acc, int64_t lanes, vf valpha, vf vbeta, float beta, const float* bias = nullptr) {
  vf r = vmul(acc, valpha);
  if (beta != 0.0f) r = vfma(vload_n(c, lanes), vbeta, r);
  if (bias) r = vadd(r, vload_n(bias, lanes));
  vstore_n(c, r, lanes);
  return r;
}

// loop(load_last) with load_last the load of a row's last vector of B: whole when it holds `last`
// >= VL columns, else masked to them (B read in place ends there; past it may be past the array)
template <class Loop>
inline void with_last_vector(int64_t last, const Loop& loop) {
  if (last >= VL)
    loop([](const float* p) { return vload(p); });
  else
    loop([last](const float* p) { return vload_tail(p, (int)last); });
}

// c (mr, nr) = alpha * a-panel . b-panel + beta * c, with (MR, NVK*VL) computed in registers: NVK
// is NV but for a panel at the edge of C whose columns fit in fewer vectors (784 = 16 panels of 48
// and one of 16, which would otherwise be two thirds padding).
// A function of its own: inlined into the block loops, GCC ran out of ymm registers and kept an
// AVX2 accumulator on the stack.
// sq: unless null, the sum of the squares of the values stored is added to *sq.
// kInPlace: b is op(B)'s rows themselves, ldb apart, not a packed panel (see b_in_place); their
// columns past nr are not B's, so the last vector is loaded masked there.
template <int NVK, bool kInPlace = false>
__attribute__((noinline)) void microkernel(int64_t kc, const float* a, const float* b, float* c, int64_t ldc,
                                           float alpha, float beta, int64_t mr, int64_t nr, double* sq,
                                           int64_t ldb = NR) {
  // C's tile is touched once per KC block, long after it left the caches: ask for it now so that it
  // has arrived by the time the KC loop (hundreds of cycles) ends
  for (int64_t i = 0; i < mr; i++) {
    for (int j = 0; j < NVK * VL; j += 16) __builtin_prefetch(c + i * ldc + j, 1);  // each line of the row
    __builtin_prefetch(c + i * ldc + NVK * VL - 1, 1);
  }
  vf acc[MR][NVK];
#pragma GCC unroll 16
  for (int i = 0; i < MR; i++)
#pragma GCC unroll 4
    for (int v = 0; v < NVK; v++) acc[i][v] = vzero();
  auto k_loop = [&](auto load_last) {
    vf own[MR][NVK];
    auto& t = own_tile(own, acc);  // see simd.h
    for (int64_t k = 0; k < kc; k++, a += MR, b += kInPlace ? ldb : NR) {
      vf bv[NVK];
#pragma GCC unroll 4
      for (int v = 0; v < NVK - 1; v++) bv[v] = vload(b + v * VL);
      bv[NVK - 1] = load_last(b + (NVK - 1) * VL);
#if SG_ISA_NEON
      // A's MR values in MR / 4 vectors; each row multiplies by a lane of one (fmla by element)
      vf a4[MR / 4];
#pragma GCC unroll 4
      for (int q = 0; q < MR / 4; q++) a4[q] = vload(a + 4 * q);
#endif
#pragma GCC unroll 16
      for (int i = 0; i < MR; i++) {
#if SG_ISA_NEON
        const vf av = vdupq_n_f32(a4[i / 4][i % 4]);
#else
        const vf av = vset1(a[i]);
#endif
#pragma GCC unroll 4
        for (int v = 0; v < NVK; v++) t[i][v] = vfma(av, bv[v], t[i][v]);
      }
    }
    return_tile(acc, t);
  };
  // B's columns in the last vector (a packed panel's are zero-padded to whole vectors)
  const int64_t last = nr - (NVK - 1) * VL;
  with_last_vector(kInPlace ? last : VL, k_loop);
  const vf valpha = vset1(alpha), vbeta = vset1(beta);
  vf squares = vzero();
  if (mr == MR && nr == NVK * VL) {
    if (sq) {
      // 2 * NVK sums: one chain of FMAs through the tile's 24 values would take 24 FMA latencies
      vf part[2][NVK];
#pragma GCC unroll 4
      for (int v = 0; v < NVK; v++) part[0][v] = part[1][v] = vzero();
#pragma GCC unroll 16
      for (int i = 0; i < MR; i++)
#pragma GCC unroll 4
        for (int v = 0; v < NVK; v++) {
          const vf r = store_c(c + i * ldc + v * VL, acc[i][v], VL, valpha, vbeta, beta);
          part[i & 1][v] = vfma(r, r, part[i & 1][v]);
        }
#pragma GCC unroll 4
      for (int v = 0; v < NVK; v++) squares = vadd(squares, vadd(part[0][v], part[1][v]));
      *sq += (double)vhsum(squares);
      return;
    }
#pragma GCC unroll 16
    for (int i = 0; i < MR; i++)
#pragma GCC unroll 4
      for (int v = 0; v < NVK; v++) store_c(c + i * ldc + v * VL, acc[i][v], VL, valpha, vbeta, beta);
    return;
  }
  for (int64_t i = 0; i < mr; i++)
    for (int v = 0; v < NVK && v * VL < nr; v++) {
      const int64_t lanes = imin(VL, nr - v * VL);
      store_c(c + i * ldc + v * VL, acc[i][v], lanes, valpha, vbeta, beta);
      // read back: past nr, acc holds 0 * A's values, NaN where those are infinite
      if (sq) {
        const vf r = vload_n(c + i * ldc + v * VL, lanes);
        squares = vfma(r, r, squares);
      }
    }
  if (sq) *sq += (double)vhsum(squares);
}

// ---- rows: few rows of op(A) against B not transposed ---------------------------------------------
// Packed, all of B would be copied for one or two MR-row panels of op(A), and M padded to MR. Here
// a tile of R rows (all of M) broadcasts op(A)[i][k] from A as it is stored, at A[i * a_row + k *
// a_k], against NVK vectors of B's row k, the (R, NVK * VL) tile of C in registers over a K block.

// c (rows, (NVK - 1) * VL + last) = alpha * op(A)'s rows (kc of K) . B's rows (kc, the same
// columns) + beta * c (+ bias); rows <= R, the rows past it repeat the last (computed, not stored)
template <int R, int NVK>
__attribute__((noinline)) void rows_kernel(int64_t kc, const float* A, int64_t a_row, int64_t a_k, const float* B,
                                           int64_t ldb, float* c, int64_t ldc, int64_t rows, int64_t last,
                                           float alpha, float beta, const float* bias) {
  vf acc[R][NVK];
#pragma GCC unroll 16
  for (int r = 0; r < R; r++)
#pragma GCC unroll 4
    for (int v = 0; v < NVK; v++) acc[r][v] = vzero();
  const float* a[R];
  for (int r = 0; r < R; r++) a[r] = A + imin(r, rows - 1) * a_row;
  // the last vector of each row of B loaded by load_last: whole, or masked at the right edge of B
  auto k_loop = [&](auto load_last) {
    vf own[R][NVK];
    auto& t = own_tile(own, acc);  // see simd.h
    for (int64_t k = 0; k < kc; k++) {
      const float* b = B + k * ldb;
      vf bv[NVK];
#pragma GCC unroll 4
      for (int v = 0; v < NVK - 1; v++) bv[v] = vload(b + v * VL);
      bv[NVK - 1] = load_last(b + (NVK - 1) * VL);
#pragma GCC unroll 16
      for (int r = 0; r < R; r++) {
        const vf av = vset1(a[r][k * a_k]);
#pragma GCC unroll 4
        for (int v = 0; v < NVK; v++) t[r][v] = vfma(av, bv[v], t[r][v]);
      }
    }
    return_tile(acc, t);
  };
  with_last_vector(last, k_loop);
  const vf valpha = vset1(alpha), vbeta = vset1(beta);
  for (int64_t r = 0; r < rows; r++)
#pragma GCC unroll 4
    for (int v = 0; v < NVK; v++)
      store_c(c + r * ldc + v * VL, acc[r][v], v == NVK - 1 ? last : VL, valpha, vbeta, beta,
              bias ? bias + v * VL : nullptr);
}

// sgemm_rows with tiles of R rows: B's columns in strips of rows_vectors<R>() vectors, split over
// the threads in runs, each thread walking its strips once per K block
template <int R>
void sgemm_rows_tiled(float* C, const float* A, const float* B, int64_t M, int64_t N, int64_t K, int64_t a_row,
                      int64_t a_k, float alpha, float beta, int64_t ldb, int64_t ldc, const float* bias, bool par) {
  constexpr int NVA = rows_vectors<R>();
  constexpr int64_t W = NVA * VL;
  const int64_t strips = (N + W - 1) / W;
  const int64_t k_blocks = (K + kRowsKC - 1) / kRowsKC, kc_step = (K + k_blocks - 1) / k_blocks;
  auto run = [&](int64_t s0, int64_t s1, int) {
    for (int64_t pc = 0; pc < K; pc += kc_step) {
      const int64_t kc = imin(kc_step, K - pc);
      const float beta_now = pc == 0 ? beta : 1.0f;  // later K blocks add onto the first
      for (int64_t s = s0; s < s1; s++) {
        const int64_t j = s * W, cols = imin(W, N - j), nvk = (cols + VL - 1) / VL, last = cols - (nvk - 1) * VL;
        const float* bias_now = bias && pc == 0 ? bias + j : nullptr;
        for (int64_t i = 0; i < M; i += R) {
          const float* a = A + i * a_row + pc * a_k;
          const float* b = B + pc * ldb + j;
          float* c = C + i * ldc + j;
          const int64_t rows = imin(R, M - i);
          // the strip at B's right edge in as few vectors as its columns need
          if (nvk == NVA)
            rows_kernel<R, NVA>(kc, a, a_row, a_k, b, ldb, c, ldc, rows, last, alpha, beta_now, bias_now);
          else if (NVA > 3 && nvk == 3)
            rows_kernel<R, (NVA > 3 ? 3 : 1)>(kc, a, a_row, a_k, b, ldb, c, ldc, rows, last, alpha, beta_now, bias_now);
          else if (NVA > 2 && nvk == 2)
            rows_kernel<R, (NVA > 2 ? 2 : 1)>(kc, a, a_row, a_k, b, ldb, c, ldc, rows, last, alpha, beta_now, bias_now);
          else
            rows_kernel<R, 1>(kc, a, a_row, a_k, b, ldb, c, ldc, rows, last, alpha, beta_now, bias_now);
        }
      }
    }
  };
  if (par)
    parallel(strips, 1, run);
  else
    run(0, strips, 0);
}

// C (M, N) = alpha * op(A) . B + beta * C (+ bias) for 2 <= M <= kRowsMaxM, B (K, N) not transposed
void sgemm_rows(float* C, const float* A, const float* B, int64_t M, int64_t N, int64_t K, bool trans_a, float alpha,
                float beta, int64_t lda, int64_t ldb, int64_t ldc, const float* bias, bool par) {
  const int64_t a_row = trans_a ? 1 : lda, a_k = trans_a ? lda : 1;
  switch (M) {
#define SG_ROWS_CASE(R) \
  case R: return sgemm_rows_tiled<R>(C, A, B, M, N, K, a_row, a_k, alpha, beta, ldb, ldc, bias, par);
    SG_ROWS_CASE(2) SG_ROWS_CASE(3) SG_ROWS_CASE(4) SG_ROWS_CASE(5) SG_ROWS_CASE(6) SG_ROWS_CASE(7)
    SG_ROWS_CASE(8) SG_ROWS_CASE(9) SG_ROWS_CASE(10) SG_ROWS_CASE(11) SG_ROWS_CASE(12)
#undef SG_ROWS_CASE
  }
}
static_assert(kRowsMaxM == 12, "sgemm_rows has a case for each M up to kRowsMaxM");

// C (M, N) *= beta, where beta == 0 writes zeros without reading C.
void scale_c(float* C, int64_t M, int64_t N, int64_t ldc, float beta) {
  for (int64_t i = 0; i < M; i++) {
    float* row = C + i * ldc;
    if (beta == 0.0f)
      std::memset(row, 0, (size_t)N * sizeof(float));
    else
      for (int64_t j = 0; j < N; j++) row[j] *= beta;
  }
}

// M == 1: c (1, N) = alpha * a . op(B) (K, N) + beta * c, where a (K) is op(A)'s one row (a bias
// gradient ones . g, a batch of one through a linear layer). Packing would copy all of op(B) to
// feed one of the microkernel's MR rows; these walks read op(B) once. Each output is one thread's sum in k order: the same for any thread count.
void sgemm_row(float* c, const float* A, const float* B, int64_t N, int64_t K, bool trans_a, bool trans_b, float alpha,
               float beta, int64_t lda, int64_t ldb, bool par) {
  const int64_t a_step = trans_a ? lda : 1;  // a[k] = A[k * a_step]
  const vf valpha = vset1(alpha), vbeta = vset1(beta);
  if (!trans_b) {
    // B (K, N), walked along its rows (which the prefetchers stream; walking down a wide B's rows
    // misses at every row) in blocks of columns whose sums stay in L1, four rows per pass over the
    // sums, each column's products still added in k order
    constexpr int64_t kMaxCols = 1024;
    const int64_t parts = par ? num_threads() : 1;
    const int64_t block = imin(kMaxCols, ((N + parts - 1) / parts + VL - 1) / VL * VL);
    auto blocks = [&](int64_t b0, int64_t b1, int) {
      alignas(64) float sums[kMaxCols];
      for (int64_t blk = b0; blk < b1; blk++) {
        const int64_t j0 = blk * block, cols = imin(block, N - j0);
        for (int64_t j = 0; j < cols; j++) sums[j] = 0.0f;
        // rows k .. k + rows - 1 of B added into the sums, in k order
        auto add_rows = [&](int64_t k, auto rows) {
          constexpr int R = decltype(rows)::value;
          vf a[R];
          for (int r = 0; r < R; r++) a[r] = vset1(A[(k + r) * a_step]);
          const float* b = B + k * ldb + j0;
          auto add = [&](int64_t j, int64_t lanes) {
            vf s = vload_n(sums + j, lanes);
            for (int r = 0; r < R; r++) s = vfma(a[r], vload_n(b + r * ldb + j, lanes), s);
            vstore_n(sums + j, s, lanes);
          };
          int64_t j = 0;
          for (; j + VL <= cols; j += VL) add(j, VL);  // whole vectors, lanes a constant
          if (j < cols) add(j, cols - j);
        };
        int64_t k = 0;
        for (; k + 4 <= K; k += 4) add_rows(k, std::integral_constant<int, 4>());
        for (; k < K; k++) add_rows(k, std::integral_constant<int, 1>());
        for (int64_t j = 0; j < cols; j += VL)
          store_c(c + j0 + j, vload_n(sums + j, imin(VL, cols - j)), imin(VL, cols - j), valpha, vbeta, beta);
      }
    };
    const int64_t count = (N + block - 1) / block;
    if (par)
      parallel(count, 1, blocks);
    else
      blocks(0, count, 0);
    return;
  }
  // op(B)[k][j] = B[j][k]: c[j] is the dot product of a with B's row j, which runs along k
  auto dots = [&](int64_t j0, int64_t j1, int) {
    for (int64_t j = j0; j < j1; j++) {
      const float* b = B + j * ldb;
      float sum;
      if (a_step == 1) {
        vf s0 = vzero(), s1 = vzero();
        int64_t k = 0;
        for (; k + 2 * VL <= K; k += 2 * VL) {
          s0 = vfma(vload(A + k), vload(b + k), s0);
          s1 = vfma(vload(A + k + VL), vload(b + k + VL), s1);
        }
        for (; k < K; k += VL) s0 = vfma(vload_n(A + k, imin(VL, K - k)), vload_n(b + k, imin(VL, K - k)), s0);
        sum = vhsum(vadd(s0, s1));
      } else {
        sum = 0.0f;
        for (int64_t k = 0; k < K; k++) sum += A[k * a_step] * b[k];
      }
      c[j] = alpha * sum + (beta != 0.0f ? beta * c[j] : 0.0f);
    }
  };
  if (par)
    parallel(N, imax(1, 16384 / imax(K, 1)), dots);
  else
    dots(0, N, 0);
}

// C[i0 : i0+mc, jc : jc+nc] = alpha * the packed A block (mc, kc) . the packed B panels (kc, nc)
// + beta * C, one B micro-panel (in L1) against every A micro-panel (from L2) in turn
// (sq, kInPlace: see microkernel; in place, bp is op(B)'s row pc at column jc)
template <bool kInPlace = false>
void macro_kernel(const float* ap, const float* bp, int64_t kc, int64_t mc, int64_t nc, float* C, int64_t ldc,
                  int64_t i0, int64_t jc, float alpha, float beta, double* sq = nullptr, int64_t ldb = NR) {
  // the tiles' squares into a local sum, added to *sq once: *sq shares a line with the other
  // threads' sums, and adding to it at every tile moved that line between the cores all the time
  double local = 0.0;
  double* tile_sq = sq ? &local : nullptr;
  for (int64_t p = 0; p * NR < nc; p++) {
    const float* b_panel = kInPlace ? bp + p * NR : bp + p * kc * NR;
    const int64_t j = jc + p * NR, nr = imin(NR, nc - p * NR);
    for (int64_t ir = 0; ir < mc; ir += MR) {
      float* c = C + (i0 + ir) * ldc + j;
      const int64_t mr = imin(MR, mc - ir);
      if (nr > (NV - 1) * VL)
        microkernel<NV, kInPlace>(kc, ap + ir * kc, b_panel, c, ldc, alpha, beta, mr, nr, tile_sq, ldb);
      else if (NV > 2 && nr > VL)
        microkernel<NV - 1 < 1 ? 1 : NV - 1, kInPlace>(kc, ap + ir * kc, b_panel, c, ldc, alpha, beta, mr, nr, tile_sq,
                                                      ldb);
      else
        microkernel<1, kInPlace>(kc, ap + ir * kc, b_panel, c, ldc, alpha, beta, mr, nr, tile_sq, ldb);
    }
  }
  if (sq) *sq += local;
}

// ---- dots: narrow A . B^T as dot products along K ------------------------------------------------
// Packed, such a C fills N of the microkernel's NR columns (9 or 10 of 16) and op(A) is transposed
// on the way; here both operands are read along their rows and nothing is packed.

// acc[i*N + j] += the lane-wise products of A's row i and B's row j over [k0, k1), i < RA, j < RB
template <int RA, int RB>
void dot_tile(const float* A, int64_t lda, const float* B, int64_t ldb, int64_t k0, int64_t k1, vf* acc, int64_t N) {
  vf s[RA][RB];
  for (int i = 0; i < RA; i++)
    for (int j = 0; j < RB; j++) s[i][j] = acc[i * N + j];
  auto step = [&](vf (&t)[RA][RB], int64_t k, int64_t lanes) {
    vf b[RB];
    for (int j = 0; j < RB; j++) b[j] = vload_n(B + j * ldb + k, lanes);
    for (int i = 0; i < RA; i++) {
      const vf a = vload_n(A + i * lda + k, lanes);
      for (int j = 0; j < RB; j++) t[i][j] = vfma(a, b[j], t[i][j]);
    }
  };
  int64_t k = k0;
  vf own[RA][RB];
  auto& t = own_tile(own, s);  // see simd.h
  for (; k + VL <= k1; k += VL) step(t, k, VL);  // whole vectors, lanes a constant
  return_tile(s, t);
  if (k < k1) step(s, k, k1 - k);
  for (int i = 0; i < RA; i++)
    for (int j = 0; j < RB; j++) acc[i * N + j] = s[i][j];
}

// dot_tile for ra <= RA rows and rb <= RB columns (the edges), the template for each size
template <int RA>
void dot_tile_rows(const float* A, int64_t lda, const float* B, int64_t ldb, int64_t k0, int64_t k1, vf* acc, int64_t N, int64_t rb) {
  if (kDotRB >= 5 && rb == 5) dot_tile<RA, kDotRB >= 5 ? 5 : 1>(A, lda, B, ldb, k0, k1, acc, N);
  else if (kDotRB >= 4 && rb == 4) dot_tile<RA, kDotRB >= 4 ? 4 : 1>(A, lda, B, ldb, k0, k1, acc, N);
  else if (rb == 3) dot_tile<RA, 3>(A, lda, B, ldb, k0, k1, acc, N);
  else if (rb == 2) dot_tile<RA, 2>(A, lda, B, ldb, k0, k1, acc, N);
  else dot_tile<RA, 1>(A, lda, B, ldb, k0, k1, acc, N);
}
static_assert(kDotRA == 4 && kDotRB >= 3 && kDotRB <= 5, "dot_tile_any spells out these sizes");
void dot_tile_any(const float* A, int64_t lda, const float* B, int64_t ldb, int64_t k0, int64_t k1, vf* acc, int64_t N,
                  int64_t ra, int64_t rb) {
  if (ra == 4) dot_tile_rows<4>(A, lda, B, ldb, k0, k1, acc, N, rb);
  else if (ra == 3) dot_tile_rows<3>(A, lda, B, ldb, k0, k1, acc, N, rb);
  else if (ra == 2) dot_tile_rows<2>(A, lda, B, ldb, k0, k1, acc, N, rb);
  else dot_tile_rows<1>(A, lda, B, ldb, k0, k1, acc, N, rb);
}

// Rows of A split over the threads; each thread walks K block by block over up to kDotRows rows at a
// time (fewer for N above kDotAcc / kDotRows, so that their sums fit in acc). Every output is one
// thread's vector sum over K in order, then summed across its lanes, so the result does not depend
// on the thread count.
void sgemm_dots(float* C, const float* A, const float* B, int64_t M, int64_t N, int64_t K, float alpha, float beta,
                int64_t lda, int64_t ldb, int64_t ldc, const float* bias, bool par) {
  const int64_t row_blocks = (M + kDotRA - 1) / kDotRA;
  const int64_t block_rows = imin(kDotRows, kDotAcc / N / kDotRA * kDotRA);
  auto rows = [&](int64_t b0, int64_t b1, int) {
    vf acc[kDotAcc];
    const int64_t end = imin(M, b1 * kDotRA);  // rows [b0 * kDotRA, end) of C
    for (int64_t i0 = b0 * kDotRA; i0 < end; i0 += block_rows) {
      const int64_t i1 = imin(end, i0 + block_rows);
      for (int64_t e = 0; e < (i1 - i0) * N; e++) acc[e] = vzero();
      for (int64_t k0 = 0; k0 < K; k0 += kDotKB)
        for (int64_t i = i0; i < i1; i += kDotRA)
          for (int64_t j = 0; j < N; j += kDotRB)
            dot_tile_any(A + i * lda, lda, B + j * ldb, ldb, k0, imin(K, k0 + kDotKB), acc + (i - i0) * N + j, N,
                         imin(kDotRA, i1 - i), imin(kDotRB, N - j));
      for (int64_t i = i0; i < i1; i++)
        for (int64_t j = 0; j < N; j++) {
          const float dot = vhsum(acc[(i - i0) * N + j]);
          float& c = C[i * ldc + j];
          // beta = 0 never reads C
          c = (beta == 0.0f ? alpha * dot : alpha * dot + beta * c) + (bias ? bias[j] : 0.0f);
        }
    }
  };
  if (par)
    parallel(row_blocks, 1, rows);
  else
    rows(0, row_blocks, 0);
}

// ---- wide: a batch against a wide B^T, as C^T = B . A^T ------------------------------------------
// Packed the usual way, W (B) would be transposed into panels for a batch's use of it. Here A^T is
// packed (small) and W is read in place: the kernel only broadcasts its values, one row of W per
// accumulator row, so its rows can be any distance apart; the next tile's rows are prefetched, a
// line per 16 k (W's rows may be pages apart). Each thread takes a run of W's rows, a chunk at a
// time through every K block, its (chunk, M) piece of C^T in its workspace, then transposed into C.

// ct (R, panels * NVA*VL) (+)= rows w[0 .. R-1] (each kc floats, read in place) . the packed panels
// at ap, each (kc, NVA*VL); add: onto what ct holds (the K blocks after the first)
template <int R, int NVA>
__attribute__((noinline)) void wide_kernel(int64_t kc, const float* const* w, const float* const* next,
                                           const float* ap, int64_t panels, float* ct, int64_t ldct, bool add) {
  constexpr int64_t cols = NVA * VL;
  const float* rows[R];
  for (int r = 0; r < R; r++) rows[r] = w[r];
  for (int64_t p = 0; p < panels; p++, ap += kc * cols, ct += cols) {
    vf acc[R][NVA];
#pragma GCC unroll 16
    for (int r = 0; r < R; r++)
#pragma GCC unroll 4
      for (int v = 0; v < NVA; v++) acc[r][v] = add ? vload(ct + r * ldct + v * VL) : vzero();
    const float* a = ap;
    for (int64_t k0 = 0; k0 < kc; k0 += 16) {
      // a line of each of the next tile's rows per 16 k (on the first panel)
      if (p == 0)
        for (int r = 0; r < R; r++) __builtin_prefetch(next[r] + k0);
      for (int64_t k = k0; k < imin(kc, k0 + 16); k++, a += cols) {
        vf av[NVA];
#pragma GCC unroll 4
        for (int v = 0; v < NVA; v++) av[v] = vload(a + v * VL);
#pragma GCC unroll 16
        for (int r = 0; r < R; r++) {
          const vf wv = vset1(rows[r][k]);
#pragma GCC unroll 4
          for (int v = 0; v < NVA; v++) acc[r][v] = vfma(wv, av[v], acc[r][v]);
        }
      }
    }
#pragma GCC unroll 16
    for (int r = 0; r < R; r++)
#pragma GCC unroll 4
      for (int v = 0; v < NVA; v++) vstore(ct + r * ldct + v * VL, acc[r][v]);
  }
}

template <int R, int NVA>
void sgemm_wide(float* C, const float* A, const float* B, int64_t M, int64_t N, int64_t K, float alpha, float beta,
                int64_t lda, int64_t ldb, int64_t ldc, const float* bias, bool par) {
  constexpr int64_t cols = NVA * VL;  // a panel of packed A^T: (kc, cols)
  static_assert(kWideChunk % R == 0 && kWideChunk % 8 == 0, "whole tiles and whole transposes");
  const int64_t panels = (M + cols - 1) / cols, m_pad = panels * cols;
  const int64_t k_blocks = (K + kWideKC - 1) / kWideKC;
  const int64_t kc_step = ((K + k_blocks - 1) / k_blocks + 7) / 8 * 8;  // equal blocks, whole transposes
  const int64_t parts = par ? num_threads() : 1;
  // Each thread packs A^T for itself (a shared copy moved its lines between the cores every call),
  // one K block at a time just before the block's tiles, into a slot of its own beside its chunk of
  // C^T: all of A^T packed at once would be streamed from L2 (or memory, at a large K) once a chunk.
  Workspace& ws = workspace;
  const int64_t block_floats = m_pad * kc_step, slot_floats = block_floats + kWideChunk * m_pad;
  ws.ensure_shared(parts * slot_floats);
  // each thread's rows of W (of C's columns): whole tiles, as even as they come
  const int64_t per = ((N + parts - 1) / parts + R - 1) / R * R;
  const vf valpha = vset1(alpha), vbeta = vset1(beta);
  auto run = [&](int64_t t0, int64_t t1, int tid) {
    float* at = ws.a_shared + tid * slot_floats;  // one K block of A^T: (panels, kc, cols)
    float* ct = at + block_floats;                // C^T's rows j0 .. j0+rows-1: (rows, m_pad)
    const int64_t end = imin(N, t1 * per);
    for (int64_t j0 = t0 * per; j0 < end; j0 += kWideChunk) {
      const int64_t rows = imin(kWideChunk, end - j0);
      const int64_t tiled = (rows + R - 1) / R * R;  // rows of ct computed
      for (int64_t q = 0; q < k_blocks; q++) {
        const int64_t pc = q * kc_step, kc = imin(kc_step, K - pc);
        pack_b_panels<cols>(at, A, lda, true, pc, kc, 0, M, 0, panels);
        for (int64_t r = 0; r < tiled; r += R) {
          // rows past N repeat the last one (computed, never stored); next: the next tile's rows, or
          // this chunk's first rows in the next K block
          const float *w[R], *next[R];
          const bool last = r + R >= tiled;
          for (int i = 0; i < R; i++) {
            w[i] = B + imin(j0 + r + i, N - 1) * ldb + pc;
            next[i] = last ? B + imin(j0 + i, N - 1) * ldb + imin(pc + kc, K - 1)
                           : B + imin(j0 + r + R + i, N - 1) * ldb + pc;
          }
          wide_kernel<R, NVA>(kc, w, next, at, panels, ct + r * m_pad, m_pad, q > 0);
        }
      }
      // C[i][j0 + r] = alpha * ct[r][i] + beta * C[i][j0 + r] (+ bias[j0 + r]), 8 x 8 blocks through a
      // transpose
      for (int64_t r = 0; r < rows; r += 8) {
        const int64_t nr = imin(8, rows - r);
        for (int64_t i = 0; i < M; i += 8) {
          alignas(64) float block[8][8];  // block[ii][rr] = ct[r + rr][i + ii]
          if (r + 8 <= tiled) {
            transpose8x8(&block[0][0], 8, ct + r * m_pad + i, m_pad);
          } else {
            for (int64_t rr = 0; rr < nr; rr++)
              for (int ii = 0; ii < 8; ii++) block[ii][rr] = ct[(r + rr) * m_pad + i + ii];
          }
          for (int64_t ii = 0; ii < imin(8, M - i); ii++)
            for (int64_t l = 0; l < nr; l += VL)  // one vector of 8 lanes, or two of SSE's 4
              store_c(C + (i + ii) * ldc + j0 + r + l, vload_n(block[ii] + l, imin(VL, nr - l)), imin(VL, nr - l),
                      valpha, vbeta, beta, bias ? bias + j0 + r + l : nullptr);
        }
      }
    }
  };
  const int64_t work = (N + per - 1) / per;
  if (par)
    parallel(work, 1, run);
  else
    run(0, work, 0);
}

// sgemm_wide with the first tile (in SG_WIDE_TILES' order) whose panel is at least M wide
void sgemm_wide_any(float* C, const float* A, const float* B, int64_t M, int64_t N, int64_t K, float alpha, float beta,
                    int64_t lda, int64_t ldb, int64_t ldc, const float* bias, bool par) {
#define SG_WIDE_CASE(R, NVA, MAX_M) \
  if (M <= MAX_M) return sgemm_wide<R, NVA>(C, A, B, M, N, K, alpha, beta, lda, ldb, ldc, bias, par);
  SG_WIDE_TILES(SG_WIDE_CASE)
#undef SG_WIDE_CASE
}

}  // namespace

double sum_squares(const float* x, int64_t n);  // elementwise.cpp

// sgemm; sq: unless null, where the product is blocked and packed the sum of the squares of C's
// values is stored there and true returned; false: C's squares were not summed
static bool sgemm_impl(float* C, const float* A, const float* B, int64_t M, int64_t N, int64_t K, bool trans_a, bool trans_b,
                float alpha, float beta, int64_t lda, int64_t ldb, int64_t ldc, const float* bias, double* sq) {
  const Path path = choose_path(M, N, K, trans_a, trans_b, alpha);
  if (path == Path::kEmpty) return false;
  // dots, rows and wide add the bias where they store C; elsewhere C becomes beta * C + bias first
  // and the product adds onto it
  if (bias && path != Path::kDots && path != Path::kRows && path != Path::kWide) {
    for (int64_t i = 0; i < M; i++) {
      float* row = C + i * ldc;
      for (int64_t j = 0; j < N; j++) row[j] = beta == 0.0f ? bias[j] : beta * row[j] + bias[j];
    }
    beta = 1.0f;
    bias = nullptr;
    if (path == Path::kScale) return false;
  }
  const int threads = num_threads();
  bool par = threads > 1 && (double)M * (double)N * (double)K >= kParallelMinMadds;
  switch (path) {
    case Path::kScale: return scale_c(C, M, N, ldc, beta), false;
    case Path::kRow: return sgemm_row(C, A, B, N, K, trans_a, trans_b, alpha, beta, lda, ldb, par), false;
    case Path::kDots: return sgemm_dots(C, A, B, M, N, K, alpha, beta, lda, ldb, ldc, bias, par), false;
    case Path::kRows: return sgemm_rows(C, A, B, M, N, K, trans_a, alpha, beta, lda, ldb, ldc, bias, par), false;
    case Path::kWide: return sgemm_wide_any(C, A, B, M, N, K, alpha, beta, lda, ldb, ldc, bias, par), false;
    default: break;  // blocked, below
  }
  // K in blocks of at most KC, equal but for rounding up to 8 (784 as 264 + 264 + 256, not 2 x 384
  // + 16: no last pass over C for almost no work), so that packing transposes whole 8 x 8 blocks
  const int64_t k_blocks = (K + KC - 1) / KC;
  const int64_t kc_step = imin(KC, ((K + k_blocks - 1) / k_blocks + 7) / 8 * 8);
  // One row block (a training batch) is split by columns when there are panels for every thread,
  // otherwise by rows in blocks of at least MR. On one thread a transposed B goes by column chunks
  // too: each chunk's panels are packed just before they are used, and stay in L1 and L2.
  int64_t mblocks = (M + MC - 1) / MC;
  const bool split_columns =
      mblocks == 1 && (par ? (N + NR - 1) / NR >= threads && NC / threads >= NR : trans_b);
  if (par && !split_columns && mblocks == 1 && M < (int64_t)threads * MR) par = false;
  // Row blocks of at most MC rows, as many as a multiple of the thread count and equal to MR (M =
  // 512 in blocks of 192 would give the cores 384 and 128 rows; four blocks of 132 give 264 each)
  if (par && !split_columns) mblocks = (mblocks + threads - 1) / threads * threads;
  const int64_t mc_step = ((M + mblocks - 1) / mblocks + MR - 1) / MR * MR;
  mblocks = (M + mc_step - 1) / mc_step;
  Workspace& ws = workspace;
  ws.ensure(par && !split_columns ? threads : 1, !split_columns);

  if (split_columns) {
    // One row block (a training batch): each thread packs op(A) into a buffer of its own (one copy
    // shared by both threads moved its lines between the cores every call), then takes an equal run
    // of whole column panels, in order, packing a few at a time just before use and running all of
    // K for them; the panels left over are split by rows. Runs in order, not chunks claimed by the
    // free thread: each thread then reads the rows of a weight that the optimizer step and the
    // weight gradient wrote on its own core. K past kSharedKBlocks blocks goes in rounds.
    const int64_t m_pad = (M + MR - 1) / MR * MR, kblocks = (K + kc_step - 1) / kc_step;
    const int64_t round = imin(kblocks, kSharedKBlocks);
    const int64_t a_slot = m_pad * kc_step * round;  // one thread's packed op(A)
    ws.ensure_shared(a_slot * (par ? threads : 1));
    const int64_t all_panels = (N + NR - 1) / NR;
    const int64_t parts = par ? threads : 1;
    // panels packed at a time: at most kChunkPanels, and each thread's within its share of ws.b
    const int64_t chunk_panels = imax(1, imin(kChunkPanels, NC / parts / NR));
    // each thread's run of panels, and its rows (whole MR-row panels of op(A)) of the panels left over
    const int64_t per = all_panels / parts;
    const int64_t left_rows = ((M + parts - 1) / parts + MR - 1) / MR * MR;
    for (int64_t q0 = 0; q0 < kblocks; q0 += round) {
      const int64_t q1 = imin(kblocks, q0 + round);
      // this round's K blocks of op(A) into thread `slot`'s buffer
      auto pack_round = [&](int64_t slot) {
        for (int64_t q = q0; q < q1; q++)
          pack_a(ws.a_shared + slot * a_slot + (q - q0) * m_pad * kc_step, A, lda, trans_a, 0, M, q * kc_step,
                 imin(kc_step, K - q * kc_step));
      };
      // C[i0 : i0+rows, the columns of panels p0 .. p1-1] over this round's K blocks; slot: which
      // thread's parts of ws.a_shared and ws.b hold the packed op(A) and panels
      auto run_panels = [&](int64_t p0, int64_t p1, int64_t i0, int64_t rows, int64_t slot) {
        float* bp = ws.b + slot * KC * chunk_panels * NR;
        const int64_t jc = p0 * NR, nc = imin(N, p1 * NR) - jc;
        for (int64_t q = q0; q < q1; q++) {
          const int64_t pc = q * kc_step, kc = imin(kc_step, K - pc);
          pack_b_panels(bp, B, ldb, trans_b, pc, kc, jc, nc, 0, p1 - p0);
          // op(A)'s MR-row panels for rows i0.. start i0 * kc into the block
          macro_kernel(ws.a_shared + slot * a_slot + (q - q0) * m_pad * kc_step + i0 * kc, bp, kc, rows, nc, C, ldc,
                       i0, jc, alpha, pc == 0 ? beta : 1.0f);
        }
      };
      // rows i0 .. i0+rows-1 of panels p0 .. p1-1, chunk_panels at a time (each chunk packed just
      // before use)
      auto run_columns = [&](int64_t p0, int64_t p1, int64_t i0, int64_t rows, int64_t slot) {
        for (int64_t p = p0; p < p1; p += chunk_panels) run_panels(p, imin(p1, p + chunk_panels), i0, rows, slot);
      };
      if (par) {
        parallel(parts, 1, [&](int64_t t0, int64_t t1, int) {
          for (int64_t t = t0; t < t1; t++) {
            pack_round(t);
            run_columns(t * per, (t + 1) * per, 0, M, t);
            const int64_t i0 = t * left_rows;
            if (i0 < M) run_columns(parts * per, all_panels, i0, imin(left_rows, M - i0), t);
          }
        });
      } else {
        pack_round(0);
        run_columns(0, all_panels, 0, M, 0);
      }
    }
    return false;
  }

  // B (K, N) not transposed and in one K block is read in place, not packed, when its rows are an
  // odd number of whole cache lines apart and the block is small (kInPlaceBytes): a panel's rows
  // then fall in distinct L1 sets, no load splits a line, and the block's pages are few. Each
  // thread would otherwise pack all of B for itself (the seed model's weight gradient: 200 KB a
  // core more in L2). Other row strides lost to packing.
  const int64_t row_bytes = ldb * (int64_t)sizeof(float);
  const bool b_in_place = kBInPlace && !trans_b && K <= kc_step && row_bytes % kLineBytes == 0 &&
                          (row_bytes / kLineBytes) % 2 == 1 && K * row_bytes <= kInPlaceBytes;
  // the squares of C's values summed as the last K block stores them, into one sum per row block
  // (whichever thread runs it), added in order at the end: the same for a given thread count
  double* block_sq = nullptr;
  if (sq) {
    block_sq = static_cast<double*>(std::calloc((size_t)mblocks, sizeof(double)));
    if (!block_sq) throw std::bad_alloc();
  }
  for (int64_t jc = 0; jc < N; jc += NC) {
    const int64_t nc = imin(NC, N - jc);
    const int64_t panels = (nc + NR - 1) / NR;
    for (int64_t pc = 0; pc < K; pc += kc_step) {
      const int64_t kc = imin(kc_step, K - pc);
      const float beta_now = pc == 0 ? beta : 1.0f;  // later K blocks accumulate onto the first
      const bool last_k = pc + kc >= K;
      // MC row blocks over the threads, each claimed by the next free thread (tid: its slots of
      // packed A and B), so that a thread slowed by another process does fewer; each thread packs
      // the (kc, nc) block of op(B) for itself (a shared copy moved its lines between the cores)
      bool packed[kMaxThreads] = {};
      auto compute = [&](int64_t begin, int64_t end, int tid) {
        float* bp = ws.b + (int64_t)tid * KC * NC;
        if (!b_in_place && !packed[tid]) {
          pack_b_panels(bp, B, ldb, trans_b, pc, kc, jc, nc, 0, panels);
          packed[tid] = true;
        }
        float* ap = ws.a + (int64_t)tid * MC * KC;
        for (int64_t mb = begin; mb < end; mb++) {
          const int64_t i0 = mb * mc_step, mc = imin(mc_step, M - i0);
          pack_a(ap, A, lda, trans_a, i0, mc, pc, kc);
          double* mb_sq = block_sq && last_k ? block_sq + mb : nullptr;
          if (b_in_place)
            macro_kernel<true>(ap, B + pc * ldb + jc, kc, mc, nc, C, ldc, i0, jc, alpha, beta_now, mb_sq, ldb);
          else
            macro_kernel(ap, bp, kc, mc, nc, C, ldc, i0, jc, alpha, beta_now, mb_sq);
        }
      };
      if (par)
        parallel_items(mblocks, compute);
      else
        compute(0, mblocks, 0);
    }
  }
  if (!sq) return false;
  *sq = 0.0;
  for (int64_t mb = 0; mb < mblocks; mb++) *sq += block_sq[mb];
  std::free(block_sq);
  return true;
}

void sgemm(float* C, const float* A, const float* B, int64_t M, int64_t N, int64_t K, bool trans_a, bool trans_b,
           float alpha, float beta, int64_t lda, int64_t ldb, int64_t ldc, const float* bias) {
  sgemm_impl(C, A, B, M, N, K, trans_a, trans_b, alpha, beta, lda, ldb, ldc, bias, nullptr);
}

double sgemm_sum_squares(float* C, const float* A, const float* B, int64_t M, int64_t N, int64_t K, bool trans_a,
                         bool trans_b, float alpha, float beta, int64_t lda, int64_t ldb, int64_t ldc) {
  if (M == 0 || N == 0) return 0.0;  // C is empty: no pass over M rows of nothing
  double sq = 0.0;
  if (sgemm_impl(C, A, B, M, N, K, trans_a, trans_b, alpha, beta, lda, ldb, ldc, nullptr, &sq)) return sq;
  // the other paths: a pass over C, row by row when its rows are apart, each row's sum added in order
  if (ldc == N || M <= 1) return sum_squares(C, M * N);
  sq = 0.0;
  for (int64_t i = 0; i < M; i++) sq += sum_squares(C + i * ldc, N);
  return sq;
}

}  // namespace SG_NS
}  // namespace sg
