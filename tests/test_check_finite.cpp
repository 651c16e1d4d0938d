// --check-finite: the first NaN or infinity is reported where it starts (layer and op), not
// where it reaches the loss.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "cli.h"
#include "core/error.h"
#include "model_util.h"
#include "usage_error.h"

namespace alibi {
namespace {

// A model whose tensor `name` has the value `bad` at every entry (all: else its middle entry);
// a forward with the check on must name `where`.
void expect_first_at(const std::string& name, float bad, bool all,
                     const std::vector<std::string>& where) {
  SCOPED_TRACE(name + " = " + std::to_string(bad) + (all ? " everywhere" : " once"));
  const ModelConfig c = test::small_model(PosKind::alibi, 3);
  const int B = 2, T = 9;
  Model m(c, B, T, true);
  test::randomise(m, 3);
  const TensorInfo* t = m.layout.find(name);
  ASSERT_NE(t, nullptr) << name;
  std::vector<float> w = m.params.to_host();
  for (size_t i = all ? 0 : t->numel / 2; i < (all ? t->numel : t->numel / 2 + 1); ++i)
    w[t->offset + i] = bad;
  m.params.from_host(w);
  const std::vector<int32_t> tok = test::random_tokens(B * T, c.vocab, 1);
  const std::vector<int32_t> tgt = test::random_tokens(B * T, c.vocab, 2);
  // Without the check the NaN only shows in the loss.
  EXPECT_FALSE(std::isfinite(m.forward(tok.data(), tgt.data(), B, T)));
  m.set_check_finite(true);
  test::expect_usage_error([&] { m.forward(tok.data(), tgt.data(), B, T); }, where);
}

// A non-finite parameter is named itself; finite but huge weights are found at the op whose
// output overflows (to inf, or to NaN where partial sums overflowed to +inf and -inf: which one
// depends on the product's summation order).
TEST(CheckFinite, NamesTheParameterOrTheFirstOpThatOverflows) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  expect_first_at("h.1.mlp.fc.w", nan, false, {"parameter h.1.mlp.fc.w", "non-finite"});
  expect_first_at("wte", inf, false, {"parameter wte"});
  expect_first_at("h.1.mlp.fc.w", 3e38f, true,
                  {"the MLP's fc linear of layer 1", "its inputs were finite"});
  expect_first_at("h.2.ln2.w", 3e38f, true, {"ln2 of layer 2"});
  expect_first_at("h.0.attn.qkv.w", 3e38f, true, {"the qkv linear of layer 0"});
  expect_first_at("h.0.attn.qkv.w", 1e30f, true, {"attention of layer 0"});  // q.k overflows
}

// A finite forward whose backward meets an infinite loss scale: the first op of the backward.
TEST(CheckFinite, NamesTheBackwardOpAndTheGradientTensor) {
  const ModelConfig c = test::small_model(PosKind::alibi, 2);
  const int B = 2, T = 9;
  Model m(c, B, T, true);
  test::randomise(m, 4);
  m.set_check_finite(true);
  const std::vector<int32_t> tok = test::random_tokens(B * T, c.vocab, 1);
  const std::vector<int32_t> tgt = test::random_tokens(B * T, c.vocab, 2);
  m.forward(tok.data(), tgt.data(), B, T, true, 5);
  m.grads.zero();
  test::expect_usage_error([&] { m.backward(std::numeric_limits<float>::infinity()); },
                           {"the cross-entropy's backward"});
  // Gradients accumulate: one that was already infinite is named by tensor.
  std::vector<float> g(m.grads.data.size(), 0.0f);
  const TensorInfo* t = m.layout.find("h.1.mlp.proj.b");
  ASSERT_NE(t, nullptr);
  g[t->offset] = std::numeric_limits<float>::infinity();
  m.grads.from_host(g);
  m.forward(tok.data(), tgt.data(), B, T, true, 5);
  test::expect_usage_error([&] { m.backward(1.0f); }, {"the gradient h.1.mlp.proj.b"});
}

// Through the CLI: an update that makes the weights huge is found at the op it overflows.
TEST(CheckFinite, TrainStopsAtTheStepAndOp) {
  test::TempDir dir("check_finite");
  test::prepare_bundled(dir);
  const auto r = test::run_cli(
      "--threads 1 train --data " + dir / "data" + " --out " + dir / "run" +
          " --layers 2 --d-model 32 --heads 4 --ffn 64 --seq-len 32 --batch 4 --steps 5"
          " --lr 1e30 --warmup 1 --check-finite",
      dir / "err");
  test::expect_cli_error(r, "step 2, micro-batch 0: --check-finite: the qkv linear of layer 0");
}

}  // namespace
}  // namespace alibi
