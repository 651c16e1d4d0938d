// The CPU position kernels: the learned table, the sinusoids and the rotary family's rotation
// (kernels/cpu/ops_cpu.h). ALiBi and T5 act inside the fused attention (attention_cpu.cpp).
#include <cmath>
#include <cstddef>

#include "kernels/cpu/ops_cpu.h"

namespace alibi::cpu {
namespace {

constexpr double kSinusoidBase = 10000.0;  // Vaswani et al.
// Fewer rows than this (decoding) run on one thread: a team wake-up costs more than the work.
constexpr int kParallelRows = 16;
// Below this many elements the table add runs on one thread (ops_cpu.cpp's threshold).
constexpr int64_t kParallelMin = 1 << 15;
// Rotary keeps per-row angle tables of HS/2 floats on the stack; the config caps HS at 1024.
constexpr int kMaxHalfHead = 512;

}  // namespace

void posemb_forward(float* x, const float* wpe, int64_t B, int64_t T, int64_t C, int64_t pos0) {
#pragma omp parallel for collapse(2) schedule(static) if (B * T * C >= kParallelMin)
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t) {
      float* r = x + (b * T + t) * C;
      const float* p = wpe + (pos0 + t) * C;
#pragma omp simd
      for (int64_t c = 0; c < C; ++c) r[c] += p[c];
    }
}

void posemb_backward(float* dwpe, const float* dx, int64_t B, int64_t T, int64_t C, int64_t pos0) {
#pragma omp parallel for schedule(static)
  for (int64_t t = 0; t < T; ++t) {
    float* d = dwpe + (pos0 + t) * C;
    for (int64_t b = 0; b < B; ++b) {
      const float* g = dx + (b * T + t) * C;
#pragma omp simd
      for (int64_t c = 0; c < C; ++c) d[c] += g[c];
    }
  }
}

void sinusoidal_add(float* x, int B, int T, int C, int64_t pos0) {
  // Each (position, frequency) pair is evaluated once and added to all B rows: the sinusoids
  // do not depend on the batch row, and pow/sin/cos in double cost more than the whole add.
#pragma omp parallel for schedule(static) if (B * T >= kParallelRows)
  for (int t = 0; t < T; ++t) {
    const double p = double(pos0 + t);
    for (int i = 0; 2 * i < C; ++i) {
      const double a = p / std::pow(kSinusoidBase, 2.0 * i / C);
      const float s = float(std::sin(a)), c = float(std::cos(a));
      for (int b = 0; b < B; ++b) {
        float* row = x + (size_t(b) * T + t) * C;
        row[2 * i] += s;
        if (2 * i + 1 < C) row[2 * i + 1] += c;
      }
    }
  }
}

// Per row, the HS/2 cosines and sines are evaluated in double (positions far into a stream
// keep their precision) with the row's scale folded in, rounded to fp32 once.
void rotary(float* x, int B, int NH, int T, int HS, const Rotation& r) {
  const int half = HS / 2;
  const double sign = r.backward ? -1.0 : 1.0;
#pragma omp parallel for schedule(static) if (T >= kParallelRows)
  for (int t = 0; t < T; ++t) {
    float cs[kMaxHalfHead], sn[kMaxHalfHead];
    const int64_t p = r.pos0 + t;
    for (int i = 0; i < half; ++i) {
      const double a = double(p) * r.freq[i];
      const double m =
          r.decay ? r.mscale * std::exp(double(r.power) * double(p - r.anchor) * r.decay[i])
                  : double(r.mscale);
      cs[i] = float(std::cos(a) * m);
      sn[i] = float(sign * std::sin(a) * m);
    }
    for (int b = 0; b < B; ++b)
      for (int h = 0; h < NH; ++h) {
        float* row = x + ((size_t(b) * NH + h) * T + t) * HS;
#pragma omp simd
        for (int i = 0; i < half; ++i) {
          const float x1 = row[i], x2 = row[i + half];
          row[i] = x1 * cs[i] - x2 * sn[i];
          row[i + half] = x2 * cs[i] + x1 * sn[i];
        }
      }
  }
}

void kv_rescale(float* cache, int64_t rows, int64_t len, int64_t blocks, int HS,
                const double* decay, int64_t delta) {
  const int half = HS / 2;
  float f[kMaxHalfHead];
  for (int i = 0; i < half; ++i) f[i] = float(std::exp(double(delta) * decay[i]));
#pragma omp parallel for schedule(static) if (blocks * len >= kParallelRows)
  for (int64_t b = 0; b < blocks; ++b)
    for (int64_t t = 0; t < len; ++t) {
      float* row = cache + (b * rows + t) * HS;
      for (int i = 0; i < half; ++i) row[i] *= f[i], row[i + half] *= f[i];
    }
}

}  // namespace alibi::cpu
