#pragma once
// bf16 tile products of the fused attention (AttnShape::precision, AVX512-BF16): a vdpbf16ps
// micro-kernel, the packing of its operands and the Bf16Tiles policy of the skeletons in
// attention_tiles.h. Internal to attention_cpu.cpp. The bias, the scores, the softmax
// statistics and all outputs stay fp32.
//
// vdpbf16ps adds a[2n] b[2n] + a[2n+1] b[2n+1] into fp32 lane n, so bf16 operands travel as
// 32-bit pairs along the reduction index k (kp = k / 2):
//   A operand: pairs of one row,  A32[r * a_rs + kp] = (A(r, 2kp), A(r, 2kp + 1))
//   B operand: row pairs ("VNNI"), B32[kp * ldb + n] = (B(2kp, n), B(2kp + 1, n))
// An odd K is padded with zeros. Values are rounded to the nearest even bf16 (vcvtne*ps2bf16).
// Everything that needs a transposed pair layout (K^T, V^T, Q^T, dO^T) is packed once per head;
// inside the tile loops the only conversions are of P and dS, contiguous and vectorised.
#include <immintrin.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "kernels/cpu/attention_fp32.h"  // the decoding rows' dot products
#include "kernels/cpu/attention_tiles.h"

namespace alibi::cpu::attention_detail {

#define ALIBI_BF16 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16")))

constexpr int pairs(int n) { return (n + 1) / 2; }  // bf16 pairs that hold n values
constexpr int round16(int n) { return (n + 15) / 16 * 16; }
inline size_t key_tiles(const AttnShape& s) { return size_t(s.Tk + kBc - 1) / kBc; }

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

// ---- packing ---------------------------------------------------------------------------------
// dst (bf16, n_pad values) = src[0..n), zeros after n: a row as A-operand pairs.
ALIBI_BF16 inline void row_to_bf16(const float* src, int n, int n_pad, uint16_t* dst) {
  for (int c = 0; c < n_pad; c += 16) {
    const __m512 x = _mm512_maskz_loadu_ps(lanes(n - c), src + c);
    _mm256_mask_storeu_epi16(dst + c, lanes(n_pad - c), (__m256i)_mm512_cvtneps_pbh(x));
  }
}

// x (rows, n; leading dimension ldx) as A-operand rows: dst32[r * pairs(n_pad) + kp].
inline void rows_to_bf16(const float* x, int rows, int n, int n_pad, ptrdiff_t ldx,
                         uint32_t* dst) {
  for (int r = 0; r < rows; ++r)
    row_to_bf16(x + r * ldx, n, n_pad, reinterpret_cast<uint16_t*>(dst + r * pairs(n_pad)));
}

// Row pairs of src (rows, n; leading dimension lds) as a B operand: dst32[ip * ldd + c] =
// (src(2ip, c), src(2ip + 1, c)) for c < ldd, zero past n columns and past the last row.
ALIBI_BF16 inline void rows_to_pairs(const float* src, int rows, int n, ptrdiff_t lds,
                                     uint32_t* dst, ptrdiff_t ldd) {
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
inline void transpose32(const uint32_t* src, int rows, int cols, ptrdiff_t lds, uint32_t* dst,
                        ptrdiff_t ldd) {
  for (int r = 0; r < rows; ++r)
    for (int c = 0; c < cols; ++c) dst[c * ldd + r] = src[r * lds + c];
}

// x (n, HS) as the B operand of S = Q x^T, one key tile at a time: tile jt is (pairs(HS), kBc),
// tile32[dp * kBc + jj] = (x(jt*kBc + jj, 2dp), x(jt*kBc + jj, 2dp + 1)), zero past row n.
// tmp holds kBc * pairs(HS) pairs.
inline void pack_key_tiles(const float* x, int n, int HS, uint32_t* tmp, uint32_t* tiles) {
  const int hp = pairs(HS);
  for (int j0 = 0; j0 < n; j0 += kBc) {
    const int cols = std::min(kBc, n - j0);
    rows_to_bf16(x + size_t(j0) * HS, cols, HS, 2 * hp, HS, tmp);
    std::fill(tmp + size_t(cols) * hp, tmp + size_t(kBc) * hp, 0u);
    transpose32(tmp, kBc, hp, hp, tiles + size_t(j0 / kBc) * hp * kBc, kBc);
  }
}

// The key tile of packed tiles that holds key j0.
inline const uint32_t* key_tile(const uint32_t* tiles, int j0, int HS) {
  return tiles + size_t(j0 / kBc) * pairs(HS) * kBc;
}

// x (rows, HS) as the A operand of a transposed product: xt32[d * ldt + ip] = (x(2ip, d),
// x(2ip + 1, d)), d < HS, ip < pairs(rows). tmp holds pairs(kBr) * round16(HS) pairs.
inline void pack_transposed_pairs(const float* x, int rows, int HS, uint32_t* tmp, uint32_t* xt,
                                  ptrdiff_t ldt) {
  const int ld = round16(HS);
  for (int r0 = 0; r0 < rows; r0 += kBr) {
    const int n = std::min(kBr, rows - r0);
    rows_to_pairs(x + size_t(r0) * HS, n, HS, HS, tmp, ld);
    transpose32(tmp, pairs(n), HS, ld, xt + r0 / 2, ldt);
  }
}

// ---- the bf16 policy -------------------------------------------------------------------------
// The products give unscaled scores (Q and K are rounded as they are). The backward accumulates
// a key tile's dV and dK transposed (dV^T += dO^T (P*drop), dK^T += Q^T dS), so that no
// tile-sized transpose of P or dS is needed, and writes them back once per key tile.
struct Bf16Tiles {
  using Kv = float;  // k and v as stored
  struct ForwardBuffers {
    uint32_t* p_rows;    // (kBr, kBc / 2) P as A pairs
    uint32_t* pack_tmp;  // (kBc, pairs(HS)) packing scratch of pack_forward_head
    float* q_rounded;    // (kDotRows, HS) a decoding call's query rows, rounded
    ForwardBuffers(const AttnShape& s, Carver& c)
        : p_rows(c.take<uint32_t>(size_t(kBr) * kBc / 2)),
          pack_tmp(c.take<uint32_t>(size_t(kBc) * pairs(s.HS))),
          q_rounded(c.take(size_t(kDotRows) * s.HS)) {}
  };
  // A call of at most kDotRows query rows (decoding against a cache) packs nothing: packing every
  // cached key and value of a head for a row or two cost more than the products (at 3,000
  // cached tokens bf16 decoded at half fp32's speed). Its scores and P V are the fp32 path's
  // dot products and tile products on operands rounded to bf16 as they are loaded
  // (Bf16Rounded): the same rounded operands, accumulated in fp32, in the fp32 path's order.
  static bool decoding(const AttnShape& s) { return s.Tq <= kDotRows; }
  static bool packs_forward_head(const AttnShape& s) { return !decoding(s); }
  // One head's operands, packed before the tile loop into a region shared by the threads.
  struct ForwardPack {
    uint32_t* q_rows;       // (Tq, pairs(HS)) Q rows (A)
    uint32_t* k_t_tiles;    // key tiles of (pairs(HS), kBc): K^T (B)
    uint32_t* v_row_pairs;  // (pairs(Tk), round16(HS)) V row pairs (B)
    ForwardPack(const AttnShape& s, Carver& c)
        : q_rows(c.take<uint32_t>(size_t(s.Tq) * pairs(s.HS))),
          k_t_tiles(c.take<uint32_t>(key_tiles(s) * pairs(s.HS) * kBc)),
          v_row_pairs(c.take<uint32_t>(size_t(pairs(s.Tk)) * round16(s.HS))) {}
  };
  // The head's operands, packed once per head, and the per-tile conversions.
  struct BackwardBuffers {
    uint32_t *q_rows, *dout_rows;    // (Tq, pairs(HS)) Q, dO rows (A)
    uint32_t *q_t, *dout_t;          // (HS, pairs(Tq)) Q^T, dO^T (A)
    uint32_t *k_t_tiles, *v_t_tiles; // key tiles of (pairs(HS), kBc): K^T, V^T (B)
    uint32_t* k_row_pairs;           // (pairs(Tk), round16(HS)) K row pairs (B)
    uint32_t* pack_tmp;              // packing scratch
    uint32_t* y_row_pairs;           // (pairs(kBr), kBc) P*drop, then dS*scale, row pairs (B)
    uint32_t* ds_rows;               // (kBr, kBc / 2) dS*scale rows (A)
    float *dv_t, *dk_t;              // (HS, kBc) dV^T, dK^T of the key tile
    BackwardBuffers(const AttnShape& s, Carver& c) {
      const size_t hp = pairs(s.HS), ld16 = round16(s.HS);
      q_rows = c.take<uint32_t>(size_t(s.Tq) * hp);
      dout_rows = c.take<uint32_t>(size_t(s.Tq) * hp);
      q_t = c.take<uint32_t>(size_t(s.HS) * pairs(s.Tq));
      dout_t = c.take<uint32_t>(size_t(s.HS) * pairs(s.Tq));
      k_t_tiles = c.take<uint32_t>(key_tiles(s) * hp * kBc);
      v_t_tiles = c.take<uint32_t>(key_tiles(s) * hp * kBc);
      k_row_pairs = c.take<uint32_t>(size_t(pairs(s.Tk)) * ld16);
      pack_tmp = c.take<uint32_t>(std::max(kBc * hp, size_t(pairs(kBr)) * ld16));
      y_row_pairs = c.take<uint32_t>(size_t(pairs(kBr)) * kBc);
      ds_rows = c.take<uint32_t>(size_t(kBr) * kBc / 2);
      dv_t = c.take(size_t(s.HS) * kBc);
      dk_t = c.take(size_t(s.HS) * kBc);
    }
  };
  using Forward = ForwardTile<Bf16Tiles>;
  using Backward = BackwardHead<Bf16Tiles>;

  static constexpr bool kPacksForwardHeads = true;
  // Q rows, K^T tiles and V row pairs of head bh into its ForwardPack region `packed`; ws: this
  // thread's forward scratch.
  static void pack_forward_head(const AttnShape& s, int bh, const float* q, const float* k,
                                const float* v, float* packed, float* ws) {
    const int HS = s.HS, Tq = s.Tq, Tk = s.Tk;
    const size_t ldk = size_t(s.kv_rows());
    Carver cw{ws}, cp{packed};
    const ForwardScratch<Bf16Tiles> w(s, cw);
    const ForwardPack pk(s, cp);
    rows_to_bf16(q + size_t(bh) * Tq * HS, Tq, HS, 2 * pairs(HS), HS, pk.q_rows);
    pack_key_tiles(k + size_t(bh) * ldk * HS, Tk, HS, w.own.pack_tmp, pk.k_t_tiles);
    rows_to_pairs(v + size_t(bh) * ldk * HS, Tk, HS, HS, pk.v_row_pairs, round16(HS));
  }
  static float score(float x, float scale) { return x * scale; }
  static void scores(const Forward& t, const Tile& x) {
    if (decoding(t.s)) {  // unscaled, as the tile products give them
      if (x.j0 == 0)      // the task's first key tile: its query rows rounded once for all
        for (int i = 0; i < x.rows * t.s.HS; ++i) t.w.own.q_rounded[i] = round_to_bf16(t.q[i]);
      scores_by_dot(x.rows, x.cols, t.s.HS, 1.0f, t.w.own.q_rounded,
                    rounded(t.k) + size_t(x.j0) * t.s.HS, t.w.scores);
      return;
    }
    const int hp = pairs(t.s.HS);
    tile_gemm_bf16<false>(x.rows, kBc, hp, t.pack.q_rows + size_t(x.i0) * hp, hp,
                          key_tile(t.pack.k_t_tiles, x.j0, t.s.HS), kBc, t.w.scores, kBc);
  }
  static void add_pv(const Forward& t, const Tile& x) {
    const int HS = t.s.HS;
    if (decoding(t.s)) {  // P rounded in place: the row sums are taken already
      for (int ii = 0; ii < x.rows; ++ii)
        for (int jj = 0; jj < x.cols; ++jj)
          t.w.scores[ii * kBc + jj] = round_to_bf16(t.w.scores[ii * kBc + jj]);
      tile_gemm<true>(x.rows, HS, x.cols, t.w.scores, kBc, 1, rounded(t.v) + size_t(x.j0) * HS, HS,
                      t.w.out_acc, HS);
      return;
    }
    rows_to_bf16(t.w.scores, x.rows, kBc, kBc, kBc, t.w.own.p_rows);
    tile_gemm_bf16<true>(x.rows, HS, pairs(x.cols), t.w.own.p_rows, kBc / 2,
                         t.pack.v_row_pairs + size_t(x.j0 / 2) * round16(HS), round16(HS),
                         t.w.out_acc, HS);
  }

  static void pack_backward_head(const Backward& t) {
    const int HS = t.s.HS, Tq = t.s.Tq, Tk = t.s.Tk, hp = pairs(HS);
    const BackwardBuffers& b = t.w.own;
    rows_to_bf16(t.q, Tq, HS, 2 * hp, HS, b.q_rows);
    rows_to_bf16(t.dout, Tq, HS, 2 * hp, HS, b.dout_rows);
    pack_transposed_pairs(t.q, Tq, HS, b.pack_tmp, b.q_t, pairs(Tq));
    pack_transposed_pairs(t.dout, Tq, HS, b.pack_tmp, b.dout_t, pairs(Tq));
    pack_key_tiles(t.k, Tk, HS, b.pack_tmp, b.k_t_tiles);
    pack_key_tiles(t.v, Tk, HS, b.pack_tmp, b.v_t_tiles);
    rows_to_pairs(t.k, Tk, HS, HS, b.k_row_pairs, round16(HS));
  }
  // Query tiles start on an even row, where the row pairs of Q^T and dO^T begin.
  static int first_query_row(int i) { return i & ~1; }
  static void begin_key_tile(const Backward& t, int /*j0*/, int /*cols*/) {
    const BackwardBuffers& b = t.w.own;
    std::fill(b.dv_t, b.dv_t + size_t(t.s.HS) * kBc, 0.0f);
    std::fill(b.dk_t, b.dk_t + size_t(t.s.HS) * kBc, 0.0f);
  }
  static void scores(const Backward& t, const Tile& x) {
    const int hp = pairs(t.s.HS);
    tile_gemm_bf16<false>(x.rows, kBc, hp, t.w.own.q_rows + size_t(x.i0) * hp, hp,
                          key_tile(t.w.own.k_t_tiles, x.j0, t.s.HS), kBc, t.w.probs, kBc);
  }
  // dV^T += dO^T (P*drop)
  static void add_dv(const Backward& t, const Tile& x, const float* p_dropped) {
    const BackwardBuffers& b = t.w.own;
    rows_to_pairs(p_dropped, x.rows, kBc, kBc, b.y_row_pairs, kBc);
    tile_gemm_bf16<true>(t.s.HS, kBc, pairs(x.rows), b.dout_t + x.i0 / 2, pairs(t.s.Tq),
                         b.y_row_pairs, kBc, b.dv_t, kBc);
  }
  // dP = dO V^T
  static void dp(const Backward& t, const Tile& x) {
    const int hp = pairs(t.s.HS);
    tile_gemm_bf16<false>(x.rows, kBc, hp, t.w.own.dout_rows + size_t(x.i0) * hp, hp,
                          key_tile(t.w.own.v_t_tiles, x.j0, t.s.HS), kBc, t.w.dscores, kBc);
  }
  // dQ += (dS * scale) K
  static void add_dq(const Backward& t, const Tile& x) {
    const int HS = t.s.HS;
    const BackwardBuffers& b = t.w.own;
    rows_to_bf16(t.w.dscores, x.rows, kBc, kBc, kBc, b.ds_rows);
    tile_gemm_bf16<true>(x.rows, HS, pairs(x.cols), b.ds_rows, kBc / 2,
                         b.k_row_pairs + size_t(x.j0 / 2) * round16(HS), round16(HS),
                         t.dq + size_t(x.i0) * HS, HS);
  }
  // dK^T += Q^T (dS * scale)
  static void add_dk(const Backward& t, const Tile& x) {
    const BackwardBuffers& b = t.w.own;
    rows_to_pairs(t.w.dscores, x.rows, kBc, kBc, b.y_row_pairs, kBc);
    tile_gemm_bf16<true>(t.s.HS, kBc, pairs(x.rows), b.q_t + x.i0 / 2, pairs(t.s.Tq),
                         b.y_row_pairs, kBc, b.dk_t, kBc);
  }
  // The key tile's dV, dK rows, written once.
  static void end_key_tile(const Backward& t, int j0, int cols) {
    const int HS = t.s.HS;
    const BackwardBuffers& b = t.w.own;
    float* dv = t.dv + size_t(j0) * HS;  // (cols, HS)
    float* dk = t.dk + size_t(j0) * HS;
    for (int jj = 0; jj < cols; ++jj)
      for (int d = 0; d < HS; ++d) {
        dv[size_t(jj) * HS + d] = b.dv_t[size_t(d) * kBc + jj];
        dk[size_t(jj) * HS + d] = b.dk_t[size_t(d) * kBc + jj];
      }
  }
};

#undef ALIBI_BF16

}  // namespace alibi::cpu::attention_detail
