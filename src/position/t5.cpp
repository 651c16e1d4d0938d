// t5: a learned bias per (bucketed relative distance, head), one table shared by all layers.
#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "position/position.h"

namespace alibi {
namespace {

class T5 final : public PositionMethod {
 public:
  PosKind kind() const override { return PosKind::t5; }
  // T5's defaults; checkpoints from before the fields hold them, and trained the table at --lr.
  void add_fields(Fields<ModelConfig>& rows) const override {
    using F = Field<ModelConfig>;
    const auto is_t5 = [](const ModelConfig& c) { return c.pos == PosKind::t5; };
    rows.push_back(F::of(ALIBI_MEMBER(ModelConfig, t5_buckets), "t5_buckets")
                       .flag_help("--t5-buckets", "t5: relative-distance buckets")
                       .as_role(Role::shape)
                       .legacy_default()
                       .only_if(is_t5)
                       .at_least(2));
    rows.push_back(F::of(ALIBI_MEMBER(ModelConfig, t5_max_distance), "t5_max_distance")
                       .flag_help("--t5-max-distance", "t5: distance of the last bucket")
                       .as_role(Role::shape)
                       .legacy_default()
                       .only_if(is_t5));
    rows.push_back(F::of(ALIBI_MEMBER(ModelConfig, t5_lr_scale), "t5_lr_scale")
                       .flag_help("--t5-lr-scale",
                                  "t5: learning rate of the bias table as a multiple of --lr")
                       .as_role(Role::fixed)
                       .legacy_default()
                       .only_if(is_t5)
                       .positive());
  }
  void validate(const ModelConfig& c) const override {
    // Bidirectional: half the buckets per direction, each half T5's rule on its own.
    const int per_side = c.causal ? c.t5_buckets : c.t5_buckets / 2;
    if (!c.causal && (c.t5_buckets % 2 != 0 || per_side < 2))
      usage_error("--t5-buckets ", c.t5_buckets, " must be even and at least 4 for "
                  "bidirectional attention (half per direction)");
    if (c.t5_max_distance <= per_side / 2)
      usage_error("--t5-max-distance ", c.t5_max_distance, " must exceed ",
                  c.causal ? "--t5-buckets/2 = " : "--t5-buckets/4 = ", per_side / 2);
  }
  // Zero at the start, so the model starts as `none`; no decay (T5's practice). Adam moves a
  // parameter by about its learning rate per step whatever the gradient, so a table that must
  // reach biases of several units in a short run needs a larger one (--t5-lr-scale).
  void add_params(const ModelConfig& c, ParamLayout& l) const override {
    l.add("t5_bias", {c.t5_buckets, c.heads}, Init{}, false, c.t5_lr_scale);
  }
  void bind(const ModelConfig& c, const ParamLayout& l, std::shared_ptr<Backend> be) override {
    num_buckets_ = c.t5_buckets;
    max_distance_ = c.t5_max_distance;
    heads_ = c.heads;
    table_ = l.at("t5_bias").offset;
    const std::vector<int32_t> b =
        t5_bucket_table(c.causal ? num_buckets_ : num_buckets_ / 2, max_distance_);
    buckets_ = DeviceArray<int32_t>(be, b.size());
    be->upload(buckets_.data(), b.data(), b.size() * sizeof(int32_t));
    PositionMethod::bind(c, l, std::move(be));
  }
  ScoreBias score_bias(const ParamSet& p, int, const AttnShape&, int64_t) const override {
    return ScoreBias::t5(p.data.data() + table_, buckets_.data(), num_buckets_, max_distance_);
  }
  Tensor score_bias_grad(ParamSet& g, int) const override {
    return mat(g.data.data() + table_, num_buckets_, heads_);
  }

 private:
  int num_buckets_ = 0, max_distance_ = 0, heads_ = 0;
  size_t table_ = 0;                // offset of t5_bias (num_buckets, NH)
  DeviceArray<int32_t> buckets_;    // (max_distance) bucket of each distance below it
};

}  // namespace

int t5_bucket(int d, int num_buckets, int max_distance) {
  const int max_exact = num_buckets / 2;
  if (d < max_exact) return d;
  // fp32 as in T5's reference (torch.log on a float tensor; the python-float divisor rounds to
  // fp32)
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

std::unique_ptr<PositionMethod> make_t5() { return std::make_unique<T5>(); }

}  // namespace alibi
