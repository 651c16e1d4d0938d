// libFuzzer target: the CLI's lengths. The input is parsed as --lengths (tools/cli_args.cpp,
// parse_lengths); its first four comma-separated numbers are also taken as --batch, --seq-len,
// --window and --max-new-tokens and planned (core/memory_plan.h: training_memory, the KV cache
// of generation) against a budget of 32 MB, and what the plan accepts is allocated: the model of
// that batch and length, the cache of that window or generation. std::bad_alloc, or anything
// above -malloc_limit_mb, is a finding: the plan must bound every allocation the flags drive.
#include <algorithm>
#include <climits>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "commands.h"
#include "fuzz_util.h"
#include "generate/generate.h"
#include "model_util.h"
#include "model/model.h"
#include "train/train_plan.h"

namespace {

constexpr uint64_t kBudget = 32u << 20;

// Up to four integers of "a,b,c,d", each clamped to int as CLI11 would refuse beyond it.
std::vector<int> numbers(const std::string& s) {
  std::vector<int> v;
  const char* p = s.c_str();
  while (v.size() < 4 && *p) {
    char* end = nullptr;
    const long long x = std::strtoll(p, &end, 10);
    if (end == p) break;
    v.push_back(int(std::clamp<long long>(x, INT_MIN, INT_MAX)));
    p = *end == ',' ? end + 1 : end;
    if (*end != ',') break;
  }
  return v;
}

void plan_and_allocate(const std::vector<int>& v) {
  using namespace alibi;
  const ModelConfig c = test::small_model(PosKind::alibi, 2, 64);
  const std::shared_ptr<Backend> be = default_backend();
  const int batch = v[0], seq_len = v[1], window = v[2], max_new = v[3];
  if (batch >= 1 && seq_len >= 1) {
    TrainOptions o;
    o.batch = batch;
    o.seq_len = seq_len;
    const MemoryPlan p = training_memory(o, c, *be, 0, 1);
    if (p.total() - p.of(kInUse) <= kBudget) {
      Model m(c, batch, seq_len, /*training=*/true, be);
    }
  }
  if (window < 0 || max_new < 0) return;
  // A prompt of one token; the cache: the window, or every token the generation reaches.
  const int64_t reach = Generator::cache_tokens(1, max_new);
  const bool sliding = window > 0 && window < reach;
  const int64_t capacity = sliding ? window : reach;
  if (capacity > (sliding ? INT_MAX / 2 : INT_MAX)) return;  // refused by name (cmd_generate)
  const int chunk = 8;
  const uint64_t need = sat_add(Model::cache_bytes(c, chunk, int(capacity), sliding, *be),
                                Model::plan_bytes(c, 1, chunk, false, *be));
  if (need > kBudget) return;
  Model m(c, 1, chunk, /*training=*/false, be);
  KVCache cache = m.make_cache(int(capacity), sliding);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string s(reinterpret_cast<const char*>(data), size);
  const std::vector<int> flags = numbers(s);
  if (flags.size() == 4) plan_and_allocate(flags);
  return alibi::fuzz::swallow_usage_errors([&] {
    const std::vector<int> v = alibi::cli::parse_lengths("--lengths", s);
    // What the callers rely on: non-empty, positive, ascending without repeats.
    if (v.empty() || v.front() < 1 || std::adjacent_find(v.begin(), v.end(), [](int a, int b) {
                                        return a >= b;
                                      }) != v.end())
      __builtin_trap();
  });
}
