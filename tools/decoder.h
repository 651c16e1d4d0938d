#pragma once
// A checkpoint's causal model, loaded for inference: what `alibi generate` and `alibi serve`
// run. One loading path (read_checkpoint: a run folder, a checkpoint file, an import), so a
// format that read_checkpoint learns reaches both.
#include <cstdint>
#include <memory>
#include <string>

#include "data/tokenizer.h"
#include "extension_flags.h"
#include "kernels/backend.h"
#include "model/checkpoint.h"
#include "model/model.h"

namespace alibi::cli {

// The model, read where it lies in the file (the weights as stored: fp32, bf16 or f16; its
// AdamW moments are never touched), with what a banner says of it.
struct Decoder {
  std::unique_ptr<Model> model;
  Tokenizer tok;
  std::string path;
  int64_t step = 0;
  int train_len = 0;  // the run's seq_len (0: not recorded)
};

// A checkpoint that can generate: UsageError naming it for an encoder (it sees the tokens after
// each position) or a tokenizer larger than the model's vocabulary.
Checkpoint read_decoder_checkpoint(const std::string& checkpoint);

// ck's model planned for steps of up to T tokens in all, of up to `sequences` sequences (the
// logits it keeps: one row each), with the evaluation-time options of `ext` (none: as stored).
Decoder make_decoder(const Checkpoint& ck, int sequences, int T,
                     const std::shared_ptr<Backend>& backend, const ExtensionFlags* ext = nullptr);

// Both of the above.
Decoder load_decoder(const std::string& checkpoint, int sequences, int T,
                     const std::shared_ptr<Backend>& backend,
                     const ExtensionFlags* ext = nullptr);

}  // namespace alibi::cli
