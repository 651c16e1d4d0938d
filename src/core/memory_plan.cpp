#include "core/memory_plan.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/error.h"
#include "core/rss.h"

namespace fs = std::filesystem;

namespace alibi {

uint64_t sat_add(uint64_t a, uint64_t b) {
  uint64_t r;
  return __builtin_add_overflow(a, b, &r) ? UINT64_MAX : r;
}

uint64_t sat_mul(uint64_t a, uint64_t b) {
  uint64_t r;
  return __builtin_mul_overflow(a, b, &r) ? UINT64_MAX : r;
}

MemoryPlan& MemoryPlan::add(const std::string& name, uint64_t bytes) {
  for (Part& p : parts_)
    if (p.name == name) {
      p.bytes = sat_add(p.bytes, bytes);
      return *this;
    }
  parts_.push_back({name, bytes});
  return *this;
}

MemoryPlan& MemoryPlan::add(const MemoryPlan& more) {
  for (const Part& p : more.parts_) add(p.name, p.bytes);
  return *this;
}

uint64_t MemoryPlan::total() const {
  uint64_t t = 0;
  for (const Part& p : parts_) t = sat_add(t, p.bytes);
  return t;
}

uint64_t MemoryPlan::of(const std::string& name) const {
  for (const Part& p : parts_)
    if (p.name == name) return p.bytes;
  return 0;
}

const MemoryPlan::Part& MemoryPlan::largest() const {
  static const Part none{"nothing", 0};
  const Part* best = &none;
  for (const Part& p : parts_)
    if (p.bytes > best->bytes) best = &p;
  return *best;
}

MemoryPlan plan_in_use() {
  MemoryPlan p;
  p.add(kInUse, current_rss_bytes());
  return p;
}

uint64_t parse_memory_size(const std::string& text, const std::string& flag) {
  if (text == "auto") return 0;
  auto bad = [&](const char* why) -> uint64_t {
    usage_error(flag, " '", text, "' ", why, "; expected a size such as 8G, 512M, 1.5GiB or "
                "100000000 (bytes), or auto");
  };
  size_t i = 0;
  while (i < text.size() && (std::isdigit(uint8_t(text[i])) || text[i] == '.')) ++i;
  const std::string number = text.substr(0, i);
  if (number.empty() || std::count(number.begin(), number.end(), '.') > 1 || number == ".")
    return bad("is not a size");
  std::string unit = text.substr(i);
  if (!unit.empty() && (unit.back() == 'B' || unit.back() == 'b')) unit.pop_back();
  double scale = 1;
  if (!unit.empty()) {
    const bool binary = unit.size() == 2 && (unit[1] == 'i' || unit[1] == 'I');
    if (unit.size() > (binary ? 2u : 1u)) return bad("has an unknown unit");
    const std::string units = "KMGTP";
    const size_t k = units.find(char(std::toupper(uint8_t(unit[0]))));
    if (k == std::string::npos) return bad("has an unknown unit");
    scale = std::pow(binary ? 1024.0 : 1000.0, double(k + 1));
  }
  const double bytes = std::strtod(number.c_str(), nullptr) * scale;
  if (!(bytes >= 1)) return bad("is less than a byte");
  if (bytes >= 0x1p62) return bad("is more than any machine has");
  return uint64_t(bytes);
}

namespace {

std::optional<std::string> read_small(const fs::path& p) {
  std::ifstream f(p);
  if (!f) return std::nullopt;
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::optional<uint64_t> read_number(const fs::path& p) {
  const std::optional<std::string> s = read_small(p);
  if (!s) return std::nullopt;
  char* end = nullptr;
  const unsigned long long v = std::strtoull(s->c_str(), &end, 10);
  if (end == s->c_str()) return std::nullopt;  // "max", or nothing
  return uint64_t(v);
}

// The value of `key` in a "key value" per line file (memory.stat).
uint64_t stat_value(const fs::path& p, const std::string& key) {
  const std::optional<std::string> s = read_small(p);
  if (!s) return 0;
  std::istringstream in(*s);
  std::string k;
  unsigned long long v;
  while (in >> k >> v)
    if (k == key) return uint64_t(v);
  return 0;
}

// The tightest room of the cgroup at `top` + `path` and its parents up to `top`, with the files
// of one cgroup version.
std::optional<uint64_t> room_upwards(const fs::path& top, const std::string& path,
                                     const char* limit_file, const char* usage_file,
                                     const char* inactive_key) {
  const fs::path rel = fs::path(path).relative_path().lexically_normal();
  const bool inside = !rel.empty() && rel != "." && *rel.begin() != "..";
  fs::path dir = inside ? top / rel : top;
  if (!dir.has_filename()) dir = dir.parent_path();  // a trailing separator
  std::error_code ec;
  while (!fs::is_directory(dir, ec) && dir.has_relative_path() && dir != top)
    dir = dir.parent_path();  // a path from another namespace: its nearest visible ancestor
  std::optional<uint64_t> best;
  for (;;) {
    const std::optional<uint64_t> limit = read_number(dir / limit_file);
    if (limit && *limit < (uint64_t(1) << 62)) {  // v1 writes ~2^63 for "no limit"
      const uint64_t used = read_number(dir / usage_file).value_or(0);
      const uint64_t inactive = stat_value(dir / "memory.stat", inactive_key);
      const uint64_t busy = used > inactive ? used - inactive : 0;
      const uint64_t room = *limit > busy ? *limit - busy : 0;
      best = best ? std::min(*best, room) : room;
    }
    if (dir == top || !dir.has_relative_path() || dir.parent_path() == dir) break;
    dir = dir.parent_path();
  }
  return best;
}

}  // namespace

std::optional<uint64_t> cgroup_room(const std::string& proc_self_cgroup, const std::string& root) {
  std::istringstream in(proc_self_cgroup);
  std::optional<uint64_t> best;
  auto take = [&](std::optional<uint64_t> r) {
    if (r) best = best ? std::min(*best, *r) : *r;
  };
  for (std::string line; std::getline(in, line);) {
    const size_t a = line.find(':'), b = a == std::string::npos ? a : line.find(':', a + 1);
    if (b == std::string::npos) continue;
    const std::string controllers = line.substr(a + 1, b - a - 1);
    const std::string path = line.substr(b + 1);
    if (controllers.empty()) {  // v2: "0::/path"
      take(room_upwards(root, path, "memory.max", "memory.current", "inactive_file"));
    } else if (("," + controllers + ",").find(",memory,") != std::string::npos) {  // v1
      take(room_upwards(fs::path(root) / "memory", path, "memory.limit_in_bytes",
                        "memory.usage_in_bytes", "total_inactive_file"));
    }
  }
  return best;
}

std::optional<uint64_t> meminfo_available(const std::string& proc_meminfo) {
  std::istringstream in(proc_meminfo);
  for (std::string line; std::getline(in, line);) {
    unsigned long long kb = 0;
    if (std::sscanf(line.c_str(), "MemAvailable: %llu kB", &kb) == 1) return uint64_t(kb) * 1024;
  }
  return std::nullopt;
}

MemoryBudget memory_budget(const MemoryOptions& o) {
  if (o.max_memory > 0) return {o.max_memory, "--max-memory"};
  const uint64_t mine = current_rss_bytes();
  MemoryBudget b{UINT64_MAX, "MemAvailable"};
  if (const auto s = read_small("/proc/meminfo"))
    if (const auto avail = meminfo_available(*s)) b.bytes = sat_add(*avail, mine);
  if (const auto s = read_small("/proc/self/cgroup"))
    if (const auto room = cgroup_room(*s, "/sys/fs/cgroup"))
      if (sat_add(*room, mine) < b.bytes) b = {sat_add(*room, mine), "cgroup limit"};
  if (o.ranks_on_host > 1) {
    b.bytes /= uint64_t(o.ranks_on_host);
    b.source += str_cat(" / ", o.ranks_on_host, " ranks on this host");
  }
  return b;
}

std::string format_bytes(uint64_t bytes) {
  if (bytes == UINT64_MAX) return "more than 18 EB";
  static const char* const units[] = {"bytes", "kB", "MB", "GB", "TB", "PB", "EB"};
  double v = double(bytes);
  int u = 0;
  while (v >= 999.5 && u < 6) {
    v /= 1000;
    ++u;
  }
  char buf[32];
  if (u == 0)
    std::snprintf(buf, sizeof buf, "%llu bytes", (unsigned long long)bytes);
  else
    std::snprintf(buf, sizeof buf, v < 9.995 ? "%.2f %s" : v < 99.95 ? "%.1f %s" : "%.0f %s", v,
                  units[u]);
  return buf;
}

std::string memory_line(const MemoryPlan& plan, const MemoryBudget& b, const std::string& at) {
  std::string s = at.empty() ? "memory: " : "memory " + at + ": ";
  bool first = true;
  for (const MemoryPlan::Part& p : plan.parts()) {
    if (p.bytes == 0) continue;
    s += (first ? "" : ", ") + p.name + " " + format_bytes(p.bytes);
    first = false;
  }
  s += " = " + format_bytes(plan.total()) + " of ";
  s += b.bytes == UINT64_MAX ? "unknown" : format_bytes(b.bytes);
  return s + " available (" + b.source + ")";
}

void check_memory(const MemoryPlan& plan, const MemoryBudget& b, const std::string& what,
                  const std::function<std::string()>& advice) {
  if (plan.total() <= b.bytes) return;
  const MemoryPlan::Part& big = plan.largest();
  const std::string more = advice ? advice() : "";
  usage_error(what, " needs ", format_bytes(plan.total()), " (", big.name, " ",
              format_bytes(big.bytes), "); ", format_bytes(b.bytes), " is available (", b.source,
              ")", more.empty() ? "" : "; " + more);
}

int64_t largest_fitting(int64_t lo, int64_t hi, const std::function<bool(int64_t)>& fits) {
  if (hi < lo || !fits(lo)) return lo - 1;
  while (lo < hi) {  // fits(lo) holds
    const int64_t mid = lo + (hi - lo + 1) / 2;
    if (fits(mid))
      lo = mid;
    else
      hi = mid - 1;
  }
  return lo;
}

}  // namespace alibi
