#pragma once
// A named set of fp32 tensors in one allocation: the parameters, and with the same layout their
// gradients and the two AdamW moments.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "model/config.h"

namespace alibi {

struct TensorInfo {
  std::string name;
  std::vector<int64_t> shape;
  size_t offset = 0;  // in floats, into ParamSet::data
  size_t numel = 0;
  bool decay = false;  // AdamW weight decay applies
};

struct ParamLayout {
  std::vector<TensorInfo> tensors;
  size_t total = 0;
  const TensorInfo* find(const std::string& name) const;  // nullptr if absent
  const TensorInfo& at(const std::string& name) const;    // throws if absent
};

// The parameter table of a model config: names, shapes and order (docs/model.md).
ParamLayout make_param_layout(const ModelConfig& cfg);

struct ParamSet {
  const ParamLayout* layout = nullptr;
  std::vector<float> data;
  ParamSet() = default;
  explicit ParamSet(const ParamLayout& l) : layout(&l), data(l.total, 0.0f) {}
  float* get(const std::string& name) { return data.data() + layout->at(name).offset; }
  const float* get(const std::string& name) const {
    return data.data() + layout->at(name).offset;
  }
  void zero();
};

}  // namespace alibi
