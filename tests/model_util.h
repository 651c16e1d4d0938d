#pragma once
// Small models with random weights for tests that compare two ways of computing the same thing.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "core/rng.h"
#include "model/model.h"

namespace alibi::test {

// Cached decoding (KV cache) against a full forward: fp32 with a different summation order
// (chunked queries, other tile boundaries), so relative to the largest logit the two differ by
// ~1e-6; 1e-4 leaves room and still catches a wrong bias, rotation or window, which move logits
// by 1e-2 or more.
constexpr float kCacheRelTol = 1e-4f;

// Logits (V) against a reference within kCacheRelTol of the reference's largest magnitude (at
// least 1); `what` names the place in a failure.
inline void expect_logits_near(const float* got, const float* ref, int V, const std::string& what) {
  float scale = 1.0f;
  for (int v = 0; v < V; ++v) scale = std::max(scale, std::abs(ref[v]));
  for (int v = 0; v < V; ++v)
    ASSERT_NEAR(got[v], ref[v], kCacheRelTol * scale) << what << ", token id " << v;
}

// A few layers of width 24 with 3 heads (not a power of two); positions and buckets small enough
// that tests of a few dozen tokens reach the t5 log buckets and saturation.
inline ModelConfig small_model(PosKind pos, int layers = 2, int vocab = 23) {
  ModelConfig c;
  c.vocab = vocab;
  c.layers = layers;
  c.d_model = 24;
  c.heads = 3;
  c.ffn = 40;
  c.pos = pos;
  c.max_positions = 128;
  c.t5_buckets = 8;
  c.t5_max_distance = 20;
  c.fire_length = 16;  // fire's threshold: tests past 16 positions normalise by the position
  return c;
}

// GPT-2 initialisation plus noise, so that every weight matters (0.02 alone is nearly linear).
inline void randomise(Model& m, uint64_t seed) {
  m.init_weights(seed);
  Rng r(seed + 1);
  std::vector<float> w = m.params.to_host();
  for (float& x : w) x += 0.2f * r.normal();
  m.params.from_host(w);
  m.project_params();  // back in the method's domain, as training keeps them
}

inline std::vector<int32_t> random_tokens(int n, int V, uint64_t seed) {
  Rng r(seed);
  std::vector<int32_t> t(n);
  for (auto& x : t) x = int32_t(r.below(V));
  return t;
}

inline float max_abs(const float* a, size_t n) {
  float m = 0;
  for (size_t i = 0; i < n; ++i) m = std::max(m, std::abs(a[i]));
  return m;
}

}  // namespace alibi::test
