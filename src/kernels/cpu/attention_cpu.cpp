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
// Determinism: every task writes its own rows (forward: one query tile; backward: one (b,h)),
// scratch is per thread, and the t5 gradient is summed per (b,h, distance) and reduced in a
// fixed order after the parallel loop, so the results do not depend on the thread count.
#include "kernels/attention.h"
#include "kernels/cpu/vec_math.h"

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

// Per-thread scratch of each pass, in floats.
size_t forward_floats(const AttnShape& s) {
  return padded(size_t(s.HS) * kBc)      // kt (HS, kBc)
         + padded(size_t(kBr) * kBc)     // s / p (kBr, kBc)
         + padded(size_t(kBr) * s.HS);   // o accumulator (kBr, HS)
}
size_t backward_floats(const AttnShape& s) {
  return 2 * padded(size_t(s.HS) * kBc)  // kt, vt (HS, kBc)
         + 3 * padded(size_t(kBr) * kBc) // p, dropout scale, y = p*drop -> dp -> ds (kBr, kBc)
         + padded(size_t(s.Tq));         // D_i = rowsum(dO_i * O_i) (Tq)
}
size_t per_thread_floats(const AttnShape& s) {
  return std::max(forward_floats(s), backward_floats(s));
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
#if defined(__GNUC__) && defined(__x86_64__)
      // Keep the operand in a register: otherwise GCC folds the load into each of the MR FMAs
      // and the loop becomes load-bound (measured 90 -> 112 GFLOP/s on one Zen 4 core).
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
void forward_tile(const AttnShape& s, int bh, int i0, const float* q, const float* k,
                  const float* v, const ScoreBias& bias, const AttnDropout& drop, float* out,
                  float* lse, float* ws) {
  const int HS = s.HS, NH = s.NH, Tq = s.Tq, Tk = s.Tk;
  const int off = Tk - Tq;  // pos(i) = off + i
  const int h = bh % NH;
  const int rows = std::min(kBr, Tq - i0);
  const float scale = 1.0f / std::sqrt(float(HS));
  const size_t ldk = size_t(s.kv_rows());
  const float* qt = q + (size_t(bh) * Tq + i0) * HS;  // (rows, HS)
  const float* kb = k + size_t(bh) * ldk * HS;        // (Tk, HS)
  const float* vb = v + size_t(bh) * ldk * HS;        // (Tk, HS)

  float* kt = ws;                                   // (HS, kBc) scaled K^T tile
  float* st = kt + padded(size_t(HS) * kBc);        // (kBr, kBc) scores, then probabilities
  float* ot = st + padded(size_t(kBr) * kBc);       // (kBr, HS) unnormalised output
  float m[kBr], l[kBr], band[kBand];                // running max, running sum, bias band
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
    if (rows > kDotRows) {  // S = Q K^T * scale
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
        const float x = srow[jj] + brow[jj];
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
    tile_gemm<true>(rows, HS, cols, st, kBc, 1, vb + size_t(j0) * HS, HS, ot, HS);  // O += P V
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

// ---- fused backward: one (b,h) -------------------------------------------------------------
// Outer loop over key tiles, inner over the query tiles that see them. The task owns its dq,
// dk, dv rows, so it accumulates into them directly. dist (Tk), when non-null, receives
// sum of dS at distance d in slot Tk - 1 - d (so a row's run of keys maps to a contiguous run).
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

  float* kt = ws;                                   // (HS, kBc) scaled K^T tile
  float* vt = kt + padded(size_t(HS) * kBc);        // (HS, kBc) V^T tile
  float* pt = vt + padded(size_t(HS) * kBc);        // (kBr, kBc) P
  float* mt = pt + padded(size_t(kBr) * kBc);       // (kBr, kBc) dropout scale: 1/(1-p) or 0
  float* yt = mt + padded(size_t(kBr) * kBc);       // (kBr, kBc) P*drop, then dP, then dS*scale
  float* D = yt + padded(size_t(kBr) * kBc);        // (Tq) rowsum(dO * O)
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
    transpose_tile(kb + size_t(j0) * HS, cols, HS, scale, kt);
    transpose_tile(vb + size_t(j0) * HS, cols, HS, 1.0f, vt);
    if (dropout)
      for (int jj = 0; jj < cols; ++jj) col_mix[jj] = mix64(uint64_t(j0 + jj));
    const float* kj = kb + size_t(j0) * HS;  // (cols, HS)
    float* dkj = dkb + size_t(j0) * HS;
    float* dvj = dvb + size_t(j0) * HS;

    for (int i0 = std::max(0, j0 - off); i0 < Tq; i0 += kBr) {  // first row that sees key j0
      const int rows = std::min(kBr, Tq - i0);
      const float* qi = qb + size_t(i0) * HS;
      const float* doi = dob + size_t(i0) * HS;
      fill_band(bias, h, NH, off + i0 - j0, band);
      tile_gemm<false>(rows, kBc, HS, qi, HS, 1, kt, kBc, pt, kBc);  // S = Q K^T * scale

      for (int ii = 0; ii < rows; ++ii) {  // P = exp(S + bias - lse), 0 where masked
        float* prow = pt + ii * kBc;
        const int nj = std::min(cols, off + i0 + ii - j0 + 1);  // >= 1 by the choice of i0
        const float* brow = band + (kBr - 1 - ii);
        const float li = lb[i0 + ii];
#pragma omp simd
        for (int jj = 0; jj < nj; ++jj) prow[jj] = fast_exp(prow[jj] + brow[jj] - li);
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
      // dV += (P*drop)^T dO
      tile_gemm<true>(cols, HS, rows, dropout ? yt : pt, 1, kBc, doi, HS, dvj, HS);
      // dP = dO V^T (times the dropout scale below)
      tile_gemm<false>(rows, kBc, HS, doi, HS, 1, vt, kBc, yt, kBc);

      for (int ii = 0; ii < rows; ++ii) {  // dS = P * (dP - D_i); masked and padded P are 0
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
          const int nj = std::min(cols, off + i0 + ii - j0 + 1);
          float* drow = dist + (Tk - 1 - (off + i0 + ii) + j0);
#pragma omp simd
          for (int jj = 0; jj < nj; ++jj) drow[jj] += yrow[jj];
        }
#pragma omp simd
        for (int jj = 0; jj < kBc; ++jj) yrow[jj] *= scale;
      }
      tile_gemm<true>(rows, HS, cols, yt, kBc, 1, kj, HS, dqb + size_t(i0) * HS, HS);  // dQ
      tile_gemm<true>(cols, HS, rows, yt, 1, kBc, qi, HS, dkj, HS);                    // dK
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
  return kAlignFloats + size_t(std::max(threads, 1)) * per_thread_floats(s) +
         padded(size_t(s.B) * s.NH * s.Tk);  // backward: t5 gradient per (b,h, distance)
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
  const int tiles = (s.Tq + kBr - 1) / kBr;
  const int tasks = s.B * s.NH * tiles;
  // Within a head, tasks alternate the costliest and the cheapest remaining tile (causal cost
  // grows with the tile index), and chunks of two keep each thread's share even.
#pragma omp parallel for schedule(static, 2)
  for (int t = 0; t < tasks; ++t) {
    const int bh = t / tiles, r = t % tiles;
    const int tile = (r % 2 == 0) ? tiles - 1 - r / 2 : r / 2;
    forward_tile(s, bh, tile * kBr, q, k, v, bias, drop, out, lse,
                 base + size_t(omp_get_thread_num()) * per_thread);
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
  float* dist_all = base + size_t(omp_get_max_threads()) * per_thread;  // (B*NH, Tk)
#pragma omp parallel for schedule(static)
  for (int bh = 0; bh < nbh; ++bh)
    backward_head(s, bh, q, k, v, out, lse, dout, bias, drop, dq, dk, dv,
                  t5_grad ? dist_all + size_t(bh) * s.Tk : nullptr,
                  base + size_t(omp_get_thread_num()) * per_thread);
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
