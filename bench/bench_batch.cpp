// Products of a batch of N rows with stored weights (the steps of continuous batching, prompt
// chunks), f32 among them, against the fp32 sgemm of the same rows with the same matrix widened to
// fp32, which reads twice (f16) to four times (Q4_0) the bytes. Per N and type: rows/s of each,
// alternating over rounds (best of each), and their ratio.
//
//   build/bench/bench_batch [--rows 4096] [--cols 1024] [--n 1,4,8,16,64,256,512] [--rounds 3]
//                           [--types f32,f16,q8_0,q8_0-int8,q4_0-int8,q4_k-int8,q6_k-int8]
//                           (OMP_NUM_THREADS; --cols a multiple of 256 for the K types)
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <sstream>
#include <string>
#include <vector>

#include "core/half.h"
#include "core/rng.h"
#include "kernels/backend.h"
#include "kernels/quant.h"

using namespace alibi;

int main(int argc, char** argv) {
  int64_t rows = 4096, cols = 1024;
  int rounds = 3;
  std::string ns = "1,4,8,16,64,256,512", types = "f16,q8_0,q8_0-int8,q4_0-int8";
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--rows")) rows = std::atoll(argv[i + 1]);
    if (!std::strcmp(argv[i], "--cols")) cols = std::atoll(argv[i + 1]);
    if (!std::strcmp(argv[i], "--n")) ns = argv[i + 1];
    if (!std::strcmp(argv[i], "--rounds")) rounds = std::atoi(argv[i + 1]);
    if (!std::strcmp(argv[i], "--types")) types = argv[i + 1];
  }
  std::vector<int64_t> batch;
  std::stringstream ss(ns);
  for (std::string t; std::getline(ss, t, ',');) batch.push_back(std::atoll(t.c_str()));
  const int64_t maxN = *std::max_element(batch.begin(), batch.end());

  Rng rng(1);
  std::vector<float> wf(size_t(rows * cols)), x(size_t(maxN * cols)), out(size_t(maxN * rows));
  for (float& v : wf) v = 0.05f * rng.normal();
  for (float& v : x) v = rng.normal();
  std::vector<uint16_t> wh(wf.size());
  for (size_t i = 0; i < wf.size(); ++i) wh[i] = float_to_f16(wf[i]);
  auto blocks = [&](WeightType t) {
    std::vector<uint8_t> b(weight_row_bytes(t, cols) * size_t(rows));
    quantize(b.data(), wf.data(), t, rows * cols);
    return b;
  };
  const bool k_types = cols % 256 == 0;
  const std::vector<uint8_t> q8 = blocks(WeightType::q8_0), q4 = blocks(WeightType::q4_0),
                             q4k = k_types ? blocks(WeightType::q4_k) : std::vector<uint8_t>{},
                             q6k = k_types ? blocks(WeightType::q6_k) : std::vector<uint8_t>{};

  const auto fp32_be = make_backend("cpu", MatmulPrecision::fp32),
             int8_be = make_backend("cpu", MatmulPrecision::int8);
  // sgemm: the baseline, oneDNN's sgemm on wf, whatever kernel linear layers pick for fp32.
  auto rate = [&](WeightView w, int64_t N, MatmulPrecision p, bool sgemm = false) {
    Backend* be = p == MatmulPrecision::int8 ? int8_be.get() : fp32_be.get();
    const LinearForward op{mat(out.data(), N, rows), mat(x.data(), N, cols), mat(w, rows, cols),
                           {}};
    auto once = [&] {
      if (sgemm)
        be->gemm(false, true, N, rows, cols, 1.0f, x.data(), cols, wf.data(), cols, 0.0f,
                 out.data(), rows);
      else
        be->run(op);
    };
    once();  // warm: scratch grown, pages touched
    const int reps = std::max<int64_t>(2, 256 / N);
    const auto t0 = std::chrono::steady_clock::now();
    for (int k = 0; k < reps; ++k) once();
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return double(N) * reps / s;
  };
  struct Kind {
    const char* name;
    WeightView w;
    MatmulPrecision p;
  };
  const Kind kinds[] = {
      {"f32", WeightView(wf.data()), MatmulPrecision::fp32},
      {"f16", WeightView(wh.data(), WeightType::f16), MatmulPrecision::fp32},
      {"q8_0", WeightView(q8.data(), WeightType::q8_0), MatmulPrecision::fp32},
      {"q8_0-int8", WeightView(q8.data(), WeightType::q8_0), MatmulPrecision::int8},
      {"q4_0-int8", WeightView(q4.data(), WeightType::q4_0), MatmulPrecision::int8},
      {"q4_k-int8", WeightView(q4k.data(), WeightType::q4_k), MatmulPrecision::int8},
      {"q6_k-int8", WeightView(q6k.data(), WeightType::q6_k), MatmulPrecision::int8}};
  std::printf(
      "%lld x %lld, %d threads: rows/s of the stored product and of fp32 sgemm on the "
      "widened matrix\n",
      (long long)rows, (long long)cols, omp_get_max_threads());
  std::printf("%6s %-10s %12s %12s %7s\n", "N", "type", "stored", "fp32 sgemm", "ratio");
  for (int64_t N : batch)
    for (const Kind& k : kinds) {
      if (("," + types + ",").find("," + std::string(k.name) + ",") == std::string::npos) continue;
      const bool k_type = k.w.type == WeightType::q4_k || k.w.type == WeightType::q6_k;
      if (k_type && !k_types) continue;  // --cols not a multiple of 256
      double stored = 0, fp32 = 0;
      for (int r = 0; r < rounds; ++r) {
        stored = std::max(stored, rate(k.w, N, k.p));
        fp32 = std::max(fp32, rate(wf.data(), N, MatmulPrecision::fp32, true));
      }
      std::printf("%6lld %-10s %12.0f %12.0f %7.2f\n", (long long)N, k.name, stored, fp32,
                  stored / fp32);
    }
  return 0;
}
