// xpos and context extension (docs/rope-family.md) in the library: rotary's scaled tables against
// transformers', xpos' zeta against torchscale's and its range, alibi's interpolation per call
// and under a KV cache, and another method's option refused. The golden cases (test_golden.cpp)
// check the models end to end against the PyTorch twin; the cache, generation, thread and
// finite-difference suites take xpos from the registry.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "cli.h"  // read_text
#include "generate/generate.h"
#include "model_util.h"
#include "position/position.h"
#include "usage_error.h"

namespace alibi {
namespace {

using test::kCacheRelTol;

// transformers evaluates b^(2i/HS) in float32 and ours is float64: measured within 2.4e-7
// relative over every case. A wrong formula (the ramp's ends or side, the NTK exponent) moves a
// frequency by 1e-3 or more.
constexpr double kTransformersFreqTol = 1e-6;

ModelConfig one_head(PosKind pos, int HS) {
  ModelConfig c;
  c.pos = pos;
  c.heads = 1;
  c.d_model = HS;
  return c;
}

TEST(RopeScaling, TablesAgreeWithTransformers) {
  const nlohmann::json g = nlohmann::json::parse(
      test::read_text(ALIBI_SOURCE_DIR "/tests/golden/rope/rope_scaling.json"));
  int cases = 0;
  for (const nlohmann::json& k : g.at("cases")) {
    ModelConfig c = one_head(PosKind::rotary, k.at("head_size"));
    c.rope_scaling = parse_rope_scaling(k.at("rope_scaling"));
    c.rope_factor = k.at("factor");
    c.train_len = k.at("train_len");
    SCOPED_TRACE(rope_scaling_name(c.rope_scaling) + (" HS " + std::to_string(c.head_size())) +
                 " s " + std::to_string(c.rope_factor) + " L " + std::to_string(c.train_len));
    c.validate();
    const RotaryTables t = rotary_tables(c);
    const std::vector<double> ref = k.at("inv_freq");
    ASSERT_EQ(t.freq.size(), ref.size());
    for (size_t i = 0; i < ref.size(); ++i)
      EXPECT_NEAR(t.freq[i], ref[i], kTransformersFreqTol * ref[i]) << "pair " << i;
    EXPECT_DOUBLE_EQ(t.mscale, k.at("attention_factor").get<double>());
    EXPECT_TRUE(t.decay.empty());
    ++cases;
  }
  EXPECT_GE(cases, 12);
}

// torchscale's XPOS: scale = (arange(0, HS, 2) + 0.4 HS) / (1.4 HS), raised to n / scale_base.
TEST(XPos, ZetaIsTorchscales) {
  ModelConfig c = one_head(PosKind::xpos, 16);
  for (float gamma : {512.0f, 16.0f}) {
    c.xpos_scale_base = gamma;
    const std::vector<double> d = rotary_tables(c).decay;
    ASSERT_EQ(d.size(), 8u);
    for (int i = 0; i < 8; ++i)
      EXPECT_NEAR(std::exp(d[size_t(i)] * gamma), (2.0 * i + 0.4 * 16) / (1.4 * 16), 1e-14) << i;
  }
  const RotaryTables t = rotary_tables(c);
  EXPECT_EQ(t.freq, rotary_tables(one_head(PosKind::rotary, 16)).freq);  // rotary's angles
  EXPECT_EQ(t.mscale, 1.0);
}

// At gamma 1 a position 51 from the anchor is the last whose scales stay within e^+-64
// (|ln zeta_0| = ln 3.5): a forward of 102 rows (anchor 51) runs, one of 104 (anchor 52) is
// refused in one line rather than overflowing.
TEST(XPos, RefusesSpansPastFp32sRange) {
  ModelConfig c = test::small_model(PosKind::xpos);
  c.xpos_scale_base = 1.0f;
  Model m(c, 1, 104, false);
  test::randomise(m, 3);
  const auto tok = test::random_tokens(104, c.vocab, 4);
  m.forward(tok.data(), nullptr, 1, 102);
  for (size_t i = 0; i < size_t(102) * c.vocab; ++i) ASSERT_TRUE(std::isfinite(m.logits()[i])) << i;
  test::expect_usage_error(
      [&] { m.forward(tok.data(), nullptr, 1, 104); },
      {"--pos xpos", "52 positions", "fp32", "--xpos-scale-base 1", "at most 102 tokens"});
}

ModelConfig interpolating(int layers, int train_len) {
  ModelConfig c = test::small_model(PosKind::alibi, layers);
  c.alibi_interpolate = true;
  c.train_len = train_len;
  return c;
}

// L' is the call's context (AttnShape::context_len): past L the slopes are times L/L', up to L
// they are the fixed ones; a cached call's L' is its cache's capacity, not the keys so far.
TEST(AlibiInterpolation, SlopesAreTimesLOverLPrimePastL) {
  const ModelConfig c = interpolating(1, 10);
  const ParamLayout layout = make_param_layout(c);
  ParamSet params(layout);
  const auto method = make_position_method(PosKind::alibi);
  method->bind(c, layout, default_backend());  // host memory: the slopes can be read in place
  const std::vector<float> m0 = alibi_slopes(c);
  auto expect_ratio = [&](const AttnShape& s, double ratio) {
    const ScoreBias b = method->score_bias(params, 0, s, 0);
    for (int h = 0; h < c.heads; ++h)
      EXPECT_EQ(b.slopes[h], float(double(m0[size_t(h)]) * ratio)) << "head " << h;
  };
  for (int Tk : {4, 10, 25, 40}) {
    SCOPED_TRACE(Tk);
    expect_ratio(AttnShape{1, c.heads, Tk, Tk, c.head_size()}, Tk > 10 ? 10.0 / Tk : 1.0);
  }
  AttnShape cached{1, c.heads, 1, 5, c.head_size(), 40};
  cached.context = 40;
  expect_ratio(cached, 10.0 / 40);
}

// generate's L' is the context its KV cache is sized for (the prompt and the new tokens, or the
// window), the same for every row: so each token is sampled from the logits of a full forward
// over the whole final sequence, whose L' is that length, in a model of several layers (the
// context so far would change the slopes under the keys already cached). Without the
// interpolation the logits differ: the test sees it.
TEST(AlibiInterpolation, GenerationEqualsAFullForwardOverItsContext) {
  const ModelConfig c = interpolating(3, 16);
  const int prompt = 9, max_new = 40, n = prompt + max_new - 1, V = c.vocab;
  Model dec(c, 1, 4, false), full(c, 1, n, false),
      plain(test::small_model(PosKind::alibi, 3), 1, n, false);
  test::randomise(dec, 8);
  full.params.copy_from(dec.params);
  plain.params.copy_from(dec.params);
  Generator gen(dec, GenerateOptions{SamplingOptions{1.0f, 0, 1.0f, 5}, 0});
  std::vector<int32_t> seq = test::random_tokens(prompt, V, 6);
  std::vector<std::vector<float>> sampled_from;
  gen.generate(seq, max_new, [&](int32_t tok, const float* lg) {
    sampled_from.emplace_back(lg, lg + V);
    seq.push_back(tok);
  });
  ASSERT_EQ(gen.cache().capacity, n);
  full.forward(seq.data(), nullptr, 1, n);
  plain.forward(seq.data(), nullptr, 1, n);
  double moved = 0;
  for (int k = 0; k < max_new; ++k) {
    const float* ref = full.logits() + size_t(prompt - 1 + k) * V;
    const float scale = std::max(1.0f, test::max_abs(ref, size_t(V)));
    for (int v = 0; v < V; ++v) {
      ASSERT_NEAR(sampled_from[size_t(k)][size_t(v)], ref[v], kCacheRelTol * scale)
          << "new token " << k << ", id " << v;
      moved = std::max(
          moved, double(std::abs(plain.logits()[size_t(prompt - 1 + k) * V + v] - ref[v]) / scale));
    }
  }
  EXPECT_GT(moved, 1e-3) << "interpolating the slopes should change the logits past L";
}

// An evaluation-time option of another method is refused by its flag, as are values the
// method cannot run.
TEST(ExtensionFields, RefusedByFlagWhereTheyCannotApply) {
  struct Case {
    PosKind pos;
    void (*set)(ModelConfig&);
    std::vector<std::string> needles;
  };
  const std::vector<Case> cases = {
      {PosKind::alibi,
       [](ModelConfig& c) { c.rope_scaling = RopeScaling::pi; },
       {"--rope-scaling pi", "--pos alibi", "applies to --pos rotary"}},
      {PosKind::xpos,
       [](ModelConfig& c) { c.rope_scaling = RopeScaling::yarn; },
       {"--rope-scaling yarn", "--pos xpos", "applies to --pos rotary"}},
      {PosKind::t5,
       [](ModelConfig& c) { c.rope_factor = 2.0f; },
       {"--rope-factor 2", "--pos t5", "applies to --pos rotary"}},
      {PosKind::rotary,
       [](ModelConfig& c) { c.alibi_interpolate = true; },
       {"--alibi-interpolate true", "--pos rotary", "applies to --pos alibi"}},
      {PosKind::rotary,
       [](ModelConfig& c) { c.rope_factor = 2.0f; },
       {"--rope-factor 2", "needs --rope-scaling"}},
      {PosKind::rotary,
       [](ModelConfig& c) { c.rope_scaling = RopeScaling::pi, c.rope_factor = 0.0f; },
       {"--rope-factor 0", "positive"}},
      {PosKind::rotary,
       [](ModelConfig& c) { c.rope_scaling = RopeScaling::yarn; },
       {"--rope-scaling yarn", "train_len 0"}},
      {PosKind::alibi,
       [](ModelConfig& c) { c.alibi_interpolate = true; },
       {"--alibi-interpolate", "train_len 0"}},
  };
  for (const Case& k : cases) {
    ModelConfig c = test::small_model(k.pos);
    k.set(c);
    SCOPED_TRACE(c.to_json().dump());
    test::expect_usage_error([&] { c.validate(); }, k.needles);
  }
}

}  // namespace
}  // namespace alibi
