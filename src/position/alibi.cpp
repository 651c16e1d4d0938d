// alibi: a fixed bias -m_h * (i - j) on the scores of head h (paper.md); nothing to learn.
#include <cmath>

#include "core/error.h"
#include "position/position.h"

namespace alibi {
namespace {

// Geometric slopes for a power-of-two head count n: 2^(-bias_max h/n), h = 1..n (the paper's
// bias_max is 8).
std::vector<double> pow2_slopes(int n, double bias_max) {
  std::vector<double> s(n);
  const double start = std::pow(2.0, -bias_max / n);
  for (int h = 0; h < n; ++h) s[h] = std::pow(start, h + 1);
  return s;
}

class Alibi final : public PositionMethod {
 public:
  PosKind kind() const override { return PosKind::alibi; }
  void bind(const ModelConfig& c, const ParamLayout& l, std::shared_ptr<Backend> be) override {
    const std::vector<float> m = alibi_slopes(c.heads, c.alibi_bias_max);
    slopes_ = DeviceArray<float>(be, m.size());
    be->upload(slopes_.data(), m.data(), m.size() * sizeof(float));
    PositionMethod::bind(c, l, std::move(be));
  }
  ScoreBias score_bias(const ParamSet&) const override { return ScoreBias::alibi(slopes_.data()); }

 private:
  DeviceArray<float> slopes_;  // (NH)
};

}  // namespace

std::vector<float> alibi_slopes(int NH, double bias_max) {
  ALIBI_CHECK(NH > 0 && bias_max > 0);
  const int c = 1 << int(std::floor(std::log2(double(NH))));
  std::vector<double> s = pow2_slopes(c, bias_max);
  if (c < NH) {
    const std::vector<double> s2 = pow2_slopes(2 * c, bias_max);
    for (int i = 0; int(s.size()) < NH; i += 2) s.push_back(s2[i]);
  }
  return std::vector<float>(s.begin(), s.end());
}

std::unique_ptr<PositionMethod> make_alibi() { return std::make_unique<Alibi>(); }

}  // namespace alibi
