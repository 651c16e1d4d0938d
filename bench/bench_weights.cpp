// The streaming product of decoding on bf16 weights against sgemm on the same matrix in fp32:
// one input row times a (rows, cols) matrix, the rate each reads its weights at, alternating
// over rounds (best of each) with their ratio. The bf16 product reads half the bytes, so at the
// same rate it decodes twice as fast.
//
//   build/bench/bench_weights [--rows 250880] [--cols 1024] [--rounds 3]   (OMP_NUM_THREADS)
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "kernels/backend.h"

using namespace alibi;

int main(int argc, char** argv) {
  int64_t rows = 250880, cols = 1024;
  int rounds = 3;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--rows")) rows = std::atoll(argv[i + 1]);
    if (!std::strcmp(argv[i], "--cols")) cols = std::atoll(argv[i + 1]);
    if (!std::strcmp(argv[i], "--rounds")) rounds = std::atoi(argv[i + 1]);
  }
  std::vector<uint16_t> wh(size_t(rows * cols), 0x3f80);  // bf16 1.0
  std::vector<float> wf(size_t(rows * cols), 1.0f), x(size_t(cols), 0.5f);
  std::vector<float> out(static_cast<size_t>(rows));
  const auto be = default_backend();
  auto rate = [&](WeightView w, size_t bytes) {
    const auto t0 = std::chrono::steady_clock::now();
    for (int k = 0; k < 5; ++k)
      be->run(LinearForward{mat(out.data(), 1, rows), mat(x.data(), 1, cols), mat(w, rows, cols),
                            {}});
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return double(bytes) * 5 / s / 1e9;
  };
  double bf16 = 0, fp32 = 0;
  for (int r = 0; r < rounds; ++r) {
    bf16 = std::max(bf16, rate(WeightView(wh.data(), WeightType::bf16), wh.size() * 2));
    fp32 = std::max(fp32, rate(wf.data(), wf.size() * 4));
  }
  std::printf("%lld x %lld, %d threads: bf16 streaming product %.2f GB/s, fp32 sgemm %.2f GB/s "
              "(ratio %.2f)\n",
              (long long)rows, (long long)cols, omp_get_max_threads(), bf16, fp32, bf16 / fp32);
  return 0;
}
