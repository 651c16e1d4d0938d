// The batched decoding step of `alibi serve` (Model::forward_batch) without HTTP or clients: B
// sequences, each with its own KV cache of `--context` prompt tokens, decode one token each per
// step; with --prefill P, each step also takes the first P tokens of another prompt, as the
// server fills a step's rows left with prompt chunks. Per B: microseconds per step and rows/s,
// and rows/s against the first B measured in the same run (what batching alone can give the
// server's throughput; docs/serve.md). Random weights (speed does not depend on them) in a model
// built as serve builds one on a checkpoint; greedy.
// --kv-cache f32,f16 times each cache type at every B, alternating, and gives each type's time
// against the first type's at the same B. --dtype: the products' precision, as serve's --dtype.
//
//   build/bench/bench_step [--config tiny|small] [--batches 1,4,16,64] [--context 128]
//                          [--prefill 0] [--steps 64] [--rounds 3] [--kv-cache f32]
//                          [--dtype fp32]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <sstream>
#include <string>
#include <vector>

#include "bench/bench_util.h"
#include "core/error.h"
#include "core/rng.h"
#include "core/safetensors.h"
#include "core/threads.h"
#include "generate/generate.h"
#include "model/model.h"

using namespace alibi;

namespace {

struct Options {
  std::string config = "tiny";
  std::vector<int> batches = {1, 4, 16, 64};
  std::vector<KvType> kv_types = {KvType::f32};
  MatmulPrecision precision = MatmulPrecision::fp32;
  int context = 128, prefill = 0, steps = 64, rounds = 3;
};

// Seconds per step of B sequences decoding after `context` prompt tokens each (and a prompt's
// first o.prefill tokens).
double step_seconds(const ModelConfig& c, int B, KvType kv_type, const Options& o) {
  // Random weights, then a model on them as serve's is on its checkpoint (Model's file
  // constructor: the layers' fp32 matrices packed for the CPU's products).
  const std::shared_ptr<Backend> be = make_backend("cpu", o.precision);
  Model init(c, 1, 1, /*training=*/false, be);
  init.init_weights(1);
  Safetensors weights;
  for (const TensorInfo& t : init.layout.tensors)
    weights.add_view(t.name, "F32", t.shape, init.params.data.data() + t.offset,
                     t.numel * sizeof(float));
  Model m(c, 1, std::max(B + o.prefill, o.context), weights, be, LogitsPlan{.rows = B + 1});
  std::vector<KVCache> caches;
  for (int b = 0; b <= B; ++b)  // the last: the prefilled prompt's
    caches.push_back(m.make_cache(std::max(o.context + o.steps, o.prefill), false, kv_type));
  Rng r(42);
  std::vector<int32_t> prompt(static_cast<size_t>(o.context)), next(static_cast<size_t>(B));
  std::vector<CachedChunk> chunks(static_cast<size_t>(B));
  std::vector<int32_t> other(static_cast<size_t>(o.prefill));
  for (auto& t : other) t = int32_t(r.below(c.vocab));
  KVCache& fresh = caches.back();
  for (int b = 0; b < B; ++b) {
    for (auto& t : prompt) t = int32_t(r.below(c.vocab));
    const CachedChunk one{prompt.data(), o.context, &caches[size_t(b)]};
    next[size_t(b)] = argmax(m.forward_batch({&one, 1}), c.vocab);
  }
  for (int b = 0; b < B; ++b) chunks[size_t(b)] = {&next[size_t(b)], 1, &caches[size_t(b)]};
  if (o.prefill > 0) chunks.push_back({other.data(), o.prefill, &fresh});
  const auto t0 = std::chrono::steady_clock::now();
  for (int s = 0; s < o.steps; ++s) {
    fresh.start = fresh.len = 0, fresh.pos = 0;  // the same first chunk of a prompt each step
    const float* lg = m.forward_batch(chunks);
    for (int b = 0; b < B; ++b) next[size_t(b)] = argmax(lg + size_t(b) * c.vocab, c.vocab);
  }
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / o.steps;
}

std::vector<int> ints(const std::string& s) {
  std::vector<int> out;
  std::stringstream ss(s);
  for (std::string x; std::getline(ss, x, ',');) out.push_back(std::atoi(x.c_str()));
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  ensure_omp_wait_policy(argv, kServeSpinCount);  // as the server's step runs
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const char* v = i + 1 < argc ? argv[i + 1] : nullptr;
    if (v && a == "--config")
      o.config = v;
    else if (v && a == "--batches")
      o.batches = ints(v);
    else if (v && a == "--context")
      o.context = std::atoi(v);
    else if (v && a == "--prefill")
      o.prefill = std::atoi(v);
    else if (v && a == "--steps")
      o.steps = std::atoi(v);
    else if (v && a == "--rounds")
      o.rounds = std::atoi(v);
    else if (v && (a == "--kv-cache" || a == "--dtype")) {
      try {
        if (a == "--dtype") {
          o.precision = parse_precision(v, "--dtype");
          make_backend("cpu", o.precision, "--dtype");  // refused here where the CPU lacks it
        } else {
          o.kv_types.clear();
          std::stringstream ss(v);
          for (std::string x; std::getline(ss, x, ',');) o.kv_types.push_back(parse_kv_type(x));
        }
      } catch (const UsageError& e) {
        std::fprintf(stderr, "bench_step: %s\n", e.what());
        return 2;
      }
    } else {
      std::fprintf(stderr,
                   "usage: bench_step [--config tiny|small] [--batches 1,4,16,64] "
                   "[--context 128] [--prefill 0] [--steps 64] [--rounds 3] [--kv-cache f32] "
                   "[--dtype fp32]\n");
      return 2;
    }
    ++i;
  }
  if (o.batches.empty() || o.kv_types.empty() || o.context < 1 || o.prefill < 0 || o.steps < 1 ||
      o.rounds < 1 || *std::min_element(o.batches.begin(), o.batches.end()) < 1) {
    std::string b;
    for (int x : o.batches) b += (b.empty() ? "" : ",") + std::to_string(x);
    std::fprintf(stderr,
                 "bench_step: --batches '%s' --context %d --steps %d --rounds %d --prefill %d: "
                 "expected counts >= 1 (--prefill >= 0)\n",
                 b.c_str(), o.context, o.steps, o.rounds, o.prefill);
    return 2;
  }
  try {
    const ModelConfig c = bench_config(o.config, "--config");
    std::printf(
        "config %s, dtype %s, context %d, prefill %d, %d steps, best of %d rounds (alternating)\n",
        o.config.c_str(), precision_name(o.precision), o.context, o.prefill, o.steps, o.rounds);
    const size_t K = o.kv_types.size();
    std::vector<double> best(o.batches.size() * K, 1e30);  // [batch][kv type]
    for (int r = 0; r < o.rounds; ++r)
      for (size_t i = 0; i < o.batches.size(); ++i)
        for (size_t k = 0; k < K; ++k)
          best[i * K + k] =
              std::min(best[i * K + k], step_seconds(c, o.batches[i], o.kv_types[k], o));
    const double base = (o.batches[0] + o.prefill) / best[0];
    std::printf("%6s %4s %12s %12s %10s %10s\n", "B", "kv", "us/step", "rows/s", "vs first",
                "vs kv[0]");
    for (size_t i = 0; i < o.batches.size(); ++i)
      for (size_t k = 0; k < K; ++k) {
        const double t = best[i * K + k], rows = (o.batches[i] + o.prefill) / t;
        std::printf("%6d %4s %12.1f %12.0f %9.2fx %9.2fx\n", o.batches[i],
                    kv_type_name(o.kv_types[k]), 1e6 * t, rows, rows / base, best[i * K] / t);
      }
  } catch (const UsageError& e) {
    std::fprintf(stderr, "bench_step: %s\n", e.what());
    return 2;
  }
  return 0;
}
