#pragma once
// Model shape and position method; serialised into every checkpoint's metadata.
#include <nlohmann/json.hpp>
#include <string>

#include "position/pos_kind.h"

namespace alibi {

// How a fresh model draws its parameters (docs/model.md, "Initialisation"). Recorded in every
// checkpoint; checkpoints from before the field started from gpt2.
enum class InitScheme { gpt2, fairseq };
const char* init_name(InitScheme s);
InitScheme parse_init(const std::string& name, const std::string& flag = "--init");

struct ModelConfig {
  int vocab = 256;        // V
  int layers = 4;         // L
  int d_model = 256;      // C
  int heads = 8;          // NH
  int ffn = 1024;         // F
  PosKind pos = PosKind::alibi;
  InitScheme init = InitScheme::fairseq;
  // Fields of one position method each (src/position checks and uses them).
  int max_positions = 0;  // learned: rows of wpe (the training seq-len); unused otherwise
  int t5_buckets = 32;    // t5: T5's defaults
  int t5_max_distance = 128;
  float t5_lr_scale = 1.0f;  // t5: the table's learning rate as a multiple of --lr
  float dropout_resid = 0.0f;
  float dropout_attn = 0.0f;

  int head_size() const { return d_model / heads; }
  // Throws UsageError naming the offending flag (--d-model, --heads, ...); the position method
  // checks its own.
  void validate() const;
  nlohmann::json to_json() const;
  static ModelConfig from_json(const nlohmann::json& j);
  bool same_shape(const ModelConfig& o) const;  // everything but dropout, init and lr scales
};

}  // namespace alibi
