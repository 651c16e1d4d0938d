// Causal attention with an on-the-fly score bias: the fused FlashAttention-2 style kernels and
// the naive references they are tested against. See attention.h for the maths and the shapes.
//
// Fused layout. A query tile is kBr rows, a key tile kBc columns. Every product inside a tile
// is C += A * B with the innermost loop over a contiguous row of B and C (the key tile is
// transposed into kt (HS, kBc) so that S row += q[i][d] * kt[d][:]), done by one register-
// blocked micro-kernel written with GCC/Clang vector extensions so it stays in registers.
// The bias depends only on d = pos(i) - j, so a (kBr, kBc) tile needs kBr + kBc - 1 values:
// band[k] = bias(base + kBr - 1 - k), base = pos(i0) - j0, read as band[kBr - 1 - ii + jj].
//
// bf16 (AttnShape::precision): the same tile loops, with every product done by a second micro-
// kernel on AVX512-BF16 (vdpbf16ps) over operands packed as bf16 pairs (see "bf16 tile
// products" below); the bias, scores, softmax statistics and all outputs stay fp32.
//
// Determinism: every task writes its own rows (forward: one query tile; backward: one (b,h)),
// scratch is per thread, and the t5 gradient is summed per (b,h, distance) and reduced in a
// fixed order after the parallel loop, so the results do not depend on the thread count.
#include "kernels/attention.h"
#include "kernels/cpu/vec_math.h"

#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <limits>
#include <vector>  // the naive references only

#include "core/error.h"
#include "core/rng.h"

namespace alibi {
namespace {

constexpr int kBr = 64;                // query rows per tile
constexpr int kBc = 64;                // key columns per tile
constexpr int kBand = kBr + kBc - 1;   // distinct distances in one tile
constexpr size_t kAlignFloats = 16;    // 64-byte alignment of each workspace buffer
constexpr int kVec = 16;               // floats per vector in the micro-kernel

size_t padded(size_t n) { return (n + kAlignFloats - 1) / kAlignFloats * kAlignFloats; }

constexpr int pairs(int n) { return (n + 1) / 2; }  // bf16 pairs that hold n values
constexpr int round16(int n) { return (n + 15) / 16 * 16; }
size_t key_tiles(const AttnShape& s) { return size_t(s.Tk + kBc - 1) / kBc; }

// Carves consecutive 64-byte aligned buffers out of a workspace (a bf16 pair is one 32-bit
// slot). With a null base it only counts: the layouts below both size the workspace and lay it
// out, from one description each.
struct Carver {
  float* base = nullptr;
  size_t used = 0;  // floats
  template <class T = float>
  T* take(size_t n) {
    T* r = base ? reinterpret_cast<T*>(base + used) : nullptr;
    used += padded(n);
    return r;
  }
};

// Per-thread scratch of the forward (one query tile at a time).
struct ForwardScratch {
  float* kt = nullptr;      // fp32: (HS, kBc) scaled K^T tile
  float* st = nullptr;      // (kBr, kBc) scores, then probabilities
  float* ot = nullptr;      // (kBr, HS) unnormalised output
  uint32_t* pa = nullptr;   // bf16: P as A pairs (kBr, kBc / 2)
  uint32_t* tmp = nullptr;  // bf16: packing scratch of pack_forward_head
  ForwardScratch(const AttnShape& s, Carver& c) {
    const bool bf16 = s.precision == MatmulPrecision::bf16;
    if (!bf16) kt = c.take(size_t(s.HS) * kBc);
    st = c.take(size_t(kBr) * kBc);
    ot = c.take(size_t(kBr) * s.HS);
    if (bf16) {
      pa = c.take<uint32_t>(size_t(kBr) * kBc / 2);
      tmp = c.take<uint32_t>(size_t(kBc) * pairs(s.HS));
    }
  }
};

// Forward, bf16: one head's Q, K^T tiles and V, packed once before the tile loop into a
// workspace region shared by the threads.
struct ForwardPack {
  uint32_t* qa;   // (Tq, pairs(HS)) Q rows (A)
  uint32_t* ktv;  // key tiles of (pairs(HS), kBc): K^T (B)
  uint32_t* vv;   // (pairs(Tk), round16(HS)) V row pairs (B)
  ForwardPack(const AttnShape& s, Carver& c)
      : qa(c.take<uint32_t>(size_t(s.Tq) * pairs(s.HS))),
        ktv(c.take<uint32_t>(key_tiles(s) * pairs(s.HS) * kBc)),
        vv(c.take<uint32_t>(size_t(pairs(s.Tk)) * round16(s.HS))) {}
};

// Per-thread scratch of the backward (one head at a time).
struct BackwardScratch {
  float* kt = nullptr;  // fp32: (HS, kBc) scaled K^T tile
  float* vt = nullptr;  // fp32: (HS, kBc) V^T tile
  float* pt;            // (kBr, kBc) P
  float* mt;            // (kBr, kBc) dropout scale: 1/(1-p) or 0
  float* yt;            // (kBr, kBc) P*drop, then dP, then dS*scale
  float* D;             // (Tq) rowsum(dO * O)
  // bf16: the head's operands, packed once, and the per-tile conversions.
  uint32_t *qa = nullptr, *doa = nullptr;  // Q, dO rows (A)
  uint32_t *qT = nullptr, *doT = nullptr;  // Q^T, dO^T (A), pairs(Tq) per row
  uint32_t *ktv = nullptr, *vtv = nullptr; // K^T, V^T tiles (B)
  uint32_t* kv = nullptr;                  // K row pairs (B)
  uint32_t* tmp = nullptr;                 // packing scratch
  uint32_t* yv = nullptr;                  // P*drop, then dS*scale, row pairs (B)
  uint32_t* dsa = nullptr;                 // dS*scale rows (A)
  float *dvT = nullptr, *dkT = nullptr;    // (HS, kBc) dV^T, dK^T of the key tile
  BackwardScratch(const AttnShape& s, Carver& c) {
    const bool bf16 = s.precision == MatmulPrecision::bf16;
    if (!bf16) {
      kt = c.take(size_t(s.HS) * kBc);
      vt = c.take(size_t(s.HS) * kBc);
    }
    pt = c.take(size_t(kBr) * kBc);
    mt = c.take(size_t(kBr) * kBc);
    yt = c.take(size_t(kBr) * kBc);
    D = c.take(size_t(s.Tq));
    if (!bf16) return;
    const size_t hp = pairs(s.HS), ld16 = round16(s.HS);
    qa = c.take<uint32_t>(size_t(s.Tq) * hp);
    doa = c.take<uint32_t>(size_t(s.Tq) * hp);
    qT = c.take<uint32_t>(size_t(s.HS) * pairs(s.Tq));
    doT = c.take<uint32_t>(size_t(s.HS) * pairs(s.Tq));
    ktv = c.take<uint32_t>(key_tiles(s) * hp * kBc);
    vtv = c.take<uint32_t>(key_tiles(s) * hp * kBc);
    kv = c.take<uint32_t>(size_t(pairs(s.Tk)) * ld16);
    tmp = c.take<uint32_t>(std::max(kBc * hp, size_t(pairs(kBr)) * ld16));
    yv = c.take<uint32_t>(size_t(pairs(kBr)) * kBc);
    dsa = c.take<uint32_t>(size_t(kBr) * kBc / 2);
    dvT = c.take(size_t(s.HS) * kBc);
    dkT = c.take(size_t(s.HS) * kBc);
  }
};

template <class Layout>
size_t layout_floats(const AttnShape& s) {
  Carver c;
  const Layout layout(s, c);
  return c.used;
}
size_t per_thread_floats(const AttnShape& s) {
  return std::max(layout_floats<ForwardScratch>(s), layout_floats<BackwardScratch>(s));
}
size_t shared_floats(const AttnShape& s) {
  size_t n = padded(size_t(s.B) * s.NH * s.Tk);  // backward: t5 gradient per (b,h, distance)
  if (s.precision == MatmulPrecision::bf16)
    n = std::max(n, size_t(s.B) * s.NH * layout_floats<ForwardPack>(s));
  return n;
}

// Workspace start rounded up to 64 bytes (workspace_floats reserves the slack).
float* aligned_base(float* ws) {
  auto p = reinterpret_cast<uintptr_t>(ws);
  p = (p + 63) & ~uintptr_t(63);
  return reinterpret_cast<float*>(p);
}

void check_args(const AttnShape& s, const ScoreBias& bias, const AttnDropout& drop) {
  ALIBI_CHECK(s.B >= 0 && s.NH >= 0 && s.Tq >= 0 && s.Tk >= 0 && s.HS >= 0, "B=", s.B,
              " NH=", s.NH, " Tq=", s.Tq, " Tk=", s.Tk, " HS=", s.HS);
  ALIBI_CHECK(s.Tq <= s.Tk, "Tq=", s.Tq, " Tk=", s.Tk, ": queries sit at the last Tq positions");
  ALIBI_CHECK(s.kv_rows() >= s.Tk, "ldk=", s.ldk, " < Tk=", s.Tk);
  ALIBI_CHECK(drop.p >= 0.0f && drop.p < 1.0f, "dropout p=", drop.p);
  if (bias.kind == BiasKind::alibi)
    ALIBI_CHECK(bias.slopes != nullptr, "alibi bias without slopes");
  if (bias.kind == BiasKind::t5) {
    ALIBI_CHECK(bias.t5_table != nullptr && bias.num_buckets > 0 && bias.t5_max_distance >= 0,
                "t5 bias: table ", bias.t5_table, " num_buckets=", bias.num_buckets,
                " max_distance=", bias.t5_max_distance);
    ALIBI_CHECK(bias.t5_max_distance == 0 || bias.t5_bucket != nullptr, "t5 bias without buckets");
  }
  ALIBI_CHECK(s.precision != MatmulPrecision::bf16 || cpu_has_bf16(),
              "bf16 attention needs AVX512-BF16, which this CPU lacks");
}

inline int t5_bucket_of(const ScoreBias& b, int d) {
  return d < b.t5_max_distance ? b.t5_bucket[d] : b.num_buckets - 1;
}

// Bias of head h at distance d >= 0, in fp32 (alibi: -m_h * d; float(d) is exact below 2^24).
inline float bias_at(const ScoreBias& b, int h, int NH, int d) {
  switch (b.kind) {
    case BiasKind::alibi: return -b.slopes[h] * float(d);
    case BiasKind::t5: return b.t5_table[size_t(t5_bucket_of(b, d)) * NH + h];
    case BiasKind::none: break;
  }
  return 0.0f;
}

// band[k] = bias at distance base + kBr - 1 - k; distances < 0 are masked and never read.
void fill_band(const ScoreBias& b, int h, int NH, int base, float* band) {
  for (int k = 0; k < kBand; ++k) {
    const int d = base + kBr - 1 - k;
    band[k] = d >= 0 ? bias_at(b, h, NH, d) : 0.0f;
  }
}

// ---- register-blocked tile product -------------------------------------------------------
// 16 floats, any alignment (like __m512_u); plain C++ vector extensions, lowered to whatever
// the target has (one zmm with AVX-512, two ymm with AVX2).
typedef float vf16 __attribute__((vector_size(64), aligned(4), may_alias));

// C[0..MR)[0..16*NV) (+)= sum_k A(r,k) * B[k][...]; A(r,k) = A[r*a_rs + k*a_cs].
template <int MR, int NV, bool ACC>
inline __attribute__((always_inline)) void micro(int K, const float* A, ptrdiff_t a_rs,
                                                 ptrdiff_t a_cs, const float* B, ptrdiff_t ldb,
                                                 float* C, ptrdiff_t ldc) {
  vf16 acc[MR][NV];
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v)
      acc[r][v] = ACC ? *reinterpret_cast<const vf16*>(C + r * ldc + v * kVec) : vf16{};
  for (int k = 0; k < K; ++k) {
    const float* b = B + k * ldb;
    const float* a = A + k * a_cs;
    vf16 bv[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) {
      bv[v] = *reinterpret_cast<const vf16*>(b + v * kVec);
#if defined(__GNUC__) && defined(__AVX512F__)
      // Keep the operand in a register: otherwise GCC folds the load into each of the MR FMAs
      // and the loop becomes load-bound (measured 90 -> 112 GFLOP/s on one Zen 4 core). Only
      // with AVX-512: without it a 16-float vector is two registers and the constraint fails.
      asm("" : "+v"(bv[v]));
#endif
    }
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) {
      const float x = a[r * a_rs];
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) acc[r][v] += x * bv[v];
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) *reinterpret_cast<vf16*>(C + r * ldc + v * kVec) = acc[r][v];
}

template <int NV, bool ACC>
void gemm_chunk(int M, int K, const float* A, ptrdiff_t a_rs, ptrdiff_t a_cs, const float* B,
                ptrdiff_t ldb, float* C, ptrdiff_t ldc) {
  constexpr int MR = NV >= 3 ? 4 : 8;  // keep MR*NV accumulators + NV operands within 32 regs
  int m = 0;
  for (; m + MR <= M; m += MR)
    micro<MR, NV, ACC>(K, A + m * a_rs, a_rs, a_cs, B, ldb, C + m * ldc, ldc);
  for (; m < M; ++m) micro<1, NV, ACC>(K, A + m * a_rs, a_rs, a_cs, B, ldb, C + m * ldc, ldc);
}

// C (M,N) (+)= A (M,K) B (K,N); B and C row-major with leading dimensions ldb, ldc; A through
// strides so A may be a transposed view.
template <bool ACC>
void tile_gemm(int M, int N, int K, const float* A, ptrdiff_t a_rs, ptrdiff_t a_cs,
               const float* B, ptrdiff_t ldb, float* C, ptrdiff_t ldc) {
  int n = 0;
  for (; n + 4 * kVec <= N; n += 4 * kVec)
    gemm_chunk<4, ACC>(M, K, A, a_rs, a_cs, B + n, ldb, C + n, ldc);
  switch ((N - n) / kVec) {
    case 3: gemm_chunk<3, ACC>(M, K, A, a_rs, a_cs, B + n, ldb, C + n, ldc); n += 3 * kVec; break;
    case 2: gemm_chunk<2, ACC>(M, K, A, a_rs, a_cs, B + n, ldb, C + n, ldc); n += 2 * kVec; break;
    case 1: gemm_chunk<1, ACC>(M, K, A, a_rs, a_cs, B + n, ldb, C + n, ldc); n += kVec; break;
    default: break;
  }
  if (n == N) return;
  for (int m = 0; m < M; ++m) {  // the last N % 16 columns (HS not a multiple of 16)
    float* c = C + m * ldc;
    if (!ACC) std::fill(c + n, c + N, 0.0f);
    for (int k = 0; k < K; ++k) {
      const float x = A[m * a_rs + k * a_cs];
      const float* b = B + k * ldb;
      for (int j = n; j < N; ++j) c[j] += x * b[j];
    }
  }
}

// dst (HS, kBc) = scale * src^T for src (cols, HS) rows; columns cols..kBc-1 zeroed.
void transpose_tile(const float* src, int cols, int HS, float scale, float* dst) {
  for (int d = 0; d < HS; ++d) {
    float* row = dst + size_t(d) * kBc;
    for (int j = 0; j < cols; ++j) row[j] = src[size_t(j) * HS + d] * scale;
    for (int j = cols; j < kBc; ++j) row[j] = 0.0f;
  }
}

// ---- bf16 tile products (AVX512-BF16) -----------------------------------------------------
// vdpbf16ps adds a[2n] b[2n] + a[2n+1] b[2n+1] into fp32 lane n, so bf16 operands travel as
// 32-bit pairs along the reduction index k (kp = k / 2):
//   A operand: pairs of one row,  A32[r * a_rs + kp] = (A(r, 2kp), A(r, 2kp + 1))
//   B operand: row pairs ("VNNI"), B32[kp * ldb + n] = (B(2kp, n), B(2kp + 1, n))
// An odd K is padded with zeros. Values are rounded to the nearest even bf16 (vcvtne*ps2bf16).
// Everything that needs a transposed pair layout (K^T, V^T, Q^T, dO^T) is packed once per head;
// inside the tile loops the only conversions are of P and dS, contiguous and vectorised.
#define ALIBI_BF16 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16")))

inline __mmask16 lanes(int n) {  // the first min(max(n, 0), 16) lanes
  return n >= 16 ? __mmask16(0xFFFF) : n <= 0 ? __mmask16(0) : __mmask16((1u << n) - 1);
}

// C[0..MR)[0..16*NV) (+)= A B over KP pairs; the last vector of each row is masked by `last`.
template <int MR, int NV, bool ACC>
ALIBI_BF16 inline __attribute__((always_inline)) void micro_bf16(int KP, const uint32_t* A,
                                                                 ptrdiff_t a_rs,
                                                                 const uint32_t* B, ptrdiff_t ldb,
                                                                 float* C, ptrdiff_t ldc,
                                                                 __mmask16 last) {
  __m512 acc[MR][NV];
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v)
      acc[r][v] = !ACC           ? _mm512_setzero_ps()
                  : v < NV - 1   ? _mm512_loadu_ps(C + r * ldc + v * 16)
                                 : _mm512_maskz_loadu_ps(last, C + r * ldc + v * 16);
  for (int kp = 0; kp < KP; ++kp) {
    const uint32_t* b = B + kp * ldb;
    __m512bh bv[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) bv[v] = (__m512bh)_mm512_loadu_si512(b + v * 16);
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) {
      const __m512bh a = (__m512bh)_mm512_set1_epi32(int(A[r * a_rs + kp]));
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_dpbf16_ps(acc[r][v], a, bv[v]);
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) {
      if (v < NV - 1)
        _mm512_storeu_ps(C + r * ldc + v * 16, acc[r][v]);
      else
        _mm512_mask_storeu_ps(C + r * ldc + v * 16, last, acc[r][v]);
    }
}

template <int NV, bool ACC>
ALIBI_BF16 void chunk_bf16(int M, int KP, const uint32_t* A, ptrdiff_t a_rs, const uint32_t* B,
                           ptrdiff_t ldb, float* C, ptrdiff_t ldc, __mmask16 last) {
  constexpr int MR = NV >= 3 ? 4 : 8;  // MR*NV accumulators + NV operands + 1 within 32 regs
  int m = 0;
  for (; m + MR <= M; m += MR)
    micro_bf16<MR, NV, ACC>(KP, A + m * a_rs, a_rs, B, ldb, C + m * ldc, ldc, last);
  for (; m < M; ++m)
    micro_bf16<1, NV, ACC>(KP, A + m * a_rs, a_rs, B, ldb, C + m * ldc, ldc, last);
}

// C (M,N) (+)= A (M, 2 KP) B (2 KP, N) in the pair layouts above. B rows must be readable up to
// round16(N) columns; C is touched only in its first N columns.
template <bool ACC>
ALIBI_BF16 void tile_gemm_bf16(int M, int N, int KP, const uint32_t* A, ptrdiff_t a_rs,
                               const uint32_t* B, ptrdiff_t ldb, float* C, ptrdiff_t ldc) {
  int n = 0;
  for (; N - n >= 64; n += 64)
    chunk_bf16<4, ACC>(M, KP, A, a_rs, B + n, ldb, C + n, ldc, lanes(16));
  const int rest = N - n;
  const __mmask16 last = lanes(rest - (rest - 1) / 16 * 16);
  switch ((rest + 15) / 16) {
    case 3: chunk_bf16<3, ACC>(M, KP, A, a_rs, B + n, ldb, C + n, ldc, last); break;
    case 2: chunk_bf16<2, ACC>(M, KP, A, a_rs, B + n, ldb, C + n, ldc, last); break;
    case 1: chunk_bf16<1, ACC>(M, KP, A, a_rs, B + n, ldb, C + n, ldc, last); break;
    default: break;
  }
}

// dst (bf16, n_pad values) = src[0..n), zeros after n: a row as A-operand pairs.
ALIBI_BF16 void row_to_bf16(const float* src, int n, int n_pad, uint16_t* dst) {
  for (int c = 0; c < n_pad; c += 16) {
    const __m512 x = _mm512_maskz_loadu_ps(lanes(n - c), src + c);
    _mm256_mask_storeu_epi16(dst + c, lanes(n_pad - c), (__m256i)_mm512_cvtneps_pbh(x));
  }
}

// Row pairs of src (rows, n; leading dimension lds) as a B operand: dst32[ip * ldd + c] =
// (src(2ip, c), src(2ip + 1, c)) for c < ldd, zero past n columns and past the last row.
ALIBI_BF16 void rows_to_pairs(const float* src, int rows, int n, ptrdiff_t lds, uint32_t* dst,
                              ptrdiff_t ldd) {
  // cvtne2ps gives [row0 c..c+15 | row1 c..c+15] as 32 bf16; interleave them pairwise.
  const __m512i idx = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9,
                                       24, 8, 23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1,
                                       16, 0);
  for (int ip = 0; ip < pairs(rows); ++ip) {
    const float* r0 = src + size_t(2 * ip) * lds;
    const float* r1 = r0 + lds;
    const bool two = 2 * ip + 1 < rows;
    for (int c = 0; c < ldd; c += 16) {
      const __mmask16 m = lanes(n - c);
      const __m512 x0 = _mm512_maskz_loadu_ps(m, r0 + c);
      const __m512 x1 = two ? _mm512_maskz_loadu_ps(m, r1 + c) : _mm512_setzero_ps();
      const __m512i v = _mm512_permutexvar_epi16(idx, (__m512i)_mm512_cvtne2ps_pbh(x1, x0));
      _mm512_mask_storeu_epi32(dst + size_t(ip) * ldd + c, lanes(int(ldd) - c), v);
    }
  }
}

// dst[c * ldd + r] = src[r * lds + c] for r < rows, c < cols (32-bit elements).
void transpose32(const uint32_t* src, int rows, int cols, ptrdiff_t lds, uint32_t* dst,
                 ptrdiff_t ldd) {
  for (int r = 0; r < rows; ++r)
    for (int c = 0; c < cols; ++c) dst[c * ldd + r] = src[r * lds + c];
}

// One key tile as the B operand of S = Q K^T: kt32[dp * kBc + jj] = (K(jj, 2dp),
// K(jj, 2dp + 1)) for the tile's `cols` rows of K (leading dimension HS), zero for jj >= cols.
// tmp holds kBc * pairs(HS) pairs.
ALIBI_BF16 void pack_kt_tile(const float* k, int cols, int HS, uint32_t* tmp, uint32_t* kt) {
  const int hp = pairs(HS);
  for (int jj = 0; jj < cols; ++jj)
    row_to_bf16(k + size_t(jj) * HS, HS, 2 * hp,
                reinterpret_cast<uint16_t*>(tmp + size_t(jj) * hp));
  std::fill(tmp + size_t(cols) * hp, tmp + size_t(kBc) * hp, 0u);
  transpose32(tmp, kBc, hp, hp, kt, kBc);
}

// x (rows, HS) as the A operand of a transposed product: xt32[d * ldt + ip] = (x(2ip, d),
// x(2ip + 1, d)), d < HS, ip < pairs(rows). tmp holds pairs(kBr) * round16(HS) pairs.
ALIBI_BF16 void pack_transposed_pairs(const float* x, int rows, int HS, uint32_t* tmp,
                                      uint32_t* xt, ptrdiff_t ldt) {
  const int ld = round16(HS);
  for (int r0 = 0; r0 < rows; r0 += kBr) {
    const int n = std::min(kBr, rows - r0);
    rows_to_pairs(x + size_t(r0) * HS, n, HS, HS, tmp, ld);
    transpose32(tmp, pairs(n), HS, ld, xt + r0 / 2, ldt);
  }
}

// With this few query rows (decoding against a cache) S is computed by dot products straight
// from K's rows: transposing a key tile would cost more than the product it serves (one row:
// 2x faster; from 3 rows on the transpose wins, measured at Tk=2048, HS=64).
constexpr int kDotRows = 2;

// s (rows, kBc) = scale * q k^T for q (rows, HS), k (cols, HS); columns cols..kBc-1 zeroed.
void scores_by_dot(int rows, int cols, int HS, float scale, const float* q, const float* k,
                   float* s) {
  for (int ii = 0; ii < rows; ++ii) {
    const float* qi = q + size_t(ii) * HS;
    float* srow = s + ii * kBc;
    for (int jj = 0; jj < cols; ++jj) {
      const float* kj = k + size_t(jj) * HS;
      float acc = 0.0f;
#pragma omp simd reduction(+ : acc)
      for (int d = 0; d < HS; ++d) acc += qi[d] * kj[d];
      srow[jj] = acc * scale;
    }
    std::fill(srow + cols, srow + kBc, 0.0f);
  }
}

// keep(b,h,i,j) = u01(hash64(seed, bh, i, j)) >= p, i.e. u01(mix64(row_hash ^ mix64(j))) with
// row_hash = hash64(hash64(seed, bh), i): mix64(j) is hoisted per key tile, row_hash per row.
inline float keep_scale(uint64_t row_hash, uint64_t col_mix, float p, float inv_keep) {
  return u01(mix64(row_hash ^ col_mix)) >= p ? inv_keep : 0.0f;
}

// ---- fused forward: one (b,h) and one query tile ------------------------------------------
// BF16: packed (see above) holds this head's Q (Tq, pairs(HS)), K^T tiles and V row pairs.
template <bool BF16>
void forward_tile(const AttnShape& s, int bh, int i0, const float* q, const float* k,
                  const float* v, const ScoreBias& bias, const AttnDropout& drop, float* out,
                  float* lse, uint32_t* packed, float* ws) {
  const int HS = s.HS, NH = s.NH, Tq = s.Tq, Tk = s.Tk;
  const int off = Tk - Tq;  // pos(i) = off + i
  const int h = bh % NH;
  const int rows = std::min(kBr, Tq - i0);
  const float scale = 1.0f / std::sqrt(float(HS));
  const size_t ldk = size_t(s.kv_rows());
  const float* qt = q + (size_t(bh) * Tq + i0) * HS;  // (rows, HS)
  const float* kb = k + size_t(bh) * ldk * HS;        // (Tk, HS)
  const float* vb = v + size_t(bh) * ldk * HS;        // (Tk, HS)
  const int hp = pairs(HS), ld16 = round16(HS);

  Carver cw{ws};
  const ForwardScratch w(s, cw);
  float *kt = w.kt, *st = w.st, *ot = w.ot;
  uint32_t* pa = w.pa;
  Carver cp{reinterpret_cast<float*>(packed)};  // bf16 only; null otherwise
  const ForwardPack pk(s, cp);
  const uint32_t *qa = pk.qa, *ktv = pk.ktv, *vv = pk.vv;
  float m[kBr], l[kBr], band[kBand];  // running max, running sum, bias band
  uint64_t col_mix[kBc];

  std::fill(ot, ot + size_t(rows) * HS, 0.0f);
  std::fill(m, m + kBr, -std::numeric_limits<float>::infinity());
  std::fill(l, l + kBr, 0.0f);
  const bool dropout = drop.p > 0.0f;
  const float p_drop = drop.p, inv_keep = 1.0f / (1.0f - drop.p);
  const uint64_t head_hash = dropout ? hash64(drop.seed, uint64_t(bh)) : 0;

  const int last_key = off + i0 + rows - 1;  // the tile's last row sees keys 0..last_key
  for (int j0 = 0; j0 <= last_key; j0 += kBc) {
    const int cols = std::min(kBc, Tk - j0);
    fill_band(bias, h, NH, off + i0 - j0, band);
    if constexpr (BF16) {  // S = Q K^T, scaled below
      tile_gemm_bf16<false>(rows, kBc, hp, qa + size_t(i0) * hp, hp,
                            ktv + size_t(j0 / kBc) * hp * kBc, kBc, st, kBc);
    } else if (rows > kDotRows) {
      transpose_tile(kb + size_t(j0) * HS, cols, HS, scale, kt);
      tile_gemm<false>(rows, kBc, HS, qt, HS, 1, kt, kBc, st, kBc);
    } else {
      scores_by_dot(rows, cols, HS, scale, qt, kb + size_t(j0) * HS, st);
    }
    if (dropout)
      for (int jj = 0; jj < cols; ++jj) col_mix[jj] = mix64(uint64_t(j0 + jj));

    for (int ii = 0; ii < rows; ++ii) {
      float* srow = st + ii * kBc;
      const int nj = std::min(cols, off + i0 + ii - j0 + 1);  // visible keys of this row
      if (nj <= 0) {
        std::fill(srow, srow + kBc, 0.0f);
        continue;
      }
      const float* brow = band + (kBr - 1 - ii);
      float mx = -std::numeric_limits<float>::infinity();
#pragma omp simd reduction(max : mx)
      for (int jj = 0; jj < nj; ++jj) {
        const float x = BF16 ? srow[jj] * scale + brow[jj] : srow[jj] + brow[jj];
        srow[jj] = x;
        mx = x > mx ? x : mx;
      }
      const float m_new = std::max(m[ii], mx);
      const float alpha = std::exp(m[ii] - m_new);  // 0 on the first visible tile
      float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
      for (int jj = 0; jj < nj; ++jj) {
        const float p = fast_exp(srow[jj] - m_new);
        srow[jj] = p;
        sum += p;
      }
      std::fill(srow + nj, srow + kBc, 0.0f);
      l[ii] = l[ii] * alpha + sum;  // statistics of the undropped probabilities
      m[ii] = m_new;
      if (dropout) {
        const uint64_t row_hash = hash64(head_hash, uint64_t(i0 + ii));
#pragma omp simd
        for (int jj = 0; jj < nj; ++jj)
          srow[jj] *= keep_scale(row_hash, col_mix[jj], p_drop, inv_keep);
      }
      if (alpha != 1.0f) {
        float* orow = ot + size_t(ii) * HS;
#pragma omp simd
        for (int d = 0; d < HS; ++d) orow[d] *= alpha;
      }
    }
    if constexpr (BF16) {  // O += P V
      for (int ii = 0; ii < rows; ++ii)
        row_to_bf16(st + ii * kBc, kBc, kBc,
                    reinterpret_cast<uint16_t*>(pa + size_t(ii) * kBc / 2));
      tile_gemm_bf16<true>(rows, HS, pairs(cols), pa, kBc / 2, vv + size_t(j0 / 2) * ld16, ld16,
                           ot, HS);
    } else {
      tile_gemm<true>(rows, HS, cols, st, kBc, 1, vb + size_t(j0) * HS, HS, ot, HS);
    }
  }

  for (int ii = 0; ii < rows; ++ii) {
    const float inv_l = 1.0f / l[ii];
    const float* orow = ot + size_t(ii) * HS;
    float* dst = out + (size_t(bh) * Tq + i0 + ii) * HS;
#pragma omp simd
    for (int d = 0; d < HS; ++d) dst[d] = orow[d] * inv_l;
    lse[size_t(bh) * Tq + i0 + ii] = m[ii] + std::log(l[ii]);
  }
}

// Packs one head's forward operands (bf16): Q rows, K^T tiles, V row pairs.
void pack_forward_head(const AttnShape& s, int bh, const float* q, const float* k,
                       const float* v, uint32_t* packed, float* ws) {
  const int HS = s.HS, Tq = s.Tq, Tk = s.Tk, hp = pairs(HS), ld16 = round16(HS);
  const size_t ldk = size_t(s.kv_rows());
  const float* qb = q + size_t(bh) * Tq * HS;
  const float* kb = k + size_t(bh) * ldk * HS;
  const float* vb = v + size_t(bh) * ldk * HS;
  Carver cw{ws}, cp{reinterpret_cast<float*>(packed)};
  uint32_t* tmp = ForwardScratch(s, cw).tmp;
  const ForwardPack pk(s, cp);
  uint32_t *qa = pk.qa, *ktv = pk.ktv, *vv = pk.vv;
  for (int i = 0; i < Tq; ++i)
    row_to_bf16(qb + size_t(i) * HS, HS, 2 * hp,
                reinterpret_cast<uint16_t*>(qa + size_t(i) * hp));
  for (int j0 = 0; j0 < Tk; j0 += kBc)
    pack_kt_tile(kb + size_t(j0) * HS, std::min(kBc, Tk - j0), HS, tmp,
                 ktv + size_t(j0 / kBc) * hp * kBc);
  rows_to_pairs(vb, Tk, HS, HS, vv, ld16);
}

// ---- fused backward: one (b,h) -------------------------------------------------------------
// Outer loop over key tiles, inner over the query tiles that see them. The task owns its dq,
// dk, dv rows, so it accumulates into them directly. dist (Tk), when non-null, receives
// sum of dS at distance d in slot Tk - 1 - d (so a row's run of keys maps to a contiguous run).
// BF16: the head's operands are packed first; dV and dK of a key tile are accumulated
// transposed (dV^T += dO^T (P*drop), dK^T += Q^T dS) so that no tile-sized transpose of P or dS
// is needed, and written back once per key tile.
template <bool BF16>
void backward_head(const AttnShape& s, int bh, const float* q, const float* k, const float* v,
                   const float* out, const float* lse, const float* dout, const ScoreBias& bias,
                   const AttnDropout& drop, float* dq, float* dk, float* dv, float* dist,
                   float* ws) {
  const int HS = s.HS, NH = s.NH, Tq = s.Tq, Tk = s.Tk;
  const int off = Tk - Tq;
  const int h = bh % NH;
  const float scale = 1.0f / std::sqrt(float(HS));
  const size_t ldk = size_t(s.kv_rows());
  const float* qb = q + size_t(bh) * Tq * HS;     // (Tq, HS)
  const float* ob = out + size_t(bh) * Tq * HS;   // (Tq, HS)
  const float* dob = dout + size_t(bh) * Tq * HS; // (Tq, HS)
  const float* lb = lse + size_t(bh) * Tq;        // (Tq)
  const float* kb = k + size_t(bh) * ldk * HS;    // (Tk, HS)
  const float* vb = v + size_t(bh) * ldk * HS;    // (Tk, HS)
  float* dqb = dq + size_t(bh) * Tq * HS;
  float* dkb = dk + size_t(bh) * ldk * HS;
  float* dvb = dv + size_t(bh) * ldk * HS;
  const int hp = pairs(HS), ld16 = round16(HS), tq2 = pairs(Tq);

  Carver cw{ws};
  const BackwardScratch w(s, cw);
  float *kt = w.kt, *vt = w.vt, *pt = w.pt, *mt = w.mt, *yt = w.yt, *D = w.D;
  uint32_t *qa = w.qa, *doa = w.doa, *qT = w.qT, *doT = w.doT, *ktv = w.ktv, *vtv = w.vtv,
           *kv = w.kv, *tmp = w.tmp, *yv = w.yv, *dsa = w.dsa;
  float *dvT = w.dvT, *dkT = w.dkT;
  if constexpr (BF16) {
    for (int i = 0; i < Tq; ++i) {
      row_to_bf16(qb + size_t(i) * HS, HS, 2 * hp,
                  reinterpret_cast<uint16_t*>(qa + size_t(i) * hp));
      row_to_bf16(dob + size_t(i) * HS, HS, 2 * hp,
                  reinterpret_cast<uint16_t*>(doa + size_t(i) * hp));
    }
    pack_transposed_pairs(qb, Tq, HS, tmp, qT, tq2);
    pack_transposed_pairs(dob, Tq, HS, tmp, doT, tq2);
    for (int j0 = 0; j0 < Tk; j0 += kBc) {
      const int cols = std::min(kBc, Tk - j0);
      pack_kt_tile(kb + size_t(j0) * HS, cols, HS, tmp, ktv + size_t(j0 / kBc) * hp * kBc);
      pack_kt_tile(vb + size_t(j0) * HS, cols, HS, tmp, vtv + size_t(j0 / kBc) * hp * kBc);
    }
    rows_to_pairs(kb, Tk, HS, HS, kv, ld16);
  }
  float band[kBand];
  uint64_t col_mix[kBc];

  std::fill(dqb, dqb + size_t(Tq) * HS, 0.0f);
  std::fill(dkb, dkb + ldk * HS, 0.0f);
  std::fill(dvb, dvb + ldk * HS, 0.0f);
  if (dist) std::fill(dist, dist + Tk, 0.0f);
  for (int i = 0; i < Tq; ++i) {
    const float* a = dob + size_t(i) * HS;
    const float* b = ob + size_t(i) * HS;
    float acc = 0.0f;
#pragma omp simd reduction(+ : acc)
    for (int d = 0; d < HS; ++d) acc += a[d] * b[d];
    D[i] = acc;  // equals sum_j P_ij dP_ij also with dropout, since O_i = sum_j P_ij M_ij v_j
  }
  const bool dropout = drop.p > 0.0f;
  const float p_drop = drop.p, inv_keep = 1.0f / (1.0f - drop.p);
  const uint64_t head_hash = dropout ? hash64(drop.seed, uint64_t(bh)) : 0;

  for (int j0 = 0; j0 < Tk; j0 += kBc) {
    const int cols = std::min(kBc, Tk - j0);
    if constexpr (BF16) {
      std::fill(dvT, dvT + size_t(HS) * kBc, 0.0f);
      std::fill(dkT, dkT + size_t(HS) * kBc, 0.0f);
    } else {
      transpose_tile(kb + size_t(j0) * HS, cols, HS, scale, kt);
      transpose_tile(vb + size_t(j0) * HS, cols, HS, 1.0f, vt);
    }
    if (dropout)
      for (int jj = 0; jj < cols; ++jj) col_mix[jj] = mix64(uint64_t(j0 + jj));
    const float* kj = kb + size_t(j0) * HS;  // (cols, HS)
    float* dkj = dkb + size_t(j0) * HS;
    float* dvj = dvb + size_t(j0) * HS;

    // First row that sees key j0; bf16 starts on an even row, where the row pairs of Q^T and
    // dO^T begin (a row that sees none of the tile has P = 0 and adds nothing).
    int i_first = std::max(0, j0 - off);
    if constexpr (BF16) i_first &= ~1;
    for (int i0 = i_first; i0 < Tq; i0 += kBr) {
      const int rows = std::min(kBr, Tq - i0);
      const float* qi = qb + size_t(i0) * HS;
      const float* doi = dob + size_t(i0) * HS;
      fill_band(bias, h, NH, off + i0 - j0, band);
      if constexpr (BF16)  // S = Q K^T (scaled below); fp32: Q (K * scale)^T
        tile_gemm_bf16<false>(rows, kBc, hp, qa + size_t(i0) * hp, hp,
                              ktv + size_t(j0 / kBc) * hp * kBc, kBc, pt, kBc);
      else
        tile_gemm<false>(rows, kBc, HS, qi, HS, 1, kt, kBc, pt, kBc);

      for (int ii = 0; ii < rows; ++ii) {  // P = exp(S + bias - lse), 0 where masked
        float* prow = pt + ii * kBc;
        const int nj = std::clamp(off + i0 + ii - j0 + 1, 0, cols);
        const float* brow = band + (kBr - 1 - ii);
        const float li = lb[i0 + ii];
#pragma omp simd
        for (int jj = 0; jj < nj; ++jj)
          prow[jj] = fast_exp((BF16 ? prow[jj] * scale : prow[jj]) + brow[jj] - li);
        std::fill(prow + nj, prow + kBc, 0.0f);
        if (dropout) {
          float* mrow = mt + ii * kBc;
          float* yrow = yt + ii * kBc;
          const uint64_t row_hash = hash64(head_hash, uint64_t(i0 + ii));
#pragma omp simd
          for (int jj = 0; jj < nj; ++jj) {
            mrow[jj] = keep_scale(row_hash, col_mix[jj], p_drop, inv_keep);
            yrow[jj] = prow[jj] * mrow[jj];
          }
          std::fill(mrow + nj, mrow + kBc, 0.0f);
          std::fill(yrow + nj, yrow + kBc, 0.0f);
        }
      }
      if constexpr (BF16) {
        // dV^T += dO^T (P*drop);  dP = dO V^T
        rows_to_pairs(dropout ? yt : pt, rows, kBc, kBc, yv, kBc);
        tile_gemm_bf16<true>(HS, kBc, pairs(rows), doT + i0 / 2, tq2, yv, kBc, dvT, kBc);
        tile_gemm_bf16<false>(rows, kBc, hp, doa + size_t(i0) * hp, hp,
                              vtv + size_t(j0 / kBc) * hp * kBc, kBc, yt, kBc);
      } else {
        // dV += (P*drop)^T dO;  dP = dO V^T
        tile_gemm<true>(cols, HS, rows, dropout ? yt : pt, 1, kBc, doi, HS, dvj, HS);
        tile_gemm<false>(rows, kBc, HS, doi, HS, 1, vt, kBc, yt, kBc);
      }

      for (int ii = 0; ii < rows; ++ii) {  // dS = P * (dP * drop - D_i); masked, padded P = 0
        const float* prow = pt + ii * kBc;
        const float* mrow = mt + ii * kBc;
        float* yrow = yt + ii * kBc;
        const float Di = D[i0 + ii];
        if (dropout) {
#pragma omp simd
          for (int jj = 0; jj < kBc; ++jj) yrow[jj] = prow[jj] * (yrow[jj] * mrow[jj] - Di);
        } else {
#pragma omp simd
          for (int jj = 0; jj < kBc; ++jj) yrow[jj] = prow[jj] * (yrow[jj] - Di);
        }
        if (dist) {  // slot Tk-1-d for d = pos(i) - j, contiguous in jj
          const int nj = std::clamp(off + i0 + ii - j0 + 1, 0, cols);
          float* drow = dist + (Tk - 1 - (off + i0 + ii) + j0);
#pragma omp simd
          for (int jj = 0; jj < nj; ++jj) drow[jj] += yrow[jj];
        }
#pragma omp simd
        for (int jj = 0; jj < kBc; ++jj) yrow[jj] *= scale;
        if constexpr (BF16)
          row_to_bf16(yrow, kBc, kBc, reinterpret_cast<uint16_t*>(dsa + size_t(ii) * kBc / 2));
      }
      if constexpr (BF16) {
        // dQ += dS K;  dK^T += Q^T dS
        tile_gemm_bf16<true>(rows, HS, pairs(cols), dsa, kBc / 2, kv + size_t(j0 / 2) * ld16,
                             ld16, dqb + size_t(i0) * HS, HS);
        rows_to_pairs(yt, rows, kBc, kBc, yv, kBc);
        tile_gemm_bf16<true>(HS, kBc, pairs(rows), qT + i0 / 2, tq2, yv, kBc, dkT, kBc);
      } else {
        tile_gemm<true>(rows, HS, cols, yt, kBc, 1, kj, HS, dqb + size_t(i0) * HS, HS);  // dQ
        tile_gemm<true>(cols, HS, rows, yt, 1, kBc, qi, HS, dkj, HS);                    // dK
      }
    }
    if constexpr (BF16) {  // the key tile's dV, dK rows, written once
      for (int jj = 0; jj < cols; ++jj)
        for (int d = 0; d < HS; ++d) {
          dvj[size_t(jj) * HS + d] = dvT[size_t(d) * kBc + jj];
          dkj[size_t(jj) * HS + d] = dkT[size_t(d) * kBc + jj];
        }
    }
  }
}

double drop_factor(const AttnDropout& drop, int bh, int i, int j) {
  if (drop.p == 0.0f) return 1.0;
  const float u = u01(hash64(drop.seed, uint64_t(bh), uint64_t(i), uint64_t(j)));
  return u >= drop.p ? 1.0 / (1.0 - double(drop.p)) : 0.0;
}

// Naive: P (Tq, Tk) of one (b,h) in double, straight from the definition.
void naive_probs(const AttnShape& s, int bh, const float* q, const float* k,
                 const ScoreBias& bias, std::vector<double>& P) {
  const int HS = s.HS, Tq = s.Tq, Tk = s.Tk, off = Tk - Tq, h = bh % s.NH;
  const size_t ldk = size_t(s.kv_rows());
  const double scale = 1.0 / std::sqrt(double(HS));
  P.assign(size_t(Tq) * Tk, 0.0);
  for (int i = 0; i < Tq; ++i) {
    const float* qi = q + (size_t(bh) * Tq + i) * HS;
    double* row = &P[size_t(i) * Tk];
    double mx = -std::numeric_limits<double>::infinity();
    for (int j = 0; j <= off + i; ++j) {
      const float* kj = k + (size_t(bh) * ldk + j) * HS;
      double dot = 0.0;
      for (int d = 0; d < HS; ++d) dot += double(qi[d]) * double(kj[d]);
      row[j] = dot * scale + double(bias_at(bias, h, s.NH, off + i - j));
      mx = std::max(mx, row[j]);
    }
    double sum = 0.0;
    for (int j = 0; j <= off + i; ++j) sum += std::exp(row[j] - mx);
    for (int j = 0; j <= off + i; ++j) row[j] = std::exp(row[j] - mx) / sum;
  }
}

}  // namespace

size_t attention_workspace_floats(const AttnShape& s, int threads) {
  return kAlignFloats + size_t(std::max(threads, 1)) * per_thread_floats(s) + shared_floats(s);
}

// The functions below run omp_get_max_threads() threads; the workspace must have been sized
// for at least that many.
void attention_forward(const AttnShape& s, const float* q, const float* k, const float* v,
                       const ScoreBias& bias, const AttnDropout& drop, float* out, float* lse,
                       float* workspace) {
  check_args(s, bias, drop);
  if (s.B == 0 || s.NH == 0 || s.Tq == 0 || s.HS == 0) return;
  float* base = aligned_base(workspace);
  const size_t per_thread = per_thread_floats(s);
  const bool bf16 = s.precision == MatmulPrecision::bf16;
  auto* packed = reinterpret_cast<uint32_t*>(base + size_t(omp_get_max_threads()) * per_thread);
  const size_t per_head = layout_floats<ForwardPack>(s);
  const int tiles = (s.Tq + kBr - 1) / kBr;
  const int tasks = s.B * s.NH * tiles;
#pragma omp parallel
  {
    float* ws = base + size_t(omp_get_thread_num()) * per_thread;
    if (bf16) {
#pragma omp for schedule(static)
      for (int bh = 0; bh < s.B * s.NH; ++bh)
        pack_forward_head(s, bh, q, k, v, packed + size_t(bh) * per_head, ws);
    }
    // Within a head, tasks alternate the costliest and the cheapest remaining tile (causal
    // cost grows with the tile index), and chunks of two keep each thread's share even.
#pragma omp for schedule(static, 2)
    for (int t = 0; t < tasks; ++t) {
      const int bh = t / tiles, r = t % tiles;
      const int tile = (r % 2 == 0) ? tiles - 1 - r / 2 : r / 2;
      if (bf16)
        forward_tile<true>(s, bh, tile * kBr, q, k, v, bias, drop, out, lse,
                           packed + size_t(bh) * per_head, ws);
      else
        forward_tile<false>(s, bh, tile * kBr, q, k, v, bias, drop, out, lse, nullptr, ws);
    }
  }
}

void attention_backward(const AttnShape& s, const float* q, const float* k, const float* v,
                        const float* out, const float* lse, const float* dout,
                        const ScoreBias& bias, const AttnDropout& drop, float* dq, float* dk,
                        float* dv, float* dt5_table, float* workspace) {
  check_args(s, bias, drop);
  if (s.B == 0 || s.NH == 0 || s.HS == 0) return;  // Tq == 0 still zeroes dk, dv
  float* base = aligned_base(workspace);
  const size_t per_thread = per_thread_floats(s);
  const int nbh = s.B * s.NH;
  const bool t5_grad = bias.kind == BiasKind::t5 && dt5_table != nullptr;
  const bool bf16 = s.precision == MatmulPrecision::bf16;
  float* dist_all = base + size_t(omp_get_max_threads()) * per_thread;  // (B*NH, Tk)
#pragma omp parallel for schedule(static)
  for (int bh = 0; bh < nbh; ++bh) {
    float* dist = t5_grad ? dist_all + size_t(bh) * s.Tk : nullptr;
    float* ws = base + size_t(omp_get_thread_num()) * per_thread;
    if (bf16)
      backward_head<true>(s, bh, q, k, v, out, lse, dout, bias, drop, dq, dk, dv, dist, ws);
    else
      backward_head<false>(s, bh, q, k, v, out, lse, dout, bias, drop, dq, dk, dv, dist, ws);
  }
  if (!t5_grad) return;
  for (int bh = 0; bh < nbh; ++bh) {  // fixed order: bit-identical for any thread count
    const int h = bh % s.NH;
    const float* dist = dist_all + size_t(bh) * s.Tk;
    for (int d = 0; d < s.Tk; ++d)
      dt5_table[size_t(t5_bucket_of(bias, d)) * s.NH + h] += dist[s.Tk - 1 - d];
  }
}

void attention_forward_naive(const AttnShape& s, const float* q, const float* k, const float* v,
                             const ScoreBias& bias, const AttnDropout& drop, float* out,
                             float* lse) {
  check_args(s, bias, drop);
  const int HS = s.HS, Tq = s.Tq, Tk = s.Tk, off = Tk - Tq;
  const size_t ldk = size_t(s.kv_rows());
  const double scale = 1.0 / std::sqrt(double(HS));
  std::vector<double> srow(Tk), acc(HS);
  for (int bh = 0; bh < s.B * s.NH; ++bh) {
    const int h = bh % s.NH;
    for (int i = 0; i < Tq; ++i) {
      const float* qi = q + (size_t(bh) * Tq + i) * HS;
      double mx = -std::numeric_limits<double>::infinity();
      for (int j = 0; j <= off + i; ++j) {
        const float* kj = k + (size_t(bh) * ldk + j) * HS;
        double dot = 0.0;
        for (int d = 0; d < HS; ++d) dot += double(qi[d]) * double(kj[d]);
        srow[j] = dot * scale + double(bias_at(bias, h, s.NH, off + i - j));
        mx = std::max(mx, srow[j]);
      }
      double sum = 0.0;
      for (int j = 0; j <= off + i; ++j) sum += std::exp(srow[j] - mx);
      std::fill(acc.begin(), acc.end(), 0.0);
      for (int j = 0; j <= off + i; ++j) {
        const double p = std::exp(srow[j] - mx) / sum * drop_factor(drop, bh, i, j);
        const float* vj = v + (size_t(bh) * ldk + j) * HS;
        for (int d = 0; d < HS; ++d) acc[d] += p * double(vj[d]);
      }
      for (int d = 0; d < HS; ++d) out[(size_t(bh) * Tq + i) * HS + d] = float(acc[d]);
      lse[size_t(bh) * Tq + i] = float(mx + std::log(sum));
    }
  }
}

// Recomputes everything from q, k, v in double; out and lse are not used, so the reference does
// not share the fused kernel's use of the saved statistics.
void attention_backward_naive(const AttnShape& s, const float* q, const float* k, const float* v,
                              const float* /*out*/, const float* /*lse*/, const float* dout,
                              const ScoreBias& bias, const AttnDropout& drop, float* dq,
                              float* dk, float* dv, float* dt5_table) {
  check_args(s, bias, drop);
  const int HS = s.HS, Tq = s.Tq, Tk = s.Tk, NH = s.NH, off = Tk - Tq;
  const size_t ldk = size_t(s.kv_rows());
  const double scale = 1.0 / std::sqrt(double(HS));
  const bool t5_grad = bias.kind == BiasKind::t5 && dt5_table != nullptr;
  std::vector<double> P, dS(size_t(Tq) * Tk), gq(HS), gkv(size_t(Tk) * HS * 2);
  std::vector<double> dt5(t5_grad ? size_t(bias.num_buckets) * NH : 0, 0.0);
  for (int bh = 0; bh < s.B * NH; ++bh) {
    const int h = bh % NH;
    naive_probs(s, bh, q, k, bias, P);
    std::fill(gkv.begin(), gkv.end(), 0.0);  // dk (Tk, HS) then dv (Tk, HS)
    double* gk = gkv.data();
    double* gv = gkv.data() + size_t(Tk) * HS;
    for (int i = 0; i < Tq; ++i) {
      const float* doi = dout + (size_t(bh) * Tq + i) * HS;
      double rowdot = 0.0;  // sum_j P_ij dP_ij
      for (int j = 0; j <= off + i; ++j) {
        const double pij = P[size_t(i) * Tk + j], mij = drop_factor(drop, bh, i, j);
        const float* vj = v + (size_t(bh) * ldk + j) * HS;
        double dpd = 0.0;  // dL/d(dropped p) = dO_i . v_j
        for (int d = 0; d < HS; ++d) {
          dpd += double(doi[d]) * double(vj[d]);
          gv[size_t(j) * HS + d] += pij * mij * double(doi[d]);
        }
        dS[size_t(i) * Tk + j] = dpd * mij;  // dP for now
        rowdot += pij * dpd * mij;
      }
      for (int j = 0; j <= off + i; ++j) {
        double& g = dS[size_t(i) * Tk + j];
        g = P[size_t(i) * Tk + j] * (g - rowdot);
        if (t5_grad) dt5[size_t(t5_bucket_of(bias, off + i - j)) * NH + h] += g;
      }
    }
    for (int i = 0; i < Tq; ++i) {
      std::fill(gq.begin(), gq.end(), 0.0);
      const float* qi = q + (size_t(bh) * Tq + i) * HS;
      for (int j = 0; j <= off + i; ++j) {
        const double g = dS[size_t(i) * Tk + j] * scale;
        const float* kj = k + (size_t(bh) * ldk + j) * HS;
        for (int d = 0; d < HS; ++d) {
          gq[d] += g * double(kj[d]);
          gk[size_t(j) * HS + d] += g * double(qi[d]);
        }
      }
      for (int d = 0; d < HS; ++d) dq[(size_t(bh) * Tq + i) * HS + d] = float(gq[d]);
    }
    for (size_t j = 0; j < ldk; ++j)
      for (int d = 0; d < HS; ++d) {
        const bool used = j < size_t(Tk);
        dk[(size_t(bh) * ldk + j) * HS + d] = used ? float(gk[j * HS + d]) : 0.0f;
        dv[(size_t(bh) * ldk + j) * HS + d] = used ? float(gv[j * HS + d]) : 0.0f;
      }
  }
  for (size_t n = 0; n < dt5.size(); ++n) dt5_table[n] += float(dt5[n]);
}

}  // namespace alibi
