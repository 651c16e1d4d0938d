#pragma once
// Resident set size of this process: its peak, and now.
#include <sys/resource.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>

namespace alibi {

// MiB (getrusage; Linux reports ru_maxrss in KiB).
inline double peak_rss_mb() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return double(ru.ru_maxrss) / 1024.0;
}

// Bytes resident now (/proc/self/statm; 0 where unavailable).
inline uint64_t current_rss_bytes() {
  long pages_total = 0, pages_resident = 0;
  FILE* f = std::fopen("/proc/self/statm", "r");
  if (!f) return 0;
  const int n = std::fscanf(f, "%ld %ld", &pages_total, &pages_resident);
  std::fclose(f);
  return n == 2 ? uint64_t(pages_resident) * uint64_t(sysconf(_SC_PAGESIZE)) : 0;
}

// MiB resident now (0 where unavailable).
inline double current_rss_mb() { return double(current_rss_bytes()) / (1024.0 * 1024.0); }

}  // namespace alibi
