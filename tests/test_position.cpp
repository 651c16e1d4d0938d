// Position methods: ALiBi slopes against the rule of paper.md, and the whole model's backward
// (with dropout, every method) against finite differences.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "fd.h"
#include "model/model.h"
#include "position/position.h"
#include "positions.h"
#include "usage_error.h"

namespace alibi {
namespace {

// The rule of paper.md, written independently of src/position: powers of two get 2^(-8h/n);
// other counts take the c = 2^floor(log2 n) slopes, then every other slope of the 2c set.
std::vector<double> rule_slopes(int n) {
  auto pow2 = [](int m) {
    std::vector<double> s;
    for (int h = 1; h <= m; ++h) s.push_back(std::pow(2.0, -8.0 * h / m));
    return s;
  };
  int c = 1;
  while (c * 2 <= n) c *= 2;
  std::vector<double> s = pow2(c);
  const std::vector<double> extra = pow2(2 * c);
  for (int i = 0; int(s.size()) < n; i += 2) s.push_back(extra[i]);
  return s;
}

TEST(Slopes, MatchTheRuleForOneToSixtyFourHeads) {
  for (int n = 1; n <= 64; ++n) {
    const std::vector<float> got = alibi_slopes(n);
    const std::vector<double> want = rule_slopes(n);
    ASSERT_EQ(got.size(), size_t(n));
    for (int h = 0; h < n; ++h)
      EXPECT_EQ(got[h], float(want[h])) << n << " heads, head " << h;
  }
}

TEST(Slopes, WrittenOutValues) {
  const double r = std::sqrt(0.5);  // 2^-0.5
  const std::vector<std::pair<int, std::vector<double>>> cases = {
      {6, {0.25, 0.0625, 0.015625, 0.00390625, 0.5, 0.125}},
      {8, {0.5, 0.25, 0.125, 0.0625, 0.03125, 0.015625, 0.0078125, 0.00390625}},
      {12, {0.5, 0.25, 0.125, 0.0625, 0.03125, 0.015625, 0.0078125, 0.00390625, r, r / 2,
            r / 4, r / 8}},
      {16, {r, 0.5, r / 2, 0.25, r / 4, 0.125, r / 8, 0.0625, r / 16, 0.03125, r / 32,
            0.015625, r / 64, 0.0078125, r / 128, 0.00390625}},
  };
  for (const auto& [n, want] : cases) {
    const std::vector<float> got = alibi_slopes(n);
    ASSERT_EQ(got.size(), want.size());
    for (size_t h = 0; h < want.size(); ++h)
      EXPECT_FLOAT_EQ(got[h], float(want[h])) << n << " heads, head " << h;
  }
}

// BLOOM's and MPT's slopes (alibi_bias_max 4, 8, 16) as transformers builds them, for 1..128 heads
// (tests/ref/make_slopes_golden.py). All three are the same rule in the same head order; they
// differ only in float32 rounding: ours is the correctly rounded value, MPT's is within 1 ulp of
// it, BLOOM's (base^k in float32) within 11 ulp at 128 heads. Tolerance: 2e-6 relative (16 ulp).
TEST(Slopes, EqualTransformersBloomAndMptForOneTo128Heads) {
  std::ifstream f(std::string(ALIBI_SOURCE_DIR) + "/tests/golden/slopes/alibi_slopes.json");
  ASSERT_TRUE(f) << "missing golden; run tests/ref/make_slopes_golden.py";
  const nlohmann::json golden = nlohmann::json::parse(f);
  const std::pair<const char*, double> families[] = {
      {"bloom", 8.0}, {"mpt_max8", 8.0}, {"mpt_max4", 4.0}, {"mpt_max16", 16.0}};
  for (const auto& [family, bias_max] : families) {
    for (int n = 1; n <= 128; ++n) {
      const std::vector<float> ours = alibi_slopes(n, bias_max);
      const std::vector<double> theirs = golden.at(family).at(std::to_string(n));
      ASSERT_EQ(theirs.size(), size_t(n)) << family << ", " << n << " heads";
      for (int h = 0; h < n; ++h)
        EXPECT_NEAR(ours[h], theirs[h], 2e-6 * theirs[h])
            << family << ", " << n << " heads, head " << h;
    }
  }
}

// T5's buckets against transformers' T5Attention._relative_position_bucket
// (tests/ref/make_t5_buckets_golden.py), relative positions -300..300: causal for keys at or
// before the query; bidirectional as the attention kernel composes them (kernels/attention.h):
// keys after the query in the second half, each half the causal rule with half the buckets.
TEST(T5Buckets, EqualTransformersCausalAndBidirectional) {
  std::ifstream f(std::string(ALIBI_SOURCE_DIR) +
                  "/tests/golden/t5/relative_position_buckets.json");
  ASSERT_TRUE(f) << "missing golden file";
  const nlohmann::json g = nlohmann::json::parse(f);
  const std::vector<int> rel = g.at("relative_positions").get<std::vector<int>>();
  for (const auto& [key, value] : g.at("buckets").items()) {
    const int NB = std::stoi(key), M = std::stoi(key.substr(key.find('_') + 1));
    const bool bidirectional = key.find("bidirectional") != std::string::npos;
    const std::vector<int> want = value.get<std::vector<int>>();
    const int half = bidirectional ? NB / 2 : NB;
    const std::vector<int32_t> table = t5_bucket_table(half, M);
    for (size_t i = 0; i < rel.size(); ++i) {
      const int d = -rel[i];  // ours: query minus key
      if (!bidirectional && d < 0) continue;  // masked
      const int a = std::abs(d);
      const int ours = (d < 0 ? half : 0) + (a < M ? table[size_t(a)] : half - 1);
      EXPECT_EQ(ours, want[i]) << key << " relative position " << rel[i];
    }
  }
}

TEST(Position, UnknownNameIsAUsageError) {
  EXPECT_THROW(parse_pos("wavelet"), UsageError);
  for (PosKind p : all_positions()) EXPECT_EQ(parse_pos(pos_name(p)), p) << pos_name(p);
}

// The model's full backward, dropout included, against finite differences of its loss.
void expect_model_fd(const ModelConfig& c) {
  const int B = 2, T = 9;
  Model m(c, B, T);
  m.init_weights(3);
  // Larger weights than the 0.02 initialisation so that every path carries gradient.
  Rng r(11);
  std::vector<float> w = m.params.to_host();
  for (float& x : w) x += 0.3f * r.normal();
  // KERPLE's r must stay positive, and a step h = 1e-2 is only small against r well above its
  // clamp 0.01 (the central difference's O(h^2) term grows like d^3 / (1 + r d)^3): r >= 0.1
  // here; the goldens cover r at the clamp.
  for (const TensorInfo& t : m.layout.tensors)
    if (t.name.rfind("kerple_", 0) == 0)
      for (int64_t i = 0; i < t.numel; ++i) w[t.offset + i] = std::fmax(w[t.offset + i], 0.1f);
  m.params.from_host(w);
  std::vector<int32_t> tok(B * T), tgt(B * T);
  for (int i = 0; i < B * T; ++i) {
    tok[i] = int32_t(r.below(c.vocab));
    tgt[i] = int32_t(r.below(c.vocab));
  }
  constexpr uint64_t kDropSeed = 42;
  auto loss = [&] { return double(m.forward(tok.data(), tgt.data(), B, T, true, kDropSeed)); };
  loss();
  m.grads.zero();
  m.backward();
  for (const TensorInfo& t : m.layout.tensors)
    test::expect_fd(t.name.c_str(), loss, m.params.data.data() + t.offset, t.numel,
                    m.grads.data.data() + t.offset, 6);
}

ModelConfig tiny(PosKind pos) {
  ModelConfig c;
  c.vocab = 17;
  c.layers = 2;
  c.d_model = 12;
  c.heads = 3;
  c.ffn = 20;
  c.pos = pos;
  c.max_positions = 9;
  c.t5_buckets = 4;
  c.t5_max_distance = 6;
  c.dropout_resid = 0.1f;
  c.dropout_attn = 0.1f;
  return c;
}

class ModelFd : public ::testing::TestWithParam<PosKind> {};

TEST_P(ModelFd, ParameterGradientsMatchFiniteDifferences) { expect_model_fd(tiny(GetParam())); }

// Every architecture option away from its default (BLOOM's and MPT's choices), together: no
// biases, exact GELU, a larger LayerNorm eps, unscaled embeddings with BLOOM's embedding
// LayerNorm, an untied head, MPT's alibi_bias_max.
TEST_P(ModelFd, ArchitectureOptionsMatchFiniteDifferences) {
  ModelConfig c = tiny(GetParam());
  c.linear_bias = false;
  c.ln_bias = false;
  c.ln_eps = 1e-3f;
  c.gelu = Gelu::erf;
  c.embed_scale = false;
  c.embed_ln = true;
  c.alibi_bias_max = 4.0f;
  c.tied_head = false;
  Model m(c, 1, 1);
  for (const char* absent : {"h.0.attn.qkv.b", "h.1.mlp.proj.b", "h.0.ln1.b", "lnf.b", "emb_ln.b"})
    EXPECT_EQ(m.layout.find(absent), nullptr) << absent;
  for (const char* present : {"emb_ln.w", "lm_head.w"})
    EXPECT_NE(m.layout.find(present), nullptr) << present;
  expect_model_fd(c);
  c.ln_bias = true;  // BLOOM: biases on its LayerNorms (the embedding one too)
  c.linear_bias = true;
  c.gelu = Gelu::tanh;
  expect_model_fd(c);
}

// Trainable slopes (m_h = 2 m0_h sigmoid(theta_h)): alibi_theta's gradient comes from the
// fused backward's sums of dS by distance, checked with every other parameter's.
TEST(TrainableSlopes, GradientsMatchFiniteDifferences) {
  ModelConfig c = tiny(PosKind::alibi);
  c.slopes = Slopes::trainable;
  EXPECT_NE(make_param_layout(c).find("alibi_theta"), nullptr);
  expect_model_fd(c);
}

// theta = 0 is the paper's slopes to the bit, for every head count: a fresh model with trainable
// slopes computes exactly what one with fixed slopes does.
TEST(TrainableSlopes, StartExactlyAtTheFixedSlopes) {
  for (int NH = 1; NH <= 128; ++NH)
    for (double bias_max : {8.0, 4.0}) {
      const std::vector<float> m0 = alibi_slopes(NH, bias_max);
      const std::vector<float> theta(size_t(NH), 0.0f);
      EXPECT_EQ(alibi_trainable_slopes(m0, theta.data()), m0) << NH;
    }
  ModelConfig c = tiny(PosKind::alibi);
  c.dropout_resid = c.dropout_attn = 0.0f;
  Model fixed(c, 2, 9);
  c.slopes = Slopes::trainable;
  Model trainable(c, 2, 9);
  fixed.init_weights(5);
  trainable.init_weights(5);
  std::vector<int32_t> tok(18), tgt(18);
  for (int i = 0; i < 18; ++i) tok[i] = i % 17, tgt[i] = (i * 7) % 17;
  EXPECT_EQ(fixed.forward(tok.data(), tgt.data(), 2, 9),
            trainable.forward(tok.data(), tgt.data(), 2, 9));
}

// alibi_scaled (Falcon adds its bias before the 1/sqrt(head size) scale): every slope the model
// runs, fixed or the start of trainable ones, is the fixed slope over sqrt(head size); the field
// is recorded, and a checkpoint from before it is unscaled.
TEST(ScaledSlopes, AreTheFixedSlopesOverSqrtHeadSize) {
  ModelConfig c = tiny(PosKind::alibi);  // 3 heads of 4: slopes halved
  c.dropout_resid = c.dropout_attn = 0.0f;
  EXPECT_EQ(alibi_slopes(c), alibi_slopes(3));
  c.alibi_scaled = true;
  const std::vector<float> m = alibi_slopes(c), m0 = alibi_slopes(3);
  for (size_t h = 0; h < m0.size(); ++h) EXPECT_EQ(m[h], m0[h] / 2) << h;
  std::vector<int32_t> tok(18), tgt(18);
  for (int i = 0; i < 18; ++i) tok[i] = i % 17, tgt[i] = (i * 7) % 17;
  auto loss = [&](const ModelConfig& k) {
    Model model(k, 2, 9);
    model.init_weights(5);
    return model.forward(tok.data(), tgt.data(), 2, 9);
  };
  ModelConfig trainable = c, unscaled = c;
  trainable.slopes = Slopes::trainable;
  unscaled.alibi_scaled = false;
  EXPECT_EQ(loss(c), loss(trainable));
  EXPECT_NE(loss(c), loss(unscaled));
  EXPECT_TRUE(ModelConfig::from_json(c.to_json()).alibi_scaled);
  EXPECT_FALSE(c.same_shape(unscaled));
  nlohmann::json old = c.to_json();
  old.erase("alibi_scaled");
  EXPECT_FALSE(ModelConfig::from_json(old).alibi_scaled);
}

TEST(TrainableSlopes, OnlyWithAlibi) {
  ModelConfig c = tiny(PosKind::t5);
  c.slopes = Slopes::trainable;
  test::expect_usage_error([&] { c.validate(); }, {"--slopes trainable", "--pos t5"});
  test::expect_usage_error([] { parse_slopes("learned"); }, {"--slopes", "learned"});
  EXPECT_EQ(ModelConfig::from_json(tiny(PosKind::alibi).to_json()).slopes, Slopes::fixed);
  nlohmann::json old = tiny(PosKind::alibi).to_json();
  old.erase("slopes");  // a checkpoint from before the field: fixed slopes, which it had
  EXPECT_EQ(ModelConfig::from_json(old).slopes, Slopes::fixed);
}

// Every method in a bidirectional model (an encoder: attention both ways, t5 with half its
// buckets per direction), its full backward against finite differences.
// fire's threshold length as train fills it (--seq-len): an encoder with 0 is refused (below).
TEST_P(ModelFd, BidirectionalMatchesFiniteDifferences) {
  ModelConfig c = tiny(GetParam());
  c.causal = false;
  if (c.pos == PosKind::fire) c.fire_length = 9;
  expect_model_fd(c);
  if (GetParam() == PosKind::alibi) {
    c.slopes = Slopes::trainable;
    expect_model_fd(c);
  }
}

// fire in an encoder with fire_length 0 would divide query 0's distances to later keys by
// psi(0) + 1e-6: biases near 1e6, under which the gradient of c is rounding noise (it spanned
// -0.005 to +0.004 for weights moved by 1e-6 of themselves; the finite difference: -0.0023).
// Refused by name; a decoder with 0 (row 0 sees distance 0 alone) and an encoder with 1 are
// accepted.
TEST(FireEncoder, ZeroThresholdLengthIsRefused) {
  ModelConfig c = tiny(PosKind::fire);
  c.causal = false;
  test::expect_usage_error([&] { c.validate(); },
                           {"--pos fire", "--causal false", "--fire-length", "0"});
  c.fire_length = 1;
  EXPECT_NO_THROW(c.validate());
  c.fire_length = 0;
  c.causal = true;
  EXPECT_NO_THROW(c.validate());
}

// causal false: the loss at the first position changes with the last token (it is seen), and
// a cache for generation is refused; causal: it does not change.
TEST(Bidirectional, EarlyPositionsSeeLaterTokensAndCannotGenerate) {
  for (bool causal : {true, false}) {
    ModelConfig c = tiny(PosKind::alibi);
    c.dropout_resid = c.dropout_attn = 0.0f;
    c.causal = causal;
    Model m(c, 1, 9);
    m.init_weights(4);
    std::vector<int32_t> tok(9), tgt(9);
    for (int i = 0; i < 9; ++i) tok[size_t(i)] = i, tgt[size_t(i)] = (i + 1) % 17;
    std::vector<float> a(9), b(9);
    m.forward(tok.data(), tgt.data(), 1, 9);
    m.token_losses(a.data());
    tok[8] = 16;
    m.forward(tok.data(), tgt.data(), 1, 9);
    m.token_losses(b.data());
    EXPECT_EQ(a[0] != b[0], !causal) << "causal " << causal;
    if (!causal)
      test::expect_usage_error([&] { m.make_cache(16, false); }, {"encoder", "cannot generate"});
  }
}

// A model's loss with unscored positions (kIgnoreTarget, as a masked LM has) is the mean of the
// scored positions' token losses; other negative targets are refused by name.
TEST(IgnoredTargets, LossIsTheMeanOverScoredPositions) {
  ModelConfig c = tiny(PosKind::alibi);
  c.causal = false;
  Model m(c, 2, 9);
  m.init_weights(6);
  std::vector<int32_t> tok(18), tgt(18);
  for (int i = 0; i < 18; ++i) tok[size_t(i)] = i % 17, tgt[size_t(i)] = i % 3 ? -1 : (i * 5) % 17;
  const float loss = m.forward(tok.data(), tgt.data(), 2, 9);
  std::vector<float> per(18);
  m.token_losses(per.data());
  double sum = 0.0;
  int scored = 0;
  for (int i = 0; i < 18; ++i)
    if (tgt[size_t(i)] >= 0) sum += per[size_t(i)], ++scored;
    else EXPECT_EQ(per[size_t(i)], 0.0f) << i;
  EXPECT_NEAR(loss, sum / scored, 1e-6);
  tgt[4] = -2;
  test::expect_usage_error([&] { m.forward(tok.data(), tgt.data(), 2, 9); },
                           {"target id -2", "position 4"});
}

INSTANTIATE_TEST_SUITE_P(AllMethods, ModelFd, ::testing::ValuesIn(all_positions()),
                         test::pos_param_name);

}  // namespace
}  // namespace alibi
