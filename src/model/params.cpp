#include "model/params.h"

#include <cmath>

#include "core/error.h"
#include "core/memory_plan.h"
#include "position/position.h"

namespace alibi {

void ParamLayout::add(std::string name, std::vector<int64_t> shape, Init init, bool decay,
                      float lr_scale) {
  TensorInfo t{std::move(name), std::move(shape), total, 1, init, decay, lr_scale};
  for (int64_t d : t.shape) t.numel *= size_t(d);
  total += (t.numel + 15) / 16 * 16;
  tensors.push_back(std::move(t));
}

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

ParamLayout ParamLayout::without_matrices() const {
  ParamLayout l;
  for (const TensorInfo& t : tensors)
    if (!t.matrix) l.add(t.name, t.shape, t.init, t.decay, t.lr_scale);
  return l;
}

namespace {

constexpr float kGpt2Std = 0.02f;  // GPT-2's initialisation of weight matrices and embeddings

// Glorot & Bengio's uniform initialisation of an (out, in) matrix, as
// torch.nn.init.xavier_uniform_.
Init xavier(int64_t out, int64_t in, float gain) {
  return {Init::uniform, gain * std::sqrt(6.0f / float(in + out))};
}

}  // namespace

Init embedding_init(const ModelConfig& c) {
  if (c.init == InitScheme::gpt2) return {Init::normal, kGpt2Std};
  return {Init::normal, 1.0f / std::sqrt(float(c.d_model))};
}

uint64_t param_floats(const ModelConfig& c) {
  // Exact up to a depth whose layout is cheap to build; past it (a plan that will be refused),
  // linear in the layers from 1 and 2, which a tensor of shape (layers, ...) (a position
  // method's) misses by its rounding to 16 floats.
  constexpr int kExactLayers = 4096;
  if (c.layers <= kExactLayers) return make_param_layout(c).total;
  ModelConfig one = c, two = c;
  one.layers = 1;
  two.layers = 2;
  const uint64_t t1 = make_param_layout(one).total, t2 = make_param_layout(two).total;
  return sat_add(t1 - (t2 - t1), sat_mul(t2 - t1, uint64_t(c.layers)));
}

ParamLayout make_param_layout(const ModelConfig& c) {
  ParamLayout l;
  const int64_t C = c.d_model, F = c.ffn;
  const Init zeros{}, ones{Init::ones};
  Init qkv, attn_proj, fc, mlp_proj;
  if (c.init == InitScheme::gpt2) {
    // Residual projections scaled by 1/sqrt(2L): the residual stream's variance does not grow
    // with depth.
    const Init proj{Init::normal, kGpt2Std / std::sqrt(2.0f * float(c.layers))};
    qkv = fc = {Init::normal, kGpt2Std};
    attn_proj = mlp_proj = proj;
  } else {
    // fairseq's transformer LM: Xavier-uniform linears, q/k/v (each C x C) with gain 1/sqrt(2).
    qkv = xavier(C, C, 1.0f / std::sqrt(2.0f));
    attn_proj = xavier(C, C, 1.0f);
    fc = xavier(F, C, 1.0f);
    mlp_proj = xavier(C, F, 1.0f);
  }
  // LayerNorm and linear biases exist only where the config has them (ln_bias, linear_bias).
  auto norm = [&](const std::string& name) {
    l.add(name + ".w", {C}, ones, false);
    if (c.ln_bias) l.add(name + ".b", {C}, zeros, false);
  };
  auto linear = [&](const std::string& name, int64_t out, int64_t in, Init w) {
    l.add(name + ".w", {out, in}, w, true);
    l.tensors.back().matrix = true;
    if (c.linear_bias) l.add(name + ".b", {out}, zeros, false);
  };
  l.add("wte", {c.vocab, C}, embedding_init(c), true);
  l.tensors.back().matrix = true;
  if (c.embed_ln) norm("emb_ln");
  position_method(c.pos).add_params(c, l);
  for (int i = 0; i < c.layers; ++i) {
    const std::string p = "h." + std::to_string(i) + ".";
    norm(p + "ln1");
    linear(p + "attn.qkv", 3 * C, C, qkv);
    linear(p + "attn.proj", C, C, attn_proj);
    norm(p + "ln2");
    linear(p + "mlp.fc", F, C, fc);
    linear(p + "mlp.proj", C, F, mlp_proj);
  }
  norm("lnf");
  // An untied head starts as the embedding table does (fairseq's output projection: N(0, 1/C)).
  if (!c.tied_head) {
    l.add("lm_head.w", {c.vocab, C}, embedding_init(c), true);
    l.tensors.back().matrix = true;
  }
  return l;
}

void ParamSet::zero() { backend().fill(data.data(), 0.0f, int64_t(data.size())); }

void ParamSet::copy_from(const ParamSet& o) {
  ALIBI_CHECK(o.data.size() == data.size(), "parameter sets of different layouts");
  ALIBI_CHECK(std::string(o.backend().device()) == backend().device(), "a set on ",
              o.backend().device(), " copied to ", backend().device());
  backend().copy(data.data(), o.data.data(), data.size() * sizeof(float));
}

std::vector<float> ParamSet::to_host() const {
  std::vector<float> h(data.size());
  backend().download(h.data(), data.data(), h.size() * sizeof(float));
  return h;
}

void ParamSet::from_host(const std::vector<float>& host) {
  ALIBI_CHECK(host.size() == data.size(), "host parameters: ", host.size(), " floats for a set of ",
              data.size());
  backend().upload(data.data(), host.data(), host.size() * sizeof(float));
}

void ParamSet::upload(const TensorInfo& t, const float* host) {
  backend().upload(data.data() + t.offset, host, t.numel * sizeof(float));
}

}  // namespace alibi
