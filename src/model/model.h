#pragma once
// The decoder-only pre-LN transformer of docs/model.md with explicit forward and backward.
// Activation memory is planned once for a maximum (B, T) at construction; forward/backward
// allocate nothing.
#include <cstdint>
#include <memory>
#include <vector>

#include "model/config.h"
#include "model/params.h"

namespace alibi {

struct Model {
  ModelConfig cfg;
  ParamLayout layout;
  ParamSet params, grads;

  // Plans activations for batches of up to B rows of up to T tokens.
  Model(const ModelConfig& cfg, int B, int T);
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

  const float* logits() const;  // (B,T,V) of the last forward
  int max_B() const { return maxB_; }
  int max_T() const { return maxT_; }

  struct Acts;  // planned activation buffers (model.cpp)

 private:
  std::unique_ptr<Acts> acts_;
  int maxB_, maxT_;
  int B_ = 0, T_ = 0;
  bool train_ = false;
  uint64_t dropout_seed_ = 0;
};

}  // namespace alibi
