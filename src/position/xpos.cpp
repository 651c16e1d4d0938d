// xpos (Sun et al. 2022, "A Length-Extrapolatable Transformer", arXiv 2212.10554): rotary whose
// pair i of q is also scaled by zeta_i^(n/gamma) and of k by zeta_i^(-n/gamma), n positions
// from the attention's anchor, so each score decays as zeta_i^((i-j)/gamma) with the distance.
// zeta and gamma as torchscale's XPOS defines them; docs/rope-family.md.
#include <algorithm>
#include <cmath>
#include <cstdlib>

#include "position/rotary_family.h"

namespace alibi {
namespace {

// gamma' of zeta_i = (i / (HS/2) + gamma') / (1 + gamma'), i = 0..HS/2-1: torchscale's fixed 0.4
// (the paper's gamma = 0.4 in its zeta); so zeta runs from 0.4/1.4 up towards 1.
constexpr double kZetaOffset = 0.4;
// The largest |ln(zeta_0)| n / gamma a call may reach: scales within e^+-64 (~6e27) leave fp32
// (~3e38) ten orders of magnitude for the values of q and k themselves.
constexpr double kMaxExponent = 64.0;

class XPos final : public RotaryFamily {
 public:
  PosKind kind() const override { return PosKind::xpos; }
  // Checkpoints from before the field hold torchscale's default.
  void add_fields(Fields<ModelConfig>& rows) const override {
    rows.push_back(
        Field<ModelConfig>::of(ALIBI_MEMBER(ModelConfig, xpos_scale_base), "xpos_scale_base")
            .flag_help("--xpos-scale-base",
                       "xpos: gamma, the positions over which each pair decays by one "
                       "power of its zeta_i (torchscale's scale_base)")
            .as_role(Role::shape)
            .legacy_default()
            .only_if([](const ModelConfig& c) { return c.pos == PosKind::xpos; })
            .positive());
  }
  void bind(const ModelConfig& c, const ParamLayout& l, std::shared_ptr<Backend> be) override {
    max_from_anchor_ = int64_t(kMaxExponent / std::abs(xpos_decay(c).front()));
    gamma_ = c.xpos_scale_base;
    RotaryFamily::bind(c, l, std::move(be));
  }
  // The scales of the rows farthest from the anchor must stay in fp32's range.
  void qk_forward(float* q, float* k, int B, int NH, int T, int HS, int64_t pos0,
                  int64_t anchor) const override {
    const int64_t far = std::max(std::abs(pos0 - anchor), std::abs(pos0 + T - 1 - anchor));
    if (far > max_from_anchor_)
      usage_error(
          "--pos xpos: position ", far > std::abs(pos0 - anchor) ? pos0 + T - 1 : pos0, " is ", far,
          " positions from the middle of its attention span, past the ", max_from_anchor_,
          " where zeta^(n/gamma) leaves fp32's range at "
          "--xpos-scale-base ",
          gamma_, "; use windows or a KV cache of at most ", 2 * max_from_anchor_, " tokens");
    RotaryFamily::qk_forward(q, k, B, NH, T, HS, pos0, anchor);
  }

 private:
  int64_t max_from_anchor_ = 0;
  float gamma_ = 0.0f;
};

}  // namespace

std::vector<double> xpos_decay(const ModelConfig& c) {
  const int half = c.head_size() / 2;
  std::vector<double> d(static_cast<size_t>(half));
  for (int i = 0; i < half; ++i)
    d[size_t(i)] = std::log((double(i) / half + kZetaOffset) / (1.0 + kZetaOffset)) /
                   double(c.xpos_scale_base);
  return d;
}

std::unique_ptr<PositionMethod> make_xpos() { return std::make_unique<XPos>(); }

}  // namespace alibi
