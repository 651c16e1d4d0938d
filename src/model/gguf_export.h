#pragma once
// alibi checkpoints as GGUF files that llama.cpp loads (docs/gguf.md, "Export"): the inverse of
// model/gguf_import.h, for the families llama.cpp runs with ALiBi (bloom, mpt).
#include <string>

#include "model/checkpoint.h"
#include "model/hf/family.h"

namespace alibi {

// How the matrices are written: each as the checkpoint stores it (a GGUF import's blocks byte
// for byte; fp32, bf16 and f16 as F32, BF16, F16), or all quantized from fp32 into one type
// (kernels/quant.h's quantize(), as llama-quantize's reference rows make them).
struct GgufExportType {
  bool as_stored = true;
  WeightType type = WeightType::f16;
};

// Writes PATH (all or nothing) from the checkpoint in family f. The tokenizer must be a Hugging
// Face byte-level BPE (an import's, or one made by prepare --tokenizer bytebpe); anything else,
// a family llama.cpp has no ALiBi for, or a matrix whose rows are not whole blocks of the type is
// a UsageError naming it, before anything is written.
void export_gguf(const Checkpoint& ck, const hf::Family& f, GgufExportType type,
                 int context_length, const std::string& path);

}  // namespace alibi
