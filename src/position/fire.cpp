// fire (Li et al., ICLR 2024): a bias learned as a function of the normalised distance,
//   b_h(i, j) = f_h(x),  x = psi(|i - j|) / (psi(max(thr, i)) + eps),  psi(t) = log(|c| t + 1),
// f a one-input MLP, Linear(1, W) -> ReLU -> Linear(W, NH), thr = |L_mult L|; c, L_mult and the
// MLP learned per layer, L the training length (--fire-length), eps 1e-6. Parameters start as
// the reference implementation's: c = 0.1, L_mult = 1, the MLP as torch.nn.Linear's default
// (U(+-1/sqrt(fan in))). f is piecewise linear in x (a knot where each hidden unit turns on),
// so the attention kernel gets, per layer and call, the knots and each head's segment lines, the
// psi table (distances) and one normaliser per query row (BiasKind::fire, attention.h): O(T)
// memory, the MLP never evaluated per element. The kernel's gradient statistics per head and
// segment give every parameter's gradient by the chain rule, here, in double.
#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "kernels/device_array.h"
#include "position/param_slices.h"
#include "position/position.h"

namespace alibi {
namespace {

constexpr double kEps = 1e-6;     // the reference's normaliser epsilon
constexpr int kMaxWidth = 256;    // segments <= width + 1 <= the kernel's kMaxFireSegments

// One layer's parameters on the host: views of its key [w1, b1, w2, b2, c, L_mult].
struct Mlp {
  const float *w1, *b1, *w2, *b2;  // (W), (W), (NH, W), (NH)
  float c, lmult;
  Mlp(const float* key, int W, int NH)
      : w1(key), b1(key + W), w2(key + 2 * W), b2(key + 2 * W + NH * W),
        c(key[2 * W + NH * W + NH]), lmult(key[2 * W + NH * W + NH + 1]) {}
};
size_t key_size(int W, int NH) { return size_t(2 * W + NH * W + NH + 2); }

// The piecewise-linear form of an MLP on x >= 0: knots where a hidden unit turns on or off,
// each segment's active units and each head's line a x + b on it. Sized for W units once
// (reserve): made anew for every change of the parameters without allocating.
struct Pieces {
  std::vector<float> knots;    // (S - 1) ascending, > 0
  std::vector<int> active;     // (S, W): the first count[s] are the units on in segment s
  std::vector<int> count;      // (S)
  std::vector<double> slope, icept;  // (NH, S)
  int S = 0;
  int segments() const { return S; }
  void reserve(int W, int NH) {
    knots.reserve(size_t(W));
    active.assign(size_t(W + 1) * size_t(W), 0);
    count.assign(size_t(W + 1), 0);
    slope.assign(size_t(NH) * size_t(W + 1), 0.0);
    icept.assign(size_t(NH) * size_t(W + 1), 0.0);
  }
  const int* on(int s, int W) const { return active.data() + size_t(s) * size_t(W); }
};

void pieces_of(const Mlp& m, int W, int NH, Pieces& p) {
  p.knots.clear();
  for (int k = 0; k < W; ++k) {
    if (m.w1[k] == 0.0f) continue;
    const double t = -double(m.b1[k]) / double(m.w1[k]);
    if (t > 0.0 && std::isfinite(t)) p.knots.push_back(float(t));
  }
  std::sort(p.knots.begin(), p.knots.end());
  p.knots.erase(std::unique(p.knots.begin(), p.knots.end()), p.knots.end());
  const int S = int(p.knots.size()) + 1;
  p.S = S;
  for (int s = 0; s < S; ++s) {
    // a point inside segment s: [knots[s - 1], knots[s]); segment 0 starts at x = 0
    const double lo = s == 0 ? 0.0 : double(p.knots[size_t(s - 1)]);
    const double hi = s == S - 1 ? lo + 2.0 : double(p.knots[size_t(s)]);
    const double x = 0.5 * (lo + hi);
    int* on = p.active.data() + size_t(s) * size_t(W);
    int& n = p.count[size_t(s)];
    n = 0;
    for (int k = 0; k < W; ++k)
      if (double(m.w1[k]) * x + double(m.b1[k]) > 0.0) on[n++] = k;
    for (int h = 0; h < NH; ++h) {
      double a = 0.0, b = double(m.b2[h]);
      for (int i = 0; i < n; ++i) {
        a += double(m.w2[size_t(h) * W + on[i]]) * double(m.w1[on[i]]);
        b += double(m.w2[size_t(h) * W + on[i]]) * double(m.b1[on[i]]);
      }
      p.slope[size_t(h) * S + s] = a;
      p.icept[size_t(h) * S + s] = b;
    }
  }
}

class Fire final : public PositionMethod {
 public:
  PosKind kind() const override { return PosKind::fire; }
  void add_fields(Fields<ModelConfig>& rows) const override {
    using F = Field<ModelConfig>;
    const auto is_fire = [](const ModelConfig& c) { return c.pos == PosKind::fire; };
    rows.push_back(F::of(ALIBI_MEMBER(ModelConfig, fire_width), "fire_width")
                       .flag_help("--fire-width", "fire: hidden units of the MLP (FIRE's 32)")
                       .as_role(Role::shape)
                       .legacy_default()
                       .only_if(is_fire)
                       .at_least(1)
                       .check([](double v) { return v <= kMaxWidth; }, "must be at most 256"));
    rows.push_back(F::of(ALIBI_MEMBER(ModelConfig, fire_length), "fire_length")
                       .flag_help("--fire-length",
                                  "fire: L of the threshold |L_mult L| below which positions are "
                                  "not normalised (0: --seq-len; a model built with 0 "
                                  "normalises by psi(i) alone: decoders only)")
                       .as_role(Role::shape)
                       .legacy_default()
                       .only_if(is_fire)
                       .at_least(0));
  }
  // An encoder's query 0 sees keys after it: with thr = 0 its normaliser is psi(0) + eps = 1e-6,
  // so x reaches ~1e6 and its biases swamp fp32 scores (a one-hot row whose dS, rounding alone,
  // meets dx/d|c| ~ 1e6 in the gradient of c). A decoder's row 0 sees distance 0 alone.
  void validate(const ModelConfig& c) const override {
    if (!c.causal && c.fire_length == 0)
      usage_error(
          "--pos fire with --causal false needs --fire-length of at least 1, not 0: "
          "with 0, query 0 divides its distances to later keys by psi(0) + 1e-6");
  }
  bool bias_sees_position() const override { return true; }
  bool bias_per_call() const override { return true; }
  void fill_defaults(ModelConfig& c, int seq_len) const override {
    if (c.fire_length == 0) c.fire_length = seq_len;
  }
  void add_params(const ModelConfig& c, ParamLayout& l) const override {
    const float w = 1.0f / std::sqrt(float(c.fire_width));
    l.add("fire_w1", {c.layers, c.fire_width}, Init{Init::uniform, 1.0f}, false);
    l.add("fire_b1", {c.layers, c.fire_width}, Init{Init::uniform, 1.0f}, false);
    l.add("fire_w2", {c.layers, c.heads, c.fire_width}, Init{Init::uniform, w}, false);
    l.add("fire_b2", {c.layers, c.heads}, Init{Init::uniform, w}, false);
    l.add("fire_c", {c.layers}, Init{Init::zeros, 0.0f, 0.1f}, false);
    l.add("fire_lmult", {c.layers}, Init{Init::zeros, 0.0f, 1.0f}, false);
  }
  void bind(const ModelConfig& c, const ParamLayout& l, std::shared_ptr<Backend> be) override {
    NH_ = c.heads;
    W_ = c.fire_width;
    L_ = double(c.fire_length);
    const size_t K = key_size(W_, NH_);
    layers_.clear();
    layers_.resize(size_t(c.layers));
    for (size_t i = 0; i < layers_.size(); ++i) {
      Layer& y = layers_[i];
      const size_t W = size_t(W_), NH = size_t(NH_);
      // the key's order: w1, b1, w2, b2, c, L_mult of layer i
      y.slices.add(l.at("fire_w1").offset + i * W, W);
      y.slices.add(l.at("fire_b1").offset + i * W, W);
      y.slices.add(l.at("fire_w2").offset + i * NH * W, NH * W);
      y.slices.add(l.at("fire_b2").offset + i * NH, NH);
      y.slices.add(l.at("fire_c").offset + i, 1);
      y.slices.add(l.at("fire_lmult").offset + i, 1);
      y.key.assign(K, 0.0f);
      y.pieces.reserve(W_, NH_);
    }
    const size_t S = size_t(W_) + 1;
    key_now_.assign(K, 0.0f);
    key_scratch_.assign(K, 0.0f);
    dkey_.assign(K, 0.0);
    lines_.assign(2 * size_t(NH_) * S, 0.0f);
    stats_.assign(size_t(NH_) * S * kFireStats, 0.0f);
    n_ = 0;
    PositionMethod::bind(c, l, std::move(be));
  }
  void plan(int64_t distances) override {
    if (distances <= n_) return;
    n_ = distances;
    const size_t S = size_t(kMaxWidth) + 1, n = size_t(n_);
    for (Layer& y : layers_) {
      y.knots = DeviceArray<float>(backend_ptr(), S);
      y.lines = DeviceArray<float>(backend_ptr(), 2 * size_t(NH_) * S);
      y.psi = DeviceArray<float>(backend_ptr(), 2 * n);
      y.rows = DeviceArray<float>(backend_ptr(), 3 * n);
      y.stats = DeviceArray<float>(backend_ptr(), size_t(NH_) * S * kFireStats);
      y.filled = false;
      y.rows_for = {-1, -1};
    }
    host_.assign(3 * n, 0.0f);
  }

  ScoreBias score_bias(const ParamSet& p, int layer, const AttnShape& s,
                       int64_t pos0) const override {
    const int64_t need = s.causal ? s.Tk : std::max(s.Tk, s.Tq);
    ALIBI_CHECK(need <= n_ && s.Tq <= n_, "a call spanning ", need, " distances; fire planned ",
                n_);
    Layer& y = layers_[size_t(layer)];
    refresh(p, y);
    if (y.rows_for != std::pair<int64_t, int64_t>{pos0, s.Tq}) fill_rows(y, pos0, s.Tq);
    FireBias f;
    f.segments = y.pieces.segments();
    f.knots = y.knots.data();
    f.slope = y.lines.data();
    f.icept = y.lines.data() + size_t(NH_) * f.segments;
    f.psi = y.psi.data();
    f.dpsi = y.psi.data() + size_t(n_);
    f.row_scale = y.rows.data();
    f.row_dc = y.rows.data() + size_t(n_);
    f.row_dthr = y.rows.data() + 2 * size_t(n_);
    return ScoreBias::fire_bias(f, int(n_));
  }
  Tensor score_bias_grad(ParamSet&, int layer) const override {
    Layer& y = layers_[size_t(layer)];
    const int S = y.pieces.segments();
    be().fill(y.stats.data(), 0.0f, int64_t(NH_) * S * kFireStats);
    return Tensor(y.stats.data(), {NH_, S, kFireStats});
  }
  void score_bias_backward(const ParamSet&, ParamSet& grads) const override;

 private:
  struct Layer {
    ParamSlices slices;      // where its parameters are
    std::vector<float> key;  // the parameters the tables below come from
    bool filled = false;
    Pieces pieces;
    double c = 0, thr = 0;   // |c|, |L_mult L|
    std::pair<int64_t, int64_t> rows_for{-1, -1};  // (pos0, Tq) of the rows
    DeviceArray<float> knots, lines, psi, rows, stats;
  };
  // The layer's parameters; where they changed, its pieces and psi tables anew.
  void refresh(const ParamSet& p, Layer& y) const;
  void fill_rows(Layer& y, int64_t pos0, int64_t Tq) const;

  int NH_ = 0, W_ = 0;
  double L_ = 0;
  int64_t n_ = 0;           // distances planned
  mutable std::vector<Layer> layers_;
  // Host buffers planned by bind and plan: a key as read now and its gradient (with a float
  // partner), the segment lines, the psi or row tables (3 n), the gradient statistics.
  mutable std::vector<float> key_now_, key_scratch_, lines_, host_, stats_;
  mutable std::vector<double> dkey_;
};

void Fire::refresh(const ParamSet& p, Layer& y) const {
  const size_t NH = size_t(NH_);
  y.slices.gather(p, key_now_.data());
  if (y.filled && std::equal(y.key.begin(), y.key.end(), key_now_.begin())) return;
  std::copy(key_now_.begin(), key_now_.end(), y.key.begin());
  y.filled = true;
  const Mlp m(y.key.data(), W_, NH_);
  pieces_of(m, W_, NH_, y.pieces);
  y.c = std::fabs(double(m.c));
  y.thr = std::fabs(double(m.lmult) * L_);
  const Pieces& pc = y.pieces;
  const size_t S = size_t(pc.segments());
  for (size_t i = 0; i < NH * S; ++i) {
    lines_[i] = float(pc.slope[i]);
    lines_[NH * S + i] = float(pc.icept[i]);
  }
  if (!pc.knots.empty())
    be().upload(y.knots.data(), pc.knots.data(), pc.knots.size() * sizeof(float));
  be().upload(y.lines.data(), lines_.data(), 2 * NH * S * sizeof(float));
  // psi(d) = log(|c| d + 1) and d psi / d|c| = d / (|c| d + 1), d < n
  float* psi = host_.data();
  for (int64_t d = 0; d < n_; ++d) {
    psi[size_t(d)] = float(std::log1p(y.c * double(d)));
    psi[size_t(n_ + d)] = float(double(d) / (y.c * double(d) + 1.0));
  }
  be().upload(y.psi.data(), psi, 2 * size_t(n_) * sizeof(float));
  y.rows_for = {-1, -1};
}

// Row i at position pos = pos0 + i: n = max(thr, pos), r = 1 / (psi(n) + eps), and the
// derivatives of x = psi(|d|) r through r: d r/d|c| = -r^2 n / (|c| n + 1) (row_dc holds its
// negation), d r/d thr = -r^2 |c| / (|c| thr + 1) where thr > pos, else 0 (row_dthr, negated).
void Fire::fill_rows(Layer& y, int64_t pos0, int64_t Tq) const {
  float* r = host_.data();
  std::fill(host_.begin(), host_.end(), 0.0f);
  for (int64_t i = 0; i < Tq; ++i) {
    const double pos = double(pos0 + i), n = std::max(y.thr, pos);
    const double s = 1.0 / (std::log1p(y.c * n) + kEps);
    r[size_t(i)] = float(s);
    r[size_t(n_ + i)] = float(s * s * n / (y.c * n + 1.0));
    r[size_t(2 * n_ + i)] = y.thr > pos ? float(s * s * y.c / (y.c * y.thr + 1.0)) : 0.0f;
  }
  be().upload(y.rows.data(), r, host_.size() * sizeof(float));
  y.rows_for = {pos0, Tq};
}

// From each head's and segment's statistics [sum dS, sum dS x, sum dS dx/d|c|, sum dS dx/dthr]
// of segment s with line a_hs x + b_hs, a_hs = sum_{k on} w2_hk w1_k, b_hs = sum_{k on} w2_hk b1_k
// + b2_h:
//   d w2_hk = sum_{s: k on} (w1_k S1 + b1_k S0)    d w1_k = sum_h sum_{s: k on} w2_hk S1
//   d b1_k  = sum_h sum_{s: k on} w2_hk S0         d b2_h = sum_s S0
//   d|c|    = sum_h sum_s a_hs S2                  d thr  = sum_h sum_s a_hs S3
// then dc = sign(c) d|c| and dL_mult = sign(L_mult L) L dthr; in a fixed order, in double.
void Fire::score_bias_backward(const ParamSet&, ParamSet& grads) const {
  const size_t W = size_t(W_), NH = size_t(NH_);
  for (Layer& y : layers_) {
    const Mlp m(y.key.data(), W_, NH_);
    const Pieces& pc = y.pieces;
    const size_t S = size_t(pc.segments());
    const float* st = stats_.data();
    be().download(stats_.data(), y.stats.data(), NH * S * kFireStats * sizeof(float));
    std::fill(dkey_.begin(), dkey_.end(), 0.0);
    double* dw1 = dkey_.data();  // the key's order: w1, b1, w2, b2, c, L_mult
    double* db1 = dw1 + W;
    double* dw2 = db1 + W;
    double* db2 = dw2 + NH * W;
    double dabs = 0.0, dthr = 0.0;
    for (size_t h = 0; h < NH; ++h)
      for (size_t s = 0; s < S; ++s) {
        const float* t = st + (h * S + s) * kFireStats;
        const double s0 = t[0], s1 = t[1], a = pc.slope[h * S + s];
        db2[h] += s0;
        dabs += a * double(t[2]);
        dthr += a * double(t[3]);
        const int* on = pc.on(int(s), W_);
        for (int i = 0; i < pc.count[s]; ++i) {
          const size_t k = size_t(on[i]);
          const double w2 = m.w2[h * W + k];
          dw2[h * W + k] += double(m.w1[k]) * s1 + double(m.b1[k]) * s0;
          dw1[k] += w2 * s1;
          db1[k] += w2 * s0;
        }
      }
    const double c = m.c, lm = double(m.lmult) * L_;
    db2[NH] = (c > 0 ? 1.0 : c < 0 ? -1.0 : 0.0) * dabs;
    db2[NH + 1] = (lm > 0 ? 1.0 : lm < 0 ? -1.0 : 0.0) * L_ * dthr;
    y.slices.add_to(grads, dkey_.data(), key_scratch_.data());
  }
}

}  // namespace

std::unique_ptr<PositionMethod> make_fire() { return std::make_unique<Fire>(); }

}  // namespace alibi
