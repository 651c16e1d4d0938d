#pragma once
// Central finite differences for the backward tests.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <vector>

#include "core/rng.h"

namespace alibi::test {

// fp32 forwards with O(1) values: a step of 1e-2 keeps the rounding noise of the difference
// quotient near 1e-4 while the O(h^2) truncation error of smooth layers stays below 1e-4.
constexpr float kFdStep = 1e-2f;
// A wrong gradient is off by O(1) relative; these catch that while passing fp32 noise.
constexpr double kFdAbsTol = 2e-3;
constexpr double kFdRelTol = 2e-2;

inline std::vector<float> randn(size_t n, uint64_t seed, float scale = 1.0f) {
  Rng r(seed);
  std::vector<float> v(n);
  for (auto& x : v) x = scale * r.normal();
  return v;
}

// Checks analytic[i] against (loss(x+h e_i) - loss(x-h e_i)) / 2h for up to `samples` indices.
inline void expect_fd(const char* what, const std::function<double()>& loss, float* x, size_t n,
                      const float* analytic, size_t samples = 40, uint64_t seed = 7) {
  Rng r(seed);
  double worst = 0.0;
  for (size_t s = 0; s < std::min(samples, n); ++s) {
    const size_t i = samples >= n ? s : size_t(r.below(n));
    const float x0 = x[i];
    x[i] = x0 + kFdStep;
    const double lp = loss();
    x[i] = x0 - kFdStep;
    const double lm = loss();
    x[i] = x0;
    const double num = (lp - lm) / (2.0 * double(kFdStep));
    const double err = std::abs(num - double(analytic[i]));
    const double tol = kFdAbsTol + kFdRelTol * std::abs(num);
    worst = std::max(worst, err / tol);
    EXPECT_LE(err, tol) << what << "[" << i << "]: numeric " << num << " analytic "
                        << analytic[i];
  }
  EXPECT_LE(worst, 1.0) << what;
}

// sum(out * weights) in double: a loss whose gradient with respect to out is `weights`.
inline double dot(const float* a, const float* b, size_t n) {
  double s = 0.0;
  for (size_t i = 0; i < n; ++i) s += double(a[i]) * double(b[i]);
  return s;
}

}  // namespace alibi::test
