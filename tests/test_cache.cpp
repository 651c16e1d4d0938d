// KV-cached decoding against the full forward: every position method, prompts and decode steps,
// and a sliding window against a full forward over the window.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "core/rng.h"
#include "model/model.h"
#include "model_util.h"
#include "positions.h"

namespace alibi {
namespace {

using test::kCacheRelTol;
using test::max_abs;
using test::random_tokens;
using test::randomise;

ModelConfig tiny(PosKind pos) {
  ModelConfig c = test::small_model(pos);
  c.max_positions = 64;
  return c;
}

class CacheTest : public ::testing::TestWithParam<PosKind> {};

TEST_P(CacheTest, CachedLogitsEqualFullForward) {
  const ModelConfig c = tiny(GetParam());
  const int T = 60, prompt = 7, V = c.vocab;
  Model full(c, 1, T, false);
  randomise(full, 5);
  Model dec(c, 1, T, false);
  dec.params.copy_from(full.params);
  const auto tok = random_tokens(T, V, 9);
  full.forward(tok.data(), nullptr, 1, T);
  const float scale = std::max(1.0f, max_abs(full.logits(), size_t(T) * V));

  KVCache kv = dec.make_cache(T, false);
  const float* lg = dec.forward_cached(tok.data(), prompt, kv);
  for (int t = 0; t < prompt; ++t)
    for (int v = 0; v < V; ++v)
      ASSERT_NEAR(lg[t * V + v], full.logits()[t * V + v], kCacheRelTol * scale)
          << "prompt row " << t;
  for (int t = prompt; t < T; ++t) {
    lg = dec.forward_cached(&tok[t], 1, kv);
    for (int v = 0; v < V; ++v)
      ASSERT_NEAR(lg[v], full.logits()[t * V + v], kCacheRelTol * scale) << "decode step " << t;
  }
  EXPECT_EQ(kv.pos, T);
}

INSTANTIATE_TEST_SUITE_P(AllMethods, CacheTest, ::testing::ValuesIn(all_positions()),
                         test::pos_param_name);

// A sliding window of W keeps the last W tokens' keys and values: for a relative method each
// decode step equals the last row of a full forward over exactly those W tokens, however far the
// stream has run. That identity is exact for one layer. With more layers the cached keys of a
// layer above the first were computed while older tokens were still visible (each layer widens
// the receptive field by W), so a deep model's windowed decode is a banded-attention model, not
// a forward over the last W tokens alone.
class WindowTest : public ::testing::TestWithParam<PosKind> {};

TEST_P(WindowTest, SlidingWindowEqualsFullForwardOverTheWindow) {
  ModelConfig c = tiny(GetParam());
  c.layers = 1;
  const int W = 8, total = 10 * W, V = c.vocab;
  Model dec(c, 1, W, false), full(c, 1, W, false);
  randomise(dec, 6);
  full.params.copy_from(dec.params);
  const auto tok = random_tokens(total, V, 10);
  KVCache kv = dec.make_cache(W, true);
  const size_t cache_bytes = kv.k.size() + kv.v.size();
  for (int t = 0; t < total; ++t) {
    const float* lg = dec.forward_cached(&tok[t], 1, kv);
    if (t < W - 1) continue;
    full.forward(&tok[t - W + 1], nullptr, 1, W);
    const float* ref = full.logits() + size_t(W - 1) * V;
    const float scale = std::max(1.0f, max_abs(ref, V));
    for (int v = 0; v < V; ++v) ASSERT_NEAR(lg[v], ref[v], kCacheRelTol * scale) << "token " << t;
  }
  EXPECT_EQ(kv.len, W);
  EXPECT_EQ(kv.k.size() + kv.v.size(), cache_bytes);  // memory is flat
}

INSTANTIATE_TEST_SUITE_P(RelativeMethods, WindowTest,
                         ::testing::ValuesIn(test::relative_positions()), test::pos_param_name);

TEST(Cache, LearnedRefusesPastItsTable) {
  ModelConfig c = tiny(PosKind::learned);
  c.max_positions = 10;
  Model m(c, 1, 16, false);
  randomise(m, 1);
  KVCache kv = m.make_cache(32, false);
  const auto tok = random_tokens(16, c.vocab, 3);
  m.forward_cached(tok.data(), 10, kv);
  EXPECT_THROW(m.forward_cached(&tok[10], 1, kv), UsageError);
}

TEST(Cache, FullCacheWithoutWindowIsAnError) {
  Model m(tiny(PosKind::alibi), 1, 4, false);
  randomise(m, 2);
  KVCache kv = m.make_cache(4, false);
  const auto tok = random_tokens(5, 23, 4);
  m.forward_cached(tok.data(), 4, kv);
  EXPECT_THROW(m.forward_cached(&tok[4], 1, kv), UsageError);
}

}  // namespace
}  // namespace alibi
