// rotary (RoFormer): q and k of every head rotated by position-dependent angles in every layer,
// with the context extensions of its frequencies (--rope-scaling: Position Interpolation,
// NTK-aware scaling, YaRN; docs/rope-family.md gives the formulas and their references).
#include <algorithm>
#include <cmath>
#include <numbers>

#include "position/rotary_family.h"

namespace alibi {
namespace {

constexpr double kRopeBase = 10000.0;  // RoFormer's base b
// YaRN's ramp (Peng et al. 2023, section 3.2): a pair that turns more than kYarnBeta times over
// the training length keeps its frequency, one that turns fewer than kYarnAlpha times is
// interpolated (divided by s); the paper's alpha = 1, beta = 32 for LLaMA, transformers'
// beta_slow and beta_fast defaults.
constexpr double kYarnAlpha = 1.0;
constexpr double kYarnBeta = 32.0;
// The ramp's width when both ends fall on one pair (transformers: "prevent singularity").
constexpr double kYarnMinRamp = 0.001;
// YaRN's attention temperature: q and k each times sqrt(1/t) = kYarnTemperature ln(s) + 1.
constexpr double kYarnTemperature = 0.1;

// The pair index i whose frequency b^(-2i/HS) turns `rotations` times over L positions (YaRN's
// find_correction_dim): L b^(-2i/HS) = 2 pi rotations.
double yarn_pair(double rotations, int HS, double L) {
  return HS * std::log(L / (rotations * 2.0 * std::numbers::pi)) / (2.0 * std::log(kRopeBase));
}

// YaRN's "NTK-by-parts": each pair's frequency between its own (extrapolated) and divided by s
// (interpolated), by a ramp linear in the pair index between the pairs that turn kYarnBeta and
// kYarnAlpha times over L, rounded outwards as the reference code (transformers' truncate) does.
void yarn_blend(std::vector<double>& freq, int HS, double L, double s) {
  const double low = std::max(std::floor(yarn_pair(kYarnBeta, HS, L)), 0.0);
  double high = std::min(std::ceil(yarn_pair(kYarnAlpha, HS, L)), double(HS - 1));
  if (low == high) high += kYarnMinRamp;
  for (size_t i = 0; i < freq.size(); ++i) {
    const double ramp = std::clamp((double(i) - low) / (high - low), 0.0, 1.0);
    freq[i] = freq[i] / s * ramp + freq[i] * (1.0 - ramp);
  }
}

class Rotary final : public RotaryFamily {
 public:
  PosKind kind() const override { return PosKind::rotary; }
  void add_fields(Fields<ModelConfig>& rows) const override {
    using F = Field<ModelConfig>;
    const auto is_rotary = [](const ModelConfig& c) { return c.pos == PosKind::rotary; };
    rows.push_back(F::of_enum(ALIBI_MEMBER(ModelConfig, rope_scaling), "rope_scaling",
                              rope_scaling_name, parse_rope_scaling, "none|pi|ntk|yarn")
                       .flag_help("--rope-scaling",
                                  "rotary: context extension by a factor s (--rope-factor): pi "
                                  "(positions / s) | ntk (base b s^(HS/(HS-2))) | yarn "
                                  "(NTK-by-parts over the training length, attention "
                                  "temperature); docs/rope-family.md")
                       .run_option()
                       .only_if(is_rotary));
    rows.push_back(F::of(ALIBI_MEMBER(ModelConfig, rope_factor), "rope_factor")
                       .flag_help("--rope-factor",
                                  "rotary: s of --rope-scaling, the evaluation length over the "
                                  "training length")
                       .run_option()
                       .only_if(is_rotary)
                       .positive());
  }
  void fill_defaults(ModelConfig& c, int trained_len) const override {
    if (c.rope_scaling == RopeScaling::yarn && c.train_len == 0) c.train_len = trained_len;
  }
  void validate(const ModelConfig& c) const override {
    RotaryFamily::validate(c);
    if (c.rope_scaling == RopeScaling::none && c.rope_factor != 1.0f)
      usage_error("--rope-factor ", c.rope_factor, " needs --rope-scaling pi|ntk|yarn");
    if (c.rope_scaling == RopeScaling::ntk && c.head_size() <= 2)
      usage_error(
          "--rope-scaling ntk needs a head size above 2 (its base goes to the power "
          "HS/(HS-2)); this model's is ",
          c.head_size());
    if (c.rope_scaling == RopeScaling::yarn && c.train_len < 1)
      usage_error(
          "--rope-scaling yarn is relative to the length the model was trained at, and "
          "this model records none (config train_len ",
          c.train_len, ")");
  }
};

}  // namespace

RotaryTables rotary_tables(const ModelConfig& c) {
  const int HS = c.head_size();
  const double s = c.rope_factor;
  const double base = c.rope_scaling == RopeScaling::ntk
                          ? kRopeBase * std::pow(s, double(HS) / double(HS - 2))
                          : kRopeBase;
  RotaryTables t;
  t.freq.resize(size_t(HS / 2));
  for (int i = 0; i < HS / 2; ++i) t.freq[size_t(i)] = std::pow(base, -2.0 * i / HS);
  if (c.rope_scaling == RopeScaling::pi)  // position p turns as p / s did
    for (double& f : t.freq) f /= s;
  if (c.rope_scaling == RopeScaling::yarn) {
    yarn_blend(t.freq, HS, double(c.train_len), s);
    if (s > 1.0) t.mscale = kYarnTemperature * std::log(s) + 1.0;
  }
  if (c.pos == PosKind::xpos) t.decay = xpos_decay(c);
  return t;
}

std::unique_ptr<PositionMethod> make_rotary() { return std::make_unique<Rotary>(); }

}  // namespace alibi
