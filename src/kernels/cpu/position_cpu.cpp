// The CPU position kernels: the learned table, the sinusoids and the rotary rotation
// (kernels/cpu/ops_cpu.h). ALiBi and T5 act inside the fused attention (attention_cpu.cpp).
#include <cmath>
#include <cstddef>

#include "kernels/cpu/ops_cpu.h"

namespace alibi::cpu {
namespace {

constexpr double kRopeBase = 10000.0;      // RoFormer's base
constexpr double kSinusoidBase = 10000.0;  // Vaswani et al.
// Fewer rows than this (decoding) run on one thread: a team wake-up costs more than the work.
constexpr int kParallelRows = 16;
// Below this many elements the table add runs on one thread (ops_cpu.cpp's threshold).
constexpr int64_t kParallelMin = 1 << 15;
// Rotary keeps per-row angle tables of HS/2 floats on the stack; the config caps HS at 1024.
constexpr int kMaxHalfHead = 512;

// sign = +1 rotates by +theta (forward), -1 by -theta (its inverse, used in the backward).
void rotary_apply(float* x, int B, int NH, int T, int HS, int64_t pos0, float sign) {
  const int half = HS / 2;
#pragma omp parallel for schedule(static) if (T >= kParallelRows)
  for (int t = 0; t < T; ++t) {
    float cs[kMaxHalfHead], sn[kMaxHalfHead];
    const double p = double(pos0 + t);
    for (int i = 0; i < half; ++i) {
      const double a = p * std::pow(kRopeBase, -2.0 * i / HS);
      cs[i] = float(std::cos(a));
      sn[i] = sign * float(std::sin(a));
    }
    for (int b = 0; b < B; ++b)
      for (int h = 0; h < NH; ++h) {
        float* r = x + ((size_t(b) * NH + h) * T + t) * HS;
#pragma omp simd
        for (int i = 0; i < half; ++i) {
          const float x1 = r[i], x2 = r[i + half];
          r[i] = x1 * cs[i] - x2 * sn[i];
          r[i + half] = x2 * cs[i] + x1 * sn[i];
        }
      }
  }
}

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

void rotary_forward(float* x, int B, int NH, int T, int HS, int64_t pos0) {
  rotary_apply(x, B, NH, T, HS, pos0, 1.0f);
}

void rotary_backward(float* dx, int B, int NH, int T, int HS, int64_t pos0) {
  rotary_apply(dx, B, NH, T, HS, pos0, -1.0f);
}

}  // namespace alibi::cpu
