#pragma once
// Number formatting for the progress and summary lines.
#include <cstdint>
#include <string>

namespace alibi {

// 2793154 -> "2,793,154"
inline std::string with_commas(uint64_t v) {
  const std::string d = std::to_string(v);
  std::string s;
  for (size_t i = 0; i < d.size(); ++i) {
    if (i > 0 && (d.size() - i) % 3 == 0) s += ',';
    s += d[i];
  }
  return s;
}

}  // namespace alibi
