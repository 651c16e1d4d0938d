// ShardedAdamW in a job of one against the reference optimizer (optim.cpp: clip_grad_norm and
// adamw_step, themselves checked against PyTorch by the golden tests): bit-identical with one
// micro-batch per step, and with several it equals the reference applied to the micro-batch
// gradients summed left to right. The several-rank cases run under mpirun
// (tests/test_distributed.py) against one process.
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "core/rng.h"
#include "dist/comm.h"
#include "train/optim.h"
#include "train/sharded_adamw.h"

namespace alibi {
namespace {

ParamLayout layout() {
  ParamLayout l;
  l.add("w", {37, 11}, Init{}, true);
  l.add("b", {11}, Init{}, false);
  l.add("t", {5, 3}, Init{}, false, 10.0f);
  return l;
}

std::vector<float> values(size_t n, uint64_t seed, float scale) {
  std::vector<float> x(n);
  for (size_t i = 0; i < n; ++i)
    x[i] = scale * (float(hash64(seed, i) % 2001) / 1000.0f - 1.0f);
  return x;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * 4) == 0;
}

// Three steps, `accum` micro-batches each; the reference sums them left to right first. Scale 3
// makes the norm exceed the clip, so clipping is exercised.
void check(int accum, float scale) {
  const ParamLayout l = layout();
  const std::shared_ptr<Comm> one = single_process_comm();
  ParamSet p(l), g(l), pr(l), gr(l), mr(l), vr(l);
  p.from_host(values(l.total, 1, 0.5f));
  pr.from_host(values(l.total, 1, 0.5f));
  ShardedAdamW opt(l, default_backend(), *one, accum);
  const AdamWConfig c;
  for (int step = 0; step < 3; ++step) {
    std::vector<float> sum(l.total, 0.0f);
    for (int k = 0; k < accum; ++k) {
      const std::vector<float> micro = values(l.total, 100 + uint64_t(step * accum + k), scale);
      for (size_t i = 0; i < l.total; ++i) sum[i] = k == 0 ? micro[i] : sum[i] + micro[i];
      g.from_host(micro);
      opt.reduce(g, k);
    }
    const float norm = opt.step(p, 1e-2f, step + 1, 1.0f, c);
    gr.from_host(sum);
    const float norm_ref = clip_grad_norm(gr, 1.0f);
    adamw_step(pr, gr, mr, vr, 1e-2f, step + 1, c);
    EXPECT_EQ(norm, norm_ref) << "step " << step;
    EXPECT_TRUE(same_bits(p.to_host(), pr.to_host())) << "step " << step;
  }
  opt.with_moments([&](const ParamSet* m, const ParamSet* v) {
    ASSERT_TRUE(m && v);
    EXPECT_TRUE(same_bits(m->to_host(), mr.to_host()));
    EXPECT_TRUE(same_bits(v->to_host(), vr.to_host()));
  });
}

TEST(ShardedAdamW, OneRankOneMicroBatchIsTheReferenceToTheBit) { check(1, 3.0f); }
TEST(ShardedAdamW, OneRankSumsMicroBatchesLeftToRight) { check(4, 3.0f); }
TEST(ShardedAdamW, UnclippedStepsToo) { check(2, 1e-3f); }

TEST(ShardedAdamW, RangesCoverTheArrayOn16FloatBoundaries) {
  for (size_t n : {16u, 100u, 1000u, 4096u, 12345u})
    for (int ranks : {1, 2, 3, 4, 7}) {
      const std::vector<Range> parts = split_ranges(n, ranks);
      ASSERT_EQ(parts.size(), size_t(ranks));
      EXPECT_EQ(parts.front().begin, 0u);
      EXPECT_EQ(parts.back().end, n);
      for (int r = 0; r + 1 < ranks; ++r) {
        EXPECT_EQ(parts[size_t(r)].end, parts[size_t(r) + 1].begin);
        EXPECT_EQ(parts[size_t(r)].end % 16, 0u);
      }
    }
}

}  // namespace
}  // namespace alibi
