#pragma once
// Hugging Face model folders as alibi models: a family of model/hf/registry.cpp (the ALiBi
// models in use), read from config.json, model.safetensors (or the shards of
// model.safetensors.index.json; F32, F16 or BF16) and tokenizer.json. docs/hf.md has the mapping.
#include <memory>
#include <string>
#include <vector>

#include "data/tokenizer.h"
#include "model/config.h"
#include "model/params.h"

namespace alibi {

struct HfSources;  // the folder's mapped safetensors files and which tensor becomes which

struct HfImport {
  std::string architecture;  // the family's: "BloomForCausalLM", ...
  ModelConfig config;        // with the architecture options the family uses
  Tokenizer tokenizer;
  int trained_len = 0;  // the family's training length where config.json gives one, else 0
  std::string dtype;    // the dtype the weights were stored in
  std::shared_ptr<const HfSources> sources;

  // Rows [r0, r0 + n) of our tensor `t` (of make_param_layout(config); shape[0] rows) as fp32,
  // read from the folder's files, a fused qkv reordered (hf::Rows). Nothing is held in memory: once
  // a tensor's last row is read, its file pages are let go. import_hf checked every tensor.
  void read_rows(const TensorInfo& t, int64_t r0, int64_t n, float* dst) const;
  // Every parameter in the layout's order (alibi import streams with read_rows instead).
  std::vector<float> params() const;
};

// Reads and checks everything before returning; a missing file, an unsupported architecture or
// option, a missing, extra or misshapen tensor, a truncated shard or a tokenizer larger than the
// embedding is a UsageError naming the file and the field.
HfImport import_hf(const std::string& dir);

}  // namespace alibi
