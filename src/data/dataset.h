#pragma once
// Prepared data: DIR/{train,valid,test}.tok token files plus the tokenizer (DIR/tokenizer.json,
// DIR/tokenizer.model). A .tok file is a 64-byte header (magic "ALIBITOK", version, vocab,
// token count, source byte count) followed by uint32 little-endian token ids.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "data/tokenizer.h"

namespace alibi {

struct TokenSplit {
  std::string path;
  int vocab = 0;
  uint64_t source_bytes = 0;  // bytes of text the tokens came from (for bits per byte)
  std::vector<int32_t> tokens;
};

// Throws UsageError naming the path for a missing, truncated or foreign file.
TokenSplit load_split(const std::string& dir, const std::string& split);
void save_split(const std::string& path, const std::vector<int32_t>& tokens, int vocab,
                uint64_t source_bytes);

struct PrepareOptions {
  std::string input;   // a text file, or a folder with train/valid/test (.txt or no extension)
  std::string out;     // output folder
  std::string tokenizer = "bytes";  // bytes | bpe | bytebpe
  int vocab = 8192;    // bpe only
  // A tokenizer to use instead of `tokenizer` / `vocab` (a tokenizer.json, or the tokenizer of
  // the checkpoint whose data this is to score: alibi eval checks they agree), and the path it
  // came from, recorded in prepare.json.
  std::optional<Tokenizer> tokenizer_given;
  std::string tokenizer_from;
  double valid_fraction = 0.05;  // single-file input: the last fractions become valid and test
  double test_fraction = 0.05;
  int threads = 0;     // 0: all cores
  bool replace = false;  // an existing prepare output in `out` may be replaced
};

// Tokenises the input into opts.out, a new or empty folder (or, with replace, an earlier prepare
// output, swapped for the new one only once it is complete). Bad input (missing, empty or binary
// corpus, an --out in use) throws UsageError naming the file; nothing is left in opts.out on
// failure.
void prepare(const PrepareOptions& opts);

// Fills tokens/targets (B,T) with B random windows of T+1 tokens of `split`: window b of
// micro-batch `micro` at `step` starts at hash64(seed, step, micro, b) % (n - T). The draw is a
// pure function of its arguments, so resuming needs only the seed and the step.
void sample_batch(const TokenSplit& split, int B, int T, uint64_t seed, int64_t step, int micro,
                  int32_t* tokens, int32_t* targets);

}  // namespace alibi
