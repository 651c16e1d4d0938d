// An f16 KV cache (KvType::f16, generate and serve --kv-cache f16): keys and values rounded to
// IEEE binary16 as they are appended, the attention reading them back exactly. Checked here:
// - the rounding is core/half.h's float_to_f16 (nearest even), element for element;
// - the attention on an f16 cache is the fp32 attention on the rounded keys and values, bit for
//   bit, in the decoding (dot) and prompt (tile product) paths, with tails of every tile;
// - a model decoding on an f16 cache stays within a stated tolerance of the f32 cache, through a
//   cache that grows and a sliding window that moves its rows;
// - what cannot hold an f16 cache (xpos, whose cached keys are re-scaled) refuses it by name.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <regex>
#include <utility>
#include <vector>

#include "attention_problem.h"
#include "cli.h"
#include "core/error.h"
#include "core/half.h"
#include "generate/generate.h"
#include "kernels/backend.h"
#include "kernels/layer_ops.h"
#include "model/model.h"
#include "model_util.h"
#include "positions.h"
#include "serve_client.h"
#include "usage_error.h"

namespace alibi {
namespace {

std::vector<uint16_t> to_f16(const std::vector<float>& x) {
  std::vector<uint16_t> h(x.size());
  for (size_t i = 0; i < x.size(); ++i) h[i] = float_to_f16(x[i]);
  return h;
}

std::vector<float> widened(const std::vector<uint16_t>& h) {
  std::vector<float> x(h.size());
  for (size_t i = 0; i < h.size(); ++i) x[i] = f16_to_float(h[i]);
  return x;
}

// kv_append's rounding, through the vector path (16 at a time) and the scalar tail: ties to
// even, values past 65504, subnormals, and the cache's other rows untouched.
TEST(KvF16, AppendRoundsEachValueToNearestEven) {
  const auto be = make_backend("cpu", MatmulPrecision::fp32);
  const int NH = 3, T = 5, HS = 7, rows = 9, row0 = 2;  // 35 values a head: vector and tail
  std::vector<float> x(size_t(NH) * T * HS);
  Rng rng(3);
  for (float& e : x) e = 3.0f * rng.normal();
  const float specials[] = {1.0f + 0x1p-11f, 1.0f + 3 * 0x1p-11f, 65504.0f, 65520.0f,
                            1e-7f,           -0x1p-25f,           2049.0f,  -0.0f,
                            0x1p-14f};
  for (size_t i = 0; i < std::size(specials); ++i) x[i * 3] = specials[i];
  std::vector<uint16_t> cache(size_t(NH) * rows * HS, 0xabcd);
  be->kv_append(cache.data(), rows, row0, x.data(), NH, T, HS);
  for (int h = 0; h < NH; ++h)
    for (int r = 0; r < rows; ++r)
      for (int d = 0; d < HS; ++d) {
        const uint16_t got = cache[(size_t(h) * rows + r) * HS + d];
        if (r < row0 || r >= row0 + T) {
          ASSERT_EQ(got, 0xabcd) << "row " << r << " is not the append's";
          continue;
        }
        const float in = x[(size_t(h) * T + (r - row0)) * HS + d];
        ASSERT_EQ(got, float_to_f16(in)) << in;
      }
}

// One attention call through the backend's batched entry (what a cached step runs).
std::vector<float> attend(Backend& be, test::Problem& p, KvType kv, const std::vector<float>& k,
                          const std::vector<float>& v, const std::vector<uint16_t>& k16,
                          const std::vector<uint16_t>& v16) {
  AttnShape s = p.s;
  s.kv = kv;
  AttnWorkspace ws = be.plan_attention(s);
  std::vector<float> scratch(ws.floats), out(p.nq()), lse(p.nlse());
  ws.data = scratch.data();
  const Shape qs{s.B, s.NH, s.Tq, s.HS}, ks{s.B, s.NH, s.kv_rows(), s.HS};
  AttentionForward a{s,
                     {p.q.data(), qs},
                     {},
                     {},
                     p.bias,
                     p.drop,
                     {out.data(), qs},
                     {lse.data(), {s.B, s.NH, s.Tq}},
                     ws};
  if (kv == KvType::f16) {
    a.k16 = {k16.data(), ks};
    a.v16 = {v16.data(), ks};
  } else {
    a.k = {k.data(), ks};
    a.v = {v.data(), ks};
  }
  be.run_all(&a, 1);
  out.insert(out.end(), lse.begin(), lse.end());
  return out;
}

TEST(KvF16, AttentionIsTheF32AttentionOnTheRoundedKeysAndValues) {
  for (const MatmulPrecision prec : {MatmulPrecision::fp32, MatmulPrecision::int8}) {
    const auto be = make_backend("cpu", prec);
    // Decoding rows (the dot path) and a prompt chunk (tile products); keys short of a tile,
    // a tile and a tail, several tiles; head sizes a vector multiple and not; a cache with
    // rows past the keys in use.
    for (const int Tq : {1, 2, 3, 70})
      for (const int Tk : {5, 64, 130, 300})
        for (const int HS : {16, 24, 64}) {
          if (Tq > Tk) continue;
          test::Problem p(BiasKind::alibi, 1, 3, Tq, Tk, HS, 0.0f, Tk + 11);
          const std::vector<uint16_t> k16 = to_f16(p.k), v16 = to_f16(p.v);
          const std::vector<float> want =
              attend(*be, p, KvType::f32, widened(k16), widened(v16), {}, {});
          const std::vector<float> got = attend(*be, p, KvType::f16, {}, {}, k16, v16);
          ASSERT_EQ(got.size(), want.size());
          EXPECT_EQ(std::memcmp(got.data(), want.data(), got.size() * sizeof(float)), 0)
              << "Tq " << Tq << " Tk " << Tk << " HS " << HS << " " << precision_name(prec);
        }
  }
}

// Decoding on an f16 cache against the f32 cache, every step's logits: a cache that grows (as
// generate's without a window) and a sliding window that moves its rows back to the front, also
// with its first token kept in view (Model::sink_rows), which moves on with every slide.
// Rounding keys and values to 11 significant bits moves the scores and outputs by about 2^-12 of
// their size; measured here at most 8.5e-4 of the logits' range (learned; the others 1.7e-4
// to 6.6e-4), so 4e-3.
constexpr double kF16CacheTol = 4e-3;

TEST(KvF16, DecodingStaysNearTheF32Cache) {
  for (const PosKind pos : all_positions())
    for (const std::pair<int, bool> run : {std::pair{0, false}, {12, false}, {12, true}}) {
      const int window = run.first;  // plain variables: clang 14 captures no structured binding
      const bool sink = run.second;
      if (pos == PosKind::xpos) continue;  // refused: the next test
      ModelConfig c = test::small_model(pos);
      c.max_positions = 64;
      const int T = 40, V = c.vocab;
      Model a(c, 1, 8, false), b(c, 1, 8, false);
      test::randomise(a, 5);
      b.params.copy_from(a.params);
      auto cache = [&](const Model& m, KvType type) {
        return window > 0 ? m.make_cache(window, true, type) : m.make_cache(8, false, type);
      };
      KVCache ca = cache(a, KvType::f32), cb = cache(b, KvType::f16);
      const auto tok = test::random_tokens(T, V, 9);
      if (sink) {
        ca.keep = a.sink_rows(ca, tok[0], tok[0]);
        cb.keep = b.sink_rows(cb, tok[0], tok[0]);
        EXPECT_EQ(cb.keep, position_method(pos).keys_hold_position() ? 0 : 1) << pos_name(pos);
      }
      double worst = 0;
      for (int t = 0; t < T; ++t) {
        if (window == 0 && ca.len == ca.capacity) {  // grown as generate grows it
          a.grow_cache(ca, 2 * ca.capacity);
          b.grow_cache(cb, 2 * cb.capacity);
        }
        const float* x = a.forward_cached(&tok[size_t(t)], 1, ca);
        const float* y = b.forward_cached(&tok[size_t(t)], 1, cb);
        float lo = x[0], hi = x[0];
        double diff = 0;
        for (int v = 0; v < V; ++v) {
          lo = std::min(lo, x[v]), hi = std::max(hi, x[v]);
          diff = std::max(diff, std::fabs(double(x[v]) - double(y[v])));
        }
        worst = std::max(worst, diff / double(hi - lo));
      }
      EXPECT_GT(worst, 0.0) << "the caches should differ by their rounding";
      EXPECT_LE(worst, kF16CacheTol) << pos_name(pos) << " window " << window << " sink " << sink;
      EXPECT_EQ(cb.type, KvType::f16);
      EXPECT_EQ(cb.k.size(), 0u);
      EXPECT_EQ(cb.k16.size(), ca.k.size());
    }
}

TEST(KvF16, XposAndTheCliRefuseWhatCannotHoldIt) {
  ModelConfig c = test::small_model(PosKind::xpos);
  Model m(c, 1, 8, false);
  test::expect_usage_error([&] { m.make_cache(16, false, KvType::f16); },
                           {"--kv-cache f16", "--pos xpos", "--kv-cache f32"});
  GenerateOptions o;
  o.kv_type = KvType::f16;
  test::expect_usage_error([&] { Generator g(m, o); }, {"--kv-cache f16", "--pos xpos"});
  test::expect_usage_error([] { parse_kv_type("bf16"); }, {"--kv-cache 'bf16'", "f32, f16"});
}

// Through the CLI, on a GGUF golden (an ALiBi BLOOM): generate and serve run on an f16 cache and
// give the same greedy text, and its plan holds about half the f32 cache's bytes.
TEST(KvF16, GenerateAndServeRunOnIt) {
  test::TempDir dir("kv_f16");
  const std::string file = std::string(ALIBI_SOURCE_DIR) + "/tests/golden/gguf/bloom-q8_0.gguf";
  const std::string gen = " --prompt 'And many' --max-new-tokens 8 --temperature 0";
  const test::CliResult g = test::run_cli("generate " + file + gen + " --kv-cache f16", dir / "g");
  ASSERT_EQ(g.code, 0) << g.err;
  EXPECT_FALSE(g.out.empty());
  auto kv_mb = [&](const std::string& type) {  // the plan's KV cache for 20,000 tokens
    return test::planned_mb(
        "generate " + file + " --prompt x --max-new-tokens 20000 --kv-cache " + type, "KV cache",
        dir / "d");
  };
  const double f32 = kv_mb("f32"), f16 = kv_mb("f16");
  EXPECT_GT(f16, 0.45 * f32);
  EXPECT_LT(f16, 0.55 * f32);
  test::ServeProcess s(file + " --kv-cache f16", dir / "serve.err");
  ASSERT_GT(s.port, 0) << test::read_text(dir / "serve.err");
  EXPECT_NE(test::read_text(dir / "serve.err").find("(f16)"), std::string::npos);
  const nlohmann::json body = {{"prompt", "And many"}, {"max_tokens", 8}, {"temperature", 0}};
  const httplib::Result r = s.client().Post("/v1/completions", body.dump(), "application/json");
  ASSERT_TRUE(r) << httplib::to_string(r.error());
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(nlohmann::json::parse(r->body).at("choices")[0].at("text"), g.out);
  EXPECT_EQ(s.stop().code, 0);
  const test::CliResult bad =
      test::run_cli("generate " + file + gen + " --kv-cache bf16", dir / "b");
  test::expect_cli_error(bad, "--kv-cache 'bf16' is not one of f32, f16");
}

}  // namespace
}  // namespace alibi
