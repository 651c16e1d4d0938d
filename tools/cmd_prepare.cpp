// alibi prepare: a corpus tokenised into a data folder (src/data/dataset.h).
#include <memory>

#include "commands.h"
#include "core/error.h"
#include "data/dataset.h"
#include "model/checkpoint.h"

namespace alibi::cli {

Command add_prepare(CLI::App& app) {
  auto o = std::make_shared<PrepareOptions>();
  CLI::App* cp = add_subcommand(app, "prepare", "tokenise a corpus into a data folder");
  cp->add_option("--input", o->input, "text file, or folder with train/valid/test files")
      ->required();
  cp->add_option("--out", o->out, "output data folder: new or empty")->required();
  cp->add_flag("--replace", o->replace,
               "replace the data an earlier prepare wrote in --out (only once the new data is "
               "complete)");
  cp->add_option(
      "--tokenizer", o->tokenizer,
      "bytes | bpe (SentencePiece) | bytebpe (byte-level BPE, written as tokenizer.json)");
  cp->add_option("--vocab", o->vocab, "BPE vocabulary size (bpe, bytebpe)");
  cp->add_option(
      "--tokenizer-from", o->tokenizer_from,
      "use this tokenizer instead of --tokenizer: a Hugging Face tokenizer.json or model "
      "folder, a SentencePiece .model, a data folder, a run folder or checkpoint, a GGUF file "
      "(its tokenizer.ggml.*)");
  cp->add_option("--valid-fraction", o->valid_fraction, "single-file input: share for valid");
  cp->add_option("--test-fraction", o->test_fraction, "single-file input: share for test");
  return {cp, [o, cp] {
            if (!o->tokenizer_from.empty())
              for (const char* flag : {"--tokenizer", "--vocab"})
                if (cp->count(flag) > 0)
                  usage_error(flag, " contradicts --tokenizer-from '", o->tokenizer_from,
                              "', which brings its own tokenizer; drop one of them");
            if (!o->tokenizer_from.empty()) o->tokenizer_given = load_tokenizer(o->tokenizer_from);
            prepare(*o);
          }};
}

}  // namespace alibi::cli
