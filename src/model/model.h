#pragma once
// The decoder-only pre-LN transformer of docs/model.md with explicit forward and backward.
// Activation memory is planned once for a maximum (B, T) at construction; forward/backward
// allocate nothing.
#include <cstdint>
#include <memory>
#include <vector>

#include "kernels/ops.h"  // MatmulPrecision
#include "model/config.h"
#include "model/params.h"

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
  int64_t pos = 0;   // absolute position of the next token
  std::vector<float> k, v;       // (L, NH, rows, HS)
  std::vector<float> workspace;  // attention scratch for queries against `capacity` keys
  int workspace_threads = 0;     // OpenMP threads the workspace was planned for

  // Rows allocated per (layer, head): a sliding cache has room for twice its window, so that
  // dropping old rows only moves `start` on, and the live rows move back to the front only once
  // every ~capacity tokens.
  int rows() const { return sliding ? 2 * capacity : capacity; }
};

struct Model {
  ModelConfig cfg;
  ParamLayout layout;
  ParamSet params, grads;

  // Plans activations for batches of up to B rows of up to T tokens. With training = false only
  // one layer's activations are kept (the layers reuse them) and backward() is unavailable:
  // memory for long evaluation windows stays a few buffers of (B*T, C).
  Model(const ModelConfig& cfg, int B, int T, bool training = true);
  // Floats of activation memory that Model(cfg, B, T, training) plans, built now.
  static size_t plan_floats(const ModelConfig& cfg, int B, int T, bool training);
  ~Model();
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;

  void init_weights(uint64_t seed);  // the initialisation table of docs/model.md

  // tokens (B,T). Computes logits (B,T,V). With targets (B,T), also the mean cross-entropy and
  // whatever the backward needs; returns the loss (0 without targets). dropout applies only when
  // `train` is set; `dropout_seed` keys the masks (use the step and micro-batch).
  float forward(const int32_t* tokens, const int32_t* targets, int B, int T, bool train = false,
                uint64_t dropout_seed = 0);
  // Accumulates d(loss_scale * loss)/d(params) into grads (+=). Requires a forward with targets.
  void backward(float loss_scale = 1.0f);

  // Incremental decoding: runs n <= max_T() new tokens of one sequence at positions cache.pos..,
  // attending to the cached keys, appends theirs, and returns their logits (n,V). Equal to the
  // rows of a full forward over the whole prefix (or, with a sliding cache, over the last
  // `capacity` tokens for relative position methods).
  KVCache make_cache(int capacity, bool sliding) const;
  const float* forward_cached(const int32_t* tokens, int n, KVCache& cache);

  const float* logits() const;  // (B,T,V) of the last forward
  // Per-token cross-entropy (B,T) of the last forward with targets (before any backward).
  void token_losses(float* out) const;
  int max_T() const { return maxT_; }

  struct Acts;  // planned activation buffers (model.cpp)

 private:
  std::unique_ptr<Acts> acts_;
  float* embed(const int32_t* tokens, int B, int T, int64_t pos0);
  void blocks_forward(int B, int T, int64_t pos0, KVCache* cache, uint64_t dropout_seed);
  bool training_;
  int maxB_, maxT_;
  // Operand precision of the fused attention: matmul_precision() when the model was built
  // (the workspace is planned for it).
  MatmulPrecision attn_precision_;
  int B_ = 0, T_ = 0;
  bool train_ = false;
  uint64_t dropout_seed_ = 0;
};

}  // namespace alibi
