#pragma once
// alibi models as Hugging Face folders that transformers loads with from_pretrained, in a family
// of model/hf/registry.cpp whose options the model has (docs/hf.md, "Export"). The inverse of
// model/hf_import.h.
#include <string>
#include <vector>

#include "data/tokenizer.h"
#include "model/config.h"
#include "model/hf/family.h"

namespace alibi {

// The family that holds cfg: the one --family names (want), or with want empty the first of the
// registry that does. UsageError naming the options that differ for each family tried.
const hf::Family& hf_family(const ModelConfig& cfg, const std::string& want);

// Writes DIR/config.json, DIR/model.safetensors (F32) and DIR/tokenizer.json (a Hugging Face
// tokenizer's own file; other tokenizers have none) into a new folder, all or nothing.
// params: host, in make_param_layout(cfg)'s layout. max_seq_len: the family's training-length
// field (transformers' MPT cannot run past it).
void export_hf(const ModelConfig& cfg, const std::vector<float>& params, const Tokenizer& tok,
               const hf::Family& family, int max_seq_len, const std::string& dir);

}  // namespace alibi
