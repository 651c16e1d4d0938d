#pragma once
// The model's activation memory: one arena in the backend's memory, planned once for the largest
// batch B x T. One description, describe_activations(), both sizes and carves it: walked by a
// planner without a base it only counts; walked again with the arena's base it hands out the
// buffers, so the size and the layout cannot disagree.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "core/memory_plan.h"
#include "kernels/attention.h"
#include "model/config.h"

namespace alibi {

// Which pass needs a buffer. Backward buffers exist only in a model planned for training.
enum class Pass { forward, backward };

class ArenaPlanner {
 public:
  struct Entry {
    std::string name;
    std::vector<int64_t> shape;
    Pass pass;
    size_t offset, bytes;
  };
  // base null: count only.
  ArenaPlanner(std::byte* base, bool training) : base_(base), training_(training) {}

  // A buffer of `shape` elements of T, or null if `pass` is not planned. Counting saturates at
  // SIZE_MAX (a plan for any flags; an arena of that size is never made).
  template <class T>
  T* take(std::string name, std::vector<int64_t> shape, Pass pass) {
    if (pass == Pass::backward && !training_) return nullptr;
    uint64_t n = sizeof(T);
    for (int64_t d : shape) n = sat_mul(n, uint64_t(d));
    used_ = sat_add(used_, alignof(T) - 1) / alignof(T) * alignof(T);
    entries_.push_back({std::move(name), std::move(shape), pass, used_, n});
    T* p = base_ ? reinterpret_cast<T*>(base_ + used_) : nullptr;
    used_ = sat_add(used_, n);
    return p;
  }
  bool training() const { return training_; }
  size_t bytes() const { return used_; }
  const std::vector<Entry>& entries() const { return entries_; }

 private:
  std::byte* base_;
  bool training_;
  size_t used_ = 0;
  std::vector<Entry> entries_;
};

struct Activations {
  struct Layer {
    float* x_in;                 // (N,C) residual stream entering the layer
    float* ln1;                  // (N,C)
    float *ln1_mean, *ln1_rstd;  // (N)
    float *q, *k, *v;            // (B,NH,T,HS) after the position method's q/k hook
    float* att;                  // (B,NH,T,HS) attention output
    float* lse;                  // (B,NH,T)
    float* atty;                 // (N,C) heads merged
    float* x_mid;                // (N,C) after the attention residual
    float* ln2;                  // (N,C)
    float *ln2_mean, *ln2_rstd;  // (N)
    float* fch;                  // (N,F) before gelu
    float* fcg;                  // (N,F) after gelu
  };
  std::vector<Layer> layer;      // (L); without training every layer shares layer 0's buffers
  float* x_final;                // (N,C) residual stream after the last layer
  float* lnf;                    // (N,C)
  float *lnf_mean, *lnf_rstd;    // (N)
  float* ce_lse;                 // (N)
  float* logits;                 // (rows,V) or (rows,head_cols): LogitsPlan; dlogits in backward
  float* ce_state = nullptr;     // (3,N) a chunked head's running cross-entropy
  // scratch shared by all layers
  float* qkv;                    // (N,3C) forward; dqkv in backward
  float* branch;                 // (N,C) a branch output before its residual add
  float* dres;                   // (N,C) gradient of the residual stream (training)
  float* dln;                    // (N,C) gradient of a LayerNorm output (training)
  float* datty;                  // (N,C) (training)
  float *datt, *dq, *dk, *dv;    // (B,NH,T,HS) (training)
  float* dF;                     // (N,F) (training)
  AttnWorkspace attn_ws;         // the fused attention's scratch, planned by the backend
  int32_t *tokens, *targets;     // (N) the last batch
  float* losses;                 // (N) per-token losses (token_losses)
  float* emb = nullptr;          // (N,C) token embeddings before their LayerNorm (embed_ln)
  float *emb_mean = nullptr, *emb_rstd = nullptr;  // (N) (embed_ln)
};

// Lays out the activations of batches of up to B x T. Training keeps every layer's activations
// for the backward; inference keeps one layer's, which all layers reuse, so memory for long
// evaluation windows stays a few buffers of (B*T, C). `attn` is the backend's plan for the
// attention scratch (its floats and threads). The logits buffer holds logit_rows rows (at most
// B*T) of head_cols vocabulary columns (0: all; inference only, the head and cross-entropy then
// run over blocks of them).
void describe_activations(ArenaPlanner& p, const ModelConfig& c, int B, int T,
                          const AttnWorkspace& attn, Activations& a, int64_t head_cols,
                          int64_t logit_rows);

}  // namespace alibi
