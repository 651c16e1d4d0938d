// The fused ALiBi attention of any backend, through the Backend interface only (so it times the
// CUDA kernels on a GPU): causal, B=1, forward and forward+backward, for each T and head size,
// against the same backend's 2048^3 gemm in its precision from the same run.
//
//   bench_device_attention --device cuda --dtype bf16 [--heads 16] [--hs 64,128]
//                          [--lengths 1024,2048,4096,8192,16384] [--seconds 1]
//
// Prints one line per cell, "attn device D dtype P T t HS h fwd_ms f fb_ms b fwd_tflops x
// fb_tflops y", then "gemm device D dtype P tflops z". FLOPs count the useful causal products
// only: forward 2*T^2*HS per head (QK^T and PV over the lower triangle), forward+backward 3.5x
// that (the backend's recomputed S included, as FlashAttention-2 counts it).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "bench/bench_util.h"
#include "core/error.h"
#include "core/rng.h"
#include "kernels/backend.h"

namespace alibi {
namespace {

std::vector<int> ints(const std::string& s) {
  std::vector<int> v;
  for (size_t at = 0; at <= s.size();) {
    const size_t comma = std::min(s.find(',', at), s.size());
    v.push_back(std::atoi(s.substr(at, comma - at).c_str()));
    at = comma + 1;
  }
  return v;
}

float* device_random(Backend& be, size_t n, uint64_t seed) {
  std::vector<float> h(n);
  Rng r(seed);
  for (float& x : h) x = r.normal();
  float* d = static_cast<float*>(be.alloc(n * sizeof(float)));
  be.upload(d, h.data(), n * sizeof(float));
  return d;
}

int run(int argc, char** argv) {
  std::string device = "cpu", dtype = "fp32", hs_list = "64,128",
              lengths = "1024,2048,4096,8192,16384";
  int heads = 16;
  double seconds = 1.0;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string f = argv[i], v = argv[i + 1];
    if (f == "--device") device = v;
    else if (f == "--dtype") dtype = v;
    else if (f == "--heads") heads = std::atoi(v.c_str());
    else if (f == "--hs") hs_list = v;
    else if (f == "--lengths") lengths = v;
    else if (f == "--seconds") seconds = std::atof(v.c_str());
    else usage_error("unknown flag '", f, "'");
  }
  const std::shared_ptr<Backend> be = make_backend(device, parse_precision(dtype));
  std::vector<float> slopes(static_cast<size_t>(heads));
  for (int h = 0; h < heads; ++h) slopes[size_t(h)] = std::exp2(-8.0f * float(h + 1) / heads);
  float* dslopes = static_cast<float*>(be->alloc(slopes.size() * sizeof(float)));
  be->upload(dslopes, slopes.data(), slopes.size() * sizeof(float));
  const ScoreBias bias = ScoreBias::alibi(dslopes);
  for (int HS : ints(hs_list))
    for (int T : ints(lengths)) {
      AttnShape s;
      s.B = 1, s.NH = heads, s.Tq = T, s.Tk = T, s.HS = HS, s.precision = be->precision();
      const size_t n = size_t(heads) * T * HS;
      float *q = device_random(*be, n, 1), *k = device_random(*be, n, 2),
            *v = device_random(*be, n, 3), *dout = device_random(*be, n, 4);
      float* out = static_cast<float*>(be->alloc(n * sizeof(float)));
      float* lse = static_cast<float*>(be->alloc(size_t(heads) * T * sizeof(float)));
      float* grads = static_cast<float*>(be->alloc(3 * n * sizeof(float)));
      AttnWorkspace ws = be->plan_attention(s);
      ws.data = static_cast<float*>(be->alloc(ws.floats * sizeof(float)));
      const AttnDropout none;
      const Shape qs{1, heads, T, HS}, ls{1, heads, T};
      const AttentionForward f{s, {q, qs}, {k, qs}, {v, qs}, bias, none, {out, qs}, {lse, ls}, ws};
      const AttentionBackward b{s,           {q, qs},     {k, qs},         {v, qs},
                                {out, qs},   {lse, ls},   {dout, qs},      bias,
                                none,        {grads, qs}, {grads + n, qs}, {grads + 2 * n, qs},
                                {},          ws};
      auto fwd = [&] {
        be->run(f);
        be->synchronize();
      };
      auto fb = [&] {
        be->run(f);
        be->run(b);
        be->synchronize();
      };
      const double tf = best_call_seconds(fwd, seconds), tb = best_call_seconds(fb, seconds);
      const double flops = 2.0 * double(T) * T * HS * heads;
      std::printf("attn device %s dtype %s T %d HS %d fwd_ms %.3f fb_ms %.3f fwd_tflops %.2f "
                  "fb_tflops %.2f\n",
                  device.c_str(), dtype.c_str(), T, HS, tf * 1e3, tb * 1e3, flops / tf / 1e12,
                  3.5 * flops / tb / 1e12);
      std::fflush(stdout);
      for (float* p : {q, k, v, dout, out, lse, grads, ws.data}) be->free(p);
    }
  std::printf("gemm device %s dtype %s tflops %.2f\n", device.c_str(), dtype.c_str(),
              gemm_gflops(*be) / 1e3);
  be->free(dslopes);
  return 0;
}

}  // namespace
}  // namespace alibi

int main(int argc, char** argv) {
  try {
    return alibi::run(argc, argv);
  } catch (const alibi::UsageError& e) {
    std::fprintf(stderr, "bench_device_attention: error: %s\n", e.what());
    return 2;
  }
}
