#include "model/model.h"

#include <omp.h>

#include <climits>
#include <cmath>
#include <cstring>

#include "core/error.h"
#include "core/rng.h"
#include "kernels/attention.h"
#include "kernels/cpu/attention_cpu.h"
#include "kernels/ops.h"

namespace alibi {

// Activations of the planned (maxB, maxT): one allocation, pointers into it, every layer's
// activations kept for the backward.
struct Model::Acts {
  std::vector<float> arena;
  struct Layer {
    float* x_in;                 // (N,C) residual stream entering the layer
    float* ln1;                  // (N,C)
    float *ln1_mean, *ln1_rstd;  // (N)
    float *q, *k, *v;            // (B,NH,T,HS) after rotary
    float* att;                  // (B,NH,T,HS) attention output
    float* lse;                  // (B,NH,T)
    float* atty;                 // (N,C) heads merged
    float* x_mid;                // (N,C) after the attention residual
    float* ln2;                  // (N,C)
    float *ln2_mean, *ln2_rstd;  // (N)
    float* fch;                  // (N,F) before gelu
    float* fcg;                  // (N,F) after gelu
  };
  std::vector<Layer> layer;
  // Offsets (floats) of the parameters in ParamSet::data, resolved once so that the step loop
  // does no name lookups; params and grads share the layout.
  struct LayerSlots {
    size_t ln1_w, ln1_b, qkv_w, qkv_b, proj_w, proj_b, ln2_w, ln2_b, fc_w, fc_b, mlp_w, mlp_b;
  };
  std::vector<LayerSlots> slots;
  size_t wte = 0, wpe = 0, t5 = 0, lnf_w = 0, lnf_b = 0;
  float* x_final;              // (N,C) residual stream after the last layer
  float* lnf;                  // (N,C)
  float *lnf_mean, *lnf_rstd;  // (N)
  float* logits;               // (N,V); holds dlogits after backward
  float* ce_lse;               // (N)
  // scratch shared by all layers
  float* qkv;                            // (N,3C) forward; dqkv in backward
  float* branch;                         // (N,C) a branch output before its residual add
  float* dres;                           // (N,C) gradient of the residual stream
  float* dln;                            // (N,C) gradient of a LayerNorm output
  float* datty;                          // (N,C)
  float *datt, *dq, *dk, *dv;            // (B,NH,T,HS)
  float* dF;                             // (N,F)
  AttnWorkspace attn_ws;                 // attention scratch for the threads at plan time
  std::vector<int32_t> tokens, targets;  // (N) copies of the last batch
  std::vector<float> slopes;             // (NH) alibi
  std::vector<int32_t> t5_buckets;       // (t5_max_distance)
};

namespace {
// Floats of attention scratch for batches of B x T, in the current matmul precision.
size_t attention_workspace(const ModelConfig& c, int B, int T) {
  const AttnShape as{B, c.heads, T, T, c.head_size(), 0, matmul_precision()};
  return cpu::attention_workspace_floats(as, omp_get_max_threads());
}
}  // namespace

size_t Model::plan_floats(const ModelConfig& c, int B, int T, bool training) {
  const size_t N = size_t(B) * T, C = c.d_model, F = c.ffn, V = c.vocab;
  const size_t NHT = size_t(B) * c.heads * T;
  // Training keeps every layer for the backward; inference lets all layers share one set.
  const size_t L = training ? size_t(c.layers) : 1;
  // Size table, in floats, in allocation order (the constructor takes them in this order).
  const size_t per_layer = N * C * 9 + N * 4 + NHT + N * F * 2;
  const size_t grad_scratch = training ? N * C * 7 + N * F : 0;
  return L * per_layer + N * C * 2 + N * 3 + N * V + N * 3 * C + N * C + grad_scratch +
         attention_workspace(c, B, T);
}

Model::Model(const ModelConfig& c, int B, int T, bool training)
    : cfg(c),
      layout(make_param_layout(c)),
      params(layout),
      training_(training),
      maxB_(B),
      maxT_(T),
      attn_precision_(matmul_precision()) {
  cfg.validate();
  ALIBI_CHECK(B > 0 && T > 0);
  if (training) grads = ParamSet(layout);
  const size_t N = size_t(B) * T, C = c.d_model, F = c.ffn, V = c.vocab;
  const size_t NHT = size_t(B) * c.heads * T;
  const size_t L = training ? size_t(c.layers) : 1;
  const size_t total = plan_floats(c, B, T, training);
  acts_ = std::make_unique<Acts>();
  Acts& a = *acts_;
  a.arena.assign(total, 0.0f);
  float* p = a.arena.data();
  auto take = [&](size_t n) {
    float* r = p;
    p += n;
    return r;
  };
  a.layer.resize(c.layers);
  for (size_t i = 0; i < L; ++i) {
    Acts::Layer& l = a.layer[i];
    l.x_in = take(N * C);
    l.ln1 = take(N * C);
    l.ln1_mean = take(N);
    l.ln1_rstd = take(N);
    l.q = take(N * C);
    l.k = take(N * C);
    l.v = take(N * C);
    l.att = take(N * C);
    l.lse = take(NHT);
    l.atty = take(N * C);
    l.x_mid = take(N * C);
    l.ln2 = take(N * C);
    l.ln2_mean = take(N);
    l.ln2_rstd = take(N);
    l.fch = take(N * F);
    l.fcg = take(N * F);
  }
  for (size_t i = L; i < a.layer.size(); ++i) a.layer[i] = a.layer[0];
  a.x_final = take(N * C);
  a.lnf = take(N * C);
  a.lnf_mean = take(N);
  a.lnf_rstd = take(N);
  a.ce_lse = take(N);
  a.logits = take(N * V);
  a.qkv = take(N * 3 * C);
  a.branch = take(N * C);
  if (training) {
    a.dres = take(N * C);
    a.dln = take(N * C);
    a.datty = take(N * C);
    a.datt = take(N * C);
    a.dq = take(N * C);
    a.dk = take(N * C);
    a.dv = take(N * C);
    a.dF = take(N * F);
  }
  const size_t attn_floats = attention_workspace(c, B, T);
  a.attn_ws = AttnWorkspace{take(attn_floats), attn_floats, omp_get_max_threads()};
  ALIBI_CHECK(p == a.arena.data() + total);
  a.tokens.resize(N);
  a.targets.resize(N);
  if (c.pos == PosKind::alibi) a.slopes = alibi_slopes(c.heads);
  if (c.pos == PosKind::t5) a.t5_buckets = t5_bucket_table(c.t5_buckets, c.t5_max_distance);
  auto at = [&](const std::string& n) { return layout.at(n).offset; };
  for (int l = 0; l < c.layers; ++l) {
    const std::string p = "h." + std::to_string(l) + ".";
    a.slots.push_back({at(p + "ln1.w"), at(p + "ln1.b"), at(p + "attn.qkv.w"), at(p + "attn.qkv.b"),
                       at(p + "attn.proj.w"), at(p + "attn.proj.b"), at(p + "ln2.w"),
                       at(p + "ln2.b"), at(p + "mlp.fc.w"), at(p + "mlp.fc.b"),
                       at(p + "mlp.proj.w"), at(p + "mlp.proj.b")});
  }
  a.wte = at("wte");
  a.lnf_w = at("lnf.w");
  a.lnf_b = at("lnf.b");
  if (c.pos == PosKind::learned) a.wpe = at("wpe");
  if (c.pos == PosKind::t5) a.t5 = at("t5_bias");
}

Model::~Model() = default;

namespace {

// Token embeddings are scaled by sqrt(C) (as in fairseq's transformer LM, which the paper used):
// the tied table stays small for the output projection while the input embedding keeps the
// same order of magnitude as an added sinusoidal or learned position signal.
float embed_scale(const ModelConfig& c) { return std::sqrt(float(c.d_model)); }

// The attention kernel's view of the position method (alibi and t5 only; others add nothing).
ScoreBias score_bias(const ModelConfig& c, const Model::Acts& a, ParamSet& params) {
  ScoreBias bias;
  if (c.pos == PosKind::alibi) {
    bias.kind = BiasKind::alibi;
    bias.slopes = a.slopes.data();
  } else if (c.pos == PosKind::t5) {
    bias.kind = BiasKind::t5;
    bias.t5_table = params.data.data() + a.t5;
    bias.t5_bucket = a.t5_buckets.data();
    bias.num_buckets = c.t5_buckets;
    bias.t5_max_distance = c.t5_max_distance;
  }
  return bias;
}

}  // namespace

const float* Model::logits() const { return acts_->logits; }

void Model::token_losses(float* out) const {
  const Acts& a = *acts_;
  const int64_t N = int64_t(B_) * T_, V = cfg.vocab;
  for (int64_t i = 0; i < N; ++i) out[i] = a.ce_lse[i] - a.logits[i * V + a.targets[i]];
}

void Model::init_weights(uint64_t seed) {
  constexpr float kStd = 0.02f;  // GPT-2's initialisation
  const float proj_std = kStd / std::sqrt(2.0f * float(cfg.layers));
  params.zero();
  for (const TensorInfo& t : layout.tensors) {
    float* w = params.data.data() + t.offset;
    const std::string& n = t.name;
    auto ends = [&](const char* s) { return n.size() >= std::strlen(s) && n.ends_with(s); };
    // One independent stream per tensor, keyed by its name: adding a tensor changes no other.
    Rng rng(hash64(seed, std::hash<std::string>{}(n)));
    if (ends("ln1.w") || ends("ln2.w") || n == "lnf.w") {
      std::fill(w, w + t.numel, 1.0f);
    } else if (t.shape.size() == 2 && n != "t5_bias") {
      const float s = (ends("attn.proj.w") || ends("mlp.proj.w")) ? proj_std : kStd;
      for (size_t i = 0; i < t.numel; ++i) w[i] = s * rng.normal();
    }
  }
}

float* Model::embed(const int32_t* tokens, int B, int T, int64_t pos0) {
  Acts& a = *acts_;
  auto P = [this](size_t off) { return params.data.data() + off; };
  const ModelConfig& c = cfg;
  const int64_t N = int64_t(B) * T, C = c.d_model, V = c.vocab;
  for (int64_t i = 0; i < N; ++i) {
    if (tokens[i] < 0 || tokens[i] >= V)
      usage_error("token id ", tokens[i], " at position ", i, " is outside the vocabulary of ", V);
    a.tokens[i] = tokens[i];
  }
  if (c.pos == PosKind::learned && pos0 + T > c.max_positions)
    usage_error("--pos learned has a table of ", c.max_positions, " positions; position ",
                pos0 + T - 1, " is past it (learned embeddings cannot extrapolate)");
  float* x = a.layer[0].x_in;
  embedding_forward(x, a.tokens.data(), P(a.wte), N, C, embed_scale(c));
  if (c.pos == PosKind::sinusoidal) sinusoidal_add(x, B, T, int(C), pos0);
  if (c.pos == PosKind::learned) posemb_forward(x, P(a.wpe), B, T, C, pos0);
  return x;
}

// The blocks and the final LayerNorm + tied projection: layer[0].x_in (B,T,C) -> logits.
// With a cache (B = 1), keys and values go into it and queries attend to everything cached.
void Model::blocks_forward(int B, int T, int64_t pos0, KVCache* cache, uint64_t dropout_seed) {
  Acts& a = *acts_;
  auto P = [this](size_t off) { return params.data.data() + off; };
  const ModelConfig& c = cfg;
  const int64_t N = int64_t(B) * T, C = c.d_model, F = c.ffn, V = c.vocab, NH = c.heads;
  const int HS = c.head_size();
  const bool train = train_;
  const float p_res = train ? c.dropout_resid : 0.0f;
  AttnDropout adrop{train ? c.dropout_attn : 0.0f, 0};
  const ScoreBias bias = score_bias(c, a, params);
  AttnShape as{B, int(NH), T, T, HS, 0, attn_precision_};
  if (cache) as = AttnShape{1, int(NH), T, cache->len + T, HS, cache->rows(), attn_precision_};

  for (int l = 0; l < c.layers; ++l) {
    Acts::Layer& s = a.layer[l];
    const Acts::LayerSlots& o = a.slots[l];
    layernorm_forward(s.ln1, s.ln1_mean, s.ln1_rstd, s.x_in, P(o.ln1_w), P(o.ln1_b), N, C);
    linear_forward(a.qkv, s.ln1, P(o.qkv_w), P(o.qkv_b), N, C, 3 * C);
    split_heads(s.q, s.k, s.v, a.qkv, B, T, NH, HS);
    if (c.pos == PosKind::rotary) {
      rotary_forward(s.q, B, int(NH), T, HS, pos0);
      rotary_forward(s.k, B, int(NH), T, HS, pos0);
    }
    adrop.seed = hash64(dropout_seed, uint64_t(l), 0);
    if (cache) {
      // (1,NH,T,HS) rows appended after the rows in use of each head's (rows, HS) block; the
      // attention sees each head's rows from `start` on.
      const size_t layer_off = (size_t(l) * NH * cache->rows() + cache->start) * HS;
      for (int64_t h = 0; h < NH; ++h) {
        const size_t dst = layer_off + (size_t(h) * cache->rows() + cache->len) * HS;
        std::memcpy(cache->k.data() + dst, s.k + h * T * HS, size_t(T) * HS * sizeof(float));
        std::memcpy(cache->v.data() + dst, s.v + h * T * HS, size_t(T) * HS * sizeof(float));
      }
      const AttnWorkspace ws{cache->workspace.data(), cache->workspace.size(),
                             cache->workspace_threads};
      cpu::attention_forward(as, s.q, cache->k.data() + layer_off, cache->v.data() + layer_off,
                             bias, adrop, s.att, s.lse, ws);
    } else {
      cpu::attention_forward(as, s.q, s.k, s.v, bias, adrop, s.att, s.lse, a.attn_ws);
    }
    merge_heads(s.atty, s.att, B, T, NH, HS);
    linear_forward(a.branch, s.atty, P(o.proj_w), P(o.proj_b), N, C, C);
    std::memcpy(s.x_mid, s.x_in, size_t(N * C) * sizeof(float));
    residual_forward(s.x_mid, a.branch, N, C, p_res, hash64(dropout_seed, uint64_t(l), 1));

    layernorm_forward(s.ln2, s.ln2_mean, s.ln2_rstd, s.x_mid, P(o.ln2_w), P(o.ln2_b), N, C);
    linear_forward(s.fch, s.ln2, P(o.fc_w), P(o.fc_b), N, C, F);
    gelu_forward(s.fcg, s.fch, N * F);
    linear_forward(a.branch, s.fcg, P(o.mlp_w), P(o.mlp_b), N, F, C);
    float* x_out = l + 1 < c.layers ? a.layer[l + 1].x_in : a.x_final;
    std::memmove(x_out, s.x_mid, size_t(N * C) * sizeof(float));
    residual_forward(x_out, a.branch, N, C, p_res, hash64(dropout_seed, uint64_t(l), 2));
  }
  layernorm_forward(a.lnf, a.lnf_mean, a.lnf_rstd, a.x_final, P(a.lnf_w), P(a.lnf_b), N, C);
  linear_forward(a.logits, a.lnf, P(a.wte), nullptr, N, C, V);
}

float Model::forward(const int32_t* tokens, const int32_t* targets, int B, int T, bool train,
                     uint64_t dropout_seed) {
  ALIBI_CHECK(B <= maxB_ && T <= maxT_, "batch ", B, "x", T, " exceeds the plan ", maxB_, "x",
              maxT_);
  ALIBI_CHECK(training_ || !train, "an inference model cannot train");
  Acts& a = *acts_;
  const int64_t N = int64_t(B) * T, V = cfg.vocab;
  B_ = B;
  T_ = T;
  train_ = train;
  dropout_seed_ = dropout_seed;
  embed(tokens, B, T, 0);
  blocks_forward(B, T, 0, nullptr, dropout_seed);
  if (targets == nullptr) return 0.0f;
  for (int64_t i = 0; i < N; ++i) {
    if (targets[i] < 0 || targets[i] >= V)
      usage_error("target id ", targets[i], " is outside the vocabulary of ", V);
    a.targets[i] = targets[i];
  }
  return crossentropy_forward(a.ce_lse, a.logits, a.targets.data(), N, V);
}

KVCache Model::make_cache(int capacity, bool sliding) const {
  ALIBI_CHECK(capacity > 0);
  ALIBI_CHECK(!sliding || capacity <= INT_MAX / 2, "window ", capacity);
  KVCache kv;
  kv.capacity = capacity;
  kv.sliding = sliding;
  const size_t n = size_t(cfg.layers) * cfg.heads * kv.rows() * cfg.head_size();
  kv.k.assign(n, 0.0f);
  kv.v.assign(n, 0.0f);
  const AttnShape s{1, cfg.heads, maxT_, capacity, cfg.head_size(), kv.rows(), attn_precision_};
  kv.workspace_threads = omp_get_max_threads();
  kv.workspace.assign(cpu::attention_workspace_floats(s, kv.workspace_threads), 0.0f);
  return kv;
}

const float* Model::forward_cached(const int32_t* tokens, int n, KVCache& cache) {
  ALIBI_CHECK(n > 0 && n <= maxT_, "chunk of ", n, " tokens; the plan allows ", maxT_);
  if (n > cache.capacity)
    usage_error("a chunk of ", n, " tokens does not fit a KV cache of ", cache.capacity);
  const int over = cache.len + n - cache.capacity;
  if (over > 0) {
    if (!cache.sliding)
      usage_error("KV cache of ", cache.capacity, " tokens is full at position ", cache.pos,
                  "; use a sliding window or a larger cache");
    // Drop the oldest `over` rows of every (layer, head): relative distances are unchanged.
    cache.start += over;
    cache.len -= over;
  }
  if (cache.start + cache.len + n > cache.rows()) {
    // Out of room behind the live rows: move them to the front of each (layer, head) block.
    // In a full window of a sliding cache (rows = 2 * capacity) that is once every `capacity`
    // tokens: O(1) rows copied per token, where shifting on every token copied `capacity`.
    const size_t HS = size_t(cfg.head_size());
    for (size_t blk = 0; blk < size_t(cfg.layers) * cfg.heads; ++blk) {
      float* kb = cache.k.data() + blk * cache.rows() * HS;
      float* vb = cache.v.data() + blk * cache.rows() * HS;
      std::memmove(kb, kb + size_t(cache.start) * HS, size_t(cache.len) * HS * sizeof(float));
      std::memmove(vb, vb + size_t(cache.start) * HS, size_t(cache.len) * HS * sizeof(float));
    }
    cache.start = 0;
  }
  B_ = 1;
  T_ = n;
  train_ = false;
  embed(tokens, 1, n, cache.pos);
  blocks_forward(1, n, cache.pos, &cache, 0);
  cache.len += n;
  cache.pos += n;
  return acts_->logits;
}

void Model::backward(float loss_scale) {
  ALIBI_CHECK(training_, "backward() needs a model planned with training = true");
  Acts& a = *acts_;
  auto P = [this](size_t off) { return params.data.data() + off; };
  auto G = [this](size_t off) { return grads.data.data() + off; };
  const ModelConfig& c = cfg;
  const int B = B_, T = T_;
  const int64_t N = int64_t(B) * T, C = c.d_model, F = c.ffn, V = c.vocab, NH = c.heads;
  const int HS = c.head_size();
  const float p_res = train_ ? c.dropout_resid : 0.0f;
  AttnDropout adrop{train_ ? c.dropout_attn : 0.0f, 0};
  const ScoreBias bias = score_bias(c, a, params);
  float* dt5 = c.pos == PosKind::t5 ? G(a.t5) : nullptr;
  AttnShape as{B, int(NH), T, T, HS, 0, attn_precision_};

  crossentropy_backward(a.logits, a.ce_lse, a.targets.data(), N, V, loss_scale);
  float* dwte = G(a.wte);
  linear_backward(a.dln, dwte, nullptr, a.logits, a.lnf, P(a.wte), N, C, V);
  std::fill(a.dres, a.dres + N * C, 0.0f);
  layernorm_backward(a.dres, G(a.lnf_w), G(a.lnf_b), a.dln, a.x_final, P(a.lnf_w), a.lnf_mean,
                     a.lnf_rstd, N, C);

  for (int l = c.layers - 1; l >= 0; --l) {
    Acts::Layer& s = a.layer[l];
    const Acts::LayerSlots& o = a.slots[l];
    // MLP branch: x_out = x_mid + drop(gelu(ln2 Wfc^T + bfc) Wproj^T + bproj)
    residual_backward(a.branch, a.dres, N, C, p_res, hash64(dropout_seed_, uint64_t(l), 2));
    linear_backward(a.dF, G(o.mlp_w), G(o.mlp_b), a.branch, s.fcg, P(o.mlp_w), N, F, C);
    gelu_backward(a.dF, s.fch, a.dF, N * F);
    linear_backward(a.dln, G(o.fc_w), G(o.fc_b), a.dF, s.ln2, P(o.fc_w), N, C, F);
    layernorm_backward(a.dres, G(o.ln2_w), G(o.ln2_b), a.dln, s.x_mid, P(o.ln2_w), s.ln2_mean,
                       s.ln2_rstd, N, C);
    // attention branch: x_mid = x_in + drop(attention(ln1) Wproj^T + bproj)
    residual_backward(a.branch, a.dres, N, C, p_res, hash64(dropout_seed_, uint64_t(l), 1));
    linear_backward(a.datty, G(o.proj_w), G(o.proj_b), a.branch, s.atty, P(o.proj_w), N, C, C);
    merge_heads_backward(a.datt, a.datty, B, T, NH, HS);
    adrop.seed = hash64(dropout_seed_, uint64_t(l), 0);
    cpu::attention_backward(as, s.q, s.k, s.v, s.att, s.lse, a.datt, bias, adrop, a.dq, a.dk, a.dv,
                            dt5, a.attn_ws);
    if (c.pos == PosKind::rotary) {
      rotary_backward(a.dq, B, int(NH), T, HS, 0);
      rotary_backward(a.dk, B, int(NH), T, HS, 0);
    }
    split_heads_backward(a.qkv, a.dq, a.dk, a.dv, B, T, NH, HS);
    linear_backward(a.dln, G(o.qkv_w), G(o.qkv_b), a.qkv, s.ln1, P(o.qkv_w), N, C, 3 * C);
    layernorm_backward(a.dres, G(o.ln1_w), G(o.ln1_b), a.dln, s.x_in, P(o.ln1_w), s.ln1_mean,
                       s.ln1_rstd, N, C);
  }
  if (c.pos == PosKind::learned) posemb_backward(G(a.wpe), a.dres, B, T, C, 0);
  embedding_backward(dwte, a.dres, a.tokens.data(), N, C, V, embed_scale(c));
}

}  // namespace alibi
