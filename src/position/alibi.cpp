// alibi: a bias -m_h * (i - j) on the scores of head h (paper.md): the fixed slopes, or slopes
// trained from them (--slopes trainable, alibi_theta).
#include <array>
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

double sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }

class Alibi final : public PositionMethod {
 public:
  PosKind kind() const override { return PosKind::alibi; }
  // Checkpoints from before the fields hold the paper's fixed slopes.
  void add_fields(Fields<ModelConfig>& rows) const override {
    using F = Field<ModelConfig>;
    const auto is_alibi = [](const ModelConfig& c) { return c.pos == PosKind::alibi; };
    rows.push_back(F::of(ALIBI_MEMBER(ModelConfig, alibi_bias_max), "alibi_bias_max")
                       .flag_help("--alibi-bias-max",
                                  "alibi: slopes 2^(-X h/heads) (MPT's alibi_bias_max; 8: the "
                                  "paper's)")
                       .as_role(Role::shape)
                       .legacy_default()
                       .only_if(is_alibi)
                       .positive());
    rows.push_back(F::of_enum(ALIBI_MEMBER(ModelConfig, slopes), "slopes", slopes_name,
                              parse_slopes, "fixed|trainable")
                       .flag_help("--slopes",
                                  "alibi: fixed (the paper's) | trainable (m_h = 2 m0_h "
                                  "sigmoid(theta_h), from the fixed m0 at theta = 0; "
                                  "docs/model.md)")
                       .as_role(Role::shape)
                       .legacy_default());
    rows.push_back(F::of(ALIBI_MEMBER(ModelConfig, alibi_scaled), "alibi_scaled")
                       .flag_help("--alibi-scaled",
                                  "alibi: the bias is added before the 1/sqrt(head size) scale, "
                                  "as Falcon does: each slope divided by sqrt(head size)")
                       .as_role(Role::shape)
                       .legacy_default()
                       .only_if(is_alibi));
    rows.push_back(F::of(ALIBI_MEMBER(ModelConfig, alibi_interpolate), "alibi_interpolate")
                       .flag_help("--alibi-interpolate",
                                  "alibi: over a context L' longer than the training length L, "
                                  "every slope times L/L' (L': a forward's length; in generate, "
                                  "the KV cache's; in serve, the request's prompt + max_tokens: "
                                  "docs/rope-family.md)")
                       .as_switch()
                       .run_option()
                       .only_if(is_alibi));
  }
  void fill_defaults(ModelConfig& c, int trained_len) const override {
    if (c.alibi_interpolate && c.train_len == 0) c.train_len = trained_len;
  }
  void validate(const ModelConfig& c) const override {
    if (c.alibi_interpolate && c.train_len < 1)
      usage_error("--alibi-interpolate scales the slopes by L/L', L the length the model was "
                  "trained at, and this model records none (config train_len ", c.train_len, ")");
  }
  // Trainable slopes: one theta per head, shared by every layer, no weight decay; zero at the
  // start (Init{}), which is exactly the fixed slopes.
  void add_params(const ModelConfig& c, ParamLayout& l) const override {
    if (c.slopes == Slopes::trainable) l.add("alibi_theta", {c.heads}, Init{}, false);
  }
  void bind(const ModelConfig& c, const ParamLayout& l, std::shared_ptr<Backend> be) override {
    m0_ = alibi_slopes(c);
    slopes_ = DeviceArray<float>(be, m0_.size());
    be->upload(slopes_.data(), m0_.data(), m0_.size() * sizeof(float));
    trainable_ = c.slopes == Slopes::trainable;
    for (auto& v : host_) v.assign(m0_.size(), 0.0f);
    layers_ = c.layers;
    interpolate_from_ = c.alibi_interpolate ? c.train_len : 0;
    if (trainable_) {
      theta_ = l.at("alibi_theta").offset;
      dslopes_ = DeviceArray<float>(be, m0_.size());
    }
    PositionMethod::bind(c, l, std::move(be));
  }
  bool bias_per_call() const override { return interpolate_from_ > 0; }
  // NH values, made on the host: from theta by the first layer of each forward, and times the
  // interpolation's L/L' whenever a call's context length changes it (a batch of sequences of
  // different lengths changes it between calls of one layer).
  ScoreBias score_bias(const ParamSet& p, int layer, const AttnShape& s,
                       int64_t) const override {
    const double ratio = interpolation(s);
    if ((layer == 0 && trainable_) || ratio != ratio_) {
      float* m = host_[0].data();
      if (trainable_) {
        read_theta(p, host_[1].data());
        alibi_trainable_slopes(m0_, host_[1].data(), m);
      } else {
        std::copy(m0_.begin(), m0_.end(), m);
      }
      for (size_t h = 0; h < m0_.size(); ++h) m[h] = float(double(m[h]) * ratio);
      be().upload(slopes_.data(), m, m0_.size() * sizeof(float));
      ratio_ = ratio;
    }
    return ScoreBias::alibi(slopes_.data());
  }
  // One slope gradient for every layer (the slopes are shared): zeroed by the first layer asked,
  // the last.
  Tensor score_bias_grad(ParamSet&, int layer) const override {
    if (!trainable_) return {};
    if (layer == layers_ - 1) be().fill(dslopes_.data(), 0.0f, int64_t(m0_.size()));
    return vec(dslopes_.data(), int64_t(m0_.size()));
  }
  // d theta_h += dm_h * ratio * 2 m0_h sigmoid'(theta_h), dm_h the gradient of the slope used
  void score_bias_backward(const ParamSet& p, ParamSet& g) const override {
    if (!trainable_) return;
    const size_t NH = m0_.size();
    float* theta = host_[0].data();
    float* dm = host_[1].data();
    float* dtheta = host_[2].data();
    read_theta(p, theta);
    be().download(dm, dslopes_.data(), NH * sizeof(float));
    be().download(dtheta, g.data.data() + theta_, NH * sizeof(float));
    for (size_t h = 0; h < NH; ++h) {
      const double s = sigmoid(double(theta[h]));
      dtheta[h] += float(double(dm[h]) * ratio_ * 2.0 * double(m0_[h]) * s * (1.0 - s));
    }
    be().upload(g.data.data() + theta_, dtheta, NH * sizeof(float));
  }

 private:
  // Al-Khateeb et al. 2023: over a context L' longer than the training length L, the slopes
  // times L/L'. L' is the sequence the call belongs to (AttnShape::context_len).
  double interpolation(const AttnShape& s) const {
    const int L1 = s.context_len();
    return interpolate_from_ > 0 && L1 > interpolate_from_ ? double(interpolate_from_) / L1 : 1.0;
  }
  void read_theta(const ParamSet& p, float* out) const {
    be().download(out, p.data.data() + theta_, m0_.size() * sizeof(float));
  }
  std::vector<float> m0_;            // the fixed slopes (NH)
  mutable std::array<std::vector<float>, 3> host_;  // (NH) each: slopes, theta, gradients
  bool trainable_ = false;
  int layers_ = 0;
  int interpolate_from_ = 0;         // L of --alibi-interpolate; 0: off
  mutable double ratio_ = 1.0;       // the L/L' slopes_ holds (1: none)
  size_t theta_ = 0;                 // offset of alibi_theta (NH) when trainable
  mutable DeviceArray<float> slopes_;   // (NH) what the kernel reads: fixed, or from theta
  mutable DeviceArray<float> dslopes_;  // (NH) the kernel's d(loss)/d(m_h), when trainable
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

std::vector<float> alibi_slopes(const ModelConfig& c) {
  std::vector<float> s = alibi_slopes(c.heads, c.alibi_bias_max);
  if (c.alibi_scaled)
    for (float& m : s) m = float(double(m) / std::sqrt(double(c.head_size())));
  return s;
}

void alibi_trainable_slopes(const std::vector<float>& m0, const float* theta, float* out) {
  for (size_t h = 0; h < m0.size(); ++h)
    out[h] = float(2.0 * double(m0[h]) * sigmoid(double(theta[h])));  // theta = 0: exactly m0
}

std::vector<float> alibi_trainable_slopes(const std::vector<float>& m0, const float* theta) {
  std::vector<float> m(m0.size());
  alibi_trainable_slopes(m0, theta, m.data());
  return m;
}

std::unique_ptr<PositionMethod> make_alibi() { return std::make_unique<Alibi>(); }

}  // namespace alibi
