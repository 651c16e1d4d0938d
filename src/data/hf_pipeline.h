#pragma once
// The parts of a tokenizer.json around the model: added tokens, normalizers, pre-tokenizers
// and the post-processor's template, each read from its JSON object and applied as Hugging
// Face `tokenizers` applies it.
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "data/regex.h"

namespace alibi {

// GPT-2's pre-tokenizer pattern (HF pre_tokenizers::byte_level), for ByteLevel with use_regex
// and for training a byte-level BPE.
inline constexpr const char* kByteLevelPattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

// Errors about a field of one file: "tokenizer file 'F': FIELD is VALUE; expected WHAT".
struct FieldError {
  std::string origin;
  [[noreturn]] void fail(const std::string& field, const nlohmann::json& value,
                         const std::string& expected) const;
};

struct AddedToken {
  std::string content;  // normalized if `normalized` (what is matched)
  int32_t id = 0;
  bool single_word = false, lstrip = false, rstrip = false, normalized = true, special = false;
};
std::vector<AddedToken> parse_added_tokens(const nlohmann::json& j, const FieldError& err);

// Cuts added tokens out of a text as HF's AddedVocabulary::find_matches does: leftmost-longest
// matches, then single_word, lstrip and rstrip. Calls f(piece, token or nullptr) in order,
// skipping empty pieces.
class AddedMatcher {
 public:
  void add(const AddedToken* token);
  void split(std::string_view s,
             const std::function<void(std::string_view, const AddedToken*)>& f) const;

 private:
  std::vector<const AddedToken*> by_first_[256];  // longest first
  bool empty_ = true;
};

struct Normalizer {
  enum Kind { nfc, nfd, nfkc, nfkd, prepend, replace } kind;
  std::string text;               // prepend: the prefix; replace: the replacement
  std::shared_ptr<Regex> pattern;  // replace
  std::string apply(const std::string& s) const;
  bool is_unicode_form() const { return kind <= nfkd; }
};
std::vector<Normalizer> parse_normalizers(const nlohmann::json& j, const std::string& field,
                                          const FieldError& err);

struct PreTokenizer {
  enum Behavior { removed, isolated, merged_with_previous, merged_with_next, contiguous };
  bool byte_level = false;
  bool add_prefix_space = false;   // byte_level
  std::shared_ptr<Regex> pattern;  // Split; ByteLevel with use_regex: GPT-2's
  Behavior behavior = isolated;
  bool invert = false;
  // Calls f on each non-empty piece `s` splits into.
  void split(std::string_view s, const std::function<void(std::string_view)>& f) const;
};
std::vector<PreTokenizer> parse_pre_tokenizers(const nlohmann::json& j, const std::string& field,
                                               const FieldError& err);

struct TemplateItem {
  bool sequence = false;      // the text's ids ("A")
  std::vector<int32_t> ids;   // a special token's ids
};
std::vector<TemplateItem> parse_post_processor(const nlohmann::json& j, const std::string& field,
                                               const FieldError& err, int vocab);

}  // namespace alibi
