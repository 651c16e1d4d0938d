// Decoding speed with the KV cache against a full recompute of the whole prefix per token, both
// measured in the same run, plus prefill speed. Random weights (speed does not depend on them).
//
//   build/bench/bench_decode [--configs tiny,small] [--contexts 128,1024,8192]
//
// For each config and context c: prefill c prompt tokens in chunks of 256 (prefill tokens/s),
// then decode tokens one at a time against the cache at context c.. (decode tokens/s), then the
// same decoding with a sliding window of W = c that is already full (every token drops the oldest
// row: what `alibi generate --window` pays to keep memory flat), then a full forward over the
// whole prefix for each of a few tokens (what decoding costs without a cache). Prints a Markdown
// table. The default run takes about 2 minutes on 2 cores.
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <string>
#include <vector>

#include "bench/bench_util.h"
#include "core/error.h"
#include "core/rng.h"
#include "core/threads.h"
#include "generate/generate.h"
#include "model/model.h"

using namespace alibi;

namespace {

constexpr int kChunk = 256;  // prefill chunk, as alibi generate's default --chunk

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  for (std::string x; std::getline(ss, x, ',');)
    if (!x.empty()) out.push_back(x);
  return out;
}

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// Tokens timed per measurement: enough to average over, few where a token costs seconds.
int decode_tokens(int ctx) { return ctx >= 8192 ? 32 : 64; }
int recompute_tokens(int ctx, const ModelConfig& c) {
  if (ctx >= 8192) return c.d_model >= 512 ? 1 : 2;
  return ctx >= 1024 ? 4 : 16;
}

struct Row {
  double prefill, decode, window, recompute;
};

Row measure(const ModelConfig& c, int ctx) {
  const int n_dec = decode_tokens(ctx), n_rec = recompute_tokens(ctx, c);
  Rng r(42);
  std::vector<int32_t> tokens(size_t(ctx) + std::max(n_dec, n_rec));
  for (auto& t : tokens) t = int32_t(r.below(c.vocab));
  Row row{};
  {
    Model m(c, 1, kChunk, /*training=*/false);
    m.init_weights(1);
    KVCache kv = m.make_cache(ctx + n_dec, /*sliding=*/false);
    const float* lg = nullptr;
    auto t0 = Clock::now();
    for (int i = 0; i < ctx; i += kChunk) {
      const int n = std::min(kChunk, ctx - i);
      lg = m.forward_cached(tokens.data() + i, n, kv) + size_t(n - 1) * c.vocab;
    }
    row.prefill = ctx / since(t0);
    t0 = Clock::now();
    for (int i = 0; i < n_dec; ++i) {
      const int32_t next = argmax(lg, c.vocab);  // greedy, as alibi generate --temperature 0
      lg = m.forward_cached(&next, 1, kv);
    }
    row.decode = n_dec / since(t0);
  }
  {
    Model m(c, 1, kChunk, /*training=*/false);
    m.init_weights(1);
    KVCache kv = m.make_cache(ctx, /*sliding=*/true);
    const float* lg = nullptr;
    for (int i = 0; i < ctx; i += kChunk) {  // fills the window exactly
      const int n = std::min(kChunk, ctx - i);
      lg = m.forward_cached(tokens.data() + i, n, kv) + size_t(n - 1) * c.vocab;
    }
    // min(W, 1024) tokens, at least n_dec: every one drops a row. The 2W buffer's compaction
    // (once every W tokens, first at token W + 1) falls outside the timing; it adds one row copy
    // per token on average.
    const int n_win = std::max(n_dec, std::min(ctx, 1024));
    const auto t0 = Clock::now();
    for (int i = 0; i < n_win; ++i) {
      const int32_t next = argmax(lg, c.vocab);
      lg = m.forward_cached(&next, 1, kv);
    }
    row.window = n_win / since(t0);
  }
  {
    Model full(c, 1, ctx + n_rec, /*training=*/false);
    full.init_weights(1);
    const auto t0 = Clock::now();
    for (int i = 0; i < n_rec; ++i) {
      full.forward(tokens.data(), nullptr, 1, ctx + i);
      volatile int32_t next = argmax(full.logits_row(ctx + i - 1), c.vocab);
      (void)next;
    }
    row.recompute = n_rec / since(t0);
  }
  return row;
}

}  // namespace

int main(int argc, char** argv) {
  ensure_omp_wait_policy(argv);
  std::vector<std::string> configs = {"tiny", "small"};
  std::vector<int> contexts = {128, 1024, 8192};
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--configs" && i + 1 < argc) {
      configs = split(argv[++i]);
    } else if (a == "--contexts" && i + 1 < argc) {
      contexts.clear();
      for (const auto& s : split(argv[++i])) contexts.push_back(std::atoi(s.c_str()));
    } else {
      std::fprintf(stderr,
                   "usage: bench_decode [--configs tiny,small] [--contexts 128,1024,8192]\n");
      return 2;
    }
  }
  for (const auto& name : configs) {
    try {
      bench_config(name, "--configs");
    } catch (const UsageError& e) {
      std::fprintf(stderr, "bench_decode: %s\n", e.what());
      return 2;
    }
  }
  std::printf("alibi decoding, batch 1, %d OpenMP threads, prefill chunk %d, random weights\n\n",
              omp_get_max_threads(), kChunk);
  std::printf(
      "| config | context | prefill tok/s | decode tok/s (KV cache) | decode tok/s, full window "
      "W = context | window / cache | full recompute tok/s | cache / recompute |\n"
      "|---|---:|---:|---:|---:|---:|---:|---:|\n");
  for (const auto& name : configs) {
    ModelConfig c = bench_config(name, "--configs");
    c.pos = PosKind::alibi;
    for (int ctx : contexts) {
      const Row r = measure(c, ctx);
      std::printf("| %s (V%d C%d L%d NH%d F%d) | %d | %.0f | %.1f | %.1f | %.2f | %.2f | %.0fx |\n",
                  name.c_str(), c.vocab, c.d_model, c.layers, c.heads, c.ffn, ctx, r.prefill,
                  r.decode, r.window, r.window / r.decode, r.recompute, r.decode / r.recompute);
      std::fflush(stdout);
    }
  }
  return 0;
}
