#pragma once
// The fused attention's two tile loops, shared by the fp32 and the bf16 tile products. Internal
// to attention_cpu.cpp; the maths and the shapes are in kernels/attention.h.
//
// A query tile is kBr rows, a key tile kBc columns. The skeletons below do everything that does
// not depend on the operand precision: the bias, the online softmax, dropout, dS, the t5
// gradient. A tile policy P (Fp32Tiles in attention_fp32.h, Bf16Tiles in attention_bf16.h) does
// the rest: every product, the packing of its operands and what happens around a key tile.
//   P::ForwardBuffers, P::BackwardBuffers   its per-thread scratch
//   P::ForwardPack                          one head's operands, packed before the forward's
//                                           tile loop (kPacksForwardHeads, pack_forward_head)
//   P::score(x, scale)                      a product's output as a scaled score
//   P::scores(t, x)                         S = Q K^T of tile x
//   P::add_pv(t, x)                         O += P V
//   P::pack_backward_head(t)                the backward's per-head packing
//   P::first_query_row(i)                   where the backward's query tiles start
//   P::begin_key_tile, P::end_key_tile      set-up and write-back of a backward key tile
//   P::add_dv, P::dp, P::add_dq, P::add_dk  dV += (P*drop)^T dO, dP = dO V^T, dQ += dS K,
//                                           dK += dS^T Q
// The bias depends only on d = pos(i) - j, so a (kBr, kBc) tile needs kBr + kBc - 1 values:
// band[k] = bias(base + kBr - 1 - k), base = pos(i0) - j0, read as band[kBr - 1 - ii + jj].
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>

#include "core/rng.h"
#include "kernels/attention.h"
#include "kernels/cpu/vec_math.h"

namespace alibi::cpu::attention_detail {

constexpr int kBr = 64;                // query rows per tile
constexpr int kBc = 64;                // key columns per tile
constexpr int kBand = kBr + kBc - 1;   // distinct distances in one tile
constexpr size_t kAlignFloats = 16;    // 64-byte alignment of each workspace buffer

inline size_t padded(size_t n) { return (n + kAlignFloats - 1) / kAlignFloats * kAlignFloats; }

// Carves consecutive 64-byte aligned buffers out of a workspace (a bf16 pair is one 32-bit
// slot). With a null base it only counts: each layout below both sizes the workspace and lays it
// out, from one description.
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

template <class Layout>
size_t layout_floats(const AttnShape& s) {
  Carver c;
  const Layout layout(s, c);
  return c.used;
}

// Query rows i0..i0+rows-1 against key columns j0..j0+cols-1 of one head.
struct Tile {
  int i0, rows, j0, cols;
};

// ---- bias and dropout ------------------------------------------------------------------------
// The t5 bucket of distance d (kernels/attention.h: one direction, or half the buckets each).
inline int t5_bucket_of(const ScoreBias& b, int d, bool causal) {
  const int nb = causal ? b.num_buckets : b.num_buckets / 2, a = d < 0 ? -d : d;
  const int bucket = a < b.t5_max_distance ? b.t5_bucket[a] : nb - 1;
  return d < 0 ? nb + bucket : bucket;
}

// Bias of head h at distance d, in fp32 (alibi: -m_h * |d|; float(d) is exact below 2^24). fire
// depends on the query row too: fire_row below.
inline float bias_at(const ScoreBias& b, int h, int NH, int d, bool causal) {
  const int a = d < 0 ? -d : d;
  switch (b.kind) {
    case BiasKind::alibi: return -b.slopes[h] * float(a);
    case BiasKind::t5: return b.t5_table[size_t(t5_bucket_of(b, d, causal)) * NH + h];
    case BiasKind::table: return b.table[size_t(h) * b.table_len + a];
    case BiasKind::fire:
    case BiasKind::none: break;
  }
  return 0.0f;
}

// FIRE's segment of x: knots[s - 1] <= x < knots[s], found by walking from the last one (x moves
// monotonically along a row, by one |d| step at a time).
inline int fire_segment(const FireBias& f, float x, int s) {
  const int last = f.segments - 1;
  while (s > 0 && x < f.knots[s - 1]) --s;
  while (s < last && x >= f.knots[s]) ++s;
  return s;
}

// row[jj], jj < nj: FIRE's bias of head h for query row i (scale r_i) against the keys at
// distances d0, d0 - 1, ... (causal: d0 - jj >= 0).
inline void fire_row(const ScoreBias& b, int h, int i, int d0, int nj, float* row) {
  const FireBias& f = b.fire;
  const float r = f.row_scale[i];
  const float* a = f.slope + size_t(h) * f.segments;
  const float* c = f.icept + size_t(h) * f.segments;
  int s = 0;
  for (int jj = 0; jj < nj; ++jj) {
    const int d = d0 - jj;
    const float x = f.psi[d < 0 ? -d : d] * r;
    s = fire_segment(f, x, s);
    row[jj] = a[s] * x + c[s];
  }
}

// FIRE's gradient statistics (FireBias) of query row i: g[jj] the dS of the keys at distances
// d0, d0 - 1, ... into st (segments, kFireStats), in double, in the order of jj.
inline void fire_row_stats(const ScoreBias& b, int i, int d0, int nj, const float* g,
                           double* st) {
  const FireBias& f = b.fire;
  const double r = f.row_scale[i], rc = f.row_dc[i], rt = f.row_dthr[i];
  int s = 0;
  for (int jj = 0; jj < nj; ++jj) {
    const int d = d0 - jj, a = d < 0 ? -d : d;
    const float x = f.psi[a] * f.row_scale[i];
    s = fire_segment(f, x, s);
    const double dS = g[jj], p = f.psi[a];
    double* t = st + size_t(s) * kFireStats;
    t[0] += dS;
    t[1] += dS * double(x);
    t[2] += dS * (double(f.dpsi[a]) * r - p * rc);
    t[3] -= dS * p * rt;
  }
}

// band[k] = bias at distance base + kBr - 1 - k, for the k that a tile of `rows` query rows reads
// (row ii reads from kBr - 1 - ii on: one decoded row, half the band). Causal distances < 0 are
// masked, and a table's distances past table_len are those of a tile's padding rows or columns:
// both are never read.
inline void fill_band(const ScoreBias& b, int h, int NH, int base, bool causal, int rows,
                      float* band) {
  for (int k = kBr - rows; k < kBand; ++k) {
    const int d = base + kBr - 1 - k, a = d < 0 ? -d : d;
    const bool read = (d >= 0 || !causal) && (b.kind != BiasKind::table || a < b.table_len);
    band[k] = read ? bias_at(b, h, NH, d, causal) : 0.0f;
  }
}

// Keys a tile row sees: the row at position pos against columns j0..j0+cols-1.
inline int visible_cols(const AttnShape& s, int pos, int j0, int cols) {
  return s.causal ? std::clamp(pos - j0 + 1, 0, cols) : cols;
}

// keep(b,h,i,j) = u01(hash64(seed, bh, i, j)) >= p, i.e. u01(mix64(row_hash ^ mix64(j))) with
// row_hash = hash64(hash64(seed, bh), i): mix64(j) is hoisted per key tile, row_hash per row.
inline float keep_scale(uint64_t row_hash, uint64_t col_mix, float p, float inv_keep) {
  return u01(mix64(row_hash ^ col_mix)) >= p ? inv_keep : 0.0f;
}

// ---- forward: one (b,h) and one query tile ---------------------------------------------------
// Per-thread scratch of the forward.
template <class P>
struct ForwardScratch {
  float* scores;                   // (kBr, kBc) S, then the (dropped) probabilities
  float* out_acc;                  // (kBr, HS) unnormalised output
  typename P::ForwardBuffers own;  // the policy's
  ForwardScratch(const AttnShape& s, Carver& c)
      : scores(c.take(size_t(kBr) * kBc)), out_acc(c.take(size_t(kBr) * s.HS)), own(s, c) {}
};

// What the policy's forward steps read.
template <class P>
struct ForwardTile {
  const AttnShape& s;
  float scale;                   // 1/sqrt(HS)
  const float* q;                // (rows, HS) the tile's queries
  const typename P::Kv* k;       // (Tk, HS) the head's keys, as stored (P::Kv)
  const typename P::Kv* v;       // (Tk, HS) the head's values
  ForwardScratch<P> w;           // this thread's
  typename P::ForwardPack pack;  // the head's operands, packed by P::pack_forward_head
};

// out and lse of query rows i0.. of head bh. packed: the head's P::ForwardPack region; ws: this
// thread's scratch.
template <class P>
void forward_tile(const AttnShape& s, int bh, int i0, const float* q, const typename P::Kv* k,
                  const typename P::Kv* v, const ScoreBias& bias, const AttnDropout& drop,
                  float* out, float* lse, float* packed, float* ws) {
  const int HS = s.HS, NH = s.NH, Tq = s.Tq, Tk = s.Tk;
  const int off = Tk - Tq;  // pos(i) = off + i
  const int h = bh % NH;
  const int rows = std::min(kBr, Tq - i0);
  const size_t ldk = size_t(s.kv_rows());
  Carver cw{ws}, cp{packed};
  const ForwardTile<P> t{s,
                         1.0f / std::sqrt(float(HS)),
                         q + (size_t(bh) * Tq + i0) * HS,
                         k + size_t(bh) * ldk * HS,
                         v + size_t(bh) * ldk * HS,
                         ForwardScratch<P>(s, cw),
                         typename P::ForwardPack(s, cp)};
  const float scale = t.scale;
  float* const scores = t.w.scores;
  float* const out_acc = t.w.out_acc;
  float m[kBr], l[kBr], band[kBand];  // running max, running sum, bias band
  float fire_buf[kBc];                 // a row's bias when it depends on the row (fire)
  const bool fire = bias.kind == BiasKind::fire;
  uint64_t col_mix[kBc];

  std::fill(out_acc, out_acc + size_t(rows) * HS, 0.0f);
  std::fill(m, m + kBr, -std::numeric_limits<float>::infinity());
  std::fill(l, l + kBr, 0.0f);
  const bool dropout = drop.p > 0.0f;
  const float p_drop = drop.p, inv_keep = 1.0f / (1.0f - drop.p);
  const uint64_t head_hash = dropout ? hash64(drop.seed, uint64_t(bh)) : 0;

  // the tile's last row sees keys 0..last_key
  const int last_key = s.causal ? off + i0 + rows - 1 : Tk - 1;
  for (int j0 = 0; j0 <= last_key; j0 += kBc) {
    const Tile x{i0, rows, j0, std::min(kBc, Tk - j0)};
    const int cols = x.cols;
    fill_band(bias, h, NH, off + i0 - j0, s.causal, rows, band);
    P::scores(t, x);
    if (dropout)
      for (int jj = 0; jj < cols; ++jj) col_mix[jj] = mix64(uint64_t(j0 + jj));

    for (int ii = 0; ii < rows; ++ii) {
      float* srow = scores + ii * kBc;
      const int nj = visible_cols(s, off + i0 + ii, j0, cols);  // visible keys of this row
      if (nj <= 0) {
        std::fill(srow, srow + kBc, 0.0f);
        continue;
      }
      const float* brow = band + (kBr - 1 - ii);
      if (fire) {
        fire_row(bias, h, i0 + ii, off + i0 + ii - j0, nj, fire_buf);
        brow = fire_buf;
      }
      float mx = -std::numeric_limits<float>::infinity();
#pragma omp simd reduction(max : mx)
      for (int jj = 0; jj < nj; ++jj) {
        const float sc = P::score(srow[jj], scale) + brow[jj];
        srow[jj] = sc;
        mx = sc > mx ? sc : mx;
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
        float* orow = out_acc + size_t(ii) * HS;
#pragma omp simd
        for (int d = 0; d < HS; ++d) orow[d] *= alpha;
      }
    }
    P::add_pv(t, x);
  }

  for (int ii = 0; ii < rows; ++ii) {
    const float inv_l = 1.0f / l[ii];
    const float* orow = out_acc + size_t(ii) * HS;
    float* dst = out + (size_t(bh) * Tq + i0 + ii) * HS;
#pragma omp simd
    for (int d = 0; d < HS; ++d) dst[d] = orow[d] * inv_l;
    lse[size_t(bh) * Tq + i0 + ii] = m[ii] + std::log(l[ii]);
  }
}

// ---- backward: one (b,h) ---------------------------------------------------------------------
// Per-thread scratch of the backward.
template <class P>
struct BackwardScratch {
  float* probs;       // (kBr, kBc) P
  float* drop_scale;  // (kBr, kBc) dropout factor: 1/(1-p) or 0
  float* dscores;     // (kBr, kBc) P*drop, then dP, then dS*scale
  float* delta;       // (Tq) D = rowsum(dO * O)
  typename P::BackwardBuffers own;  // the policy's
  BackwardScratch(const AttnShape& s, Carver& c)
      : probs(c.take(size_t(kBr) * kBc)),
        drop_scale(c.take(size_t(kBr) * kBc)),
        dscores(c.take(size_t(kBr) * kBc)),
        delta(c.take(size_t(s.Tq))),
        own(s, c) {}
};

// What the policy's backward steps read: the head's rows and this thread's scratch.
template <class P>
struct BackwardHead {
  const AttnShape& s;
  float scale;         // 1/sqrt(HS)
  const float* q;      // (Tq, HS)
  const float* dout;   // (Tq, HS)
  const float* k;      // (Tk, HS)
  const float* v;      // (Tk, HS)
  float* dq;           // (Tq, HS)
  float* dk;           // (Tk, HS)
  float* dv;           // (Tk, HS)
  BackwardScratch<P> w;
};

// Outer loop over key tiles, inner over the query tiles that see them. The task owns its dq, dk,
// dv rows, so it accumulates into them directly. dist (s.distances()), when non-null, receives
// the sum of dS at distance d in slot Tk - 1 - d (so a row's run of keys maps to a contiguous
// run); fire's gradient statistics go to fstats (segments, kFireStats) instead.
template <class P>
void backward_head(const AttnShape& s, int bh, const float* q, const float* k, const float* v,
                   const float* out, const float* lse, const float* dout, const ScoreBias& bias,
                   const AttnDropout& drop, float* dq, float* dk, float* dv, float* dist,
                   double* fstats, float* ws) {
  const int HS = s.HS, NH = s.NH, Tq = s.Tq, Tk = s.Tk;
  const int off = Tk - Tq;
  const int h = bh % NH;
  const size_t ldk = size_t(s.kv_rows());
  const float* ob = out + size_t(bh) * Tq * HS;  // (Tq, HS)
  const float* lb = lse + size_t(bh) * Tq;       // (Tq)
  Carver cw{ws};
  const BackwardHead<P> t{s,
                          1.0f / std::sqrt(float(HS)),
                          q + size_t(bh) * Tq * HS,
                          dout + size_t(bh) * Tq * HS,
                          k + size_t(bh) * ldk * HS,
                          v + size_t(bh) * ldk * HS,
                          dq + size_t(bh) * Tq * HS,
                          dk + size_t(bh) * ldk * HS,
                          dv + size_t(bh) * ldk * HS,
                          BackwardScratch<P>(s, cw)};
  const float scale = t.scale;
  float* const probs = t.w.probs;
  float* const drop_scale = t.w.drop_scale;
  float* const dscores = t.w.dscores;
  float* const delta = t.w.delta;
  P::pack_backward_head(t);
  float band[kBand], fire_buf[kBc];
  const bool fire = bias.kind == BiasKind::fire;
  uint64_t col_mix[kBc];

  std::fill(t.dq, t.dq + size_t(Tq) * HS, 0.0f);
  std::fill(t.dk, t.dk + ldk * HS, 0.0f);
  std::fill(t.dv, t.dv + ldk * HS, 0.0f);
  if (dist) std::fill(dist, dist + s.distances(), 0.0f);
  if (fstats) std::fill(fstats, fstats + size_t(bias.fire.segments) * kFireStats, 0.0);
  for (int i = 0; i < Tq; ++i) {
    const float* a = t.dout + size_t(i) * HS;
    const float* b = ob + size_t(i) * HS;
    float acc = 0.0f;
#pragma omp simd reduction(+ : acc)
    for (int d = 0; d < HS; ++d) acc += a[d] * b[d];
    delta[i] = acc;  // equals sum_j P_ij dP_ij also with dropout, since O_i = sum_j P_ij M_ij v_j
  }
  const bool dropout = drop.p > 0.0f;
  const float p_drop = drop.p, inv_keep = 1.0f / (1.0f - drop.p);
  const uint64_t head_hash = dropout ? hash64(drop.seed, uint64_t(bh)) : 0;

  for (int j0 = 0; j0 < Tk; j0 += kBc) {
    const int cols = std::min(kBc, Tk - j0);
    P::begin_key_tile(t, j0, cols);
    if (dropout)
      for (int jj = 0; jj < cols; ++jj) col_mix[jj] = mix64(uint64_t(j0 + jj));
    // A query row that sees none of the tile has P = 0 and adds nothing, so a policy may start
    // before the first row that sees key j0.
    const int first_row = s.causal ? std::max(0, j0 - off) : 0;
    for (int i0 = P::first_query_row(first_row); i0 < Tq; i0 += kBr) {
      const Tile x{i0, std::min(kBr, Tq - i0), j0, cols};
      const int rows = x.rows;
      fill_band(bias, h, NH, off + i0 - j0, s.causal, rows, band);
      P::scores(t, x);  // into probs

      for (int ii = 0; ii < rows; ++ii) {  // P = exp(S + bias - lse), 0 where masked
        float* prow = probs + ii * kBc;
        const int nj = visible_cols(s, off + i0 + ii, j0, cols);
        const float* brow = band + (kBr - 1 - ii);
        if (fire) {
          fire_row(bias, h, i0 + ii, off + i0 + ii - j0, nj, fire_buf);
          brow = fire_buf;
        }
        const float li = lb[i0 + ii];
#pragma omp simd
        for (int jj = 0; jj < nj; ++jj)
          prow[jj] = fast_exp(P::score(prow[jj], scale) + brow[jj] - li);
        std::fill(prow + nj, prow + kBc, 0.0f);
        if (dropout) {
          float* mrow = drop_scale + ii * kBc;
          float* yrow = dscores + ii * kBc;
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
      P::add_dv(t, x, dropout ? dscores : probs);
      P::dp(t, x);  // into dscores

      for (int ii = 0; ii < rows; ++ii) {  // dS = P * (dP * drop - D_i); masked, padded P = 0
        const float* prow = probs + ii * kBc;
        const float* mrow = drop_scale + ii * kBc;
        float* yrow = dscores + ii * kBc;
        const float Di = delta[i0 + ii];
        if (dropout) {
#pragma omp simd
          for (int jj = 0; jj < kBc; ++jj) yrow[jj] = prow[jj] * (yrow[jj] * mrow[jj] - Di);
        } else {
#pragma omp simd
          for (int jj = 0; jj < kBc; ++jj) yrow[jj] = prow[jj] * (yrow[jj] - Di);
        }
        if (dist) {  // slot Tk-1-d for d = pos(i) - j, contiguous in jj
          const int nj = visible_cols(s, off + i0 + ii, j0, cols);
          float* drow = dist + (Tk - 1 - (off + i0 + ii) + j0);
#pragma omp simd
          for (int jj = 0; jj < nj; ++jj) drow[jj] += yrow[jj];
        }
        if (fstats)
          fire_row_stats(bias, i0 + ii, off + i0 + ii - j0,
                         visible_cols(s, off + i0 + ii, j0, cols), yrow, fstats);
#pragma omp simd
        for (int jj = 0; jj < kBc; ++jj) yrow[jj] *= scale;
      }
      P::add_dq(t, x);
      P::add_dk(t, x);
    }
    P::end_key_tile(t, j0, cols);
  }
}

}  // namespace alibi::cpu::attention_detail
