#pragma once
// Hugging Face model folders as alibi models: BloomForCausalLM and MptForCausalLM (the ALiBi
// models in use), read from config.json, model.safetensors (or the shards of
// model.safetensors.index.json; F32, F16 or BF16) and tokenizer.json. docs/hf.md has the mapping.
#include <string>
#include <vector>

#include "data/tokenizer.h"
#include "model/config.h"

namespace alibi {

struct HfImport {
  std::string architecture;   // "BloomForCausalLM" or "MptForCausalLM"
  ModelConfig config;         // with the architecture options the family uses
  std::vector<float> params;  // host, in make_param_layout(config)'s layout
  Tokenizer tokenizer;
  int trained_len = 0;  // the family's training length where config.json says (MPT), else 0
  std::string dtype;    // the dtype the weights were stored in
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
