// What the attention implementations promise besides agreeing with each other: the naive
// reference's bias is the formula of kernels/attention.h (so that a wrong formula cannot hide in
// both the reference and the fused kernel), and the fused kernels refuse a workspace planned for
// fewer threads than they run on, or too small for the call's shape.
#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <stdexcept>
#include <vector>

#include "attention_problem.h"
#include "kernels/attention.h"
#include "kernels/cpu/attention_cpu.h"
#include "kernels/layer_ops.h"
#include "kernels/precision.h"
#include "kernels/reference/attention_ref.h"

namespace alibi {
namespace {

using test::kNumBuckets;
using test::kT5MaxDistance;
using test::Problem;
using test::rel_err;

// ---- the reference's bias ----------------------------------------------------------------------
// With q = 0 every score is its bias alone, so the naive forward must give the softmax of the
// bias of attention.h, written out again here (double), applied to v: alibi -m_h (pos(i) - j),
// t5 the table entry of the bucket of pos(i) - j. The reference rounds a double result to float
// once (relative 2^-24 ~ 6e-8); a bias with the wrong sign, head, bucket or query position is off
// by 1e-2 or more (a constant shift of a row, which the softmax cancels, shows in lse).
constexpr double kNaiveTol = 1e-6;

void expect_naive_is_softmax_of_bias(Problem P, const std::function<double(int h, int d)>& bias) {
  std::fill(P.q.begin(), P.q.end(), 0.0f);
  std::vector<float> out(P.nq()), lse(P.nlse());
  ref::attention_forward_naive(P.s, P.q.data(), P.k.data(), P.v.data(), P.bias, P.drop,
                               out.data(), lse.data());
  const int NH = P.s.NH, Tq = P.s.Tq, HS = P.s.HS, off = P.s.Tk - Tq;
  const size_t ldk = size_t(P.s.kv_rows());
  std::vector<float> want_out(P.nq()), want_lse(P.nlse());
  for (int bh = 0; bh < P.s.B * NH; ++bh)
    for (int i = 0; i < Tq; ++i) {
      const int pos = off + i;
      double mx = -INFINITY, sum = 0.0;
      for (int j = 0; j <= pos; ++j) mx = std::max(mx, bias(bh % NH, pos - j));
      for (int j = 0; j <= pos; ++j) sum += std::exp(bias(bh % NH, pos - j) - mx);
      for (int d = 0; d < HS; ++d) {
        double o = 0.0;
        for (int j = 0; j <= pos; ++j)
          o += std::exp(bias(bh % NH, pos - j) - mx) / sum * P.v[(bh * ldk + j) * HS + d];
        want_out[(size_t(bh) * Tq + i) * HS + d] = float(o);
      }
      want_lse[size_t(bh) * Tq + i] = float(mx + std::log(sum));
    }
  EXPECT_LE(rel_err(out, want_out), kNaiveTol) << "out";
  EXPECT_LE(rel_err(lse, want_lse), kNaiveTol) << "lse";
}

// Tq < Tk (queries at positions 8..44) with padded k/v rows; distances past kT5MaxDistance.
TEST(AttentionNaiveReference, AlibiBiasIsMinusSlopeTimesDistance) {
  const Problem P(BiasKind::alibi, 2, 3, 37, 45, 8, 0.0f, 47);
  expect_naive_is_softmax_of_bias(P, [&](int h, int d) { return -double(P.slopes[h]) * d; });
}

TEST(AttentionNaiveReference, T5BiasIsTheTableEntryOfTheDistancesBucket) {
  const Problem P(BiasKind::t5, 2, 3, 37, 45, 8, 0.0f, 47);
  expect_naive_is_softmax_of_bias(P, [&](int h, int d) {
    const int bucket = d < kT5MaxDistance ? P.buckets[d] : kNumBuckets - 1;
    return double(P.table[size_t(bucket) * P.s.NH + h]);
  });
}

// ---- workspace ---------------------------------------------------------------------------------
// P's fused forward, or its backward (from out = lse = 0), with workspace ws.
void forward_with(const Problem& P, const AttnWorkspace& ws) {
  std::vector<float> out(P.nq()), lse(P.nlse());
  cpu::attention_forward(P.s, P.q.data(), P.k.data(), P.v.data(), P.bias, P.drop, out.data(),
                         lse.data(), ws);
}
void backward_with(const Problem& P, const AttnWorkspace& ws) {
  std::vector<float> out(P.nq()), lse(P.nlse()), dq(P.nq()), dk(P.nk()), dv(P.nk());
  cpu::attention_backward(P.s, P.q.data(), P.k.data(), P.v.data(), out.data(), lse.data(),
                          P.dout.data(), P.bias, P.drop, dq.data(), dk.data(), dv.data(), nullptr,
                          ws);
}

TEST(AttentionWorkspace, RefusesToRunOnMoreThreadsThanItWasPlannedFor) {
  const Problem P(BiasKind::alibi, 1, 2, 70, 70, 32, 0.1f);
  const int threads = omp_get_max_threads();
  omp_set_num_threads(2);
  // Floats enough for 2 threads, so that only the planned thread count is wrong.
  std::vector<float> buf(cpu::attention_workspace_floats(P.s, 2));
  const AttnWorkspace one{buf.data(), buf.size(), 1}, two{buf.data(), buf.size(), 2};
  EXPECT_THROW(forward_with(P, one), std::logic_error);
  EXPECT_THROW(backward_with(P, one), std::logic_error);
  EXPECT_NO_THROW(forward_with(P, two));
  EXPECT_NO_THROW(backward_with(P, two));
  omp_set_num_threads(threads);
}

TEST(AttentionWorkspace, RefusesAWorkspaceTooSmallForTheShape) {
  const Problem P(BiasKind::t5, 1, 2, 130, 130, 32, 0.0f);
  const int threads = omp_get_max_threads();
  const size_t need = cpu::attention_workspace_floats(P.s, threads);
  // Planned for a shorter sequence than this call's.
  const Problem shorter(BiasKind::t5, 1, 2, 64, 64, 32, 0.0f);
  const size_t planned = cpu::attention_workspace_floats(shorter.s, threads);
  ASSERT_LT(planned, need);
  std::vector<float> buf(need);
  for (const size_t floats : {need - 1, planned}) {
    const AttnWorkspace ws{buf.data(), floats, threads};
    EXPECT_THROW(forward_with(P, ws), std::logic_error) << floats << " floats";
    EXPECT_THROW(backward_with(P, ws), std::logic_error) << floats << " floats";
  }
  const AttnWorkspace enough{buf.data(), need, threads};
  EXPECT_NO_THROW(forward_with(P, enough));
  EXPECT_NO_THROW(backward_with(P, enough));
}

// ---- several calls at once -----------------------------------------------------------------
// attention_forward_all (a batched serving step: each sequence against its own cache, in one
// parallel region) gives every call exactly what attention_forward gives it alone, on 2 threads:
// decode rows against padded caches, a prefill chunk, a call of one key and a long causal call,
// with alibi, t5 and no bias. Bit for bit: the tiles are the same, only their threads differ.
void expect_each_call_as_alone(MatmulPrecision precision) {
  const int threads = omp_get_max_threads();
  omp_set_num_threads(2);
  const Problem calls[] = {Problem(BiasKind::alibi, 1, 3, 1, 45, 16, 0.0f, 47, 1),
                           Problem(BiasKind::t5, 1, 3, 37, 45, 16, 0.0f, 47, 2),
                           Problem(BiasKind::none, 1, 3, 1, 1, 16, 0.0f, 0, 3),
                           Problem(BiasKind::alibi, 1, 3, 130, 130, 32, 0.0f, 0, 4),
                           Problem(BiasKind::alibi, 1, 3, 1, 46, 16, 0.0f, 47, 5)};
  struct Result {
    std::vector<float> ws, out, lse;
  };
  std::vector<Result> alone, together;
  std::vector<AttentionForward> ops;
  for (const Problem& P : calls) {
    AttnShape s = P.s;
    s.precision = precision;
    const size_t n = cpu::attention_workspace_floats(s, 2);
    Result& a = alone.emplace_back(
        Result{std::vector<float>(n), std::vector<float>(P.nq()), std::vector<float>(P.nlse())});
    cpu::attention_forward(s, P.q.data(), P.k.data(), P.v.data(), P.bias, P.drop, a.out.data(),
                           a.lse.data(), {a.ws.data(), n, 2});
  }
  together.reserve(std::size(calls));
  for (const Problem& P : calls) {
    AttnShape s = P.s;  // the op keeps P's precision: attention_forward_all sets its own
    s.precision = precision;
    const size_t n = cpu::attention_workspace_floats(s, 2);
    Result& t = together.emplace_back(Result{std::vector<float>(n), std::vector<float>(P.nq(), 7.f),
                                             std::vector<float>(P.nlse(), 7.f)});
    auto heads = [&](const float* p, int64_t rows) {
      return CTensor(p, {P.s.B, P.s.NH, rows, P.s.HS});
    };
    ops.push_back(AttentionForward{P.s,
                                   heads(P.q.data(), P.s.Tq),
                                   heads(P.k.data(), P.s.kv_rows()),
                                   heads(P.v.data(), P.s.kv_rows()),
                                   P.bias,
                                   P.drop,
                                   Tensor(t.out.data(), {P.s.B, P.s.NH, P.s.Tq, P.s.HS}),
                                   Tensor(t.lse.data(), {P.s.B, P.s.NH, P.s.Tq}),
                                   {t.ws.data(), n, 2}});
  }
  cpu::attention_forward_all(ops, precision);
  for (size_t i = 0; i < std::size(calls); ++i) {
    EXPECT_EQ(0, std::memcmp(alone[i].out.data(), together[i].out.data(),
                             alone[i].out.size() * sizeof(float)))
        << "out of call " << i;
    EXPECT_EQ(0, std::memcmp(alone[i].lse.data(), together[i].lse.data(),
                             alone[i].lse.size() * sizeof(float)))
        << "lse of call " << i;
  }
  cpu::attention_forward_all({}, precision);  // no calls: nothing to do
  omp_set_num_threads(threads);
}

TEST(AttentionForwardAll, EachCallGetsWhatItGetsAloneInFp32) {
  expect_each_call_as_alone(MatmulPrecision::fp32);
}

TEST(AttentionForwardAll, EachCallGetsWhatItGetsAloneInBf16) {
  if (!cpu_has_bf16()) GTEST_SKIP() << "this CPU lacks AVX512-BF16";
  expect_each_call_as_alone(MatmulPrecision::bf16);
}

}  // namespace
}  // namespace alibi
