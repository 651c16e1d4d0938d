#pragma once
// A command's memory, added up before it allocates (docs/memory.md): the plan's parts (weights,
// gradients, optimizer, activations, KV cache, logits, ...), what this process may use (the
// budget: MemAvailable, a cgroup's limit, or --max-memory), the one line the banner prints, and
// the one-line refusal of a plan over the budget. The sizes come from the planners the
// allocations use (Model::plan_bytes, Model::cache_bytes, ...); this file only adds them up.
// Sizes saturate at UINT64_MAX: a plan for absurd flags says "more than" instead of wrapping.
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace alibi {

// a + b and a * b, UINT64_MAX where they would wrap.
uint64_t sat_add(uint64_t a, uint64_t b);
uint64_t sat_mul(uint64_t a, uint64_t b);

class MemoryPlan {
 public:
  struct Part {
    std::string name;
    uint64_t bytes = 0;
  };
  // Adds to the part of that name (made in order of first use); a part of 0 bytes is not shown.
  MemoryPlan& add(const std::string& name, uint64_t bytes);
  MemoryPlan& add(const MemoryPlan& more);  // each of its parts
  uint64_t total() const;
  uint64_t of(const std::string& name) const;  // 0 where absent
  const std::vector<Part>& parts() const { return parts_; }
  // The largest part (its name), for the refusal's "(activations 410 GB)".
  const Part& largest() const;

 private:
  std::vector<Part> parts_;
};

// The part every plan starts with: this process's resident memory now (the program, its
// libraries, and what the command read to make the plan: tokenizer, data, text).
inline const char* const kInUse = "process";
MemoryPlan plan_in_use();

// What a plan may use, and where that number came from.
struct MemoryBudget {
  uint64_t bytes = 0;
  std::string source;  // "MemAvailable", "cgroup limit", "--max-memory"
};

// The global --max-memory and --dry-run (tools/alibi.cpp), as the commands take them.
struct MemoryOptions {
  uint64_t max_memory = 0;  // 0: what the machine has (memory_budget)
  bool dry_run = false;     // print the plan and stop
  int ranks_on_host = 1;    // processes of one job on this host: they share its memory
};

// "auto" -> 0; "8G", "8GB", "512M", "1.5GiB", "100000000" -> bytes (k/M/G/T decimal, Ki/Mi/Gi/Ti
// binary, an optional trailing B). UsageError naming `flag` for anything else, 0 included.
uint64_t parse_memory_size(const std::string& text, const std::string& flag = "--max-memory");

// The budget: --max-memory where given; otherwise what this process can reach, its resident
// memory now plus MemAvailable, or less where a cgroup's limit leaves less room; shared among
// o.ranks_on_host.
MemoryBudget memory_budget(const MemoryOptions& o);

// Room left under the memory limits of the cgroup that /proc/self/cgroup's text names, read under
// `root` (normally /sys/fs/cgroup): cgroup v2 (memory.max) or v1 (memory/.../limit_in_bytes), the
// tightest of the cgroup and its parents, as limit - usage + inactive file pages. nullopt where
// no limit is set.
std::optional<uint64_t> cgroup_room(const std::string& proc_self_cgroup, const std::string& root);
// MemAvailable of /proc/meminfo's text, bytes (nullopt where absent).
std::optional<uint64_t> meminfo_available(const std::string& proc_meminfo);

// 386000000 -> "386 MB", 23400000000 -> "23.4 GB" (decimal units, 3 significant digits).
std::string format_bytes(uint64_t bytes);

// "memory: process 25 MB, weights 12 MB, optimizer 24 MB, activations 310 MB = 371 MB of
// 23.4 GB available (MemAvailable)"; `at` (may be empty) follows "memory", e.g. "at length 1024".
std::string memory_line(const MemoryPlan& plan, const MemoryBudget& b, const std::string& at = "");

// UsageError when the plan exceeds the budget, in one line: "<what> needs <total> (<largest
// part>); <budget> is available (<source>); <advice()>". advice() runs only then (it may search
// for what would fit).
void check_memory(const MemoryPlan& plan, const MemoryBudget& b, const std::string& what,
                  const std::function<std::string()>& advice);

// The largest x in [lo, hi] with fits(x), for a fits() that holds up to some x and not past it;
// lo - 1 where fits(lo) is false. About log2(hi - lo) calls.
int64_t largest_fitting(int64_t lo, int64_t hi, const std::function<bool(int64_t)>& fits);

}  // namespace alibi
