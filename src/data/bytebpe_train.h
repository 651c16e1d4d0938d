#pragma once
// Trains a byte-level BPE as Hugging Face `tokenizers` defines one (GPT-2's pre-tokenizer
// regex, the 256 byte characters as the alphabet, merges of the most frequent adjacent pair)
// and writes it as a standard tokenizer.json that Python's `tokenizers` loads.
#include <string>
#include <string_view>

namespace alibi {

// The tokenizer.json text of a byte-level BPE of `vocab` ids trained on `text`: id 0 is the
// special token <|endoftext|>, ids 1..256 the bytes, then one id per merge. Ties between
// equally frequent pairs go to the pair of smaller ids, so training is deterministic. Stops
// early (fewer ids) when no pair occurs twice. Throws UsageError for --vocab below 258.
std::string train_byte_level_bpe(std::string_view text, int vocab, int threads);

}  // namespace alibi
