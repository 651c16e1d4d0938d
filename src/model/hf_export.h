#pragma once
// alibi models as Hugging Face folders that transformers loads with from_pretrained: MPT
// (MptForCausalLM) or BLOOM (BloomForCausalLM), for models whose architecture options are that
// family's (docs/hf.md, "Export"). The inverse of model/hf_import.h.
#include <string>
#include <vector>

#include "data/tokenizer.h"
#include "model/config.h"

namespace alibi {

// "mpt" or "bloom": the family whose options cfg has; UsageError naming the first option that
// matches neither (want: "" for either, or the family asked for with --family).
std::string hf_family(const ModelConfig& cfg, const std::string& want);

// Writes DIR/config.json, DIR/model.safetensors (F32) and DIR/tokenizer.json (a Hugging Face
// tokenizer's own file; other tokenizers have none) into a new folder, all or nothing.
// params: host, in make_param_layout(cfg)'s layout. max_seq_len: MPT's field (transformers'
// MPT cannot run past it).
void export_hf(const ModelConfig& cfg, const std::vector<float>& params, const Tokenizer& tok,
               const std::string& family, int max_seq_len, const std::string& dir);

}  // namespace alibi
