#pragma once
// A compiled Oniguruma pattern (UTF-8, Ruby syntax, no options): the regex engine of Hugging
// Face `tokenizers`, so that pre-tokenizer patterns mean here what they mean there.
#include <functional>
#include <memory>
#include <string>
#include <string_view>

namespace alibi {

class Regex {
 public:
  // Throws UsageError "<where>: pattern '<p>' does not compile: <why>".
  Regex(const std::string& pattern, const std::string& where);
  ~Regex();
  Regex(Regex&&) noexcept;
  Regex(const Regex&) = delete;

  // Calls f(start, end) for each match in `s`, left to right, as HF's find_iter does (the onig
  // crate): each search starts where the last match ended; an empty match right at the end of
  // the previous one is skipped by one character. Thread-safe.
  void find_all(std::string_view s, const std::function<void(size_t, size_t)>& f) const;
  // Whether the pattern matches somewhere in `s`.
  bool search(std::string_view s) const;

  // `text` with every regex metacharacter escaped (a literal pattern).
  static std::string escape(std::string_view text);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace alibi
