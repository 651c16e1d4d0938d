// sandwich (Chi et al., ACL 2023): the inner product of the sinusoidal position vectors of the
// query and the key, a function of their distance, less its value at d = 0, scaled per head as
// the paper mimics ALiBi's slopes:
//   b_h(d) = (sum_{k=1}^{d'/2} cos(d / 10000^(2k/d')) - d'/2) / (8 h / H),   h = 1..H
// Parameter-free; d' is --sandwich-dim. One table for every layer (distance_bias.h).
#include <cmath>

#include "core/error.h"
#include "position/distance_bias.h"

namespace alibi {
namespace {

class Sandwich final : public DistanceBias {
 public:
  Sandwich() : DistanceBias(/*learned=*/false) {}
  PosKind kind() const override { return PosKind::sandwich; }
  void add_fields(Fields<ModelConfig>& rows) const override {
    rows.push_back(Field<ModelConfig>::of(ALIBI_MEMBER(ModelConfig, sandwich_dim), "sandwich_dim")
                       .flag_help("--sandwich-dim",
                                  "sandwich: d', the width of the sinusoidal vectors whose inner "
                                  "product is the bias (even)")
                       .as_role(Role::shape)
                       .legacy_default()
                       .only_if([](const ModelConfig& c) { return c.pos == PosKind::sandwich; })
                       .at_least(2));
  }
  void validate(const ModelConfig& c) const override {
    if (c.sandwich_dim % 2 != 0)
      usage_error("--sandwich-dim ", c.sandwich_dim, " must be even (sin and cos pairs)");
  }
  void bind(const ModelConfig& c, const ParamLayout& l, std::shared_ptr<Backend> be) override {
    dim_ = c.sandwich_dim;
    DistanceBias::bind(c, l, std::move(be));
  }

 protected:
  void fill(const float*, int64_t n, int64_t ld, float* out) const override {
    const int half = dim_ / 2;
    std::vector<double> inv(size_t(half) + 1);
    for (int k = 1; k <= half; ++k) inv[size_t(k)] = std::pow(10000.0, -2.0 * k / dim_);
    for (int64_t d = 0; d < n; ++d) {
      double s = -double(half);
      for (int k = 1; k <= half; ++k) s += std::cos(double(d) * inv[size_t(k)]);
      for (int h = 0; h < heads_; ++h)
        out[h * ld + d] = float(s * double(heads_) / (8.0 * double(h + 1)));
    }
  }

 private:
  int dim_ = 0;
};

}  // namespace

std::unique_ptr<PositionMethod> make_sandwich() { return std::make_unique<Sandwich>(); }

}  // namespace alibi
