// The memory bandwidth a streaming read reaches on this machine: the bound on decoding speed,
// which reads every weight once per token. Sums a buffer much larger than the caches with the
// OpenMP threads alibi uses, and prints the best of several passes in GB/s (1e9 bytes).
//
//   build/bench/bench_stream [--mb 2048] [--passes 5]     (threads: OMP_NUM_THREADS)
#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

int main(int argc, char** argv) {
  size_t mb = 2048;
  int passes = 5;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--mb")) mb = size_t(std::atol(argv[i + 1]));
    if (!std::strcmp(argv[i], "--passes")) passes = std::atoi(argv[i + 1]);
  }
  const size_t n = mb * (size_t(1) << 20) / sizeof(float);
  std::vector<float> buf(n);
#pragma omp parallel for schedule(static)
  for (size_t i = 0; i < n; ++i) buf[i] = float(i & 1023);  // touched by the threads that read it
  double best = 0, sink = 0;
  for (int p = 0; p < passes; ++p) {
    const auto t0 = std::chrono::steady_clock::now();
    double total = 0;
#pragma omp parallel reduction(+ : total)
    {
      __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
#pragma omp for schedule(static) nowait
      for (size_t i = 0; i < n / 32; ++i) {
        const float* x = buf.data() + i * 32;
        a0 = _mm256_add_ps(a0, _mm256_loadu_ps(x));
        a1 = _mm256_add_ps(a1, _mm256_loadu_ps(x + 8));
        a2 = _mm256_add_ps(a2, _mm256_loadu_ps(x + 16));
        a3 = _mm256_add_ps(a3, _mm256_loadu_ps(x + 24));
      }
      float lanes[8];
      _mm256_storeu_ps(lanes, _mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
      for (float v : lanes) total += v;
    }
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    best = std::max(best, double(n) * sizeof(float) / s / 1e9);
    sink += total;
  }
  std::printf("stream read: %.2f GB/s (best of %d passes over %zu MiB, %d threads; checksum %g)\n",
              best, passes, mb, omp_get_max_threads(), sink);
  return 0;
}
