// kerple-log and kerple-power (Chi et al., NeurIPS 2022): conditionally positive definite
// kernels of the distance, learned per layer and head, read by the attention kernel from a
// table (distance_bias.h):
//   log    b_h(d) = -r1_h log(1 + r2_h d)
//   power  b_h(d) = -r1_h d^r2_h,  0 < r2_h <= 2
// r1, r2 start as KERPLE's reference (GPT-NeoX) draws them, U(0, 2) and U(0, 1), and are
// clamped to [0.01, ...) (r2 <= 2 for power) at the start and after every update, as that
// reference clamps them before each use.
#include <cmath>

#include "core/error.h"
#include "position/distance_bias.h"

namespace alibi {
namespace {

constexpr float kMinR = 0.01f;      // the reference's clamp
constexpr float kMaxPower = 2.0f;   // power: r2 in (0, 2] keeps the kernel CPD

class Kerple final : public DistanceBias {
 public:
  explicit Kerple(bool power) : DistanceBias(/*learned=*/true), power_(power) {}
  PosKind kind() const override { return power_ ? PosKind::kerple_power : PosKind::kerple_log; }

  // No weight decay (a position parameter, like T5's table); learning rate --lr.
  void add_params(const ModelConfig& c, ParamLayout& l) const override {
    l.add("kerple_r1", {c.layers, c.heads}, Init{Init::uniform, 1.0f, 1.0f}, false);
    l.add("kerple_r2", {c.layers, c.heads}, Init{Init::uniform, 0.5f, 0.5f}, false);
  }
  void check_params(const ModelConfig& c,
                    const std::function<const float*(const std::string&)>& tensor,
                    const std::string& where) const override {
    for (const char* name : {"kerple_r1", "kerple_r2"}) {
      const float* v = tensor(name);
      const bool r2 = std::string(name) == "kerple_r2";
      const float hi = r2 && power_ ? kMaxPower : INFINITY;
      for (int i = 0; i < c.layers * c.heads; ++i)
        if (!(v[i] >= kMinR && v[i] <= hi))
          usage_error(where, ": tensor '", name, "' holds ", v[i], " at layer ", i / c.heads,
                      " head ", i % c.heads, "; expected ",
                      hi == kMaxPower ? "a value in [0.01, 2]" : "a finite value >= 0.01",
                      " (", pos_name(kind()), "'s range)");
    }
  }
  void bind(const ModelConfig& c, const ParamLayout& l, std::shared_ptr<Backend> be) override {
    r1_ = l.at("kerple_r1").offset;
    r2_ = l.at("kerple_r2").offset;
    clamp_.assign(size_t(c.layers) * size_t(c.heads), 0.0f);
    DistanceBias::bind(c, l, std::move(be));
  }
  void project(ParamSet& p) const override {
    clamp(p, r1_, kMinR, INFINITY);
    clamp(p, r2_, kMinR, power_ ? kMaxPower : INFINITY);
  }

 protected:
  // [r1 of the layer's heads, r2 of them]
  void key_slices(int layer, ParamSlices& out) const override {
    const size_t at = size_t(layer) * size_t(heads_);
    out.add(r1_ + at, size_t(heads_));
    out.add(r2_ + at, size_t(heads_));
  }
  void fill(const float* k, int64_t n, int64_t ld, float* out) const override {
    for (int h = 0; h < heads_; ++h) {
      const double r1 = k[h], r2 = k[heads_ + h];
      for (int64_t d = 0; d < n; ++d)
        out[h * ld + d] = float(-r1 * shape(r2, double(d)));
    }
  }
  // log:   db/dr1 = -log(1 + r2 d),  db/dr2 = -r1 d / (1 + r2 d)
  // power: db/dr1 = -d^r2,           db/dr2 = -r1 d^r2 ln d   (0 at d = 0)
  void chain(const float* k, const float* g, int64_t n, int64_t ld,
             double* dkey) const override {
    double* d1 = dkey;
    double* d2 = dkey + heads_;
    for (int h = 0; h < heads_; ++h) {
      const double r1 = k[h], r2 = k[heads_ + h];
      for (int64_t d = 1; d < n; ++d) {
        const double gd = double(g[h * ld + d]), x = double(d), f = shape(r2, x);
        d1[h] -= gd * f;
        d2[h] -= gd * r1 * (power_ ? f * std::log(x) : x / (1.0 + r2 * x));
      }
    }
  }

 private:
  // log(1 + r2 d) or d^r2
  double shape(double r2, double d) const {
    return power_ ? (d == 0.0 ? 0.0 : std::pow(d, r2)) : std::log1p(r2 * d);
  }
  void clamp(ParamSet& p, size_t at, float lo, float hi) const {
    float* v = clamp_.data();
    const size_t n = clamp_.size();
    be().download(v, p.data.data() + at, n * sizeof(float));
    bool changed = false;
    for (size_t i = 0; i < n; ++i) {
      const float y = std::fmin(std::fmax(v[i], lo), hi);
      changed |= y != v[i];
      v[i] = y;
    }
    if (changed) be().upload(p.data.data() + at, v, n * sizeof(float));
  }
  bool power_;
  size_t r1_ = 0, r2_ = 0;              // offsets of kerple_r1, kerple_r2 (layers, NH)
  mutable std::vector<float> clamp_;    // (layers x NH) a tensor being clamped, on the host
};

}  // namespace

std::unique_ptr<PositionMethod> make_kerple_log() { return std::make_unique<Kerple>(false); }
std::unique_ptr<PositionMethod> make_kerple_power() { return std::make_unique<Kerple>(true); }

}  // namespace alibi
