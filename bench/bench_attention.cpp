// Causal attention with an ALiBi bias, B=1, NH=8, HS=64: the fused kernel against three
// baselines measured in the same run (the machine is shared and noisy: read the ratios). For
// each T the sgemm baseline, the fused kernel and SDPA are measured back to back, so a change of
// load on the machine shifts all three together:
//   - this machine's sgemm (2048^3 through alibi::gemm, best of a few) at the same thread count:
//     fused forward+backward GFLOP/s as a percentage of it;
//   - PyTorch's scaled_dot_product_attention with the ALiBi bias materialised as an (NH,T,T)
//     attn_mask with the causal -inf folded in (bench/sdpa_bench.py, run from this process with
//     the same sizes and thread counts), forward and forward+backward; plus, for context only,
//     SDPA with is_causal=True and no bias (not ALiBi: what torch does when it may skip blocks);
//   - the naive reference (ref::attention_forward_naive / _backward_naive), on one thread.
// With AVX512-BF16 it also times the fused kernel with bf16 operands (AttnShape::precision; bias,
// softmax statistics and outputs fp32) against the fp32 kernel of the same run, with oneDNN's
// bf16 2048^3 gemm over sgemm as the control. And it prints the 2-thread / 1-thread scaling of
// the fused kernel, fp32 and bf16, with sgemm's own scaling as the control.
//
//   bench_attention                     T = 1024, 2048 (a few minutes on 2 cores)
//   bench_attention [--no-torch] [--no-naive] 256 4096    any list of T
//
// FLOPs count only the useful matrix products, halved for causal: forward 4*T^2*HS per head
// (QK^T and PV), backward twice that (dV, dP, dQ, dK); so forward+backward = 3 x forward. The
// fused backward also recomputes S = QK^T (one more product: it executes 2.5x the forward's
// FLOPs, not 2x); that work is not counted. SDPA with a dense mask computes the full T x T
// square, twice the causal work, and is counted with the same causal FLOPs (the useful work).
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "bench/bench_util.h"
#include "core/rng.h"
#include "core/threads.h"
#include "kernels/attention.h"
#include "kernels/cpu/attention_cpu.h"
#include "kernels/backend.h"
#include "kernels/reference/attention_ref.h"

using namespace alibi;

namespace {

constexpr double kMinSeconds = 1.0;  // repeat a measurement until it has run this long
constexpr int B = 1, NH = 8, HS = 64;

struct SdpaTimes {
  double fwd = 0, fb = 0;  // seconds; 0 if not measured
};
// key: (variant, T, threads); variant "sdpa" (ALiBi mask) or "sdpa_causal" (no bias).
using SdpaTable = std::map<std::tuple<std::string, int, int>, SdpaTimes>;

// Runs bench/sdpa_bench.py once for every T and thread count; empty if PyTorch is missing.
SdpaTable run_sdpa(const std::vector<int>& Ts, const std::vector<int>& threads) {
  std::string cmd = std::string("python3 ") + ALIBI_SOURCE_DIR + "/bench/sdpa_bench.py --T";
  for (int T : Ts) cmd += " " + std::to_string(T);
  cmd += " --threads";
  for (int n : threads) cmd += " " + std::to_string(n);
  cmd += " --heads " + std::to_string(NH) + " --head-size " + std::to_string(HS) +
         " --min-seconds " + std::to_string(kMinSeconds) + " --causal-reference";
  SdpaTable table;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return table;
  char line[512], name[32];
  while (std::fgets(line, sizeof(line), p)) {
    int T = 0, n = 0;
    double f = 0, fb = 0;
    if (std::sscanf(line, "%31s T %d threads %d fwd_s %lf fb_s %lf", name, &T, &n, &f, &fb) == 5)
      table[{name, T, n}] = {f, fb};
  }
  if (pclose(p) != 0) std::fprintf(stderr, "warning: '%s' failed\n", cmd.c_str());
  return table;
}

struct FusedTimes {
  double fwd = 0, bwd = 0;
};

}  // namespace

int main(int argc, char** argv) {
  ensure_omp_wait_policy(argv);
  bool torch = true, naive = true;
  std::vector<int> Ts;
  for (int a = 1; a < argc; ++a) {
    if (std::strcmp(argv[a], "--no-torch") == 0) torch = false;
    else if (std::strcmp(argv[a], "--no-naive") == 0) naive = false;
    else if (std::atoi(argv[a]) > 0) Ts.push_back(std::atoi(argv[a]));
    else {
      std::fprintf(stderr, "usage: bench_attention [--no-torch] [--no-naive] [T ...]\n");
      return 2;
    }
  }
  if (Ts.empty()) Ts = {1024, 2048};
  const int threads = omp_get_max_threads();
  std::vector<int> thread_counts = {threads};
  if (threads > 1) thread_counts.push_back(1);

  std::vector<float> slopes(NH);
  for (int h = 0; h < NH; ++h) slopes[h] = std::pow(2.0f, -8.0f * float(h + 1) / float(NH));
  ScoreBias bias;
  bias.kind = BiasKind::alibi;
  bias.slopes = slopes.data();
  const AttnDropout drop;  // p = 0

  const bool bf16 = cpu_has_bf16();
  if (!bf16) std::fprintf(stderr, "this CPU has no AVX512-BF16: timing fp32 only\n");
  std::map<int, std::map<int, double>> sgemm, bgemm;        // [T][threads] GFLOP/s
  std::map<int, std::map<int, FusedTimes>> fused, fused16;  // [T][threads]
  std::map<int, FusedTimes> naive_t;
  SdpaTable sdpa;
  for (const int T : Ts) {
    for (int n : thread_counts) {
      omp_set_num_threads(n);
      sgemm[T][n] = gemm_gflops(*make_backend("cpu", MatmulPrecision::fp32));
      if (bf16) bgemm[T][n] = gemm_gflops(*make_backend("cpu", MatmulPrecision::bf16));
    }
    omp_set_num_threads(threads);
    AttnShape s;
    s.B = B, s.NH = NH, s.Tq = T, s.Tk = T, s.HS = HS;
    const size_t n = size_t(B) * NH * T * HS;
    std::vector<float> q(n), k(n), v(n), dout(n), out(n), lse(size_t(B) * NH * T);
    std::vector<float> dq(n), dk(n), dv(n);
    Rng rng(1234);
    for (auto* x : {&q, &k, &v, &dout})
      for (float& e : *x) e = rng.normal();
    AttnShape s16 = s;
    s16.precision = MatmulPrecision::bf16;
    std::vector<float> buf(std::max(cpu::attention_workspace_floats(s, threads),
                                    bf16 ? cpu::attention_workspace_floats(s16, threads) : 0));
    const AttnWorkspace ws{buf.data(), buf.size(), threads};  // also serves fewer threads
    auto fwd = [&] {
      cpu::attention_forward(s, q.data(), k.data(), v.data(), bias, drop, out.data(), lse.data(),
                             ws);
    };
    auto bwd = [&] {
      cpu::attention_backward(s, q.data(), k.data(), v.data(), out.data(), lse.data(),
                              dout.data(), bias, drop, dq.data(), dk.data(), dv.data(), nullptr,
                              ws);
    };
    auto time_fused = [&](MatmulPrecision p) {
      s.precision = p;
      fwd();
      const double tf = best_call_seconds(fwd, kMinSeconds);
      fwd();  // the backward reads this forward's out and lse
      const FusedTimes t{tf, best_call_seconds(bwd, kMinSeconds)};
      s.precision = MatmulPrecision::fp32;
      return t;
    };
    for (int nt : thread_counts) {
      omp_set_num_threads(nt);
      fused[T][nt] = time_fused(MatmulPrecision::fp32);
      if (bf16) fused16[T][nt] = time_fused(MatmulPrecision::bf16);
    }
    omp_set_num_threads(threads);
    if (torch) sdpa.merge(run_sdpa({T}, thread_counts));
    if (naive) {
      naive_t[T].fwd = best_call_seconds(
          [&] {
            ref::attention_forward_naive(s, q.data(), k.data(), v.data(), bias, drop,
                                         out.data(), lse.data());
          },
          0.0);
      naive_t[T].bwd = best_call_seconds(
          [&] {
            ref::attention_backward_naive(s, q.data(), k.data(), v.data(), out.data(),
                                          lse.data(), dout.data(), bias, drop, dq.data(),
                                          dk.data(), dv.data(), nullptr);
          },
          0.0);
    }
  }
  std::printf("causal attention, alibi bias, B=%d NH=%d HS=%d, fp32\n", B, NH, HS);
  std::printf("GFLOP/s: useful causal FLOPs (fwd 2*T^2*HS per head, bwd 2x fwd) / seconds; sgemm:"
              " 2048^3 alibi::gemm, best of 5, measured just before the fused kernel\n\n");
  std::printf("| T | threads | sgemm | fused fwd | fused f+b | f+b of sgemm | SDPA+mask fwd |"
              " SDPA+mask f+b | fused/SDPA fwd | fused/SDPA f+b | SDPA causal, no bias, f+b |\n");
  std::printf("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
  const double g = 1e-9;
  for (const int T : Ts) {
    const double fwd_flops = 2.0 * double(T) * T * HS * NH * B, fb_flops = 3.0 * fwd_flops;
    for (int nt : thread_counts) {
      const FusedTimes& f = fused[T][nt];
      const double ff = g * fwd_flops / f.fwd, ffb = g * fb_flops / (f.fwd + f.bwd);
      const double sg = sgemm[T][nt];
      std::printf("| %d | %d | %.1f | %.1f | %.1f | %.0f%% |", T, nt, sg, ff, ffb,
                  100.0 * ffb / sg);
      const auto it = sdpa.find({"sdpa", T, nt});
      if (it != sdpa.end())
        std::printf(" %.1f | %.1f | %.2fx | %.2fx |", g * fwd_flops / it->second.fwd,
                    g * fb_flops / it->second.fb, it->second.fwd / f.fwd,
                    it->second.fb / (f.fwd + f.bwd));
      else
        std::printf(" n/a | n/a | n/a | n/a |");
      const auto ic = sdpa.find({"sdpa_causal", T, nt});
      if (ic != sdpa.end())
        std::printf(" %.1f |\n", g * fb_flops / ic->second.fb);
      else
        std::printf(" n/a |\n");
    }
  }
  if (bf16) {
    std::printf("\nbf16 operands (fp32 bias, softmax statistics, accumulation and outputs) vs the"
                " fp32 kernel, same run; control: bf16 gemm / sgemm at 2048^3:\n\n");
    std::printf("| T | threads | fp32 f+b GFLOP/s | bf16 fwd | bf16 f+b | bf16/fp32 fwd |"
                " bf16/fp32 f+b | bf16 gemm / sgemm (control) |\n");
    std::printf("|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for (const int T : Ts) {
      const double fwd_flops = 2.0 * double(T) * T * HS * NH * B, fb_flops = 3.0 * fwd_flops;
      for (int nt : thread_counts) {
        const FusedTimes &f = fused[T][nt], &h = fused16[T][nt];
        std::printf("| %d | %d | %.1f | %.1f | %.1f | %.2fx | %.2fx | %.2fx |\n", T, nt,
                    g * fb_flops / (f.fwd + f.bwd), g * fwd_flops / h.fwd,
                    g * fb_flops / (h.fwd + h.bwd), f.fwd / h.fwd,
                    (f.fwd + f.bwd) / (h.fwd + h.bwd), bgemm[T][nt] / sgemm[T][nt]);
      }
    }
  }
  if (thread_counts.size() > 1) {
    std::printf("\nfused kernel, %d threads vs 1 (speed-up; ideal %d.0x), with the gemm of the same"
                " precision as the control:\n\n", threads, threads);
    std::printf("| T | fp32 fwd | fp32 f+b | sgemm (control) |%s\n",
                bf16 ? " bf16 fwd | bf16 f+b | bf16 gemm (control) |" : "");
    std::printf("|---:|---:|---:|---:|%s\n", bf16 ? "---:|---:|---:|" : "");
    for (const int T : Ts) {
      const FusedTimes &a = fused[T][threads], &o = fused[T][1];
      std::printf("| %d | %.2fx | %.2fx | %.2fx |", T, o.fwd / a.fwd,
                  (o.fwd + o.bwd) / (a.fwd + a.bwd), sgemm[T][threads] / sgemm[T][1]);
      if (bf16) {
        const FusedTimes &a16 = fused16[T][threads], &o16 = fused16[T][1];
        std::printf(" %.2fx | %.2fx | %.2fx |", o16.fwd / a16.fwd,
                    (o16.fwd + o16.bwd) / (a16.fwd + a16.bwd), bgemm[T][threads] / bgemm[T][1]);
      }
      std::printf("\n");
    }
  }
  if (naive) {
    std::printf("\nnaive reference (1 thread, double accumulation) vs fused on %d threads:\n\n",
                threads);
    std::printf("| T | naive f+b GFLOP/s | fused/naive f+b |\n|---:|---:|---:|\n");
    for (const int T : Ts) {
      const double fb_flops = 6.0 * double(T) * T * HS * NH * B;
      const FusedTimes &n = naive_t[T], &f = fused[T][threads];
      std::printf("| %d | %.2f | %.0fx |\n", T, g * fb_flops / (n.fwd + n.bwd),
                  (n.fwd + n.bwd) / (f.fwd + f.bwd));
    }
  }
  return 0;
}
