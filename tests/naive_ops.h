#pragma once
// Double-precision references for the ops of kernels/backend.h, written from their definitions
// (docs/model.md) and sharing no code with src/kernels: host vectors in, doubles out. Attention's
// reference is src/kernels/reference (it is also used by the benchmarks).
#include <cmath>
#include <cstdint>
#include <vector>

#include "core/rng.h"
#include "kernels/layer_kinds.h"
#include "position/position.h"

namespace alibi::test::naive {

using Vec = std::vector<double>;
using FVec = std::vector<float>;

// C (M,N) = alpha op(A) op(B) + beta C0; A stored (M,K) or (K,M) when transposed, ld given.
inline Vec gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, double alpha, const FVec& A,
                int64_t lda, const FVec& B, int64_t ldb, double beta, const FVec& C0,
                int64_t ldc) {
  Vec C(C0.begin(), C0.end());
  for (int64_t m = 0; m < M; ++m)
    for (int64_t n = 0; n < N; ++n) {
      double s = 0.0;
      for (int64_t k = 0; k < K; ++k)
        s += double(ta ? A[size_t(k * lda + m)] : A[size_t(m * lda + k)]) *
             double(tb ? B[size_t(n * ldb + k)] : B[size_t(k * ldb + n)]);
      C[size_t(m * ldc + n)] = alpha * s + beta * double(C0[size_t(m * ldc + n)]);
    }
  return C;
}

// out (N,OC) = inp (N,IC) W^T + b.
inline Vec linear(const FVec& inp, const FVec& W, const FVec& b, int64_t N, int64_t IC,
                  int64_t OC) {
  Vec out(size_t(N * OC));
  for (int64_t n = 0; n < N; ++n)
    for (int64_t o = 0; o < OC; ++o) {
      double s = b.empty() ? 0.0 : double(b[size_t(o)]);
      for (int64_t i = 0; i < IC; ++i) s += double(inp[size_t(n * IC + i)]) * W[size_t(o * IC + i)];
      out[size_t(n * OC + o)] = s;
    }
  return out;
}

// Mean and 1/sqrt(biased variance + eps) of each row of x (N,C), and the normalised output; b
// empty: no bias.
struct LayerNorm {
  Vec out, mean, rstd;
};
inline LayerNorm layernorm(const FVec& x, const FVec& w, const FVec& b, int64_t N, int64_t C,
                           double eps = 1e-5) {
  LayerNorm r{Vec(size_t(N * C)), Vec(size_t(N)), Vec(size_t(N))};
  for (int64_t n = 0; n < N; ++n) {
    double m = 0.0, v = 0.0;
    for (int64_t c = 0; c < C; ++c) m += x[size_t(n * C + c)];
    m /= double(C);
    for (int64_t c = 0; c < C; ++c) v += std::pow(x[size_t(n * C + c)] - m, 2);
    const double rs = 1.0 / std::sqrt(v / double(C) + eps);
    for (int64_t c = 0; c < C; ++c)
      r.out[size_t(n * C + c)] = (x[size_t(n * C + c)] - m) * rs * w[size_t(c)] +
                                 (b.empty() ? 0.0 : b[size_t(c)]);
    r.mean[size_t(n)] = m;
    r.rstd[size_t(n)] = rs;
  }
  return r;
}

// GELU in either form (kernels/layer_kinds.h) and its derivative.
inline double gelu(double x, Gelu g = Gelu::tanh) {
  if (g == Gelu::erf) return 0.5 * x * std::erfc(-x / std::sqrt(2.0));
  return 0.5 * x * (1.0 + std::tanh(std::sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x)));
}
inline double gelu_grad(double x, Gelu g = Gelu::tanh) {
  if (g == Gelu::erf)
    return 0.5 * std::erfc(-x / std::sqrt(2.0)) +
           x * std::exp(-0.5 * x * x) / std::sqrt(2.0 * M_PI);
  const double k = std::sqrt(2.0 / M_PI), u = k * (x + 0.044715 * x * x * x);
  const double th = std::tanh(u);
  return 0.5 * (1.0 + th) + 0.5 * x * (1.0 - th * th) * k * (1.0 + 3.0 * 0.044715 * x * x);
}

// The dropout scale of element (n, c): 1/(1-p) if kept, else 0 (backend.h's definition).
inline double keep(uint64_t seed, int64_t n, int64_t c, double p) {
  if (p == 0.0) return 1.0;
  return double(u01(hash64(seed, uint64_t(n), uint64_t(c)))) >= p ? 1.0 / (1.0 - p) : 0.0;
}

// Log-sum-exp of each row of logits (N,V).
inline Vec lse(const FVec& logits, int64_t N, int64_t V) {
  Vec r(static_cast<size_t>(N));
  for (int64_t n = 0; n < N; ++n) {
    double mx = -INFINITY, s = 0.0;
    for (int64_t v = 0; v < V; ++v) mx = std::max(mx, double(logits[size_t(n * V + v)]));
    for (int64_t v = 0; v < V; ++v) s += std::exp(double(logits[size_t(n * V + v)]) - mx);
    r[size_t(n)] = mx + std::log(s);
  }
  return r;
}

// PE[p, 2i] = sin(p / 10000^(2i/C)), PE[p, 2i+1] = cos(...).
inline double sinusoid(int64_t p, int64_t c, int64_t C) {
  const double a = double(p) / std::pow(10000.0, double(c / 2 * 2) / double(C));
  return c % 2 == 0 ? std::sin(a) : std::cos(a);
}

// Tables with every term of the rotary family's op: xpos' frequencies and decay for one head of
// HS, and the attention temperature YaRN gives s = 4 (0.1 ln 4 + 1).
inline RotaryTables every_rotary_term(int HS) {
  ModelConfig c;
  c.pos = PosKind::xpos;
  c.heads = 1;
  c.d_model = HS;
  RotaryTables t = rotary_tables(c);
  t.mscale = 0.1 * std::log(4.0) + 1.0;
  return t;
}

// The rotary family's op (Backend::rotary, rotate-half) on one row r (HS) at position p: pair i
// rotated by sign * p * freq[i] and scaled by mscale * exp(power * (p - anchor) * decay[i]).
inline Vec rotate(const float* r, int HS, int64_t p, double sign, const RotaryTables& t,
                  int power = 1, int64_t anchor = 0) {
  Vec out(static_cast<size_t>(HS));
  const int half = HS / 2;
  for (int i = 0; i < half; ++i) {
    const double a = sign * double(p) * t.freq[size_t(i)];
    const double m =
        t.mscale *
        (t.decay.empty() ? 1.0 : std::exp(power * double(p - anchor) * t.decay[size_t(i)]));
    out[size_t(i)] = m * (r[i] * std::cos(a) - r[i + half] * std::sin(a));
    out[size_t(i + half)] = m * (r[i + half] * std::cos(a) + r[i] * std::sin(a));
  }
  return out;
}

}  // namespace alibi::test::naive
