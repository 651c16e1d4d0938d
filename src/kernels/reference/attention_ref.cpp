#include "kernels/reference/attention_ref.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "core/rng.h"
#include "kernels/attention_check.h"

namespace alibi::ref {
namespace {

// t5: distance |d| falls in bucket t5_bucket[|d|] below t5_max_distance, in the last one past
// it; causal calls use every bucket for d >= 0, bidirectional ones the first half for d >= 0
// and the second half for keys after the query (d < 0).
int t5_bucket(const ScoreBias& b, int d, bool causal) {
  const int half = causal ? b.num_buckets : b.num_buckets / 2;
  const int a = std::abs(d);
  return (d < 0 ? half : 0) + (a < b.t5_max_distance ? b.t5_bucket[a] : half - 1);
}

// The last key query row i sees: its own position (causal), or the last key.
int last_key(const AttnShape& s, int i) { return s.causal ? s.Tk - s.Tq + i : s.Tk - 1; }

// fire's x for query row i and distance d, and its segment: the number of knots at or below x
// (a binary search, where the kernel walks).
double fire_x(const FireBias& f, int i, int d) { return double(f.psi[std::abs(d)] * f.row_scale[i]); }
int fire_segment(const FireBias& f, double x) {
  return int(std::upper_bound(f.knots, f.knots + f.segments - 1, x,
                              [](double a, float k) { return a < double(k); }) -
             f.knots);
}

// bias_h of attention.h for query row i (at position i_pos) and key j, in double: written out
// here rather than taken from a fused kernel, so that a wrong formula there shows up as a
// difference. alibi: -m_h |i_pos - j|; t5: the table entry of head h for the bucket of
// d = i_pos - j; table: its entry at |d|; fire: a_h[s] x + c_h[s].
double bias_of(const ScoreBias& b, bool causal, int h, int NH, int i, int i_pos, int j) {
  const int d = i_pos - j;
  switch (b.kind) {
    case BiasKind::alibi: return -double(b.slopes[h]) * std::abs(double(d));
    case BiasKind::t5: return double(b.t5_table[size_t(t5_bucket(b, d, causal)) * NH + h]);
    case BiasKind::table: return double(b.table[size_t(h) * b.table_len + std::abs(d)]);
    case BiasKind::fire: {
      const FireBias& f = b.fire;
      const double x = fire_x(f, i, d);
      const size_t at = size_t(h) * f.segments + size_t(fire_segment(f, x));
      return double(f.slope[at]) * x + double(f.icept[at]);
    }
    case BiasKind::none: break;
  }
  return 0.0;
}

// What dS(i, j) of head h adds to the bias's gradient (the layout of attention.h's dbias).
void add_bias_grad(const ScoreBias& b, bool causal, int h, int NH, int i, int d, double g,
                   double* grad) {
  switch (b.kind) {
    case BiasKind::alibi: grad[h] -= g * std::abs(double(d)); break;  // -m_h |d|
    case BiasKind::t5: grad[size_t(t5_bucket(b, d, causal)) * NH + h] += g; break;
    case BiasKind::table: grad[size_t(h) * b.table_len + std::abs(d)] += g; break;
    case BiasKind::fire: {
      const FireBias& f = b.fire;
      const int a = std::abs(d);
      const double x = fire_x(f, i, d), p = f.psi[a];
      double* t = grad + (size_t(h) * f.segments + size_t(fire_segment(f, x))) * kFireStats;
      t[0] += g;
      t[1] += g * x;
      t[2] += g * (double(f.dpsi[a]) * f.row_scale[i] - p * f.row_dc[i]);
      t[3] -= g * p * f.row_dthr[i];
      break;
    }
    case BiasKind::none: break;
  }
}

// The dropout factor of attention.h: 1/(1-p) if u01(hash64(seed, bh, i, j)) >= p, else 0.
double drop_factor(const AttnDropout& drop, int bh, int i, int j) {
  if (drop.p == 0.0f) return 1.0;
  const float u = u01(hash64(drop.seed, uint64_t(bh), uint64_t(i), uint64_t(j)));
  return u >= drop.p ? 1.0 / (1.0 - double(drop.p)) : 0.0;
}

// Score row i of head bh: row[j] = q_i . k_j / sqrt(HS) + bias for the visible j <= last_key.
// Returns the row's maximum.
double score_row(const AttnShape& s, int bh, int i, const float* q, const float* k,
                 const ScoreBias& bias, double* row) {
  const int HS = s.HS, off = s.Tk - s.Tq;
  const size_t ldk = size_t(s.kv_rows());
  const double scale = 1.0 / std::sqrt(double(HS));
  const float* qi = q + (size_t(bh) * s.Tq + i) * HS;
  double mx = -std::numeric_limits<double>::infinity();
  for (int j = 0; j <= last_key(s, i); ++j) {
    const float* kj = k + (size_t(bh) * ldk + j) * HS;
    double dot = 0.0;
    for (int d = 0; d < HS; ++d) dot += double(qi[d]) * double(kj[d]);
    row[j] = dot * scale + bias_of(bias, s.causal, bh % s.NH, s.NH, i, off + i, j);
    mx = std::max(mx, row[j]);
  }
  return mx;
}

}  // namespace

void attention_forward_naive(const AttnShape& s, const float* q, const float* k, const float* v,
                             const ScoreBias& bias, const AttnDropout& drop, float* out,
                             float* lse) {
  check_attention_args(s, bias, drop);
  const int HS = s.HS, Tq = s.Tq, Tk = s.Tk;
  const size_t ldk = size_t(s.kv_rows());
  std::vector<double> srow(Tk), acc(HS);
  for (int bh = 0; bh < s.B * s.NH; ++bh)
    for (int i = 0; i < Tq; ++i) {
      const double mx = score_row(s, bh, i, q, k, bias, srow.data());
      double sum = 0.0;
      for (int j = 0; j <= last_key(s, i); ++j) sum += std::exp(srow[j] - mx);
      std::fill(acc.begin(), acc.end(), 0.0);
      for (int j = 0; j <= last_key(s, i); ++j) {
        const double p = std::exp(srow[j] - mx) / sum * drop_factor(drop, bh, i, j);
        const float* vj = v + (size_t(bh) * ldk + j) * HS;
        for (int d = 0; d < HS; ++d) acc[d] += p * double(vj[d]);
      }
      for (int d = 0; d < HS; ++d) out[(size_t(bh) * Tq + i) * HS + d] = float(acc[d]);
      lse[size_t(bh) * Tq + i] = float(mx + std::log(sum));
    }
}

void attention_backward_naive(const AttnShape& s, const float* q, const float* k, const float* v,
                              const float* /*out*/, const float* /*lse*/, const float* dout,
                              const ScoreBias& bias, const AttnDropout& drop, float* dq,
                              float* dk, float* dv, float* dbias) {
  check_attention_args(s, bias, drop);
  const int HS = s.HS, Tq = s.Tq, Tk = s.Tk, NH = s.NH, off = Tk - Tq;
  const size_t ldk = size_t(s.kv_rows());
  const double scale = 1.0 / std::sqrt(double(HS));
  const bool bias_grad = bias.kind != BiasKind::none && dbias != nullptr;
  // P (Tq, Tk), dS (Tq, Tk), a dq row (HS), dk then dv (2, Tk, HS), the bias's gradient in
  // attention.h's layout
  std::vector<double> P(size_t(Tq) * Tk), dS(size_t(Tq) * Tk), gq(HS), gkv(size_t(Tk) * HS * 2);
  std::vector<double> dbias_d(bias_grad ? size_t(bias.grad_shape(NH).numel()) : 0, 0.0);
  for (int bh = 0; bh < s.B * NH; ++bh) {
    const int h = bh % NH;
    for (int i = 0; i < Tq; ++i) {  // P row i = softmax of the score row
      double* row = &P[size_t(i) * Tk];
      std::fill(row, row + Tk, 0.0);
      const double mx = score_row(s, bh, i, q, k, bias, row);
      double sum = 0.0;
      for (int j = 0; j <= last_key(s, i); ++j) sum += std::exp(row[j] - mx);
      for (int j = 0; j <= last_key(s, i); ++j) row[j] = std::exp(row[j] - mx) / sum;
    }
    std::fill(gkv.begin(), gkv.end(), 0.0);
    double* gk = gkv.data();
    double* gv = gkv.data() + size_t(Tk) * HS;
    for (int i = 0; i < Tq; ++i) {
      const float* doi = dout + (size_t(bh) * Tq + i) * HS;
      double rowdot = 0.0;  // sum_j P_ij dP_ij
      for (int j = 0; j <= last_key(s, i); ++j) {
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
      for (int j = 0; j <= last_key(s, i); ++j) {
        double& g = dS[size_t(i) * Tk + j];
        g = P[size_t(i) * Tk + j] * (g - rowdot);
        if (bias_grad) add_bias_grad(bias, s.causal, h, NH, i, off + i - j, g, dbias_d.data());
      }
    }
    for (int i = 0; i < Tq; ++i) {
      std::fill(gq.begin(), gq.end(), 0.0);
      const float* qi = q + (size_t(bh) * Tq + i) * HS;
      for (int j = 0; j <= last_key(s, i); ++j) {
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
  for (size_t n = 0; n < dbias_d.size(); ++n) dbias[n] += float(dbias_d[n]);
}

}  // namespace alibi::ref
