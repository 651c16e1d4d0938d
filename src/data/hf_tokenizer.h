#pragma once
// A Hugging Face tokenizer.json (BLOOM, MPT/GPT-NeoX, GPT-2 and the like): added tokens,
// normalizers, pre-tokenizers, the BPE model, post-processor and decoder, each applied as
// `tokenizers` applies it, so that ids match id for id. What the file asks for and this code
// does not implement is refused by name, never approximated. docs/tokenizer.md lists the
// supported parts.
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace alibi {

class HfTokenizer {
 public:
  // Parses the content of a tokenizer.json; `origin` (the path) names it in errors, which are
  // UsageErrors naming the field and its value.
  static std::shared_ptr<const HfTokenizer> load(std::string_view json, const std::string& origin);
  // Whether `json` looks like a Hugging Face tokenizer.json (it has a "model" object).
  static bool looks_like(std::string_view json);
  ~HfTokenizer();

  int vocab() const;  // the largest id + 1
  // The ids of `text`, as HF's encode(text, add_special_tokens). Ill-formed UTF-8 is read as
  // Python's bytes.decode("utf-8", "replace") reads it (one U+FFFD per maximal subpart).
  std::vector<int32_t> encode(std::string_view text, bool add_special_tokens) const;
  // The post-processor's template around the ids of a text (BOS/EOS; unchanged if none).
  std::vector<int32_t> add_special_tokens(std::vector<int32_t> ids) const;
  // The one id the template puts before a text's (a BOS), if it starts with one.
  std::optional<int32_t> leading_special() const;
  // The one id the template puts after a text's (an EOS), if it ends with one.
  std::optional<int32_t> trailing_special() const;
  // The bytes the decoder makes of `ids` (HF's decode gives the same text where it is valid
  // UTF-8). Special tokens are skipped if `skip_special`. Throws UsageError for an unknown id.
  std::string decode(std::span<const int32_t> ids, bool skip_special) const;
  // The token string of an id as the file spells it ("" for an unknown id).
  std::string token(int32_t id) const;
  bool is_special(int32_t id) const;

  // A position at or after `from` where `text` may be cut so that encoding the parts gives the
  // ids of encoding it whole (the end of `text` if there is none or the pipeline allows none).
  size_t cut_at_or_after(std::string_view text, size_t from) const;

 private:
  HfTokenizer();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace alibi
