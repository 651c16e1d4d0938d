#pragma once
// Number formatting for the progress and summary lines.
#include <cstdint>
#include <cstdio>
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

// Seconds as "4m07s", or "1h12m" from an hour on (rounded to the second).
inline std::string fmt_duration(double s) {
  char buf[32];
  const long t = long(s + 0.5);
  if (t >= 3600)
    std::snprintf(buf, sizeof(buf), "%ldh%02ldm", t / 3600, (t / 60) % 60);
  else
    std::snprintf(buf, sizeof(buf), "%ldm%02lds", t / 60, t % 60);
  return buf;
}

}  // namespace alibi
