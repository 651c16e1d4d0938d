// Results do not depend on the thread count beyond fp32 reassociation: one thread against
// several, loss and every gradient, for every position method.
#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <cmath>

#include "core/rng.h"
#include "model/model.h"
#include "positions.h"

namespace alibi {
namespace {

// Different thread counts split reductions (sgemm blocking, row partitions) differently, so the
// fp32 sums round differently: ~1e-6 relative. 1e-4 of each tensor's scale leaves room while a
// race or a lost partial sum would show as O(1).
constexpr float kThreadRelTol = 1e-4f;

class ThreadsTest : public ::testing::TestWithParam<PosKind> {};

TEST_P(ThreadsTest, OneAndTwoThreadsAgree) {
  ModelConfig c;
  c.vocab = 50;
  c.layers = 2;
  c.d_model = 64;
  c.heads = 4;
  c.ffn = 128;
  c.pos = GetParam();
  c.max_positions = 80;
  c.dropout_resid = 0.1f;
  c.dropout_attn = 0.1f;
  const int B = 3, T = 80;
  Rng r(4);
  std::vector<int32_t> tok(B * T), tgt(B * T);
  for (int i = 0; i < B * T; ++i) {
    tok[i] = int32_t(r.below(c.vocab));
    tgt[i] = int32_t(r.below(c.vocab));
  }
  const int saved = omp_get_max_threads();
  std::vector<float> grads[2];
  float loss[2];
  for (int k = 0; k < 2; ++k) {
    omp_set_num_threads(k == 0 ? 1 : 2);
    Model m(c, B, T);
    m.init_weights(8);
    loss[k] = m.forward(tok.data(), tgt.data(), B, T, true, 77);
    m.grads.zero();
    m.backward();
    grads[k] = m.grads.to_host();
  }
  omp_set_num_threads(saved);
  EXPECT_NEAR(loss[0], loss[1], kThreadRelTol * std::abs(loss[0]));
  Model layout_only(c, 1, 1, false);
  for (const TensorInfo& t : layout_only.layout.tensors) {
    float scale = 0, err = 0;
    for (size_t i = t.offset; i < t.offset + t.numel; ++i) {
      scale = std::max(scale, std::abs(grads[0][i]));
      err = std::max(err, std::abs(grads[0][i] - grads[1][i]));
    }
    EXPECT_LE(err, kThreadRelTol * scale) << t.name;
  }
}

INSTANTIATE_TEST_SUITE_P(AllMethods, ThreadsTest, ::testing::ValuesIn(all_positions()),
                         test::pos_param_name);

}  // namespace
}  // namespace alibi
