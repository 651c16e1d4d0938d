#pragma once
// The attention tests' checks, shared by test_attention.cpp (causal) and
// test_attention_bidirectional.cpp: the fused kernel against the naive one, against central
// finite differences, against a per-element bf16 rounding bound, and for determinism.
#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <tuple>
#include <vector>

#include "attention_problem.h"
#include "bf16_util.h"
#include "core/rng.h"
#include "kernels/attention.h"
#include "kernels/cpu/attention_cpu.h"
#include "kernels/reference/attention_ref.h"

namespace alibi::test {


// fused (fp32, tiled, online softmax, polynomial exp) vs naive (double accumulation): max abs
// error relative to max |ref| of the tensor. fp32 sums of up to a few hundred terms in a
// different order give relative errors of a few 1e-7 (measured: <= ~1e-6 over these cases);
// 1e-5 leaves a 10x margin and still flags any wrong term (a single missing or extra key
// changes a row by ~1e-2 or more).
inline constexpr double kFusedFwdTol = 1e-5;
// Gradients sum up to Tq products of already-rounded factors (dk, dv, the t5 table), so they
// carry a few times more rounding than the forward (measured: <= ~3e-6).
inline constexpr double kFusedBwdTol = 3e-5;
// lse is compared as an absolute error scaled by max(1, max |lse|).
inline constexpr double kLseTol = 1e-5;

// Central differences on the fp32 forward: loss = sum(out * W) in double. With h = 1e-2 the
// truncation error (h^2/6 * f''') and the rounding error (~1e-7 * |loss| / h) are each ~1e-5,
// against gradients of order 0.1..1: a correct gradient lands at <= ~4e-5 relative (measured).
// kFdTol = 5e-4 leaves a >10x margin, and each check also proves that the same gradient 1% off
// fails it.
inline constexpr double kFdStep = 1e-2;
inline constexpr double kFdTol = 5e-4;

struct Grads {
  std::vector<float> out, lse, dq, dk, dv, dt5;
};

// The workspace is followed by a guard region that must come back untouched, and handed over
// one float past an aligned address, so the kernel's own alignment slack is exercised.
inline constexpr size_t kGuard = 4096;
inline constexpr float kGuardValue = -12345.0f;

inline Grads run_fused(const Problem& P, const std::vector<float>& dt5_init) {
  Grads g;
  g.out.assign(P.nq(), 0.f), g.lse.assign(P.nlse(), 0.f);
  g.dq.assign(P.nq(), 1.f), g.dk.assign(P.nk(), 1.f), g.dv.assign(P.nk(), 1.f);  // overwritten
  g.dt5 = dt5_init;
  const int threads = omp_get_max_threads();
  const size_t n = cpu::attention_workspace_floats(P.s, threads);
  std::vector<float> ws(1 + n + kGuard, kGuardValue);
  const AttnWorkspace w{ws.data() + 1, n, threads};
  cpu::attention_forward(P.s, P.q.data(), P.k.data(), P.v.data(), P.bias, P.drop, g.out.data(),
                         g.lse.data(), w);
  cpu::attention_backward(P.s, P.q.data(), P.k.data(), P.v.data(), g.out.data(), g.lse.data(),
                          P.dout.data(), P.bias, P.drop, g.dq.data(), g.dk.data(), g.dv.data(),
                          g.dt5.data(), w);
  for (size_t i = 1 + n; i < ws.size(); ++i)
    if (ws[i] != kGuardValue) {
      ADD_FAILURE() << "workspace overrun at float " << i - 1 << " of " << n;
      break;
    }
  return g;
}

inline Grads run_naive(const Problem& P, const std::vector<float>& dt5_init) {
  Grads g;
  g.out.assign(P.nq(), 0.f), g.lse.assign(P.nlse(), 0.f);
  g.dq.assign(P.nq(), 1.f), g.dk.assign(P.nk(), 1.f), g.dv.assign(P.nk(), 1.f);
  g.dt5 = dt5_init;
  ref::attention_forward_naive(P.s, P.q.data(), P.k.data(), P.v.data(), P.bias, P.drop,
                               g.out.data(), g.lse.data());
  ref::attention_backward_naive(P.s, P.q.data(), P.k.data(), P.v.data(), g.out.data(),
                                g.lse.data(), P.dout.data(), P.bias, P.drop, g.dq.data(),
                                g.dk.data(), g.dv.data(), g.dt5.data());
  return g;
}

inline void expect_fused_matches_naive(const Problem& P) {
  // dt5 starts non-zero to check that it is accumulated into, not overwritten.
  const std::vector<float> dt5_init(size_t(kNumBuckets) * P.s.NH, 0.25f);
  const Grads f = run_fused(P, dt5_init), n = run_naive(P, dt5_init);
  EXPECT_LE(rel_err(f.out, n.out), kFusedFwdTol) << "out";
  double lse_err = 0.0;
  for (size_t i = 0; i < f.lse.size(); ++i)
    lse_err = std::max(lse_err, std::fabs(double(f.lse[i]) - double(n.lse[i])));
  EXPECT_LE(lse_err / std::max(1.0, max_abs(n.lse)), kLseTol) << "lse";
  EXPECT_LE(rel_err(f.dq, n.dq), kFusedBwdTol) << "dq";
  EXPECT_LE(rel_err(f.dk, n.dk), kFusedBwdTol) << "dk";
  EXPECT_LE(rel_err(f.dv, n.dv), kFusedBwdTol) << "dv";
  if (P.bias.kind != BiasKind::none) {  // the t5 table's or the alibi slopes' gradient
    std::vector<float> df(f.dt5), dn(n.dt5);  // compare the increments
    for (size_t i = 0; i < df.size(); ++i) df[i] -= 0.25f, dn[i] -= 0.25f;
    EXPECT_LE(rel_err(df, dn), kFusedBwdTol) << "dbias";
    if (P.bias.kind == BiasKind::alibi)  // only the NH slopes
      for (size_t i = size_t(P.s.NH); i < df.size(); ++i) EXPECT_EQ(f.dt5[i], 0.25f) << i;
  } else {
    EXPECT_EQ(f.dt5, dt5_init) << "dbias must be left alone without a bias";
  }
}

inline std::string kind_name(BiasKind k) {
  return k == BiasKind::none ? "none" : k == BiasKind::alibi ? "alibi" : "t5";
}


// ---- fused vs naive over a grid ---------------------------------------------------------------
using GridParam = std::tuple<BiasKind, int /*T*/, int /*HS*/, float /*p*/>;
inline std::string grid_name(const ::testing::TestParamInfo<GridParam>& info) {
  const GridParam& g = info.param;
  return kind_name(std::get<0>(g)) + "_T" + std::to_string(std::get<1>(g)) + "_HS" +
         std::to_string(std::get<2>(g)) + (std::get<3>(g) > 0.f ? "_drop" : "");
}

// ---- finite differences ----------------------------------------------------------------------
using ForwardFn = void (*)(const Problem&, std::vector<float>& out);

// A workspace for s on the current thread count, held in buf.
inline AttnWorkspace plan_workspace(const AttnShape& s, std::vector<float>& buf) {
  const int threads = omp_get_max_threads();
  buf.assign(cpu::attention_workspace_floats(s, threads), 0.0f);
  return {buf.data(), buf.size(), threads};
}

inline void naive_out(const Problem& P, std::vector<float>& out) {
  std::vector<float> lse(P.nlse());
  ref::attention_forward_naive(P.s, P.q.data(), P.k.data(), P.v.data(), P.bias, P.drop,
                               out.data(), lse.data());
}
inline void fused_out(const Problem& P, std::vector<float>& out) {
  std::vector<float> lse(P.nlse()), ws;
  cpu::attention_forward(P.s, P.q.data(), P.k.data(), P.v.data(), P.bias, P.drop, out.data(),
                         lse.data(), plan_workspace(P.s, ws));
}

// Checks dq, dk, dv, dt5 of `fused ? fused : naive` backward against central differences of
// loss = sum(out * W), with dout = W.
inline void check_gradients_fd(Problem P, bool fused) {
  const ForwardFn forward = fused ? fused_out : naive_out;
  std::vector<float> out(P.nq());
  auto loss = [&] {
    forward(P, out);
    double l = 0.0;
    for (size_t i = 0; i < out.size(); ++i) l += double(out[i]) * double(P.dout[i]);
    return l;
  };
  std::vector<float> lse(P.nlse());
  if (fused) {
    std::vector<float> ws;
    cpu::attention_forward(P.s, P.q.data(), P.k.data(), P.v.data(), P.bias, P.drop, out.data(),
                           lse.data(), plan_workspace(P.s, ws));
  } else {
    ref::attention_forward_naive(P.s, P.q.data(), P.k.data(), P.v.data(), P.bias, P.drop,
                                 out.data(), lse.data());
  }
  std::vector<float> dq(P.nq()), dk(P.nk()), dv(P.nk()), dt5(P.table.size(), 0.0f);
  if (fused) {
    std::vector<float> ws;
    cpu::attention_backward(P.s, P.q.data(), P.k.data(), P.v.data(), out.data(), lse.data(),
                            P.dout.data(), P.bias, P.drop, dq.data(), dk.data(), dv.data(),
                            dt5.data(), plan_workspace(P.s, ws));
  } else {
    ref::attention_backward_naive(P.s, P.q.data(), P.k.data(), P.v.data(), out.data(),
                                  lse.data(), P.dout.data(), P.bias, P.drop, dq.data(),
                                  dk.data(), dv.data(), dt5.data());
  }

  auto fd_of = [&](std::vector<float>& x) {
    std::vector<float> g(x.size());
    for (size_t i = 0; i < x.size(); ++i) {
      const float x0 = x[i];
      x[i] = x0 + float(kFdStep);
      const double lp = loss();
      x[i] = x0 - float(kFdStep);
      const double lm = loss();
      x[i] = x0;
      g[i] = float((lp - lm) / (2.0 * kFdStep));
    }
    return g;
  };
  struct Item {
    const char* name;
    std::vector<float>* input;
    std::vector<float>* grad;
  };
  std::vector<Item> items = {{"dq", &P.q, &dq}, {"dk", &P.k, &dk}, {"dv", &P.v, &dv}};
  if (P.bias.kind == BiasKind::t5) items.push_back({"dt5", &P.table, &dt5});
  std::vector<float> dslopes(dt5.begin(), dt5.begin() + P.s.NH);
  if (P.bias.kind == BiasKind::alibi) items.push_back({"dslopes", &P.slopes, &dslopes});
  for (const Item& it : items) {
    const std::vector<float> fd = fd_of(*it.input);
    ASSERT_GT(max_abs(fd), 1e-3) << it.name << ": gradient vanishes, the check would be vacuous";
    EXPECT_LE(rel_err(*it.grad, fd), kFdTol) << it.name;
    // The check has teeth: the same gradient 1% off fails it.
    std::vector<float> wrong(*it.grad);
    for (float& e : wrong) e *= 1.01f;
    EXPECT_GT(rel_err(wrong, fd), kFdTol) << it.name << ": tolerance too loose to see 1% errors";
  }
}

// ---- determinism -------------------------------------------------------------------------------
inline void expect_bit_identical(const Grads& a, const Grads& b) {
  auto same = [](const std::vector<float>& x, const std::vector<float>& y) {
    return x.size() == y.size() && std::memcmp(x.data(), y.data(), x.size() * sizeof(float)) == 0;
  };
  EXPECT_TRUE(same(a.out, b.out));
  EXPECT_TRUE(same(a.lse, b.lse));
  EXPECT_TRUE(same(a.dq, b.dq));
  EXPECT_TRUE(same(a.dk, b.dk));
  EXPECT_TRUE(same(a.dv, b.dv));
  EXPECT_TRUE(same(a.dt5, b.dt5));
}


// Runs P's fused forward and backward on all threads and on one, expects bit-identical results
// and returns them.
inline Grads same_on_one_thread(const Problem& P) {
  const std::vector<float> dt5_init(size_t(kNumBuckets) * P.s.NH, 0.0f);
  const int threads = omp_get_max_threads();
  const Grads many = run_fused(P, dt5_init);
  omp_set_num_threads(1);
  const Grads one = run_fused(P, dt5_init);
  omp_set_num_threads(threads);
  expect_bit_identical(many, one);
  return many;
}


// ---- bf16 operands (AttnShape::precision) ------------------------------------------------------
// The reference is the naive kernel (double) on the same inputs rounded to bf16, so what is left
// is the rounding the kernel does inside: the probabilities P*drop before P V and dV, and
// dS*scale before dQ and dK. Both are round-to-nearest-even to 8 significant bits: relative error
// at most u = 2^-8 per term. That gives, per element (sums over the visible keys / queries; P,
// drop m, dS from a double recomputation):
//   out_id : u * sum_j P_ij m_ij |v_jd|                                  =: eo_id
//   dv_jd  : u * sum_i P_ij m_ij |dO_id|
//   dq_id  : scale * sum_j (u |dS_ij| + P_ij eD_i) |k_jd|,   eD_i = sum_d |dO_id| eo_id
//   dk_jd  : scale * sum_i (u |dS_ij| + P_ij eD_i) |q_id|
//   dt5    : sum over the bucket of P_ij eD_i (alibi's slopes: sum of P_ij eD_i (i - j))
// (eD: D_i = rowsum(dO * O) is formed from the kernel's own bf16-path output.) The scores, and so
// lse, are exact products of bf16 values summed in fp32: lse keeps the fp32 tolerance. Each bound
// gets 5% and an fp32 allowance of kFusedBwdTol * max |ref| on top. A bug in the packing or the
// tile offsets moves whole rows or columns by O(1) and fails these by orders of magnitude.
struct Bf16Bounds {
  std::vector<double> out, dq, dk, dv, dt5;
};

inline Bf16Bounds bf16_bounds(const Problem& P) {
  const AttnShape& s = P.s;
  const int HS = s.HS, Tq = s.Tq, Tk = s.Tk, NH = s.NH, off = Tk - Tq;
  const size_t ldk = size_t(s.kv_rows());
  const double scale = 1.0 / std::sqrt(double(HS)), u = kBf16Unit;
  Bf16Bounds b;
  b.out.assign(P.nq(), 0.0), b.dq.assign(P.nq(), 0.0);
  b.dk.assign(P.nk(), 0.0), b.dv.assign(P.nk(), 0.0);
  b.dt5.assign(size_t(kNumBuckets) * NH, 0.0);
  std::vector<double> Pm(size_t(Tq) * Tk), M(size_t(Tq) * Tk), dS(size_t(Tq) * Tk), eD(Tq);
  for (int bh = 0; bh < s.B * NH; ++bh) {
    const int h = bh % NH;
    const float* q = P.q.data() + size_t(bh) * Tq * HS;
    const float* dO = P.dout.data() + size_t(bh) * Tq * HS;
    const float* k = P.k.data() + size_t(bh) * ldk * HS;
    const float* v = P.v.data() + size_t(bh) * ldk * HS;
    const int half = s.causal ? kNumBuckets : kNumBuckets / 2;
    auto bucket = [&](int d) {
      const int a = std::abs(d);
      return (d < 0 ? half : 0) + (a < kT5MaxDistance ? P.buckets[size_t(a)] : half - 1);
    };
    auto bias = [&](int d) -> double {
      if (P.bias.kind == BiasKind::alibi) return -double(P.slopes[h]) * std::abs(d);
      if (P.bias.kind == BiasKind::t5) return P.table[size_t(bucket(d)) * NH + h];
      return 0.0;
    };
    auto visible = [&](int i) { return s.causal ? off + i + 1 : Tk; };
    for (int i = 0; i < Tq; ++i) {
      const int nj = visible(i);
      double mx = -INFINITY, sum = 0.0, Di = 0.0;
      std::vector<double> sc(nj), dP(nj);
      for (int j = 0; j < nj; ++j) {
        double dot = 0.0, dpv = 0.0;
        for (int d = 0; d < HS; ++d) {
          dot += double(q[size_t(i) * HS + d]) * k[size_t(j) * HS + d];
          dpv += double(dO[size_t(i) * HS + d]) * v[size_t(j) * HS + d];
        }
        sc[j] = dot * scale + bias(off + i - j);
        dP[j] = dpv;
        mx = std::max(mx, sc[j]);
      }
      for (int j = 0; j < nj; ++j) sum += std::exp(sc[j] - mx);
      for (int j = 0; j < nj; ++j) {
        const size_t ij = size_t(i) * Tk + j;
        Pm[ij] = std::exp(sc[j] - mx) / sum;
        M[ij] = P.drop.p == 0.0f ? 1.0
                : u01(hash64(P.drop.seed, uint64_t(bh), uint64_t(i), uint64_t(j))) >= P.drop.p
                    ? 1.0 / (1.0 - double(P.drop.p))
                    : 0.0;
        Di += Pm[ij] * M[ij] * dP[j];
      }
      eD[i] = 0.0;
      for (int d = 0; d < HS; ++d) {
        double e = 0.0;
        for (int j = 0; j < nj; ++j)
          e += Pm[size_t(i) * Tk + j] * M[size_t(i) * Tk + j] * std::fabs(v[size_t(j) * HS + d]);
        b.out[(size_t(bh) * Tq + i) * HS + d] = u * e;
        eD[i] += std::fabs(dO[size_t(i) * HS + d]) * u * e;
      }
      for (int j = 0; j < nj; ++j) {
        const size_t ij = size_t(i) * Tk + j;
        dS[ij] = Pm[ij] * (M[ij] * dP[j] - Di);
      }
    }
    for (int i = 0; i < Tq; ++i)
      for (int j = 0; j < visible(i); ++j) {
        const size_t ij = size_t(i) * Tk + j;
        const double w = u * std::fabs(dS[ij]) + Pm[ij] * eD[i];  // error of dS_ij
        for (int d = 0; d < HS; ++d) {
          b.dq[(size_t(bh) * Tq + i) * HS + d] += scale * w * std::fabs(k[size_t(j) * HS + d]);
          b.dk[(size_t(bh) * ldk + j) * HS + d] += scale * w * std::fabs(q[size_t(i) * HS + d]);
          b.dv[(size_t(bh) * ldk + j) * HS + d] +=
              u * Pm[ij] * M[ij] * std::fabs(dO[size_t(i) * HS + d]);
        }
        const int d = off + i - j;
        if (P.bias.kind == BiasKind::alibi)  // the slope's gradient weighs dS by the distance
          b.dt5[size_t(h)] += Pm[ij] * eD[i] * std::abs(d);
        else
          b.dt5[size_t(bucket(d)) * NH + h] += Pm[ij] * eD[i];
      }
  }
  return b;
}

// max over elements of |a - ref| / (1.05 * bound + slack), slack = kFusedBwdTol * max |ref|:
// <= 1 passes.
inline double bound_ratio(const std::vector<float>& a, const std::vector<float>& ref,
                   const std::vector<double>& bound) {
  const double slack = kFusedBwdTol * std::max(max_abs(ref), 1e-30);
  double r = 0.0;
  for (size_t i = 0; i < a.size(); ++i) {
    if (!std::isfinite(a[i])) return INFINITY;
    r = std::max(r, std::fabs(double(a[i]) - double(ref[i])) / (1.05 * bound[i] + slack));
  }
  return r;
}

inline Problem bf16_problem(BiasKind kind, int B, int NH, int Tq, int Tk, int HS, float p,
                            int ldk = 0, uint64_t seed = 7) {
  Problem P(kind, B, NH, Tq, Tk, HS, p, ldk, seed);
  for (auto* x : {&P.q, &P.k, &P.v, &P.dout})
    for (float& e : *x) e = round_bf16(e);
  P.s.precision = MatmulPrecision::bf16;
  return P;
}

inline void expect_bf16_within_bounds(const Problem& P) {
  ASSERT_EQ(P.s.precision, MatmulPrecision::bf16);
  const std::vector<float> dt5_init(size_t(kNumBuckets) * P.s.NH, 0.25f);
  const Grads f = run_fused(P, dt5_init), n = run_naive(P, dt5_init);
  const Bf16Bounds b = bf16_bounds(P);
  EXPECT_LE(bound_ratio(f.out, n.out, b.out), 1.0) << "out";
  double lse_err = 0.0;
  for (size_t i = 0; i < f.lse.size(); ++i)
    lse_err = std::max(lse_err, std::fabs(double(f.lse[i]) - double(n.lse[i])));
  EXPECT_LE(lse_err / std::max(1.0, max_abs(n.lse)), kLseTol) << "lse";
  EXPECT_LE(bound_ratio(f.dq, n.dq, b.dq), 1.0) << "dq";
  EXPECT_LE(bound_ratio(f.dk, n.dk, b.dk), 1.0) << "dk";
  EXPECT_LE(bound_ratio(f.dv, n.dv, b.dv), 1.0) << "dv";
  if (P.bias.kind != BiasKind::none) {  // the t5 table's or the alibi slopes' gradient
    std::vector<float> df(f.dt5), dn(n.dt5);
    for (size_t i = 0; i < df.size(); ++i) df[i] -= 0.25f, dn[i] -= 0.25f;
    EXPECT_LE(bound_ratio(df, dn, b.dt5), 1.0) << "dbias";
  } else {
    EXPECT_EQ(f.dt5, dt5_init) << "dbias must be left alone without a bias";
  }
}

}  // namespace alibi::test
