#include "position/position.h"

#include <cmath>

#include "core/error.h"

namespace alibi {
namespace {

constexpr PosKind kAllPos[] = {PosKind::alibi, PosKind::sinusoidal, PosKind::learned,
                               PosKind::rotary, PosKind::t5, PosKind::none};
constexpr double kRopeBase = 10000.0;      // RoFormer's base
constexpr double kSinusoidBase = 10000.0;  // Vaswani et al.
// Fewer rows than this (decoding) run on one thread: a team wake-up costs more than the work.
constexpr int kParallelRows = 16;

// Geometric slopes for a power-of-two head count n: 2^(-8h/n), h = 1..n.
std::vector<double> pow2_slopes(int n) {
  std::vector<double> s(n);
  const double start = std::pow(2.0, -8.0 / n);
  for (int h = 0; h < n; ++h) s[h] = std::pow(start, h + 1);
  return s;
}

}  // namespace

PosKind parse_pos(const std::string& name, const std::string& flag) {
  for (PosKind k : kAllPos)
    if (name == pos_name(k)) return k;
  usage_error(flag, " '", name, "' is not a position method; expected one of ", pos_names());
}

const char* pos_name(PosKind kind) {
  switch (kind) {
    case PosKind::none: return "none";
    case PosKind::alibi: return "alibi";
    case PosKind::sinusoidal: return "sinusoidal";
    case PosKind::learned: return "learned";
    case PosKind::rotary: return "rotary";
    case PosKind::t5: return "t5";
  }
  return "?";
}

std::string pos_names() {
  std::string s;
  for (PosKind k : kAllPos) {
    if (!s.empty()) s += '|';
    s += pos_name(k);
  }
  return s;
}

std::vector<float> alibi_slopes(int NH) {
  ALIBI_CHECK(NH > 0);
  const int c = 1 << int(std::floor(std::log2(double(NH))));
  std::vector<double> s = pow2_slopes(c);
  if (c < NH) {
    const std::vector<double> s2 = pow2_slopes(2 * c);
    for (int i = 0; int(s.size()) < NH; i += 2) s.push_back(s2[i]);
  }
  return std::vector<float>(s.begin(), s.end());
}

int t5_bucket(int d, int num_buckets, int max_distance) {
  const int max_exact = num_buckets / 2;
  if (d < max_exact) return d;
  // fp32 as in T5's reference (torch.log on a float tensor; the python-float divisor rounds to fp32)
  const float ratio = std::log(float(d) / float(max_exact)) /
                      float(std::log(double(max_distance) / double(max_exact)));
  const int b = max_exact + int(ratio * float(num_buckets - max_exact));
  return std::min(b, num_buckets - 1);
}

std::vector<int32_t> t5_bucket_table(int num_buckets, int max_distance) {
  std::vector<int32_t> t(max_distance);
  for (int d = 0; d < max_distance; ++d) t[d] = t5_bucket(d, num_buckets, max_distance);
  return t;
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

namespace {

// sign = +1 rotates by +theta (forward), -1 by -theta (its inverse, used in the backward).
void rotary_apply(float* x, int B, int NH, int T, int HS, int64_t pos0, float sign) {
  const int half = HS / 2;
#pragma omp parallel for schedule(static) if (T >= kParallelRows)
  for (int t = 0; t < T; ++t) {
    float cs[512], sn[512];  // HS/2 <= 512: head sizes past 1024 are rejected by the config
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

void rotary_forward(float* x, int B, int NH, int T, int HS, int64_t pos0) {
  rotary_apply(x, B, NH, T, HS, pos0, 1.0f);
}

void rotary_backward(float* dx, int B, int NH, int T, int HS, int64_t pos0) {
  rotary_apply(dx, B, NH, T, HS, pos0, -1.0f);
}

}  // namespace alibi
