// Training-step throughput of the C++ model against its PyTorch twin and against this machine's
// sgemm, all measured in the same run (the machine is shared and noisy: read the ratios).
//
//   build/bench/bench_train [--config tiny|small|all] [--steps N] [--threads N] [--no-torch]
//                           [--dtype fp32|bf16|both] [--scaling]
//
// --dtype both (the default) times every config with fp32 and with bf16 operands (MatmulPrecision,
// kernels/precision.h: every gemm and the fused attention's tile products; softmax statistics, LN,
// AdamW and the master weights stay fp32) and prints the speed-up bf16/fp32 of the same run. The
// PyTorch twin is always fp32.
// --scaling times every config and dtype on 1 thread and on --threads (all cores by default),
// alternating, and prints the speed-up next to the gemm's own speed-up as the control.
//
// tiny:  V 256 (bytes), C 256, L 4, NH 8, F 1024, T 128, B 32
// small: V 8192 (BPE),  C 512, L 8, NH 8, F 2048, T 256, B 16
// FLOPs per step = 6 * params * tokens + attention (6 * L * T * C per token: QK^T and PV, causal
// halves, forward + backward = 3x forward).
#include <omp.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "bench/bench_util.h"
#include "core/threads.h"
#include "kernels/backend.h"
#include "model/model.h"

using namespace alibi;

namespace {

struct BenchConfig {
  const char* name;
  ModelConfig model;
  int B, T;
};

double step_flops(const BenchConfig& bc, size_t n_params) {
  const double tokens = double(bc.B) * bc.T;
  return 6.0 * double(n_params) * tokens +
         6.0 * bc.model.layers * double(bc.T) * bc.model.d_model * tokens;
}

// Median seconds per full training step (forward, backward, clip, AdamW) in precision p.
double time_cpp(const BenchConfig& bc, int steps, MatmulPrecision p, size_t* n_params) {
  *n_params = 0;
  for (const TensorInfo& t : make_param_layout(bc.model).tensors) *n_params += t.numel;
  return median_step_seconds(bc.model, bc.B, bc.T, steps, /*train=*/true, 2,
                             make_backend("cpu", p));
}

double gemm_gflops(MatmulPrecision p) { return gemm_gflops(*make_backend("cpu", p)); }

// Tokens/s of the PyTorch twin (tests/ref/twin.py) at the same sizes and thread count; 0 if
// PyTorch is not available.
double time_torch(const BenchConfig& bc, int steps, int threads) {
  const ModelConfig& c = bc.model;
  const std::string cmd = std::string("python3 ") + ALIBI_SOURCE_DIR + "/tests/ref/twin.py" +
                          " --pos " + pos_name(c.pos) + " --vocab " + std::to_string(c.vocab) +
                          " --layers " + std::to_string(c.layers) + " --d-model " +
                          std::to_string(c.d_model) + " --heads " + std::to_string(c.heads) +
                          " --ffn " + std::to_string(c.ffn) + " -B " + std::to_string(bc.B) +
                          " -T " + std::to_string(bc.T) + " --iters " + std::to_string(steps) +
                          " --threads " + std::to_string(threads) + " 2>/dev/null";
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return 0;
  char line[512];
  double tps = 0;
  while (std::fgets(line, sizeof(line), p)) {
    const char* at = std::strstr(line, "ms/step, ");
    if (at) tps = std::atof(at + std::strlen("ms/step, "));
  }
  pclose(p);
  return tps;
}

// Tokens/s on 1 thread and on `threads`, per config and dtype, with the gemm's own speed-up as
// the control. Each measurement alternates the two thread counts (1, n, 1, n, ...) and keeps
// the best of each, so a change of load hits both.
int print_scaling(const std::vector<BenchConfig>& configs,
                  const std::vector<std::pair<const char*, MatmulPrecision>>& dtypes, int steps,
                  int threads) {
  constexpr int kRounds = 2;
  std::printf("training step, 1 thread vs %d (ideal %d.0x); best of %d alternating rounds\n\n",
              threads, threads, kRounds);
  std::printf("| what | dtype | 1 thread | %d threads | speed-up |\n|---|---|---:|---:|---:|\n",
              threads);
  for (const auto& [dname, prec] : dtypes) {
    double g1 = 0, gn = 0;
    for (int r = 0; r < kRounds; ++r) {
      omp_set_num_threads(1);
      g1 = std::max(g1, gemm_gflops(prec));
      omp_set_num_threads(threads);
      gn = std::max(gn, gemm_gflops(prec));
    }
    std::printf("| gemm 2048^3 GFLOP/s (control) | %s | %.1f | %.1f | %.2fx |\n", dname, g1, gn,
                gn / g1);
    for (const BenchConfig& bc : configs) {
      double s1 = 1e30, sn = 1e30;
      size_t n_params = 0;
      for (int r = 0; r < kRounds; ++r) {
        omp_set_num_threads(1);
        s1 = std::min(s1, time_cpp(bc, steps, prec, &n_params));
        omp_set_num_threads(threads);
        sn = std::min(sn, time_cpp(bc, steps, prec, &n_params));
      }
      const double tokens = double(bc.B) * bc.T;
      std::printf("| %s train tok/s | %s | %.0f | %.0f | %.2fx |\n", bc.name, dname, tokens / s1,
                  tokens / sn, s1 / sn);
      std::fflush(stdout);
    }
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  ensure_omp_wait_policy(argv);
  std::string which = "all";
  int steps = 5, threads = 0;
  bool torch = true, scaling = false;
  std::string dtype = "both";
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--config" && i + 1 < argc) which = argv[++i];
    else if (a == "--steps" && i + 1 < argc) steps = std::atoi(argv[++i]);
    else if (a == "--threads" && i + 1 < argc) threads = std::atoi(argv[++i]);
    else if (a == "--no-torch") torch = false;
    else if (a == "--dtype" && i + 1 < argc) dtype = argv[++i];
    else if (a == "--scaling") scaling = true;
    else {
      std::fprintf(stderr,
                   "usage: bench_train [--config tiny|small|all (all)] [--steps N (5)] "
                   "[--threads N (0: all cores)] [--no-torch] [--dtype fp32|bf16|both (both)] "
                   "[--scaling]\n");
      return 2;
    }
  }
  std::vector<std::pair<const char*, MatmulPrecision>> dtypes;
  if (dtype == "fp32" || dtype == "both") dtypes.push_back({"fp32", MatmulPrecision::fp32});
  if (dtype == "bf16" || dtype == "both") dtypes.push_back({"bf16", MatmulPrecision::bf16});
  if (dtypes.empty()) {
    std::fprintf(stderr, "--dtype '%s' is not one of fp32, bf16, both\n", dtype.c_str());
    return 2;
  }
  if (!cpu_has_bf16() && dtypes.back().second == MatmulPrecision::bf16) {
    std::fprintf(stderr, "this CPU has no AVX512-BF16: timing fp32 only\n");
    dtypes.pop_back();
    if (dtypes.empty()) return 2;
  }
  if (threads > 0) omp_set_num_threads(threads);
  threads = omp_get_max_threads();

  std::vector<BenchConfig> configs;
  if (which == "tiny" || which == "all")
    configs.push_back({"tiny", bench_config("tiny", "--config"), 32, 128});
  if (which == "small" || which == "all")
    configs.push_back({"small", bench_config("small", "--config"), 16, 256});

  if (scaling) return print_scaling(configs, dtypes, steps, threads);

  const double peak = gemm_gflops(MatmulPrecision::fp32);
  std::printf("threads %d; sgemm 2048^3: %.1f GFLOP/s (this run's baseline)", threads, peak);
  if (dtypes.back().second == MatmulPrecision::bf16) {
    const double bf16_peak = gemm_gflops(MatmulPrecision::bf16);
    std::printf("; bf16 gemm 2048^3: %.1f GFLOP/s (%.2fx)", bf16_peak, bf16_peak / peak);
  }
  std::printf("\n\n| config | matmuls | alibi C++ tok/s | GFLOP/s | of sgemm | bf16 / fp32 |"
              " PyTorch twin (fp32) tok/s | C++ / PyTorch |\n");
  std::printf("|---|---|---:|---:|---:|---:|---:|---:|\n");
  for (const BenchConfig& bc : configs) {
    const double ttps = torch ? time_torch(bc, steps, threads) : 0.0;
    double fp32_tps = 0;
    for (const auto& [dname, prec] : dtypes) {
      size_t n_params = 0;
      const double sec = time_cpp(bc, steps, prec, &n_params);
      const double tps = double(bc.B) * bc.T / sec;
      const double gf = step_flops(bc, n_params) / sec / 1e9;
      if (prec == MatmulPrecision::fp32) fp32_tps = tps;
      char speedup[32] = "-";
      if (prec == MatmulPrecision::bf16 && fp32_tps > 0)
        std::snprintf(speedup, sizeof(speedup), "%.2fx", tps / fp32_tps);
      std::printf("| %s (%.1fM params) | %s | %.0f | %.1f | %.0f%% | %s | %s | %s |\n", bc.name,
                  double(n_params) / 1e6, dname, tps, gf, 100.0 * gf / peak, speedup,
                  ttps > 0 ? std::to_string(int(ttps)).c_str() : "n/a",
                  ttps > 0 ? (std::to_string(tps / ttps).substr(0, 4) + "x").c_str() : "n/a");
      std::fflush(stdout);
    }
  }
  return 0;
}
