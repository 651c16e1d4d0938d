#pragma once
// The pre-LN transformer of docs/model.md (a causal decoder, or with config causal false a
// bidirectional encoder) with explicit forward and backward, on the
// backend it owns (kernels/backend.h). Parameters, activations and KV caches live in the
// backend's memory; activation memory is planned once for a maximum (B, T) at construction, and
// forward/backward allocate nothing. The position method acts through its hooks
// (position/position.h).
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "core/memory_plan.h"
#include "core/safetensors.h"
#include "kernels/backend.h"
#include "model/activations.h"
#include "model/config.h"
#include "model/params.h"
#include "position/position.h"

namespace alibi {

// Keys and values of every layer for incremental decoding of one sequence (batch 1), allocated
// once for `capacity` tokens. Rows hold consecutive positions; with `sliding` the oldest rows are
// dropped to make room (a window of the last `capacity` tokens), otherwise running past the
// capacity is an error. Positions stay absolute: the next token is at `pos`.
struct KVCache {
  int capacity = 0;  // keys kept at most (a sliding cache's window)
  bool sliding = false;
  int start = 0;     // first row in use; the rows in use are [start, start + len)
  int len = 0;       // rows in use
  int keep = 0;      // of a sliding cache's rows in use, the first `keep` never slide out: a
                     // BOS (Model::sink_rows); the others slide on behind them
  int64_t pos = 0;   // absolute position of the next token
  int context = 0;   // L' of a context extension: the tokens its sequence will span (0: capacity)
  KvType type = KvType::f32;       // how the rows are held (kernels/precision.h)
  DeviceArray<float> k, v;         // (L, NH, rows, HS): type f32
  DeviceArray<uint16_t> k16, v16;  // the same: type f16
  DeviceArray<float> workspace;  // attention scratch for queries against `capacity` keys
  int workspace_threads = 0;     // the threads it was planned for

  // Rows allocated per (layer, head): a sliding cache has room for twice its window, so that
  // dropping old rows only moves `start` on, and the live rows move back to the front only once
  // every ~capacity tokens.
  int rows() const { return sliding ? 2 * capacity : capacity; }
  // The anchor (position/position.h) of the keys cached here: the middle of the positions the
  // rows of a block hold or will hold. It moves when the rows do (kv_move), and the cached keys
  // are re-anchored with it (PositionMethod::rebase_keys).
  int64_t anchor() const { return attention_anchor(pos - len - start, rows()); }
};

// One sequence's new tokens in a batched cached step (Model::forward_batch): n tokens fed after
// what `cache` holds, at positions cache->pos, cache->pos + 1, ...
struct CachedChunk {
  const int32_t* tokens = nullptr;
  int n = 0;
  KVCache* cache = nullptr;
};

// What of the (B*T, V) logits an inference model plans (Model's constructors, Model::plan).
// - cols > 0 chunks the output head over the vocabulary: the logits of every row exist for cols
//   columns at a time, and a forward with targets computes the loss and per-token losses block
//   by block (an online log-sum-exp). A long window at a large vocabulary needs (B*T, cols)
//   floats, not (B*T, V), and each block of the head's weights is read once per forward. Such a
//   model gives losses only (no logits(), no forward without targets, no cache).
// - rows > 0 keeps the logits of that many rows at most: a decoder's, which reads one row per
//   sequence of a step (forward_batch). A forward, or a forward_cached step, over more rows is
//   refused. At BLOOM's vocabulary and chunks of 512 tokens that is 1 MiB per row instead of
//   514 MB.
struct LogitsPlan {
  int64_t cols = 0;  // 0: every column at once
  int64_t rows = 0;  // 0: every row of the plan
};

struct Model {
 private:
  std::shared_ptr<Backend> backend_;  // first: everything below lives in its memory

 public:
  ModelConfig cfg;
  ParamLayout layout;
  ParamSet params, grads;

  // Plans activations for batches of up to B rows of up to T tokens on `backend`. With training =
  // false only one layer's activations are kept (the layers reuse them) and backward() is
  // unavailable: memory for long evaluation windows stays a few buffers of (B*T, C).
  // `logits` (inference only) plans less than (B*T, V) floats of logits; see LogitsPlan.
  Model(const ModelConfig& cfg, int B, int T, bool training = true,
        std::shared_ptr<Backend> backend = default_backend(), LogitsPlan logits = {});
  // An inference model (training = false) on the weights of a checkpoint file (read_checkpoint
  // has checked its tensors): its weight matrices are used as stored, fp32, bf16 or f16, and
  // where the backend's memory is the host's they are read in place from the file's read-only
  // mapping, so the weights exist once, as file pages the kernel can drop and reread. The other
  // tensors (LayerNorms, biases, position tables; fp32) are copied into `params`, whose layout is
  // make_param_layout(cfg).without_matrices().
  Model(const ModelConfig& cfg, int B, int T, const Safetensors& weights,
        std::shared_ptr<Backend> backend = default_backend(), LogitsPlan logits = {});
  // Bytes of activation memory that Model(cfg, B, T, training, backend, logits) plans
  // (SIZE_MAX for more than kMaxPlannedTokens rows: no machine has that memory), and of them the
  // logits (or a chunked head's block of them).
  struct PlanBytes {
    size_t total = 0, logits = 0;
  };
  static PlanBytes plan(const ModelConfig& cfg, int B, int T, bool training,
                        const Backend& backend, LogitsPlan logits = {});
  static size_t plan_bytes(const ModelConfig& cfg, int B, int T, bool training,
                           const Backend& backend, LogitsPlan logits = {}) {
    return plan(cfg, B, T, training, backend, logits).total;
  }
  static constexpr int64_t kMaxPlannedTokens = int64_t(1) << 40;
  // Bytes of the KV cache make_cache(capacity, sliding, type) makes for a model planned for
  // chunks of T rows: keys, values and the attention scratch.
  static size_t cache_bytes(const ModelConfig& cfg, int T, int capacity, bool sliding,
                            const Backend& backend, KvType type = KvType::f32);
  // Bytes the weights of Model(cfg, B, T, file, backend) take: the matrices as stored (read in
  // place from the mapping, or copied where the backend cannot), the other tensors in fp32 as
  // the file has them and as copied into `params`.
  static size_t file_weight_bytes(const ModelConfig& cfg, const Safetensors& file,
                                  const Backend& backend);
  // Bytes of the host copy of `rows` rows of logits (logits(), forward_cached()).
  static size_t host_logits_bytes(const ModelConfig& cfg, int64_t rows) {
    return size_t(rows) * size_t(cfg.vocab) * sizeof(float);
  }
  // Columns of one head block that keep the logits of `rows` rows near 64 MiB (at least 64), or
  // 0 where the whole head fits that: at V = 250,880 and 1,024 rows, 16,384 columns.
  static int64_t default_head_cols(int V, int64_t rows);
  ~Model();
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;

  // The initialisation of the parameter table (docs/model.md), drawn on the host: the same
  // numbers on every device. Not for a model on a checkpoint file's weights.
  void init_weights(uint64_t seed);
  // Puts the position method's parameters back in their domain (KERPLE's clamp): after the
  // initialisation and after every optimizer update.
  void project_params();

  // tokens (B,T) on the host. Computes logits (B,T,V). With targets (B,T), also the mean
  // cross-entropy and whatever the backward needs; returns the loss (0 without targets). Dropout
  // applies only when `train` is set; `dropout_seed` keys the masks (use the step and micro-batch).
  float forward(const int32_t* tokens, const int32_t* targets, int B, int T, bool train = false,
                uint64_t dropout_seed = 0);
  // Accumulates d(loss_scale * loss)/d(params) into grads (+=). Requires a forward with targets.
  void backward(float loss_scale = 1.0f);

  // Incremental decoding: runs n <= max_T() new tokens of one sequence at positions cache.pos..,
  // attending to the cached keys, appends theirs, and returns their logits (n,V) on the host.
  // Equal to the rows of a full forward over the whole prefix (or, with a sliding cache, over
  // the last `capacity` tokens for relative position methods).
  // type f16 (the CPU) holds the keys and values in binary16; refused for a method whose cached
  // keys are re-anchored (xpos).
  KVCache make_cache(int capacity, bool sliding, KvType type = KvType::f32) const;
  void check_cache_type(KvType type) const;  // make_cache's refusals, ahead of it
  const float* forward_cached(const int32_t* tokens, int n, KVCache& cache);
  // A cache of `capacity` rows holding cache's rows and position: room for a longer request.
  void grow_cache(KVCache& cache, int capacity) const;
  // KVCache::keep for a sequence that starts with `first`: 1 where a sliding cache of two rows or
  // more starts with the BOS a tokenizer puts first (`bos`, Tokenizer::leading_special) and the
  // method's keys hold no position, so that the BOS stays in view next to the window as it
  // slides (llama.cpp keeps it through a context shift); else 0.
  int sink_rows(const KVCache& cache, int32_t first, std::optional<int32_t> bos) const;
  // Continuous batching: the new tokens of several sequences, each with its own cache and
  // positions, in one step (model_batch.cpp). The rows of all chunks (at most B x T of the plan
  // together; each chunk as forward_cached allows for its cache) go through the dense layers at
  // once; each sequence's queries attend to its own cache only. Returns the logits of each
  // chunk's last token (chunks.size(), V) on the host: what forward_cached gives that sequence
  // alone, to fp32 summation order (other matrix shapes).
  const float* forward_batch(std::span<const CachedChunk> chunks);

  // Logits (B,T,V) of the last forward, copied to the host when first asked for; or only row r
  // of them (V), a copy of V floats.
  const float* logits() const;
  const float* logits_row(int64_t r) const;
  // Per-token cross-entropy (B,T) of the last forward with targets (before any backward).
  void token_losses(float* out) const;
  // Per-token hits (B,T) of the last forward with targets: 1 where the target's logit is the
  // row's largest (ties count as hits), 0 elsewhere and for ignored targets. Reads the logits on
  // the host, or a chunked head's running maxima: for scoring, not for the step loop.
  void token_hits(float* out) const;
  int max_T() const { return maxT_; }
  // --check-finite: the parameters before forward(), and after every op of forward() and
  // backward() the op's output, are checked; the first NaN or infinity throws UsageError naming
  // the parameter, or the layer and op, where it started.
  // Costs a pass over every activation; off by default.
  void set_check_finite(bool on) { check_finite_ = on; }
  // The same check over every tensor of a set laid out as this model's parameters (its
  // parameters after an update, its gradients): UsageError naming the tensor and `what`.
  void check_finite(const ParamSet& set, const char* what) const;
  // The type the weight matrices are multiplied in: fp32, or a bound file's bf16/f16 (the type
  // of wte when the file mixes types).
  WeightType weight_type() const { return wte_w_.data.type; }

 private:
  Model(const ModelConfig& cfg, int B, int T, bool training, std::shared_ptr<Backend> backend,
        LogitsPlan logits, ParamLayout layout);
  void bind_matrices(const Safetensors* file);
  // The sizes the KV cache and the weights are made with, and what the plans above add up.
  struct CacheSizes {
    size_t kv_elems;  // of k, and of v
    AttnWorkspace ws;
  };
  static CacheSizes cache_sizes(const ModelConfig& cfg, int T, int capacity, bool sliding,
                                const Backend& backend, KvType type);
  struct MatrixBytes {
    size_t mapped = 0;  // read in place from the file's mapping
    size_t copied = 0;  // copied into stored_
  };
  static MatrixBytes matrix_bytes(const ModelConfig& cfg, const Safetensors& file,
                                  const Backend& backend);
  static bool in_place(const StTensor& st, WeightType wt, const Backend& backend);
  // Bytes of matrix t of type wt as the backend packs it at load (Backend::packed_weight_bytes),
  // or 0 where it stays as stored: only a layer's fp32 matrices are packed (the embedding's rows
  // are looked up, and a chunked head reads the head's rows).
  static size_t packed_bytes(const TensorInfo& t, WeightType wt, const Backend& backend);
  // With check_finite_: UsageError if x (n) holds a non-finite value, naming op and layer
  // (-1: outside the blocks).
  void finite(const float* x, int64_t n, int layer, const char* op) const;
  // The rows [row0, row0 + n) of a cached step: one sequence's new tokens against its cache.
  struct Segment {
    int64_t row0 = 0;
    int n = 0;
    KVCache* cache = nullptr;
  };
  // Without segments, B sequences of T tokens at positions pos0..; with them (B = 1), each
  // segment's rows at its cache's positions.
  void embed(const int32_t* tokens, int B, int T, int64_t pos0, std::span<const Segment> segs = {});
  void blocks_forward(int B, int T, int64_t pos0, std::span<const Segment> segs,
                      uint64_t dropout_seed);
  // Layer `layer`'s attention for the segments: each one's q, k, v from the qkv rows, its keys
  // and values appended to its cache, its queries against them (all in one Backend::run_all
  // where the position method allows), merged into atty's rows.
  void attend_segments(int layer, std::span<const Segment> segs);
  // One segment's q, k, v split and its cache appended: the attention op that remains.
  AttentionForward segment_attention(int layer, const Segment& g);
  // Logits (rows, V) from the first rows of lnf; callers check rows <= logit_rows_ first.
  void head_forward(int64_t rows);
  // Drops or compacts a cache's rows so that n more fit (UsageError where they cannot).
  void make_room(KVCache& cache, int n) const;
  // Rows [from.start, from.start + from.len) of each (layer, head) block of `from` to rows
  // [0, from.len) of `to`'s; `to` may be `from` (compaction).
  void move_rows(KVCache& to, const KVCache& from) const;
  // A sliding cache's kept rows (KVCache::keep) `by` rows on, to just before the rows that stay
  // when the `by` oldest others slide out.
  void advance_kept_rows(KVCache& cache, int by) const;
  const float* logits_to_host(int64_t rows) const;

  // A parameter tensor resolved once, so that the step loop does no name lookups: its offset
  // (floats) in params and grads and its shape; a tensor the config lacks (a bias, emb_ln) has
  // offset SIZE_MAX, and its views have no data.
  struct Slot {
    size_t off = SIZE_MAX;
    Shape shape;
  };
  struct LayerSlots {
    Slot ln1_w, ln1_b, qkv_w, qkv_b, proj_w, proj_b, ln2_w, ln2_b, fc_w, fc_b, mlp_w, mlp_b;
  };
  std::vector<LayerSlots> slots_;
  // wte, the output head (wte when tied), the embedding LayerNorm, the final LayerNorm.
  Slot wte_, head_, emb_ln_w_, emb_ln_b_, lnf_w_, lnf_b_;
  Tensor param(const Slot& s) { return {s.off == SIZE_MAX ? nullptr : params.data.data() + s.off,
                                        s.shape}; }
  Tensor grad(const Slot& s) { return {s.off == SIZE_MAX ? nullptr : grads.data.data() + s.off,
                                       s.shape}; }
  // The weight matrices the forward multiplies by: views of params, or of a bound file's tensors
  // (its mapping, kept by file_, or their copies in stored_).
  struct LayerMatrices {
    WTensor qkv, proj, fc, mlp;
  };
  std::vector<LayerMatrices> mats_;
  WTensor wte_w_, head_w_;
  Safetensors file_;
  DeviceArray<std::byte> stored_;
  std::unique_ptr<PositionMethod> pos_;  // bound to this model's layout and backend
  int64_t max_positions_ = 0;            // the method's limit (kAnyLength: none)
  DeviceArray<std::byte> arena_;
  Activations acts_;
  bool training_;
  bool check_finite_ = false;
  int64_t head_cols_;   // 0: the whole head at once
  int64_t logit_rows_;  // rows the logits are planned for (B*T unless a LogitsPlan limits them)
  int maxB_, maxT_;
  int B_ = 0, T_ = 0;
  bool train_ = false;
  uint64_t dropout_seed_ = 0;
  mutable std::vector<float> host_logits_;  // the logits() copy
  mutable int64_t host_rows_ = 0;           // rows of the last forward in it (0: stale)
  mutable std::vector<float> host_row_;     // (V) the logits_row() copy
  std::vector<Segment> segs_;               // forward_batch's, kept for their capacity
  std::vector<AttentionForward> seg_attn_;  // attend_segments', kept for their capacity
  std::vector<int32_t> batch_tokens_;
};

// Adds a model's planned activations to a memory plan as its parts "activations" and
// "logits".
void add_activations(MemoryPlan& plan, const Model::PlanBytes& b);

}  // namespace alibi
