#include "bench/bench_util.h"

#include <algorithm>
#include <chrono>
#include <vector>

#include "core/error.h"
#include "core/rng.h"
#include "model/model.h"
#include "train/optim.h"

namespace alibi {
namespace {

using clk = std::chrono::steady_clock;

double seconds_since(clk::time_point t0) {
  return std::chrono::duration<double>(clk::now() - t0).count();
}

}  // namespace

ModelConfig bench_config(const std::string& name, const std::string& flag) {
  ModelConfig c;
  if (name == "tiny") {
    c.vocab = 256, c.layers = 4, c.d_model = 256, c.heads = 8, c.ffn = 1024;
  } else if (name == "small") {
    c.vocab = 8192, c.layers = 8, c.d_model = 512, c.heads = 8, c.ffn = 2048;
  } else {
    usage_error(flag, " '", name, "' is not a benchmark config; expected tiny or small");
  }
  return c;
}

double best_call_seconds(const std::function<void()>& fn, double min_seconds) {
  double best = 1e30, total = 0.0;
  do {
    const auto t0 = std::chrono::steady_clock::now();
    fn();
    const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    best = std::min(best, dt);
    total += dt;
  } while (total < min_seconds);
  return best;
}

double gemm_gflops(Backend& be) {
  const int64_t n = 2048;
  const std::vector<float> ones(n * n, 1.0f), halves(n * n, 0.5f);
  float* a = static_cast<float*>(be.alloc(n * n * sizeof(float)));
  float* b = static_cast<float*>(be.alloc(n * n * sizeof(float)));
  float* c = static_cast<float*>(be.alloc(n * n * sizeof(float)));
  be.upload(a, ones.data(), n * n * sizeof(float));
  be.upload(b, halves.data(), n * n * sizeof(float));
  be.gemm(false, false, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);  // warm-up
  double best = 1e30;
  for (int r = 0; r < 5; ++r) {
    const auto t0 = clk::now();
    be.gemm(false, false, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
    be.synchronize();
    best = std::min(best, seconds_since(t0));
  }
  for (float* p : {a, b, c}) be.free(p);
  return 2.0 * double(n) * n * n / best / 1e9;
}

MemoryPlan step_memory(const ModelConfig& c, int B, int T, bool train, const Backend& backend) {
  const uint64_t set = sat_mul(param_floats(c), sizeof(float));  // a ParamSet
  MemoryPlan p;
  p.add("weights", set).add("gradients", train ? set : 0).add("optimizer", train ? sat_mul(2, set) : 0);
  add_activations(p, Model::plan(c, B, T, train, backend));
  p.add("activations", sat_mul(sat_mul(2 * sizeof(int32_t), uint64_t(B)), uint64_t(T)));
  return p;
}

double median_step_seconds(const ModelConfig& c, int B, int T, int steps, bool train,
                           uint64_t token_seed, const std::shared_ptr<Backend>& backend) {
  Model m(c, B, T, train, backend);
  m.init_weights(1);
  std::vector<int32_t> tok(size_t(B) * T), tgt(tok.size());
  Rng r(token_seed);
  for (size_t i = 0; i < tok.size(); ++i) {
    tok[i] = int32_t(r.below(c.vocab));
    tgt[i] = int32_t(r.below(c.vocab));
  }
  ParamSet mo, ve;
  if (train) {
    mo = ParamSet(m.layout, backend);
    ve = ParamSet(m.layout, backend);
  }
  std::vector<double> t;
  for (int s = 0; s <= steps; ++s) {  // step 0 warms caches and thread pools
    const auto t0 = clk::now();
    if (train) {
      m.grads.zero();
      m.forward(tok.data(), tgt.data(), B, T, true, uint64_t(s));
      m.backward();
      clip_grad_norm(m.grads, 1.0f);
      adamw_step(m.params, m.grads, mo, ve, 1e-4f, s + 1, AdamWConfig{});
    } else {
      m.forward(tok.data(), tgt.data(), B, T);
    }
    backend->synchronize();
    if (s > 0) t.push_back(seconds_since(t0));
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

}  // namespace alibi
