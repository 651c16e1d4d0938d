// The CUDA backend on whole models, against itself and the CPU backend: cached decoding on the
// device equals the device's full forward and the CPU's, and 50 training steps on the device
// follow the CPU's loss curve. Op by op, the harness (test_backend_*.cpp) runs every op on
// cuda_fp32 and cuda_bf16 against the CPU. Without a GPU (or in a build without CUDA) every
// test here is reported as skipped, by name.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli.h"
#include "core/error.h"
#include "kernels/backend.h"
#include "model/model.h"
#include "model_util.h"
#include "positions.h"

namespace alibi {
namespace {

// The CUDA backend, or a skip naming why there is none.
#define CUDA_BACKEND_OR_SKIP(var)                                \
  std::shared_ptr<Backend> var;                                  \
  try {                                                          \
    var = make_backend("cuda", MatmulPrecision::fp32);           \
  } catch (const UsageError& e) {                                \
    GTEST_SKIP() << e.what();                                    \
  }

// Per-logit tolerance relative to the largest |logit|: the cache's (test_cache.cpp) for decoding
// against the full forward on one device; across devices the products and reductions sum in
// other orders, ~1e-6 per layer here.
constexpr float kAcrossDevicesTol = 1e-4f;

class CudaModel : public ::testing::TestWithParam<PosKind> {};

TEST_P(CudaModel, CachedDecodingEqualsTheFullForwardAndTheCpu) {
  CUDA_BACKEND_OR_SKIP(gpu);
  ModelConfig c = test::small_model(GetParam());
  c.max_positions = 64;
  const int T = 48, prompt = 5, V = c.vocab;
  Model cpu(c, 1, T, false);
  test::randomise(cpu, 5);
  Model full(c, 1, T, false, gpu), dec(c, 1, T, false, gpu);
  const std::vector<float> w = cpu.params.to_host();
  full.params.from_host(w);
  dec.params.from_host(w);
  const auto tok = test::random_tokens(T, V, 9);
  cpu.forward(tok.data(), nullptr, 1, T);
  const std::vector<float> want(cpu.logits(), cpu.logits() + size_t(T) * V);
  full.forward(tok.data(), nullptr, 1, T);
  const std::vector<float> got(full.logits(), full.logits() + size_t(T) * V);
  const float scale = std::max(1.0f, test::max_abs(want.data(), want.size()));
  for (size_t i = 0; i < got.size(); ++i)
    ASSERT_NEAR(got[i], want[i], kAcrossDevicesTol * scale) << "full forward, logit " << i;

  KVCache kv = dec.make_cache(T, false);
  const float* lg = dec.forward_cached(tok.data(), prompt, kv);
  for (int t = 0; t < T; ++t) {
    if (t >= prompt) lg = dec.forward_cached(&tok[t], 1, kv);
    const float* row = t < prompt ? lg + size_t(t) * V : lg;
    for (int v = 0; v < V; ++v)
      ASSERT_NEAR(row[v], got[size_t(t) * V + v], test::kCacheRelTol * scale) << "position " << t;
  }
}

INSTANTIATE_TEST_SUITE_P(AllMethods, CudaModel, ::testing::ValuesIn(all_positions()),
                         test::pos_param_name);

// The training loss of each of 50 steps, from log.jsonl.
std::vector<double> losses(const std::string& run) {
  std::ifstream f(run + "/log.jsonl");
  std::vector<double> out;
  for (std::string line; std::getline(f, line);) out.push_back(nlohmann::json::parse(line)["loss"]);
  return out;
}

// The same run on both devices: fp32, no dropout, same seed, so the curves differ only by the
// summation orders of the products and reductions. After 50 AdamW steps at lr 3e-3 those
// differences stay below 1% of the loss (a wrong gradient anywhere moves it by far more).
TEST(CudaTraining, FiftyStepsFollowTheCpuLossCurve) {
  CUDA_BACKEND_OR_SKIP(gpu);
  test::TempDir dir("cuda_train");
  test::prepare_bundled(dir);
  const std::string flags = " --layers 2 --d-model 32 --heads 4 --ffn 64 --seq-len 32 --batch 4"
                            " --warmup 5 --lr 3e-3 --steps 50 --log-every 1 --eval-every 0"
                            " --seed 5 --pos alibi --dropout 0 --data " + (dir / "data");
  for (const std::string device : {"cpu", "cuda"}) {
    const test::CliResult r =
        test::run_cli("train" + flags + " --device " + device + " --out " + (dir / device),
                      dir / ("err-" + device));
    ASSERT_EQ(r.code, 0) << r.err;
  }
  const std::vector<double> cpu = losses(dir / "cpu"), cuda = losses(dir / "cuda");
  ASSERT_EQ(cpu.size(), 50u);
  ASSERT_EQ(cuda.size(), cpu.size());
  for (size_t s = 0; s < cpu.size(); ++s)
    EXPECT_NEAR(cuda[s], cpu[s], 1e-2 * cpu[s]) << "step " << s + 1;
}

}  // namespace
}  // namespace alibi
