// Argument parsing shared by several subcommands.
#include <algorithm>
#include <sstream>

#include "commands.h"
#include "core/error.h"

namespace alibi::cli {

std::vector<int> parse_lengths(const std::string& flag, const std::string& s) {
  std::vector<int> out;
  std::stringstream ss(s);
  for (std::string item; std::getline(ss, item, ',');) {
    size_t used = 0;
    long long v = 0;
    try {
      v = std::stoll(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (item.empty() || used != item.size())
      usage_error(flag, " '", s, "': '", item, "' is not a number; expected token counts "
                  "separated by commas, e.g. 128,256,512");
    if (v < 1 || v > (1 << 30))
      usage_error(flag, " '", s, "': ", v, " is not a usable length; expected positive token "
                  "counts, e.g. 128,256,512");
    out.push_back(int(v));
  }
  if (out.empty()) usage_error(flag, " is empty; expected e.g. 128,256,512");
  std::sort(out.begin(), out.end());  // ascending: the peak RSS of each is then its own
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

}  // namespace alibi::cli
