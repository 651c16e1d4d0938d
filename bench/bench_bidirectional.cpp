// Bidirectional against causal attention in the fused kernel: GFLOP/s per useful FLOP, forward
// and forward+backward, fp32 (and bf16 where the CPU has AVX512-BF16), ALiBi bias, B=1, NH=8,
// HS=64, on all threads. Useful FLOPs: forward 4*T^2*HS per head for bidirectional (QK^T and PV
// over the full square) and half that for causal; backward twice the forward. The two are timed
// in alternation, --rounds times, best call of each round, so load on the shared machine hits
// both alike; the table gives each round's ratio and their median.
//
//   bench_bidirectional [--rounds 5] [T ...]     (default T = 1024 2048)
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <vector>

#include "bench/bench_util.h"
#include "core/rng.h"
#include "core/threads.h"
#include "kernels/attention.h"
#include "kernels/cpu/attention_cpu.h"
#include "kernels/precision.h"
#include "position/position.h"

using namespace alibi;

namespace {

constexpr int B = 1, NH = 8, HS = 64;

double median(std::vector<double> x) {
  std::sort(x.begin(), x.end());
  return x[x.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  ensure_omp_wait_policy(argv);
  int rounds = 5;
  std::vector<int> Ts;
  for (int a = 1; a < argc; ++a) {
    if (std::strcmp(argv[a], "--rounds") == 0 && a + 1 < argc) rounds = std::atoi(argv[++a]);
    else if (std::atoi(argv[a]) > 0) Ts.push_back(std::atoi(argv[a]));
    else {
      std::fprintf(stderr, "usage: bench_bidirectional [--rounds N] [T ...]\n");
      return 2;
    }
  }
  if (Ts.empty()) Ts = {1024, 2048};
  const int threads = omp_get_max_threads();
  const std::vector<float> slopes = alibi_slopes(NH);  // the paper's
  const ScoreBias bias = ScoreBias::alibi(slopes.data());
  const AttnDropout drop;
  std::vector<MatmulPrecision> precisions = {MatmulPrecision::fp32};
  if (cpu_has_bf16()) precisions.push_back(MatmulPrecision::bf16);

  std::printf("fused attention, alibi, B=%d NH=%d HS=%d, %d threads: bidirectional vs causal, "
              "GFLOP/s per useful FLOP (bidirectional does twice the causal work)\n\n",
              B, NH, HS, threads);
  std::printf("| T | operands | causal f+b GFLOP/s | bidirectional f+b GFLOP/s | ratio per round |"
              " median ratio f+b | median ratio fwd |\n|---:|---|---:|---:|---|---:|---:|\n");
  for (const int T : Ts)
    for (const MatmulPrecision p : precisions) {
      AttnShape s;
      s.B = B, s.NH = NH, s.Tq = T, s.Tk = T, s.HS = HS, s.precision = p;
      const size_t n = size_t(B) * NH * T * HS;
      std::vector<float> q(n), k(n), v(n), dout(n), out(n), lse(size_t(B) * NH * T);
      std::vector<float> dq(n), dk(n), dv(n);
      Rng rng(1234);
      for (auto* x : {&q, &k, &v, &dout})
        for (float& e : *x) e = rng.normal();
      AttnShape sb = s;
      sb.causal = false;
      std::vector<float> buf(std::max(cpu::attention_workspace_floats(s, threads),
                                      cpu::attention_workspace_floats(sb, threads)));
      const AttnWorkspace ws{buf.data(), buf.size(), threads};
      // Seconds of the forward and of forward+backward for shape x, best of repeated calls.
      auto time = [&](const AttnShape& x, double& fwd_s) {
        auto fwd = [&] {
          cpu::attention_forward(x, q.data(), k.data(), v.data(), bias, drop, out.data(),
                                 lse.data(), ws);
        };
        auto fb = [&] {
          fwd();
          cpu::attention_backward(x, q.data(), k.data(), v.data(), out.data(), lse.data(),
                                  dout.data(), bias, drop, dq.data(), dk.data(), dv.data(),
                                  nullptr, ws);
        };
        fwd_s = best_call_seconds(fwd, 0.5);
        return best_call_seconds(fb, 1.0);
      };
      const double causal_flops = 3.0 * 2.0 * double(T) * T * HS * NH * B;
      std::vector<double> ratio_fb, ratio_fwd;
      double best_c = 1e30, best_b = 1e30;
      for (int r = 0; r < rounds; ++r) {
        double fc = 0, fb2 = 0;
        const double c = time(s, fc), b = time(sb, fb2);
        best_c = std::min(best_c, c);
        best_b = std::min(best_b, b);
        ratio_fb.push_back((2.0 * causal_flops / b) / (causal_flops / c));
        ratio_fwd.push_back((2.0 / fb2) / (1.0 / fc));
      }
      std::printf("| %d | %s | %.1f | %.1f |", T, precision_name(p), causal_flops / best_c / 1e9,
                  2.0 * causal_flops / best_b / 1e9);
      for (double x : ratio_fb) std::printf(" %.3f", x);
      std::printf(" | %.3f | %.3f |\n", median(ratio_fb), median(ratio_fwd));
      std::fflush(stdout);
    }
  return 0;
}
