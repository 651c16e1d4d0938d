// Bidirectional attention (AttnShape::causal false, for encoders): the fused kernel against the
// naive one (every bias kind, dropout, Tq < Tk, padded rows, tiles that straddle), against
// central finite differences (including the alibi slopes' and the t5 table's gradients, whose
// distances now run both ways), the bf16 path against its rounding bound, determinism, and that
// the flag changes what a query sees.
#include <gtest/gtest.h>

#include "attention_checks.h"

namespace alibi {
namespace {

using namespace test;

Problem bidirectional(BiasKind kind, int B, int NH, int Tq, int Tk, int HS, float p, int ldk = 0,
                      uint64_t seed = 7) {
  Problem P(kind, B, NH, Tq, Tk, HS, p, ldk, seed);
  P.make_bidirectional();
  return P;  // moved: the bias keeps pointing at the same buffers
}

TEST(AttentionBidirectional, FusedMatchesNaive) {
  for (BiasKind kind : {BiasKind::none, BiasKind::alibi, BiasKind::t5})
    for (float p : {0.0f, 0.1f}) {
      SCOPED_TRACE(kind_name(kind) + " p=" + std::to_string(p));
      expect_fused_matches_naive(bidirectional(kind, 2, 3, 7, 7, 32, p));
      expect_fused_matches_naive(bidirectional(kind, 2, 2, 64, 64, 64, p));
      expect_fused_matches_naive(bidirectional(kind, 1, 3, 150, 150, 48, p));  // past t5's range
      expect_fused_matches_naive(bidirectional(kind, 2, 3, 37, 200, 64, p, 203));  // Tq < Tk
      expect_fused_matches_naive(bidirectional(kind, 1, 2, 65, 129, 80, p));  // tiles straddle
    }
}

TEST(AttentionBidirectional, GradientsMatchFiniteDifferences) {
  const int threads = omp_get_max_threads();
  omp_set_num_threads(1);  // hundreds of small calls (threading is covered above)
  for (BiasKind kind : {BiasKind::none, BiasKind::alibi, BiasKind::t5})
    for (bool fused : {false, true}) {
      SCOPED_TRACE(kind_name(kind) + (fused ? " fused" : " naive"));
      check_gradients_fd(bidirectional(kind, 1, 2, 6, 6, 5, 0.2f), fused);
      check_gradients_fd(bidirectional(kind, 2, 1, 3, 7, 3, 0.0f, 8), fused);
    }
  // 30 positions each way past kT5MaxDistance: both saturating buckets collect gradient.
  check_gradients_fd(bidirectional(BiasKind::t5, 1, 1, 30, 30, 4, 0.0f), true);
  omp_set_num_threads(threads);
}

TEST(AttentionBidirectional, SameBitsForAnyThreadCount) {
  for (BiasKind kind : {BiasKind::alibi, BiasKind::t5})
    same_on_one_thread(bidirectional(kind, 2, 3, 150, 150, 64, 0.1f));
}

TEST(AttentionBidirectional, Bf16WithinTheRoundingBound) {
  if (!cpu_has_bf16()) GTEST_SKIP() << "this CPU has no AVX512-BF16";
  for (BiasKind kind : {BiasKind::none, BiasKind::alibi, BiasKind::t5})
    for (float p : {0.0f, 0.1f}) {
      SCOPED_TRACE(kind_name(kind) + " p=" + std::to_string(p));
      Problem P = bf16_problem(kind, 2, 3, 100, 100, 64, p);
      P.make_bidirectional();
      expect_bf16_within_bounds(P);
    }
}

// The first query of a causal call sees one key; of a bidirectional call, all of them: with
// v = one-hot rows, its output is the whole softmax row, and it differs from the causal one.
TEST(AttentionBidirectional, EveryQuerySeesEveryKey) {
  Problem P(BiasKind::alibi, 1, 1, 16, 16, 16, 0.0f);
  std::fill(P.v.begin(), P.v.end(), 0.0f);
  for (int j = 0; j < 16; ++j) P.v[size_t(j) * 16 + j] = 1.0f;
  const std::vector<float> none(size_t(kNumBuckets), 0.0f);
  const Grads causal = run_fused(P, none);
  P.make_bidirectional();
  const Grads both = run_fused(P, none);
  EXPECT_FLOAT_EQ(causal.out[0], 1.0f);  // query 0 alone with key 0
  float row = 0.0f;
  for (int j = 0; j < 16; ++j) {
    EXPECT_GT(both.out[size_t(j)], 0.0f) << j;
    row += both.out[size_t(j)];
  }
  EXPECT_NEAR(row, 1.0f, 1e-5f);
  // alibi is symmetric in |i - j|: the middle query's weights fall off both ways alike when
  // its keys are equally scored (zero queries).
  std::fill(P.q.begin(), P.q.end(), 0.0f);
  const Grads flat = run_fused(P, none);
  const float* mid = flat.out.data() + size_t(8) * 16;
  EXPECT_FLOAT_EQ(mid[8 - 3], mid[8 + 3]);
  EXPECT_GT(mid[8], mid[9]);
}

}  // namespace
}  // namespace alibi
