#pragma once
// Vectorisable elementwise math for the CPU kernels. std::exp and std::tanh only vectorise under
// -ffast-math (glibc's vector variants are declared for __FAST_MATH__ only), and they dominate
// softmax, cross-entropy and GELU otherwise.
#include <bit>
#include <cstdint>

namespace alibi {

// exp(x) that vectorises (std::exp only does under -ffast-math). Cephes expf: Cody-Waite range
// reduction and a degree-6 polynomial, relative error about 2e-7. x < -87.3 (including -inf)
// gives exactly 0, so far-away or masked keys add no denormals; x is clamped at 88.3 above.
// Written with selects and the 1.5*2^23 rounding trick: GCC 12 vectorises neither std::min /
// std::max (branches) nor std::floor in this loop.
inline float fast_exp(float x) {
  constexpr float kRound = 12582912.0f;  // 1.5 * 2^23: t + kRound - kRound = nearest integer
  const bool underflow = x < -87.3f;
  x = underflow ? -87.3f : x;
  x = x > 88.3f ? 88.3f : x;
  const float n = (x * 1.44269504088896341f + kRound) - kRound;
  float r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float y = p * r * r + r + 1.0f;
  // NaN in gives NaN out through y; converting a NaN n to int would be undefined behaviour.
  const float e = n == n ? n : 0.0f;
  return underflow ? 0.0f : y * std::bit_cast<float>((int32_t(e) + 127) << 23);
}

// tanh(u) = 1 - 2 / (exp(2u) + 1): absolute error about 2e-7, exact limits +-1.
inline float fast_tanh(float u) { return 1.0f - 2.0f / (fast_exp(2.0f * u) + 1.0f); }

// erfc(x) for x >= 0: the Chebyshev fit of Numerical Recipes' erfcc, fractional error below
// 1.2e-7 everywhere (so 1 + erf(-x) = erfc(x) keeps its relative precision far into the tail),
// plus fast_exp's; 0 past x ~ 9.3, where erfc underflows fp32 anyway.
inline float fast_erfc_nonneg(float x) {
  const float t = 1.0f / (1.0f + 0.5f * x);
  float p = 0.17087277f;
  p = p * t - 0.82215223f;
  p = p * t + 1.48851587f;
  p = p * t - 1.13520398f;
  p = p * t + 0.27886807f;
  p = p * t - 0.18628806f;
  p = p * t + 0.09678418f;
  p = p * t + 0.37409196f;
  p = p * t + 1.00002368f;
  p = p * t - 1.26551223f;
  return t * fast_exp(p - x * x);
}

}  // namespace alibi
