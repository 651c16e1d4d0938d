#pragma once
// The parameter table (docs/model.md) and named sets of fp32 tensors in one allocation of a
// backend's memory: the parameters, and with the same layout their gradients and the two AdamW
// moments.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "kernels/backend.h"
#include "kernels/device_array.h"
#include "model/config.h"

namespace alibi {

// How a tensor starts: offset + (zeros, ones, N(0, scale^2) or U(-scale, scale)), drawn from a
// stream keyed by the tensor's name.
struct Init {
  enum Kind { zeros, ones, normal, uniform } kind = zeros;
  float scale = 0.0f;   // the standard deviation of normal, the bound of uniform
  float offset = 0.0f;  // added to every value (KERPLE's U(0, 2) is 1 + U(-1, 1))
};

// An embedding table of width C (wte, wpe) under cfg.init: N(0, 0.02^2) for gpt2, N(0, 1/C) for
// fairseq, so that sqrt(C) wte has unit scale next to sinusoids of amplitude 1.
Init embedding_init(const ModelConfig& cfg);

struct TensorInfo {
  std::string name;
  std::vector<int64_t> shape;
  size_t offset = 0;  // in floats, into the set's allocation
  size_t numel = 0;
  Init init;
  bool decay = false;     // AdamW weight decay applies
  float lr_scale = 1.0f;  // AdamW's learning rate for this tensor, as a multiple of --lr
  // A weight matrix the model multiplies by (the linears, wte, lm_head.w): a checkpoint may
  // store it in bf16 or f16, and inference can run on it as stored (kernels/weights.h).
  bool matrix = false;
};

struct ParamLayout {
  std::vector<TensorInfo> tensors;
  size_t total = 0;  // floats, tensors padded to 16-float boundaries
  // Appends a tensor; 16-float alignment keeps every tensor on a cache line for vector loops.
  void add(std::string name, std::vector<int64_t> shape, Init init, bool decay,
           float lr_scale = 1.0f);
  const TensorInfo* find(const std::string& name) const;  // nullptr if absent
  const TensorInfo& at(const std::string& name) const;    // throws if absent
  ParamLayout without_matrices() const;  // the other tensors, in order, laid out afresh
};

// The parameter table of a config: token embeddings, the position method's tensors
// (src/position), the blocks, the final LayerNorm; names, shapes, order, init, decay and lr scale.
ParamLayout make_param_layout(const ModelConfig& cfg);
// make_param_layout(cfg).total, exactly up to 4096 layers; deeper, without a table of every
// layer's tensors (a plan for 10^9 layers costs two layers' tables; saturates at UINT64_MAX).
uint64_t param_floats(const ModelConfig& cfg);

// One float per parameter in a backend's memory, zero-filled; the pointers are device pointers.
struct ParamSet {
  const ParamLayout* layout = nullptr;
  DeviceArray<float> data;  // (layout->total)

  ParamSet() = default;
  explicit ParamSet(const ParamLayout& l, std::shared_ptr<Backend> be = default_backend())
      : layout(&l), data(std::move(be), l.total) {}

  float* get(const std::string& name) { return data.data() + layout->at(name).offset; }
  const float* get(const std::string& name) const {
    return data.data() + layout->at(name).offset;
  }
  Backend& backend() const { return data.backend(); }
  void zero();
  void copy_from(const ParamSet& o);  // same layout
  std::vector<float> to_host() const;
  void from_host(const std::vector<float>& host);  // layout->total floats
  void upload(const TensorInfo& t, const float* host);  // one tensor
};

}  // namespace alibi
