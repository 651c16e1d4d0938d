#pragma once
// The position methods as tests take them: from the registry (src/position/registry.cpp), so
// that a new method is tested everywhere at once, and a subset by what the methods do, never by
// a list of names.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "model/params.h"
#include "model_util.h"
#include "position/position.h"

namespace alibi::test {

// Whether p runs at any length: it has no table of positions that ends (learned has one).
inline bool runs_any_length(PosKind p) {
  ModelConfig c;
  c.pos = p;
  return position_method(p).max_positions(c) == kAnyLength;
}

// Whether p adds to the token embeddings (sinusoidal, learned), asked of its embeddings hook
// with every parameter set to 1. Such a position is the token's own, so what a window of tokens
// computes depends on where it starts; the other methods act on q and k or on the scores, where
// only distances count, or not at all.
inline bool adds_to_embeddings(PosKind p) {
  constexpr int kRows = 2;
  const ModelConfig c = small_model(p);
  const ParamLayout layout = make_param_layout(c);
  ParamSet params(layout);
  params.from_host(std::vector<float>(layout.total, 1.0f));
  const auto method = make_position_method(p);
  method->bind(c, layout, default_backend());
  std::vector<float> x(size_t(kRows) * c.d_model, 0.0f);
  method->embed_forward(x.data(), 1, kRows, 0, params);
  return std::any_of(x.begin(), x.end(), [](float v) { return v != 0.0f; });
}

// The registered methods for which keep(p) holds, in the registry's order.
template <class F>
std::vector<PosKind> positions_where(F keep) {
  std::vector<PosKind> out;
  for (PosKind p : all_positions())
    if (keep(p)) out.push_back(p);
  return out;
}

// The methods whose attention sees only distances: a sliding window over the last W tokens
// computes what a forward over those W tokens from position 0 does.
inline std::vector<PosKind> relative_positions() {
  return positions_where([](PosKind p) {
    return !adds_to_embeddings(p) && !position_method(p).bias_sees_position();
  });
}

// A method's name as a test (and golden file) names it: gtest's names take [A-Za-z0-9_], so
// kerple-log is kerple_log.
inline std::string pos_test_name(PosKind p) {
  std::string s = pos_name(p);
  std::replace(s.begin(), s.end(), '-', '_');
  return s;
}

// gtest's name for a method parameter: the method's own (".../alibi").
inline std::string pos_param_name(const ::testing::TestParamInfo<PosKind>& info) {
  return pos_test_name(info.param);
}

}  // namespace alibi::test
