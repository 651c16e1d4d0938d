#pragma once
// Random attention problems shared by the attention tests, and the error measure they use.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "core/rng.h"
#include "kernels/attention.h"

namespace alibi::test {

// Any monotone bucket rule in [0, num_buckets) will do: exact for small distances, coarser further.
constexpr int kNumBuckets = 8;
constexpr int kT5MaxDistance = 24;

struct Problem {
  AttnShape s;
  ScoreBias bias;
  AttnDropout drop;
  std::vector<float> q, k, v, dout, slopes, table;
  std::vector<int32_t> buckets;

  Problem(BiasKind kind, int B, int NH, int Tq, int Tk, int HS, float p, int ldk = 0,
          uint64_t seed = 7) {
    s.B = B, s.NH = NH, s.Tq = Tq, s.Tk = Tk, s.HS = HS, s.ldk = ldk;
    Rng rng(seed);
    const size_t nq = size_t(B) * NH * Tq * HS, nk = size_t(B) * NH * s.kv_rows() * HS;
    auto fill = [&](std::vector<float>& x, size_t n, float sd) {
      x.resize(n);
      for (float& e : x) e = sd * rng.normal();
    };
    fill(q, nq, 1.5f);  // sd 1.5 makes some softmax rows peaked, others flat
    fill(k, nk, 1.0f);
    fill(v, nk, 1.0f);
    fill(dout, nq, 1.0f);
    for (int h = 0; h < NH; ++h) slopes.push_back(0.5f / float(1 << (h % 6)));  // 0.5, 0.25, ...
    fill(table, size_t(kNumBuckets) * NH, 0.5f);
    for (int d = 0; d < kT5MaxDistance; ++d)
      buckets.push_back(std::min(kNumBuckets - 2, d < 4 ? d : 4 + (d - 4) / 6));
    bias.kind = kind;
    bias.slopes = slopes.data();
    bias.t5_table = table.data();
    bias.t5_bucket = buckets.data();
    bias.num_buckets = kNumBuckets;
    bias.t5_max_distance = kT5MaxDistance;
    drop.p = p;
    drop.seed = seed * 31 + 5;
  }
  // Bidirectional attention (AttnShape::causal false); the bucket rule stays within half the
  // buckets, as a bidirectional t5 table has half per direction.
  void make_bidirectional() {
    s.causal = false;
    for (int d = 0; d < kT5MaxDistance; ++d)
      buckets[size_t(d)] = std::min(kNumBuckets / 2 - 2, d < 2 ? d : 2 + (d - 2) / 8);
  }
  size_t nq() const { return q.size(); }
  size_t nk() const { return k.size(); }
  size_t nlse() const { return size_t(s.B) * s.NH * s.Tq; }
};

inline double max_abs(const std::vector<float>& x) {
  double m = 0.0;
  for (float e : x) m = std::max(m, double(std::fabs(e)));
  return m;
}

// max |a - ref| / max |ref| (or absolute when ref is all zero).
inline double rel_err(const std::vector<float>& a, const std::vector<float>& ref) {
  EXPECT_EQ(a.size(), ref.size());
  double e = 0.0;
  for (size_t i = 0; i < a.size(); ++i) {
    if (!std::isfinite(a[i])) return INFINITY;
    e = std::max(e, std::fabs(double(a[i]) - double(ref[i])));
  }
  const double m = max_abs(ref);
  return m > 0.0 ? e / m : e;
}

}  // namespace alibi::test
