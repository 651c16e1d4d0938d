// Fused vs naive causal attention, forward and forward+backward, alibi bias, B=1, NH=8, HS=64.
// Prints GFLOP/s of each and the ratio fused/naive measured in the same run.
//
//   bench_attention            T = 256, 1024, 2048 (under a minute on 2 cores)
//   bench_attention 512 4096   any list of T
//
// FLOPs count only the matrix products over the visible (causal) score entries: forward
// 2 products (QK^T, PV) = 4*HS per entry, backward 5 (QK^T, dO V^T, P^T dO, dS K, dS^T Q)
// = 10*HS per entry. The naive reference runs on one thread (it is a plain double loop nest);
// the fused kernel is timed on all OpenMP threads and on one, so both ratios are shown.
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <vector>

#include "core/rng.h"
#include "kernels/attention.h"

using namespace alibi;

namespace {

constexpr double kMinSeconds = 1.0;  // repeat a fused measurement until it has run this long

// Seconds per call: best of repeated calls until kMinSeconds have passed (at least one call).
double time_call(const std::function<void()>& fn, double min_seconds) {
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

}  // namespace

int main(int argc, char** argv) {
  std::vector<int> Ts;
  for (int a = 1; a < argc; ++a) Ts.push_back(std::atoi(argv[a]));
  if (Ts.empty()) Ts = {256, 1024, 2048};
  const int B = 1, NH = 8, HS = 64;
  const int threads = omp_get_max_threads();

  std::vector<float> slopes(NH);
  for (int h = 0; h < NH; ++h) slopes[h] = std::pow(2.0f, -8.0f * float(h + 1) / float(NH));
  ScoreBias bias;
  bias.kind = BiasKind::alibi;
  bias.slopes = slopes.data();
  const AttnDropout drop;  // p = 0

  std::printf("causal attention, alibi bias, B=%d NH=%d HS=%d; naive always on 1 thread\n", B, NH,
              HS);
  std::printf("%6s %8s | %10s %10s | %10s %10s | %11s %11s\n", "T", "fused on", "fused fwd",
              "fused f+b", "naive fwd", "naive f+b", "fwd", "f+b");
  std::printf("%6s %8s | %10s %10s | %10s %10s | %11s %11s\n", "", "threads", "GFLOP/s", "GFLOP/s",
              "GFLOP/s", "GFLOP/s", "fused/naive", "fused/naive");
  for (const int T : Ts) {
    AttnShape s;
    s.B = B, s.NH = NH, s.Tq = T, s.Tk = T, s.HS = HS;
    const size_t n = size_t(B) * NH * T * HS;
    std::vector<float> q(n), k(n), v(n), dout(n), out(n), lse(size_t(B) * NH * T);
    std::vector<float> dq(n), dk(n), dv(n);
    Rng rng(1234);
    for (auto* x : {&q, &k, &v, &dout})
      for (float& e : *x) e = rng.normal();
    std::vector<float> ws(attention_workspace_floats(s, threads));

    const double entries = double(B) * NH * double(T) * (T + 1) / 2.0;
    const double fwd_flops = 4.0 * HS * entries, bwd_flops = 10.0 * HS * entries;

    auto fwd = [&] {
      attention_forward(s, q.data(), k.data(), v.data(), bias, drop, out.data(), lse.data(),
                        ws.data());
    };
    auto bwd = [&] {
      attention_backward(s, q.data(), k.data(), v.data(), out.data(), lse.data(), dout.data(),
                         bias, drop, dq.data(), dk.data(), dv.data(), nullptr, ws.data());
    };
    fwd();
    const double tf = time_call(fwd, kMinSeconds);
    const double tb = time_call(bwd, kMinSeconds);
    omp_set_num_threads(1);
    const double tf1 = time_call(fwd, kMinSeconds);
    const double tb1 = time_call(bwd, kMinSeconds);
    omp_set_num_threads(threads);

    const double tnf = time_call(
        [&] {
          attention_forward_naive(s, q.data(), k.data(), v.data(), bias, drop, out.data(),
                                  lse.data());
        },
        0.0);
    const double tnb = time_call(
        [&] {
          attention_backward_naive(s, q.data(), k.data(), v.data(), out.data(), lse.data(),
                                   dout.data(), bias, drop, dq.data(), dk.data(), dv.data(),
                                   nullptr);
        },
        0.0);

    const double g = 1e-9, fb = fwd_flops + bwd_flops;
    const double rows[2][3] = {{double(threads), tf, tb}, {1.0, tf1, tb1}};
    for (const auto& r : rows)
      std::printf("%6d %8.0f | %10.1f %10.1f | %10.2f %10.2f | %10.1fx %10.1fx\n", T, r[0],
                  g * fwd_flops / r[1], g * fb / (r[1] + r[2]), g * fwd_flops / tnf,
                  g * fb / (tnf + tnb), tnf / r[1], (tnf + tnb) / (r[1] + r[2]));
    std::fflush(stdout);
  }
  return 0;
}
