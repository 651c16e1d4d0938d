#pragma once
// UTF-8 validity by Unicode's Table 3-7 (well-formed byte sequences).
#include <cstddef>
#include <string>
#include <string_view>

namespace alibi {

// Length of the well-formed sequence that starts at s[i], or 0 if none does; then `*bad` is
// the length of its maximal subpart (the longest prefix of a well-formed sequence, at least 1),
// which is what one U+FFFD replaces (Unicode 3.9, "substitution of maximal subparts", as
// Python's decode(errors="replace") and Rust's String::from_utf8_lossy do).
size_t utf8_sequence(std::string_view s, size_t i, size_t* bad);

// Offset of the first byte that is not part of well-formed UTF-8, or npos.
size_t first_invalid_utf8(std::string_view s);

// `s` with each maximal subpart of an ill-formed sequence replaced by U+FFFD.
std::string utf8_lossy(std::string_view s);

}  // namespace alibi
