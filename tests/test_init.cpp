// The initialisation schemes of docs/model.md drawn by Model::init_weights, the per-tensor
// learning-rate scale of AdamW, and how the config records both.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "model/model.h"
#include "model/params.h"
#include "train/optim.h"
#include "usage_error.h"

namespace alibi {
namespace {

ModelConfig config(InitScheme init) {
  ModelConfig c;
  c.vocab = 500;
  c.layers = 3;
  c.d_model = 64;
  c.heads = 4;
  c.ffn = 192;
  c.pos = PosKind::learned;
  c.max_positions = 96;
  c.init = init;
  return c;
}

struct Moments {
  double mean = 0, std = 0, max_abs = 0;
};

Moments moments(const float* w, size_t n) {
  Moments m;
  for (size_t i = 0; i < n; ++i) m.mean += w[i];
  m.mean /= double(n);
  for (size_t i = 0; i < n; ++i) {
    m.std += (w[i] - m.mean) * (w[i] - m.mean);
    m.max_abs = std::max(m.max_abs, double(std::abs(w[i])));
  }
  m.std = std::sqrt(m.std / double(n));
  return m;
}

// What docs/model.md says each tensor is drawn from: normal (std) or uniform (bound), else
// constant 0 or 1. The formulas are written out here, not taken from params.cpp.
struct Expected {
  enum { normal, uniform, zeros, ones } kind;
  double scale = 0;
};

Expected expected(const ModelConfig& c, const std::string& name) {
  const double C = c.d_model, F = c.ffn, L = c.layers;
  auto ends = [&](const char* s) { return name.ends_with(s); };
  if (ends(".b")) return {Expected::zeros};
  if (ends("ln1.w") || ends("ln2.w") || name == "lnf.w") return {Expected::ones};
  if (c.init == InitScheme::gpt2) {
    if (ends("proj.w")) return {Expected::normal, 0.02 / std::sqrt(2 * L)};
    return {Expected::normal, 0.02};
  }
  if (name == "wte" || name == "wpe") return {Expected::normal, 1 / std::sqrt(C)};
  if (ends("qkv.w")) return {Expected::uniform, std::sqrt(0.5) * std::sqrt(6 / (C + C))};
  if (ends("attn.proj.w")) return {Expected::uniform, std::sqrt(6 / (C + C))};
  return {Expected::uniform, std::sqrt(6 / (C + F))};  // mlp.fc.w (F, C), mlp.proj.w (C, F)
}

class InitSchemes : public ::testing::TestWithParam<InitScheme> {};

// Sample moments against the distribution: the standard error of a sample std of n draws is
// about std / sqrt(2n) (normal) or smaller (uniform); 5 of them leave a false alarm at ~1e-6
// per tensor while a wrong scale (a factor of sqrt(2) or more) is hundreds of errors away.
TEST_P(InitSchemes, EveryTensorDrawsItsDocumentedDistribution) {
  const ModelConfig c = config(GetParam());
  Model m(c, 1, 8);
  m.init_weights(11);
  const std::vector<float> host = m.params.to_host();
  for (const TensorInfo& t : m.layout.tensors) {
    SCOPED_TRACE(t.name);
    const Expected e = expected(c, t.name);
    const Moments s = moments(host.data() + t.offset, t.numel);
    const double n = double(t.numel);
    switch (e.kind) {
      case Expected::zeros: EXPECT_EQ(s.max_abs, 0.0); break;
      case Expected::ones: EXPECT_EQ(s.mean, 1.0); EXPECT_EQ(s.std, 0.0); break;
      case Expected::normal:
        EXPECT_NEAR(s.mean, 0.0, 5 * e.scale / std::sqrt(n));
        EXPECT_NEAR(s.std, e.scale, 5 * e.scale / std::sqrt(2 * n));
        break;
      case Expected::uniform: {
        const double sd = e.scale / std::sqrt(3.0);
        EXPECT_LE(s.max_abs, e.scale);
        EXPECT_GT(s.max_abs, 0.99 * e.scale);  // the draws reach the bound
        EXPECT_NEAR(s.mean, 0.0, 5 * sd / std::sqrt(n));
        EXPECT_NEAR(s.std, sd, 5 * sd / std::sqrt(2 * n));
        break;
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Init, InitSchemes,
                         ::testing::Values(InitScheme::gpt2, InitScheme::fairseq),
                         [](const auto& info) { return std::string(init_name(info.param)); });

TEST(InitConfig, RecordedInTheConfigAndOldCheckpointsStartedFromGpt2) {
  ModelConfig c = config(InitScheme::fairseq);
  c.t5_lr_scale = 30.0f;
  const ModelConfig back = ModelConfig::from_json(c.to_json());
  EXPECT_EQ(back.init, InitScheme::fairseq);
  EXPECT_EQ(back.t5_lr_scale, 30.0f);
  nlohmann::json old = c.to_json();
  old.erase("init");
  old.erase("t5_lr_scale");
  EXPECT_EQ(ModelConfig::from_json(old).init, InitScheme::gpt2);
  EXPECT_EQ(ModelConfig::from_json(old).t5_lr_scale, 1.0f);
  old["init"] = "xavier";
  test::expect_usage_error([&] { ModelConfig::from_json(old); },
                           {"init", "xavier", "gpt2|fairseq"});
  test::expect_usage_error([] { parse_init("normal"); }, {"--init", "normal", "gpt2|fairseq"});
}

TEST(InitConfig, T5LearningRateScaleMustBePositive) {
  ModelConfig c = config(InitScheme::fairseq);
  c.pos = PosKind::t5;
  c.t5_lr_scale = 0.0f;
  test::expect_usage_error([&] { c.validate(); }, {"--t5-lr-scale", "0"});
  c.t5_lr_scale = 10.0f;
  c.validate();
  EXPECT_EQ(make_param_layout(c).at("t5_bias").lr_scale, 10.0f);
  EXPECT_EQ(make_param_layout(c).at("wte").lr_scale, 1.0f);
}

// One AdamW step over two tensors, one of them at 10x the learning rate, against the formula of
// docs/model.md in double. fp32 rounding of a handful of operations: 1e-6 relative.
TEST(AdamW, PerTensorLearningRateScale) {
  ParamLayout l;
  l.add("a", {5}, Init{}, true);
  l.add("b", {7}, Init{}, true, 10.0f);
  ParamSet p(l), g(l), m(l), v(l);
  std::vector<float> ph(l.total, 0.0f), gh(l.total, 0.0f);
  for (size_t i = 0; i < l.total; ++i) {
    ph[i] = 0.1f * float(i % 9) - 0.3f;
    gh[i] = 0.05f * float(i % 5) - 0.1f;
  }
  p.from_host(ph);
  g.from_host(gh);
  const AdamWConfig c;
  const float lr = 1e-3f;
  adamw_step(p, g, m, v, lr, 1, c);
  const std::vector<float> out = p.to_host();
  for (const TensorInfo& t : l.tensors)
    for (size_t i = t.offset; i < t.offset + t.numel; ++i) {
      const double tlr = double(lr) * t.lr_scale, gi = gh[i];
      const double mh = (1 - c.beta1) * gi / (1 - c.beta1);
      const double vh = (1 - c.beta2) * gi * gi / (1 - c.beta2);
      const double want = ph[i] * (1 - tlr * c.weight_decay) - tlr * mh / (std::sqrt(vh) + c.eps);
      EXPECT_NEAR(out[i], want, 1e-6 * std::max(1.0, std::abs(want))) << t.name << " " << i;
    }
}

}  // namespace
}  // namespace alibi
