#pragma once
// GGUF files of llama.cpp's ALiBi architectures (bloom, mpt) as alibi models (docs/gguf.md): the
// architecture's metadata read through the Hugging Face family of the same model
// (model/hf/family.h), the tensors under llama.cpp's names (one set for every architecture), the
// tokenizer rebuilt from tokenizer.ggml.* as the tokenizer.json it came from. Weight matrices
// keep their GGUF type (any of core/ggml_types.h's), so a checkpoint of the import holds the
// file's blocks byte for byte and runs on them in place.
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/gguf.h"
#include "data/tokenizer.h"
#include "model/checkpoint.h"
#include "model/config.h"
#include "model/hf/family.h"

namespace alibi {

struct GgufImport {
  std::string architecture;  // general.architecture: "bloom", "mpt"
  ModelConfig config;
  Tokenizer tokenizer;
  int trained_len = 0;  // ARCH.context_length
  std::shared_ptr<const Gguf> file;
  std::map<std::string, const GgufTensor*> of;  // our tensor name -> the file's
  // "Q4_K, Q6_K, ...": the types of the weight matrices, for messages.
  std::string matrix_types() const;
};

// Reads and checks everything before returning: an unknown architecture, a missing or misshapen
// tensor, an extra one, a vector that is not F32/F16/BF16 or a tokenizer alibi cannot rebuild is a
// UsageError naming the file and the field.
GgufImport import_gguf(const std::string& path);

// What an import records as its run's hyper-parameters (the checkpoint's "train"): the file, the
// architecture, the matrices' types and the training length.
nlohmann::json gguf_train_record(const GgufImport& m, const std::string& path);

// RUN/ckpt-000000000.safetensors (model/checkpoint.h): the matrices in their GGUF types, their
// bytes as the file holds them; every other tensor fp32. Returns the path written.
std::string write_gguf_checkpoint(const GgufImport& m, const std::string& run_dir,
                                  const nlohmann::json& train);

// Whether PATH is a file that starts with GGUF's magic.
bool is_gguf_file(const std::string& path);
// The checkpoint an import of PATH would write, without writing it: the tensors are views of the
// file's mapping (what eval, generate and serve run on a .gguf), which ck.st holds.
Checkpoint read_gguf_checkpoint(const std::string& path);

// For model/gguf_export.h, the inverse:
// llama.cpp's name of our tensor ("h.3.ln1.w" -> "blk.3.attn_norm.weight"); "" for none.
std::string gguf_tensor_name(const std::string& ours);
// The architecture of llama.cpp's that runs family f ("bloom", "mpt"); "" for none (falcon:
// llama.cpp's falcon has no ALiBi).
std::string gguf_architecture(const hf::Family& f);
// ARCH.* metadata for cfg in family f, as import_gguf reads it back.
void add_gguf_metadata(GgufWriter& w, const hf::Family& f, const ModelConfig& cfg,
                       int context_length);

}  // namespace alibi
