#include "model/params.h"

#include <algorithm>

#include "core/error.h"

namespace alibi {

const TensorInfo* ParamLayout::find(const std::string& name) const {
  for (const TensorInfo& t : tensors)
    if (t.name == name) return &t;
  return nullptr;
}

const TensorInfo& ParamLayout::at(const std::string& name) const {
  const TensorInfo* t = find(name);
  ALIBI_CHECK(t != nullptr, "no parameter ", name);
  return *t;
}

ParamLayout make_param_layout(const ModelConfig& c) {
  ParamLayout l;
  auto add = [&](std::string name, std::vector<int64_t> shape, bool decay) {
    TensorInfo t{std::move(name), std::move(shape), l.total, 1, decay};
    for (int64_t d : t.shape) t.numel *= size_t(d);
    // 16-float alignment keeps every tensor on a cache line for the vector loops.
    l.total += (t.numel + 15) / 16 * 16;
    l.tensors.push_back(std::move(t));
  };
  const int64_t C = c.d_model, F = c.ffn;
  add("wte", {c.vocab, C}, true);
  if (c.pos == PosKind::learned) add("wpe", {c.max_positions, C}, true);
  if (c.pos == PosKind::t5) add("t5_bias", {c.t5_buckets, c.heads}, false);
  for (int i = 0; i < c.layers; ++i) {
    const std::string p = "h." + std::to_string(i) + ".";
    add(p + "ln1.w", {C}, false);
    add(p + "ln1.b", {C}, false);
    add(p + "attn.qkv.w", {3 * C, C}, true);
    add(p + "attn.qkv.b", {3 * C}, false);
    add(p + "attn.proj.w", {C, C}, true);
    add(p + "attn.proj.b", {C}, false);
    add(p + "ln2.w", {C}, false);
    add(p + "ln2.b", {C}, false);
    add(p + "mlp.fc.w", {F, C}, true);
    add(p + "mlp.fc.b", {F}, false);
    add(p + "mlp.proj.w", {C, F}, true);
    add(p + "mlp.proj.b", {C}, false);
  }
  add("lnf.w", {C}, false);
  add("lnf.b", {C}, false);
  return l;
}

void ParamSet::zero() { std::fill(data.begin(), data.end(), 0.0f); }

}  // namespace alibi
