// Attention kernels: fused vs naive (forward and backward, every bias kind, with and without
// dropout, ragged sizes, Tq < Tk, padded k/v rows), naive and fused backward vs central finite
// differences, the bf16 path against a per-element rounding bound, workspace bounds, and
// determinism.
#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <tuple>
#include <vector>

#include "attention_checks.h"

namespace alibi {
namespace {

using namespace test;
class AttentionFusedVsNaive : public ::testing::TestWithParam<GridParam> {};

TEST_P(AttentionFusedVsNaive, ForwardAndBackward) {
  const auto [kind, T, HS, p] = GetParam();
  const int NH = 1 + (T + HS) % 3;  // 1..3 heads, varying across the grid
  const int B = T <= 64 ? 2 : 1;
  expect_fused_matches_naive(Problem(kind, B, NH, T, T, HS, p, 0, 11 + T + HS));
}

INSTANTIATE_TEST_SUITE_P(
    Grid, AttentionFusedVsNaive,
    ::testing::Combine(::testing::Values(BiasKind::none, BiasKind::alibi, BiasKind::t5),
                       ::testing::Values(1, 7, 64, 100, 130, 257),  // 64 = one tile; others ragged
                       ::testing::Values(32, 64, 80), ::testing::Values(0.0f, 0.1f)),
    grid_name);

TEST(AttentionFusedVsNaiveShapes, ChunkOfQueriesAgainstLongerKeysWithPaddedRows) {
  // Tq < Tk: the 37 queries sit at positions 163..199; k/v have 203 rows allocated per head.
  for (BiasKind kind : {BiasKind::alibi, BiasKind::t5})
    for (float p : {0.0f, 0.1f}) {
      SCOPED_TRACE(kind_name(kind) + " p=" + std::to_string(p));
      expect_fused_matches_naive(Problem(kind, 2, 3, 37, 200, 64, p, 203));
      expect_fused_matches_naive(Problem(kind, 1, 2, 1, 130, 32, p));   // one decode step
      expect_fused_matches_naive(Problem(kind, 1, 2, 65, 129, 80, p));  // tiles straddle
    }
}

// The slopes' gradient (trainable slopes) is reduced in a fixed order: the same bits on 1 and 2
// threads, as the t5 table's.
TEST(AttentionBiasGradient, SameBitsForAnyThreadCount) {
  for (BiasKind kind : {BiasKind::alibi, BiasKind::t5}) {
    const Problem P(kind, 3, 4, 150, 150, 32, 0.1f);
    const std::vector<float> init(size_t(kNumBuckets) * P.s.NH, 0.0f);
    const int threads = omp_get_max_threads();
    omp_set_num_threads(1);
    const Grads one = run_fused(P, init);
    omp_set_num_threads(2);
    const Grads two = run_fused(P, init);
    omp_set_num_threads(threads);
    EXPECT_EQ(0, std::memcmp(one.dt5.data(), two.dt5.data(), one.dt5.size() * 4))
        << kind_name(kind);
    EXPECT_NE(one.dt5[0], 0.0f) << kind_name(kind);
  }
}

TEST(AttentionFusedVsNaiveShapes, SmallAndOddHeadSizesManyHeads) {
  for (int HS : {1, 8, 16, 24, 48, 96})
    for (BiasKind kind : {BiasKind::alibi, BiasKind::t5}) {
      SCOPED_TRACE(kind_name(kind) + " HS=" + std::to_string(HS));
      expect_fused_matches_naive(Problem(kind, 2, 5, 70, 70, HS, 0.1f));
    }
}

TEST(AttentionFusedVsNaiveShapes, LongSequencePastT5MaxDistanceAndLargeAlibiBias) {
  // Distances up to 599: alibi biases down to -300 (most keys negligible), t5 saturating bucket.
  for (BiasKind kind : {BiasKind::alibi, BiasKind::t5})
    expect_fused_matches_naive(Problem(kind, 1, 2, 600, 600, 32, 0.0f));
}


TEST(AttentionFiniteDifferences, NaiveBackward) {
  for (BiasKind kind : {BiasKind::none, BiasKind::alibi, BiasKind::t5})
    for (float p : {0.0f, 0.3f}) {
      SCOPED_TRACE(kind_name(kind) + " p=" + std::to_string(p));
      check_gradients_fd(Problem(kind, 1, 2, 5, 5, 4, p), false);
      check_gradients_fd(Problem(kind, 2, 1, 3, 7, 3, p, 8), false);  // Tq < Tk, padded rows
    }
}

TEST(AttentionFiniteDifferences, T5TableWithDistancesPastMaxDistance) {
  // 30 positions > kT5MaxDistance, so the saturating bucket collects gradient too.
  check_gradients_fd(Problem(BiasKind::t5, 1, 2, 30, 30, 2, 0.0f), false);
}

TEST(AttentionFiniteDifferences, FusedBackward) {
  // Hundreds of one-tile calls: on one thread, so a busy machine does not turn each OpenMP
  // fork/join into milliseconds of waiting (threading is covered by the comparisons above).
  const int threads = omp_get_max_threads();
  omp_set_num_threads(1);
  for (BiasKind kind : {BiasKind::alibi, BiasKind::t5}) {
    SCOPED_TRACE(kind_name(kind));
    check_gradients_fd(Problem(kind, 1, 2, 6, 6, 5, 0.2f), true);
  }
  omp_set_num_threads(threads);
}

TEST(AttentionDeterminism, TwoFusedRunsAreBitIdentical) {
  const Problem P(BiasKind::t5, 2, 3, 150, 150, 64, 0.1f);
  const std::vector<float> dt5_init(size_t(kNumBuckets) * P.s.NH, 0.0f);
  expect_bit_identical(run_fused(P, dt5_init), run_fused(P, dt5_init));
}

TEST(AttentionDeterminism, FusedResultsDoNotDependOnThreadCount) {
  // Each task writes only its own rows and the t5 gradient is reduced in a fixed order, so the
  // thread count changes nothing (a stronger property than the one training relies on).
  same_on_one_thread(Problem(BiasKind::t5, 2, 3, 150, 150, 64, 0.1f));
}

class AttentionBf16VsNaive : public ::testing::TestWithParam<GridParam> {};

TEST_P(AttentionBf16VsNaive, WithinTheRoundingBound) {
  if (!cpu_has_bf16()) GTEST_SKIP() << "this CPU has no AVX512-BF16";
  const auto [kind, T, HS, p] = GetParam();
  const int NH = 1 + (T + HS) % 3;
  const int B = T <= 64 ? 2 : 1;
  expect_bf16_within_bounds(bf16_problem(kind, B, NH, T, T, HS, p, 0, 13 + T + HS));
}

INSTANTIATE_TEST_SUITE_P(
    Grid, AttentionBf16VsNaive,
    ::testing::Combine(::testing::Values(BiasKind::none, BiasKind::alibi, BiasKind::t5),
                       ::testing::Values(1, 7, 64, 101, 130, 257),  // ragged, odd row counts
                       ::testing::Values(32, 64, 80), ::testing::Values(0.0f, 0.1f)),
    grid_name);

TEST(AttentionBf16Shapes, ChunksPaddedRowsOddAndSmallHeadSizes) {
  if (!cpu_has_bf16()) GTEST_SKIP() << "this CPU has no AVX512-BF16";
  for (BiasKind kind : {BiasKind::alibi, BiasKind::t5}) {
    SCOPED_TRACE(kind_name(kind));
    expect_bf16_within_bounds(bf16_problem(kind, 2, 3, 37, 200, 64, 0.1f, 203));  // odd offset
    expect_bf16_within_bounds(bf16_problem(kind, 1, 2, 1, 130, 32, 0.0f));
    expect_bf16_within_bounds(bf16_problem(kind, 1, 2, 65, 129, 80, 0.1f));
    for (int HS : {1, 3, 8, 24, 48, 96, 130}) {
      SCOPED_TRACE("HS=" + std::to_string(HS));
      expect_bf16_within_bounds(bf16_problem(kind, 2, 2, 70, 70, HS, 0.1f));
    }
  }
}

TEST(AttentionBf16Shapes, RoundsInsideTheKernelAndDependsOnNoThreadCount) {
  if (!cpu_has_bf16()) GTEST_SKIP() << "this CPU has no AVX512-BF16";
  Problem P = bf16_problem(BiasKind::alibi, 2, 3, 150, 150, 64, 0.1f);
  const Grads b16 = same_on_one_thread(P);
  // The same inputs through the fp32 kernel: P and dS are not rounded there, so the outputs
  // must differ by more than fp32 noise (the switch really selects another path).
  P.s.precision = MatmulPrecision::fp32;
  const Grads f32 = run_fused(P, std::vector<float>(size_t(kNumBuckets) * P.s.NH, 0.0f));
  EXPECT_GT(rel_err(b16.out, f32.out), 1e-4);
  EXPECT_GT(rel_err(b16.dq, f32.dq), 1e-4);
}

// Decoding rows (at most 2 queries in a call) take another path in bf16: dot products on
// operands rounded as they are loaded, nothing packed. Query row 0 sees one key, so its
// probability is exactly 1: its output must be that key's value rounded to bf16, exactly, and
// its lse the score of the rounded q and k (within fp32's accumulation), not of the raw ones.
TEST(AttentionBf16Shapes, DecodingRowsRoundTheirOperandsInTheKernel) {
  if (!cpu_has_bf16()) GTEST_SKIP() << "this CPU has no AVX512-BF16";
  for (int T : {1, 2})
    for (int HS : {64, 24}) {
      SCOPED_TRACE("T=" + std::to_string(T) + " HS=" + std::to_string(HS));
      Problem raw(BiasKind::alibi, 2, 3, T, T, HS, 0.0f, 0, 29 + HS);
      raw.s.precision = MatmulPrecision::bf16;
      const Problem rounded = bf16_problem(BiasKind::alibi, 2, 3, T, T, HS, 0.0f, 0, 29 + HS);
      const std::vector<float> dt5(size_t(kNumBuckets) * 3, 0.0f);
      const Grads f = run_fused(raw, dt5), n = run_naive(rounded, dt5);
      Problem raw32 = raw;
      raw32.s.precision = MatmulPrecision::fp32;
      const Grads unrounded = run_naive(raw32, dt5);
      double lse_err = 0.0, lse_moved = 0.0;
      for (int bh = 0; bh < 2 * 3; ++bh) {
        const size_t row0 = size_t(bh) * T;  // query row 0 of head bh
        for (int d = 0; d < HS; ++d)
          ASSERT_EQ(f.out[row0 * HS + d], round_bf16(raw.v[row0 * HS + d])) << "head " << bh;
        lse_err = std::max(lse_err, std::fabs(double(f.lse[row0]) - double(n.lse[row0])));
        lse_moved =
            std::max(lse_moved, std::fabs(double(unrounded.lse[row0]) - double(n.lse[row0])));
      }
      EXPECT_LE(lse_err, 1e-6);
      EXPECT_GT(lse_moved, 1e-4);  // the rounding of q and k is visible in lse
    }
}

TEST(AttentionDropout, MaskDropsAboutPAndMatchesTheDocumentedHash) {
  // With v = one-hot rows the output exposes each kept probability: p(i,j)/(1-p) or 0.
  Problem P(BiasKind::none, 1, 1, 40, 40, 40, 0.25f);
  std::fill(P.v.begin(), P.v.end(), 0.0f);
  for (int j = 0; j < 40; ++j) P.v[size_t(j) * 40 + j] = 1.0f;
  const std::vector<float> dt5(size_t(kNumBuckets), 0.0f);
  const Grads g = run_fused(P, dt5);
  int dropped = 0, visible = 0;
  for (int i = 0; i < 40; ++i)
    for (int j = 0; j <= i; ++j) {
      const bool keep = u01(hash64(P.drop.seed, 0, uint64_t(i), uint64_t(j))) >= P.drop.p;
      const float o = g.out[size_t(i) * 40 + j];
      EXPECT_EQ(keep, o != 0.0f) << "i=" << i << " j=" << j;
      dropped += o == 0.0f;
      ++visible;
    }
  EXPECT_NEAR(double(dropped) / visible, 0.25, 0.06);  // 820 draws: 4 sigma is about 0.06
}

}  // namespace
}  // namespace alibi
