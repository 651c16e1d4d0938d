#pragma once
// Hugging Face model folders as alibi models: BloomForCausalLM and MptForCausalLM (the ALiBi
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
  std::string architecture;  // "BloomForCausalLM" or "MptForCausalLM"
  ModelConfig config;        // with the architecture options the family uses
  Tokenizer tokenizer;
  int trained_len = 0;  // the family's training length where config.json says (MPT), else 0
  std::string dtype;    // the dtype the weights were stored in
  std::shared_ptr<const HfSources> sources;

  // Rows [r0, r0 + n) of our tensor `t` (of make_param_layout(config); shape[0] rows) as fp32,
  // read from the folder's files, BLOOM's fused qkv reordered. Nothing is held in memory: once
  // a tensor's last row is read, its file pages are let go. import_hf checked every tensor.
  void read_rows(const TensorInfo& t, int64_t r0, int64_t n, float* dst) const;
  // Every parameter in the layout's order (alibi import streams with read_rows instead).
  std::vector<float> params() const;
};

// Reads and checks everything before returning; a missing file, an unsupported architecture or
// option, a missing, extra or misshapen tensor, a truncated shard or a tokenizer larger than the
// embedding is a UsageError naming the file and the field.
HfImport import_hf(const std::string& dir);

// BLOOM fuses q, k, v per head: row h*3*HS + j*HS + d of its query_key_value is part j (q, k, v)
// of head h, channel d; ours is row j*C + h*HS + d. Reorders rows of width `cols` (1 for the
// bias) from BLOOM's order to ours, or with to_bloom from ours to BLOOM's.
std::vector<float> bloom_qkv_rows(const std::vector<float>& src, int NH, int HS, int64_t cols,
                                  bool to_bloom = false);

}  // namespace alibi
