#include "model/model.h"

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstring>
#include <vector>

#include "core/error.h"
#include "core/rng.h"

namespace alibi {
namespace {

// Token embeddings are scaled by sqrt(C) (as in fairseq's transformer LM, which the paper used):
// the tied table stays small for the output projection while the input embedding keeps the
// same order of magnitude as an added sinusoidal or learned position signal. BLOOM and MPT do
// not scale (embed_scale = false).
float embed_scale(const ModelConfig& c) {
  return c.embed_scale ? std::sqrt(float(c.d_model)) : 1.0f;
}

constexpr size_t kAbsent = SIZE_MAX;  // the offset of a tensor this config does not have

const ModelConfig& validated(const ModelConfig& c) {
  c.validate();
  return c;
}

// Token ids come from the host; a bad one is the caller's input error, named before any work.
// Targets may be kIgnoreTarget (a position the loss skips).
void check_ids(const int32_t* ids, int64_t n, int V, const char* what, bool may_ignore = false) {
  for (int64_t i = 0; i < n; ++i)
    if ((ids[i] < 0 && !(may_ignore && ids[i] == kIgnoreTarget)) || ids[i] >= V)
      usage_error(what, " id ", ids[i], " at position ", i, " is outside the vocabulary of ", V);
}

int64_t head_cols_of(const ModelConfig& c, const LogitsPlan& l) {
  return l.cols > 0 && l.cols < c.vocab ? l.cols : 0;
}

int64_t logit_rows_of(int B, int T, const LogitsPlan& l) {
  const int64_t N = int64_t(B) * T;
  return l.rows > 0 && l.rows < N ? l.rows : N;
}

AttnShape full_shape(const ModelConfig& c, int B, int T) {
  AttnShape s{B, c.heads, T, T, c.head_size(), 0, MatmulPrecision::fp32};
  s.causal = c.causal;
  return s;
}

}  // namespace

Model::PlanBytes Model::plan(const ModelConfig& c, int B, int T, bool training,
                             const Backend& backend, LogitsPlan logits) {
  if (int64_t(B) * T > kMaxPlannedTokens) return {SIZE_MAX, SIZE_MAX};
  ArenaPlanner p(nullptr, training);
  Activations a;
  describe_activations(p, c, B, T, backend.plan_attention(full_shape(c, B, T)), a,
                       head_cols_of(c, logits), logit_rows_of(B, T, logits));
  PlanBytes b{p.bytes(), 0};
  for (const ArenaPlanner::Entry& e : p.entries())
    if (e.name == "logits") b.logits = e.bytes;
  return b;
}

int64_t Model::default_head_cols(int V, int64_t rows) {
  constexpr int64_t kChunkFloats = int64_t(1) << 24;  // 64 MiB of logits
  const int64_t cols = std::max<int64_t>(64, kChunkFloats / std::max<int64_t>(rows, 1));
  return cols < V ? cols : 0;
}

Model::Model(const ModelConfig& c, int B, int T, bool training, std::shared_ptr<Backend> backend,
             LogitsPlan logits)
    : Model(c, B, T, training, std::move(backend), logits, make_param_layout(validated(c))) {
  bind_matrices(nullptr);
}

Model::Model(const ModelConfig& c, int B, int T, const Safetensors& weights,
             std::shared_ptr<Backend> backend, LogitsPlan logits)
    : Model(c, B, T, /*training=*/false, std::move(backend), logits,
            make_param_layout(validated(c)).without_matrices()) {
  for (const TensorInfo& t : layout.tensors) {
    const StTensor& st = weights.at(t.name);
    ALIBI_CHECK(st.dtype == "F32" && size_t(st.numel()) == t.numel, "tensor ", t.name);
    params.upload(t, st.f32());
  }
  bind_matrices(&weights);
}

Model::Model(const ModelConfig& c, int B, int T, bool training, std::shared_ptr<Backend> backend,
             LogitsPlan logits, ParamLayout l)
    : backend_(std::move(backend)),
      cfg(c),
      layout(std::move(l)),
      params(layout, backend_),
      pos_(make_position_method(c.pos)),
      max_positions_(position_method(c.pos).max_positions(c)),
      training_(training),
      head_cols_(head_cols_of(c, logits)),
      logit_rows_(logit_rows_of(B, T, logits)),
      maxB_(B),
      maxT_(T) {
  ALIBI_CHECK(B > 0 && T > 0);
  ALIBI_CHECK(!(training && (logits.cols > 0 || logits.rows > 0)),
              "a chunked head or fewer logit rows are for inference only");
  if (training) grads = ParamSet(layout, backend_);
  const AttnWorkspace attn = backend_->plan_attention(full_shape(cfg, B, T));
  ArenaPlanner count(nullptr, training);
  describe_activations(count, cfg, B, T, attn, acts_, head_cols_, logit_rows_);
  arena_ = DeviceArray<std::byte>(backend_, count.bytes());
  ArenaPlanner carve(arena_.data(), training);
  describe_activations(carve, cfg, B, T, attn, acts_, head_cols_, logit_rows_);
  pos_->bind(cfg, layout, backend_);
  pos_->plan(T);

  auto maybe = [&](const std::string& n) {
    const TensorInfo* t = layout.find(n);
    return t ? Slot{t->offset, Shape::of(t->shape)} : Slot{};
  };
  auto at = [&](const std::string& n) {
    const TensorInfo& t = layout.at(n);
    return Slot{t.offset, Shape::of(t.shape)};
  };
  // Matrices are absent from the layout of a model on a file's weights (training needs them).
  for (int l = 0; l < cfg.layers; ++l) {
    const std::string p = "h." + std::to_string(l) + ".";
    slots_.push_back({at(p + "ln1.w"), maybe(p + "ln1.b"), maybe(p + "attn.qkv.w"),
                      maybe(p + "attn.qkv.b"), maybe(p + "attn.proj.w"), maybe(p + "attn.proj.b"),
                      at(p + "ln2.w"), maybe(p + "ln2.b"), maybe(p + "mlp.fc.w"),
                      maybe(p + "mlp.fc.b"), maybe(p + "mlp.proj.w"), maybe(p + "mlp.proj.b")});
  }
  wte_ = maybe("wte");
  head_ = cfg.tied_head ? wte_ : maybe("lm_head.w");
  emb_ln_w_ = maybe("emb_ln.w");
  emb_ln_b_ = maybe("emb_ln.b");
  lnf_w_ = at("lnf.w");
  lnf_b_ = maybe("lnf.b");
}

void Model::bind_matrices(const Safetensors* file) {
  std::vector<std::pair<std::string, WeightView>> views;  // matrix name -> its data
  const ParamLayout full = make_param_layout(cfg);
  if (file == nullptr) {
    for (const TensorInfo& t : full.tensors)
      if (t.matrix) views.emplace_back(t.name, params.data.data() + t.offset);
  } else {
    file_ = *file;  // shares the mapping: it stays while the model reads from it
    const MatrixBytes mb = matrix_bytes(cfg, file_, *backend_);
    if (mb.copied > 0) stored_ = DeviceArray<std::byte>(backend_, mb.copied);
    size_t used = 0;
    for (const TensorInfo& t : full.tensors) {
      if (!t.matrix) continue;
      const StTensor& st = file_.at(t.name);
      WeightType wt;
      weight_type_of_dtype(st.dtype, wt);
      if (const size_t packed = packed_bytes(t, wt, *backend_)) {
        std::byte* dst = stored_.data() + used;
        WeightView view;
        if (reinterpret_cast<uintptr_t>(st.bytes()) % alignof(float) == 0) {
          view = backend_->pack_weight(dst, reinterpret_cast<const float*>(st.bytes()), t.shape[0],
                                       t.shape[1]);
        } else {  // a file's data need not be aligned: through an aligned copy, at load only
          std::vector<float> w(t.numel);
          std::memcpy(w.data(), st.bytes(), st.nbytes());
          view = backend_->pack_weight(dst, w.data(), t.shape[0], t.shape[1]);
        }
        file_.release(st);
        used += (packed + 63) / 64 * 64;
        views.emplace_back(t.name, view);
        continue;
      }
      if (in_place(st, wt, *backend_)) {
        views.emplace_back(t.name, WeightView(st.bytes(), wt));
        continue;
      }
      std::byte* dst = stored_.data() + used;
      backend_->upload(dst, st.bytes(), st.nbytes());
      file_.release(st);
      used += (st.nbytes() + 63) / 64 * 64;
      views.emplace_back(t.name, WeightView(dst, wt));
    }
  }
  auto view = [&](const std::string& n) {
    for (const auto& [name, v] : views)
      if (name == n) return WTensor(v, Shape::of(full.at(n).shape));
    ALIBI_CHECK(false, "no weight matrix ", n);
    return WTensor();
  };
  mats_.clear();
  for (int l = 0; l < cfg.layers; ++l) {
    const std::string p = "h." + std::to_string(l) + ".";
    mats_.push_back({view(p + "attn.qkv.w"), view(p + "attn.proj.w"), view(p + "mlp.fc.w"),
                     view(p + "mlp.proj.w")});
  }
  wte_w_ = view("wte");
  head_w_ = cfg.tied_head ? wte_w_ : view("lm_head.w");
}

Model::~Model() = default;

void Model::project_params() { pos_->project(params); }

void Model::init_weights(uint64_t seed) {
  ALIBI_CHECK(wte_.off != kAbsent, "a model on a file's weights is not initialised");
  // Drawn where the parameters are when the backend's memory is the host's, so no second copy
  // of them exists; otherwise on the host, then uploaded.
  std::vector<float> host(backend_->host_memory() ? 0 : layout.total, 0.0f);
  float* const base = backend_->host_memory() ? params.data.data() : host.data();
  for (const TensorInfo& t : layout.tensors) {
    float* w = base + t.offset;
    // One independent stream per tensor, keyed by its name: adding a tensor changes no other.
    Rng rng(hash64(seed, std::hash<std::string>{}(t.name)));
    if (t.init.kind == Init::zeros) std::fill(w, w + t.numel, 0.0f);
    if (t.init.kind == Init::ones) std::fill(w, w + t.numel, 1.0f);
    if (t.init.kind == Init::normal)
      for (size_t i = 0; i < t.numel; ++i) w[i] = t.init.scale * rng.normal();
    if (t.init.kind == Init::uniform)
      for (size_t i = 0; i < t.numel; ++i) w[i] = t.init.scale * (2.0f * rng.uniform() - 1.0f);
    if (t.init.offset != 0.0f)
      for (size_t i = 0; i < t.numel; ++i) w[i] += t.init.offset;
  }
  if (!backend_->host_memory()) params.from_host(host);
  project_params();
}

void Model::finite(const float* x, int64_t n, int layer, const char* op) const {
  if (!check_finite_) return;
  const int64_t i = backend_->first_nonfinite(x, n);
  if (i < 0) return;
  float v = 0;
  backend_->download(&v, x + i, sizeof(float));
  usage_error("--check-finite: ", op, layer >= 0 ? str_cat(" of layer ", layer).c_str() : "",
              " gave ", v, " at element ", i, " of ", n, "; its inputs were finite");
}

void Model::check_finite(const ParamSet& set, const char* what) const {
  for (const TensorInfo& t : layout.tensors) {
    const int64_t i = backend_->first_nonfinite(set.data.data() + t.offset, int64_t(t.numel));
    if (i >= 0)
      usage_error("--check-finite: ", what, " ", t.name, " holds a non-finite value at element ",
                  i, " of ", t.numel);
  }
}

void Model::embed(const int32_t* tokens, int B, int T, int64_t pos0,
                  std::span<const Segment> segs) {
  Backend& be = *backend_;
  const int64_t N = int64_t(B) * T;
  check_ids(tokens, N, cfg.vocab, "token");
  auto check_positions = [&](int64_t p0, int n) {
    if (p0 + n > max_positions_)
      usage_error("--pos ", pos_name(cfg.pos), " has a table of ", max_positions_,
                  " positions; position ", p0 + n - 1, " is past it (",
                  pos_name(cfg.pos), " embeddings cannot extrapolate)");
  };
  if (segs.empty()) check_positions(pos0, T);
  for (const Segment& g : segs) check_positions(g.cache->pos, g.n);
  be.upload(acts_.tokens, tokens, size_t(N) * sizeof(int32_t));
  float* x = acts_.layer[0].x_in;
  const WeightView wte = wte_w_.data;
  if (cfg.embed_ln) {  // x = LN(scale wte[tokens]), before any position signal is added
    const int64_t C = cfg.d_model;
    be.embedding_forward(acts_.emb, acts_.tokens, wte, N, C, embed_scale(cfg));
    be.run(LayerNormForward{.out = mat(x, N, C),
                            .mean = vec(acts_.emb_mean, N),
                            .rstd = vec(acts_.emb_rstd, N),
                            .inp = mat(acts_.emb, N, C),
                            .w = param(emb_ln_w_),
                            .b = param(emb_ln_b_),
                            .eps = cfg.ln_eps});
  } else {
    be.embedding_forward(x, acts_.tokens, wte, N, cfg.d_model, embed_scale(cfg));
  }
  if (segs.empty()) pos_->embed_forward(x, B, T, pos0, params);
  for (const Segment& g : segs)
    pos_->embed_forward(x + g.row0 * cfg.d_model, 1, g.n, g.cache->pos, params);
  finite(x, N * cfg.d_model, -1, "the embedding");
}

// The blocks and the final LayerNorm: layer[0].x_in (B,T,C) -> lnf. With segments (B = 1), each
// one's keys and values go into its cache and its queries attend to everything cached there.
void Model::blocks_forward(int B, int T, int64_t pos0, std::span<const Segment> segs,
                           uint64_t dropout_seed) {
  Backend& be = *backend_;
  Activations& a = acts_;
  auto P = [this](const Slot& s) { return param(s); };
  const ModelConfig& c = cfg;
  const int64_t N = int64_t(B) * T, C = c.d_model, F = c.ffn, NH = c.heads;
  const int HS = c.head_size();
  const float eps = c.ln_eps;
  const float p_res = train_ ? c.dropout_resid : 0.0f;
  AttnDropout adrop{train_ ? c.dropout_attn : 0.0f, 0};
  const AttnShape as = full_shape(c, B, T);
  auto heads = [&](float* p) { return Tensor(p, {B, NH, T, HS}); };  // (B,NH,T,HS)
  const int64_t anchor = attention_anchor(pos0, T);  // the rotary family's (segments: their caches')

  for (int l = 0; l < c.layers; ++l) {
    Activations::Layer& s = a.layer[l];
    const LayerSlots& o = slots_[l];
    be.run(LayerNormForward{mat(s.ln1, N, C), vec(s.ln1_mean, N), vec(s.ln1_rstd, N),
                            mat(s.x_in, N, C), P(o.ln1_w), P(o.ln1_b), eps});
    finite(s.ln1, N * C, l, "ln1");
    be.run(LinearForward{mat(a.qkv, N, 3 * C), mat(s.ln1, N, C), mats_[l].qkv, P(o.qkv_b)});
    finite(a.qkv, N * 3 * C, l, "the qkv linear");
    if (segs.empty()) {
      be.split_heads(s.q, s.k, s.v, a.qkv, B, T, NH, HS);
      pos_->qk_forward(s.q, s.k, B, int(NH), T, HS, pos0, anchor);
      const ScoreBias bias = pos_->score_bias(params, l, as, pos0);
      finite(s.q, N * C, l, "the position method on q");
      finite(s.k, N * C, l, "the position method on k");
      adrop.seed = hash64(dropout_seed, uint64_t(l), 0);
      be.run(AttentionForward{as,
                              heads(s.q),
                              heads(s.k),
                              heads(s.v),
                              bias,
                              adrop,
                              heads(s.att),
                              {s.lse, {B, NH, T}},
                              a.attn_ws,
                              {},
                              {}});
      be.merge_heads(s.atty, s.att, B, T, NH, HS);
    } else {
      attend_segments(l, segs);
      finite(s.q, N * C, l, "the position method on q");
      finite(s.k, N * C, l, "the position method on k");
    }
    finite(s.att, N * C, l, "attention");
    be.run(LinearForward{mat(a.branch, N, C), mat(s.atty, N, C), mats_[l].proj, P(o.proj_b)});
    finite(a.branch, N * C, l, "the attention's output linear");
    be.copy(s.x_mid, s.x_in, size_t(N * C) * sizeof(float));
    be.residual_forward(s.x_mid, a.branch, N, C, p_res, hash64(dropout_seed, uint64_t(l), 1));
    finite(s.x_mid, N * C, l, "the attention's residual");

    be.run(LayerNormForward{mat(s.ln2, N, C), vec(s.ln2_mean, N), vec(s.ln2_rstd, N),
                            mat(s.x_mid, N, C), P(o.ln2_w), P(o.ln2_b), eps});
    finite(s.ln2, N * C, l, "ln2");
    be.run(LinearForward{mat(s.fch, N, F), mat(s.ln2, N, C), mats_[l].fc, P(o.fc_b)});
    finite(s.fch, N * F, l, "the MLP's fc linear");
    be.gelu_forward(s.fcg, s.fch, N * F, c.gelu);
    finite(s.fcg, N * F, l, "GELU");
    be.run(LinearForward{mat(a.branch, N, C), mat(s.fcg, N, F), mats_[l].mlp, P(o.mlp_b)});
    finite(a.branch, N * C, l, "the MLP's output linear");
    float* x_out = l + 1 < c.layers ? a.layer[l + 1].x_in : a.x_final;
    be.copy(x_out, s.x_mid, size_t(N * C) * sizeof(float));
    be.residual_forward(x_out, a.branch, N, C, p_res, hash64(dropout_seed, uint64_t(l), 2));
    finite(x_out, N * C, l, "the MLP's residual");
  }
  be.run(LayerNormForward{mat(a.lnf, N, C), vec(a.lnf_mean, N), vec(a.lnf_rstd, N),
                          mat(a.x_final, N, C), P(lnf_w_), P(lnf_b_), eps});
  finite(a.lnf, N * C, -1, "the final LayerNorm");
  host_rows_ = 0;
}

void Model::head_forward(int64_t rows) {
  if (head_cols_ > 0) return;  // a chunked head runs with the loss, block by block
  const int64_t C = cfg.d_model, V = cfg.vocab;
  backend_->run(LinearForward{mat(acts_.logits, rows, V), mat(acts_.lnf, rows, C), head_w_, {}});
  finite(acts_.logits, rows * V, -1, "the output head");
  host_rows_ = 0;
}

float Model::forward(const int32_t* tokens, const int32_t* targets, int B, int T, bool train,
                     uint64_t dropout_seed) {
  ALIBI_CHECK(B <= maxB_ && T <= maxT_, "batch ", B, "x", T, " exceeds the plan ", maxB_, "x",
              maxT_);
  ALIBI_CHECK(int64_t(B) * T <= logit_rows_, "batch ", B, "x", T,
              "; this model keeps the logits of ", logit_rows_, " rows (LogitsPlan::rows)");
  ALIBI_CHECK(training_ || !train, "an inference model cannot train");
  const int64_t N = int64_t(B) * T, V = cfg.vocab;
  B_ = B;
  T_ = T;
  train_ = train;
  dropout_seed_ = dropout_seed;
  ALIBI_CHECK(head_cols_ == 0 || targets != nullptr, "a chunked head gives losses only");
  if (targets) check_ids(targets, N, cfg.vocab, "target", /*may_ignore=*/true);
  if (check_finite_) check_finite(params, "parameter");  // then each op's inputs are finite
  embed(tokens, B, T, 0);
  blocks_forward(B, T, 0, {}, dropout_seed);
  head_forward(N);
  if (targets == nullptr) return 0.0f;
  Backend& be = *backend_;
  be.upload(acts_.targets, targets, size_t(N) * sizeof(int32_t));
  if (head_cols_ == 0)
    return be.crossentropy_forward(acts_.ce_lse, acts_.logits, acts_.targets, N, V);
  // The head and cross-entropy over blocks of vocabulary columns, every row at once: each block
  // of the head's weights is read (and, stored in bf16/f16, widened) once per forward.
  const int64_t C = cfg.d_model;
  float loss = 0.0f;
  for (int64_t v0 = 0; v0 < V; v0 += head_cols_) {
    const int64_t n = std::min(head_cols_, V - v0);
    be.run(LinearForward{mat(acts_.logits, N, n), mat(acts_.lnf, N, C), rows(head_w_, v0, n), {}});
    loss = be.crossentropy_block(acts_.ce_state, acts_.losses, acts_.logits, acts_.targets, N, n,
                                 v0, V);
  }
  return loss;
}

const float* Model::logits_to_host(int64_t rows) const {
  if (host_rows_ != rows) {
    const size_t n = host_logits_bytes(cfg, rows) / sizeof(float);
    if (host_logits_.size() < n) host_logits_.resize(n);  // grows once, to the largest batch
    backend_->download(host_logits_.data(), acts_.logits, n * sizeof(float));
    host_rows_ = rows;
  }
  return host_logits_.data();
}

const float* Model::logits() const {
  ALIBI_CHECK(head_cols_ == 0, "a chunked head keeps no logits");
  return logits_to_host(int64_t(B_) * T_);
}

const float* Model::logits_row(int64_t r) const {
  ALIBI_CHECK(r >= 0 && r < int64_t(B_) * T_, "logits row ", r, " of ", int64_t(B_) * T_);
  ALIBI_CHECK(head_cols_ == 0, "a chunked head keeps no logits");
  host_row_.resize(size_t(cfg.vocab));
  backend_->download(host_row_.data(), acts_.logits + r * cfg.vocab,
                     size_t(cfg.vocab) * sizeof(float));
  return host_row_.data();
}

void Model::token_losses(float* out) const {
  const int64_t N = int64_t(B_) * T_;
  if (head_cols_ == 0)  // a chunked head wrote them with its last block
    backend_->token_losses(acts_.losses, acts_.logits, acts_.ce_lse, acts_.targets, N, cfg.vocab);
  backend_->download(out, acts_.losses, size_t(N) * sizeof(float));
}

void Model::token_hits(float* out) const {
  const int64_t N = int64_t(B_) * T_, V = cfg.vocab;
  std::vector<int32_t> tg(static_cast<size_t>(N));
  backend_->download(tg.data(), acts_.targets, size_t(N) * sizeof(int32_t));
  if (head_cols_ > 0) {  // the running maximum and the target's logit after the last block
    std::vector<float> st(3 * static_cast<size_t>(N));
    backend_->download(st.data(), acts_.ce_state, st.size() * sizeof(float));
    for (int64_t n = 0; n < N; ++n)
      out[n] = tg[size_t(n)] >= 0 && st[size_t(2 * N + n)] >= st[size_t(n)] ? 1.0f : 0.0f;
    return;
  }
  const float* logits = logits_to_host(N);
  for (int64_t n = 0; n < N; ++n) {
    if (tg[size_t(n)] < 0) {
      out[n] = 0.0f;
      continue;
    }
    const float* row = logits + n * V;
    out[n] = *std::max_element(row, row + V) <= row[tg[size_t(n)]] ? 1.0f : 0.0f;
  }
}

void Model::backward(float loss_scale) {
  ALIBI_CHECK(training_, "backward() needs a model planned with training = true");
  Backend& be = *backend_;
  Activations& a = acts_;
  auto P = [this](const Slot& s) { return param(s); };
  auto G = [this](const Slot& s) { return grad(s); };
  const ModelConfig& c = cfg;
  const int B = B_, T = T_;
  const int64_t N = int64_t(B) * T, C = c.d_model, F = c.ffn, V = c.vocab, NH = c.heads;
  const int HS = c.head_size();
  const float p_res = train_ ? c.dropout_resid : 0.0f;
  AttnDropout adrop{train_ ? c.dropout_attn : 0.0f, 0};
  const AttnShape as = full_shape(c, B, T);
  auto heads = [&](float* p) { return Tensor(p, {B, NH, T, HS}); };  // (B,NH,T,HS)

  host_rows_ = 0;  // the logits become their gradient
  be.crossentropy_backward(a.logits, a.ce_lse, a.targets, N, V, loss_scale);
  finite(a.logits, N * V, -1, "the cross-entropy's backward");
  be.run(LinearBackward{mat(a.dln, N, C), G(head_), {}, mat(a.logits, N, V), mat(a.lnf, N, C),
                        P(head_)});
  finite(a.dln, N * C, -1, "the output head's backward");
  be.fill(a.dres, 0.0f, N * C);
  be.run(LayerNormBackward{mat(a.dres, N, C), G(lnf_w_), G(lnf_b_), mat(a.dln, N, C),
                           mat(a.x_final, N, C), P(lnf_w_), vec(a.lnf_mean, N),
                           vec(a.lnf_rstd, N)});
  finite(a.dres, N * C, -1, "the final LayerNorm's backward");

  for (int l = c.layers - 1; l >= 0; --l) {
    Activations::Layer& s = a.layer[l];
    const LayerSlots& o = slots_[l];
    // MLP branch: x_out = x_mid + drop(gelu(ln2 Wfc^T + bfc) Wproj^T + bproj)
    be.residual_backward(a.branch, a.dres, N, C, p_res, hash64(dropout_seed_, uint64_t(l), 2));
    be.run(LinearBackward{mat(a.dF, N, F), G(o.mlp_w), G(o.mlp_b), mat(a.branch, N, C),
                          mat(s.fcg, N, F), P(o.mlp_w)});
    finite(a.dF, N * F, l, "the MLP's output linear backward");
    be.gelu_backward(a.dF, s.fch, a.dF, N * F, c.gelu);
    finite(a.dF, N * F, l, "GELU's backward");
    be.run(LinearBackward{mat(a.dln, N, C), G(o.fc_w), G(o.fc_b), mat(a.dF, N, F),
                          mat(s.ln2, N, C), P(o.fc_w)});
    finite(a.dln, N * C, l, "the MLP's fc linear backward");
    be.run(LayerNormBackward{mat(a.dres, N, C), G(o.ln2_w), G(o.ln2_b), mat(a.dln, N, C),
                             mat(s.x_mid, N, C), P(o.ln2_w), vec(s.ln2_mean, N),
                             vec(s.ln2_rstd, N)});
    finite(a.dres, N * C, l, "ln2's backward");
    // attention branch: x_mid = x_in + drop(attention(ln1) Wproj^T + bproj)
    be.residual_backward(a.branch, a.dres, N, C, p_res, hash64(dropout_seed_, uint64_t(l), 1));
    be.run(LinearBackward{mat(a.datty, N, C), G(o.proj_w), G(o.proj_b), mat(a.branch, N, C),
                          mat(s.atty, N, C), P(o.proj_w)});
    finite(a.datty, N * C, l, "the attention's output linear backward");
    be.merge_heads_backward(a.datt, a.datty, B, T, NH, HS);
    adrop.seed = hash64(dropout_seed_, uint64_t(l), 0);
    const ScoreBias bias = pos_->score_bias(params, l, as, 0);
    const Tensor dbias = pos_->score_bias_grad(grads, l);
    be.run(AttentionBackward{as, heads(s.q), heads(s.k), heads(s.v), heads(s.att),
                             {s.lse, {B, NH, T}}, heads(a.datt), bias, adrop, heads(a.dq),
                             heads(a.dk), heads(a.dv), dbias, a.attn_ws});
    finite(a.dq, N * C, l, "attention's backward (dq)");
    finite(a.dk, N * C, l, "attention's backward (dk)");
    finite(a.dv, N * C, l, "attention's backward (dv)");
    pos_->qk_backward(a.dq, a.dk, B, int(NH), T, HS, 0, attention_anchor(0, T));
    be.split_heads_backward(a.qkv, a.dq, a.dk, a.dv, B, T, NH, HS);
    finite(a.qkv, N * 3 * C, l, "the position method's backward");
    be.run(LinearBackward{mat(a.dln, N, C), G(o.qkv_w), G(o.qkv_b), mat(a.qkv, N, 3 * C),
                          mat(s.ln1, N, C), P(o.qkv_w)});
    finite(a.dln, N * C, l, "the qkv linear backward");
    be.run(LayerNormBackward{mat(a.dres, N, C), G(o.ln1_w), G(o.ln1_b), mat(a.dln, N, C),
                             mat(s.x_in, N, C), P(o.ln1_w), vec(s.ln1_mean, N),
                             vec(s.ln1_rstd, N)});
    finite(a.dres, N * C, l, "ln1's backward");
  }
  pos_->score_bias_backward(params, grads);
  pos_->embed_backward(a.dres, B, T, 0, grads);
  const float* demb = a.dres;
  if (c.embed_ln) {
    be.fill(a.dln, 0.0f, N * C);
    be.run(LayerNormBackward{mat(a.dln, N, C), G(emb_ln_w_), G(emb_ln_b_), mat(a.dres, N, C),
                             mat(a.emb, N, C), P(emb_ln_w_), vec(a.emb_mean, N),
                             vec(a.emb_rstd, N)});
    demb = a.dln;
  }
  be.embedding_backward(G(wte_).data, demb, a.tokens, N, C, V, embed_scale(c));
  if (check_finite_) check_finite(grads, "the gradient");
}

}  // namespace alibi
