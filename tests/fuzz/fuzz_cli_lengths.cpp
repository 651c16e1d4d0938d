// libFuzzer target: the CLI's --lengths parsing (tools/cli_args.cpp, parse_lengths).
#include <algorithm>
#include <cstdint>
#include <string>

#include "commands.h"
#include "fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string s(reinterpret_cast<const char*>(data), size);
  return alibi::fuzz::swallow_usage_errors([&] {
    const std::vector<int> v = alibi::cli::parse_lengths("--lengths", s);
    // What the callers rely on: non-empty, positive, ascending without repeats.
    if (v.empty() || v.front() < 1 || std::adjacent_find(v.begin(), v.end(), [](int a, int b) {
                                        return a >= b;
                                      }) != v.end())
      __builtin_trap();
  });
}
