#pragma once
// Peak resident set size of this process.
#include <sys/resource.h>

namespace alibi {

// MiB (getrusage; Linux reports ru_maxrss in KiB).
inline double peak_rss_mb() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return double(ru.ru_maxrss) / 1024.0;
}

}  // namespace alibi
