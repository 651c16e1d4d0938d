#include "decoder.h"

#include "core/error.h"
#include "model/checkpoint.h"

namespace alibi::cli {

Checkpoint read_decoder_checkpoint(const std::string& checkpoint) {
  Checkpoint ck = read_checkpoint(checkpoint);
  if (!ck.config.causal)
    usage_error("checkpoint '", ck.path,
                "' is an encoder (bidirectional attention, config "
                "causal false): it sees the tokens after each position, so it cannot generate; "
                "evaluate it with alibi eval");
  if (ck.tokenizer.vocab() > ck.config.vocab)  // fewer is normal: padded embeddings (BLOOM)
    usage_error("checkpoint '", ck.path, "' has a tokenizer of ", ck.tokenizer.vocab(),
                " tokens, more than its model's vocabulary of ", ck.config.vocab);
  return ck;
}

Decoder make_decoder(const Checkpoint& ck, int sequences, int T,
                     const std::shared_ptr<Backend>& backend, const ExtensionFlags* ext) {
  const ModelConfig cfg = ext ? ext->apply(ck) : ck.config;
  return {std::make_unique<Model>(cfg, 1, T, ck.st, backend, LogitsPlan{.rows = sequences}),
          ck.tokenizer, ck.path, ck.step, ck.train.value("seq_len", 0)};
}

Decoder load_decoder(const std::string& checkpoint, int sequences, int T,
                     const std::shared_ptr<Backend>& backend, const ExtensionFlags* ext) {
  return make_decoder(read_decoder_checkpoint(checkpoint), sequences, T, backend, ext);
}

}  // namespace alibi::cli
