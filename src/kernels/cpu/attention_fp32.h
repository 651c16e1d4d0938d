#pragma once
// fp32 tile products of the fused attention: a register-blocked micro-kernel and the Fp32Tiles
// policy of the skeletons in attention_tiles.h. Internal to attention_cpu.cpp.
//
// Every product is C += A * B with the innermost loop over a contiguous row of B and C: the key
// tile is transposed (and scaled by 1/sqrt(HS)) into k_tile_t (HS, kBc) so that an S row +=
// q[i][d] * k_tile_t[d][:]. The micro-kernel is written with GCC/Clang vector extensions so that
// it stays in registers.
#include <immintrin.h>

#include <algorithm>
#include <cstddef>
#include <cstring>

#include "core/half.h"
#include "kernels/cpu/attention_tiles.h"
#include "kernels/cpu/ops_cpu.h"  // widen
#include "kernels/cpu/simd.h"  // sum4

namespace alibi::cpu::attention_detail {

// The micro-kernel works on groups of kGroup columns, each held in kPerGroup registers of the
// widest kind the build targets (GCC/Clang vector extensions, any alignment, like __m512_u /
// __m256_u). A vector wider than the target's registers would be lowered through memory: 16-float
// vectors on an AVX2-only CPU ran the fused kernel at the naive kernel's speed (~3 GFLOP/s
// against sgemm's ~90). The group stays 16 columns on every target, so the columns that take the
// vector path (and the N % 16 that take the scalar tail) and with them every result are the same
// whatever the registers: each element is accumulated over k in order, however it is blocked.
constexpr int kGroup = 16;
#ifdef __AVX512F__
constexpr int kWidth = 16;  // floats per register: one zmm
constexpr int kVecRegs = 32;
constexpr int kMaxGroups = 4;  // groups per call (4 x 16 = one key tile's row)
#else
constexpr int kWidth = 8;  // one ymm (AVX2)
constexpr int kVecRegs = 16;
constexpr int kMaxGroups = 1;  // 12 accumulators of 6 rows + 2 operands + the broadcast
#endif
constexpr int kPerGroup = kGroup / kWidth;
typedef float vfloat __attribute__((vector_size(kWidth * sizeof(float)), aligned(4), may_alias));

// kWidth floats from p: as stored, or widened from IEEE binary16 (exactly, so that a product on
// f16 operands equals the fp32 one on the widened values).
inline vfloat load_lanes(const float* p) { return *reinterpret_cast<const vfloat*>(p); }
inline vfloat load_lanes(const uint16_t* p) {
#if defined(__AVX512F__)
  return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
#elif defined(__F16C__)
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
#else
  vfloat x;
  for (int i = 0; i < kWidth; ++i) x[i] = f16_to_float(p[i]);
  return x;
#endif
}
inline float load_one(const float* p) { return *p; }
inline float load_one(const uint16_t* p) {
#if defined(__F16C__)
  return _cvtsh_ss(*p);
#else
  return f16_to_float(*p);
#endif
}

// An fp32 operand of bf16 precision's decoding rows (Bf16Tiles::decoding): rounded to the
// nearest even bf16 as it is loaded (core/half.h's float_to_bf16, the lanes at once) and used as
// the fp32 value it then is, so that its products with other such operands are exact, as
// vdpbf16ps's are.
struct Bf16Rounded {
  float value;
};
inline vfloat load_lanes(const Bf16Rounded* p) {
  typedef uint32_t vuint __attribute__((vector_size(kWidth * sizeof(float))));
  const vuint u = reinterpret_cast<vuint>(load_lanes(&p->value));
  const vuint nearest = (u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u;
  const vuint quiet_nan = (u | 0x400000u) & 0xffff0000u;
  return reinterpret_cast<vfloat>((u & 0x7fffffffu) > 0x7f800000u ? quiet_nan : nearest);
}
inline float load_one(const Bf16Rounded* p) { return round_to_bf16(p->value); }
inline const Bf16Rounded* rounded(const float* p) {
  return reinterpret_cast<const Bf16Rounded*>(p);
}

// Rows per micro-kernel call for NG groups: MR * NG * kPerGroup accumulators, the operands and
// the broadcast must fit the vector registers. AVX-512: 4 rows from 3 groups on, else 8 (the
// tuning measured on Zen 4); AVX2: 6 rows of one group.
template <int NG>
constexpr int rows_per_call() {
  if constexpr (kVecRegs == 32) return NG >= 3 ? 4 : 8;
  constexpr int nv = NG * kPerGroup;
  return std::min(8, (kVecRegs - nv - 1) / nv);
}

// C[0..MR)[0..16*NG) (+)= sum_k A(r,k) * B[k][...]; A(r,k) = A[r*a_rs + k*a_cs]; B fp32 or
// binary16 (TB: load_lanes).
template <int MR, int NG, bool ACC, class TB>
inline __attribute__((always_inline)) void micro(int K, const float* A, ptrdiff_t a_rs,
                                                 ptrdiff_t a_cs, const TB* B, ptrdiff_t ldb,
                                                 float* C, ptrdiff_t ldc) {
  constexpr int NV = NG * kPerGroup;
  vfloat acc[MR][NV];
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v)
      acc[r][v] = ACC ? *reinterpret_cast<const vfloat*>(C + r * ldc + v * kWidth) : vfloat{};
  for (int k = 0; k < K; ++k) {
    const TB* b = B + k * ldb;
    const float* a = A + k * a_cs;
    vfloat bv[NV];
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) {
      bv[v] = load_lanes(b + v * kWidth);
#if defined(__GNUC__) && defined(__AVX__)
      // Keep the operand in a register: otherwise GCC folds the load into each of the MR FMAs
      // and the loop becomes load-bound (measured 90 -> 112 GFLOP/s on one Zen 4 core).
      asm("" : "+v"(bv[v]));
#endif
    }
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) {
      const float x = a[r * a_rs];
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v) acc[r][v] += x * bv[v];
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) *reinterpret_cast<vfloat*>(C + r * ldc + v * kWidth) = acc[r][v];
}

template <int NG, bool ACC, class TB>
void gemm_chunk(int M, int K, const float* A, ptrdiff_t a_rs, ptrdiff_t a_cs, const TB* B,
                ptrdiff_t ldb, float* C, ptrdiff_t ldc) {
  constexpr int MR = rows_per_call<NG>();
  int m = 0;
  for (; m + MR <= M; m += MR)
    micro<MR, NG, ACC>(K, A + m * a_rs, a_rs, a_cs, B, ldb, C + m * ldc, ldc);
  for (; m < M; ++m) micro<1, NG, ACC>(K, A + m * a_rs, a_rs, a_cs, B, ldb, C + m * ldc, ldc);
}

// C (M,N) (+)= A (M,K) B (K,N); B and C row-major with leading dimensions ldb, ldc; A through
// strides so A may be a transposed view; B fp32 or binary16.
template <bool ACC, class TB = float>
void tile_gemm(int M, int N, int K, const float* A, ptrdiff_t a_rs, ptrdiff_t a_cs, const TB* B,
               ptrdiff_t ldb, float* C, ptrdiff_t ldc) {
  int n = 0;
  for (; n + kMaxGroups * kGroup <= N; n += kMaxGroups * kGroup)
    gemm_chunk<kMaxGroups, ACC>(M, K, A, a_rs, a_cs, B + n, ldb, C + n, ldc);
  if constexpr (kMaxGroups > 1) {
    switch ((N - n) / kGroup) {
      case 3: gemm_chunk<3, ACC>(M, K, A, a_rs, a_cs, B + n, ldb, C + n, ldc); n += 48; break;
      case 2: gemm_chunk<2, ACC>(M, K, A, a_rs, a_cs, B + n, ldb, C + n, ldc); n += 32; break;
      case 1: gemm_chunk<1, ACC>(M, K, A, a_rs, a_cs, B + n, ldb, C + n, ldc); n += 16; break;
      default: break;
    }
  }
  if (n == N) return;
  for (int m = 0; m < M; ++m) {  // the last N % 16 columns (HS not a multiple of 16)
    float* c = C + m * ldc;
    if (!ACC) std::fill(c + n, c + N, 0.0f);
    for (int k = 0; k < K; ++k) {
      const float x = A[m * a_rs + k * a_cs];
      const TB* b = B + k * ldb;
      for (int j = n; j < N; ++j) c[j] += x * load_one(b + j);
    }
  }
}

// dst (HS, kBc) = scale * src^T for src (cols, HS) rows; columns cols..kBc-1 zeroed.
inline void transpose_tile(const float* src, int cols, int HS, float scale, float* dst) {
  for (int d = 0; d < HS; ++d) {
    float* row = dst + size_t(d) * kBc;
    for (int j = 0; j < cols; ++j) row[j] = src[size_t(j) * HS + d] * scale;
    for (int j = cols; j < kBc; ++j) row[j] = 0.0f;
  }
}

// With this few query rows (decoding against a cache) S is computed by dot products straight
// from K's rows: transposing a key tile would cost more than the product it serves (one row:
// 2x faster; from 3 rows on the transpose wins, measured at Tk=2048, HS=64).
constexpr int kDotRows = 2;

// The sum of a group's 16 lanes in a fixed tree: lane l plus lane l + 8, then l + 4, l + 2 and
// l + 1, whatever the register width (the order of _mm512_reduce_add_ps).
inline float group_sum(const vfloat* v) {
  float x[kGroup];
  std::memcpy(x, v, sizeof x);
#pragma GCC unroll 4
  for (int w = kGroup / 2; w >= 1; w /= 2)
#pragma GCC unroll 8
    for (int i = 0; i < w; ++i) x[i] += x[i + w];
  return x[0];
}

// scale * (the products of qi and kj summed): 16 lanes along HS (d mod 16), the lanes by
// group_sum, then the HS % 16 last products in order. kj fp32 or binary16.
template <class TK>
inline float dot_by_lanes(const float* qi, const TK* kj, int HS, float scale) {
  const int full = HS / kGroup * kGroup;
  vfloat acc[kPerGroup] = {};
  for (int d = 0; d < full; d += kGroup)
#pragma GCC unroll 2
    for (int v = 0; v < kPerGroup; ++v)
      acc[v] +=
          *reinterpret_cast<const vfloat*>(qi + d + v * kWidth) * load_lanes(kj + d + v * kWidth);
  float sum = group_sum(acc);
  for (int d = full; d < HS; ++d) sum += qi[d] * load_one(kj + d);
  return sum * scale;
}

// s (rows, kBc) = scale * q k^T for q (rows, HS), k (cols, HS); columns cols..kBc-1 zeroed, each
// score as dot_by_lanes gives it. With AVX-512, 4 keys at a time: 4 chains of multiply-adds and
// their lanes summed together (sum4, the same tree). Summing the lanes one after another (what
// `omp simd reduction` gave) made each key a chain of 16 dependent adds: attention took 43% of a
// 16-sequence decoding step of a 4-layer model, most of it in that chain (bench/bench_step).
// k fp32 or binary16 (an f16 KV cache: no tile widened first).
template <class TK>
inline void scores_by_dot(int rows, int cols, int HS, float scale, const float* q, const TK* k,
                          float* s) {
  for (int ii = 0; ii < rows; ++ii) {
    const float* qi = q + size_t(ii) * HS;
    float* srow = s + ii * kBc;
    int jj = 0;
#if defined(__AVX512F__)
    const int full = HS / kGroup * kGroup;
    for (; jj + 4 <= cols; jj += 4) {
      const TK* k0 = k + size_t(jj) * HS;
      __m512 a[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(),
                     _mm512_setzero_ps()};
      for (int d = 0; d < full; d += kGroup) {
        const __m512 qv = _mm512_loadu_ps(qi + d);
#pragma GCC unroll 4
        for (int r = 0; r < 4; ++r) a[r] = _mm512_fmadd_ps(qv, load_lanes(k0 + r * HS + d), a[r]);
      }
      alignas(16) float sums[4];
      _mm_store_ps(sums, sum4(a[0], a[1], a[2], a[3]));
      for (int r = 0; r < 4; ++r) {
        for (int d = full; d < HS; ++d) sums[r] += qi[d] * load_one(k0 + r * HS + d);
        srow[jj + r] = sums[r] * scale;
      }
    }
#endif
    for (; jj < cols; ++jj) srow[jj] = dot_by_lanes(qi, k + size_t(jj) * HS, HS, scale);
    std::fill(srow + cols, srow + kBc, 0.0f);
  }
}

// ---- the fp32 policy -------------------------------------------------------------------------
// K is scaled as it is transposed, so the products give scaled scores. The backward transposes
// a key tile's K and V once and reads dV, dK, dQ in place.
struct Fp32Tiles {
  using Kv = float;  // k and v as stored
  struct ForwardBuffers {
    float* k_tile_t;  // (HS, kBc) K^T tile, scaled
    ForwardBuffers(const AttnShape& s, Carver& c) : k_tile_t(c.take(size_t(s.HS) * kBc)) {}
  };
  struct ForwardPack {  // nothing is packed per head
    ForwardPack(const AttnShape&, Carver&) {}
  };
  struct BackwardBuffers {
    float* k_tile_t;  // (HS, kBc) K^T tile, scaled
    float* v_tile_t;  // (HS, kBc) V^T tile
    BackwardBuffers(const AttnShape& s, Carver& c)
        : k_tile_t(c.take(size_t(s.HS) * kBc)), v_tile_t(c.take(size_t(s.HS) * kBc)) {}
  };
  using Forward = ForwardTile<Fp32Tiles>;
  using Backward = BackwardHead<Fp32Tiles>;

  static constexpr bool kPacksForwardHeads = false;
  static float score(float x, float /*scale*/) { return x; }
  static void scores(const Forward& t, const Tile& x) {
    const int HS = t.s.HS;
    const float* k = t.k + size_t(x.j0) * HS;  // (cols, HS)
    if (x.rows > kDotRows) {
      transpose_tile(k, x.cols, HS, t.scale, t.w.own.k_tile_t);
      tile_gemm<false>(x.rows, kBc, HS, t.q, HS, 1, t.w.own.k_tile_t, kBc, t.w.scores, kBc);
    } else {
      scores_by_dot(x.rows, x.cols, HS, t.scale, t.q, k, t.w.scores);
    }
  }
  static void add_pv(const Forward& t, const Tile& x) {
    const int HS = t.s.HS;
    tile_gemm<true>(x.rows, HS, x.cols, t.w.scores, kBc, 1, t.v + size_t(x.j0) * HS, HS,
                    t.w.out_acc, HS);
  }

  static void pack_backward_head(const Backward&) {}
  static int first_query_row(int i) { return i; }
  static void begin_key_tile(const Backward& t, int j0, int cols) {
    const int HS = t.s.HS;
    transpose_tile(t.k + size_t(j0) * HS, cols, HS, t.scale, t.w.own.k_tile_t);
    transpose_tile(t.v + size_t(j0) * HS, cols, HS, 1.0f, t.w.own.v_tile_t);
  }
  // S = Q (K * scale)^T
  static void scores(const Backward& t, const Tile& x) {
    const int HS = t.s.HS;
    tile_gemm<false>(x.rows, kBc, HS, t.q + size_t(x.i0) * HS, HS, 1, t.w.own.k_tile_t, kBc,
                     t.w.probs, kBc);
  }
  // dV += (P*drop)^T dO
  static void add_dv(const Backward& t, const Tile& x, const float* p_dropped) {
    const int HS = t.s.HS;
    tile_gemm<true>(x.cols, HS, x.rows, p_dropped, 1, kBc, t.dout + size_t(x.i0) * HS, HS,
                    t.dv + size_t(x.j0) * HS, HS);
  }
  // dP = dO V^T
  static void dp(const Backward& t, const Tile& x) {
    const int HS = t.s.HS;
    tile_gemm<false>(x.rows, kBc, HS, t.dout + size_t(x.i0) * HS, HS, 1, t.w.own.v_tile_t, kBc,
                     t.w.dscores, kBc);
  }
  // dQ += (dS * scale) K
  static void add_dq(const Backward& t, const Tile& x) {
    const int HS = t.s.HS;
    tile_gemm<true>(x.rows, HS, x.cols, t.w.dscores, kBc, 1, t.k + size_t(x.j0) * HS, HS,
                    t.dq + size_t(x.i0) * HS, HS);
  }
  // dK += (dS * scale)^T Q
  static void add_dk(const Backward& t, const Tile& x) {
    const int HS = t.s.HS;
    tile_gemm<true>(x.cols, HS, x.rows, t.w.dscores, 1, kBc, t.q + size_t(x.i0) * HS, HS,
                    t.dk + size_t(x.j0) * HS, HS);
  }
  static void end_key_tile(const Backward&, int /*j0*/, int /*cols*/) {}
};

// ---- an f16 KV cache (AttnShape::kv), forward only ---------------------------------------------
// The products of Fp32Tiles on keys and values widened to fp32 (exactly) as they are loaded: the
// results are Fp32Tiles' on the rounded keys and values, bit for bit, from half the bytes. A
// prompt's key tile is widened into scratch first, as Fp32Tiles transposes it.
struct Fp16KvTiles {
  using Kv = uint16_t;
  struct ForwardBuffers {
    float* k_tile_t;  // (HS, kBc) K^T tile, scaled
    float* kv_tile;   // (kBc, HS) a key tile widened (scores)
    ForwardBuffers(const AttnShape& s, Carver& c)
        : k_tile_t(c.take(size_t(s.HS) * kBc)), kv_tile(c.take(size_t(kBc) * s.HS)) {}
  };
  using ForwardPack = Fp32Tiles::ForwardPack;
  using BackwardBuffers = Fp32Tiles::BackwardBuffers;  // sizes the workspace; never run
  using Forward = ForwardTile<Fp16KvTiles>;

  static constexpr bool kPacksForwardHeads = false;
  static float score(float x, float /*scale*/) { return x; }
  static void scores(const Forward& t, const Tile& x) {
    const int HS = t.s.HS;
    const uint16_t* k = t.k + size_t(x.j0) * HS;  // (cols, HS)
    if (x.rows <= kDotRows && HS % kGroup == 0) {
      scores_by_dot(x.rows, x.cols, HS, t.scale, t.q, k, t.w.scores);
      return;
    }
    // A prompt's tile, transposed as Fp32Tiles transposes it, and a head size with a tail past
    // the 16-lane groups: widened first. (Loaded as they go, the tail's products came out
    // differently rounded from fp32's at HS 24: not the same code after compiling.)
    float* wide = t.w.own.kv_tile;
    widen(wide, k, WeightType::f16, int64_t(x.cols) * HS);
    if (x.rows > kDotRows) {
      transpose_tile(wide, x.cols, HS, t.scale, t.w.own.k_tile_t);
      tile_gemm<false>(x.rows, kBc, HS, t.q, HS, 1, t.w.own.k_tile_t, kBc, t.w.scores, kBc);
    } else {
      scores_by_dot(x.rows, x.cols, HS, t.scale, t.q, static_cast<const float*>(wide), t.w.scores);
    }
  }
  static void add_pv(const Forward& t, const Tile& x) {
    const int HS = t.s.HS;
    tile_gemm<true>(x.rows, HS, x.cols, t.w.scores, kBc, 1, t.v + size_t(x.j0) * HS, HS,
                    t.w.out_acc, HS);
  }
};

}  // namespace alibi::cpu::attention_detail
