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
#include "position/position.h"

namespace alibi {
namespace {

constexpr double kEps = 1e-6;     // the reference's normaliser epsilon
constexpr int kMaxWidth = 256;    // segments <= width + 1 <= the kernel's kMaxFireSegments

// One layer's parameters on the host, in the order of its key.
struct Mlp {
  std::vector<float> w1, b1, w2, b2;  // (W), (W), (NH, W), (NH)
  float c = 0, lmult = 0;
};

// The piecewise-linear form of an MLP on x >= 0: knots where a hidden unit turns on or off,
// each segment's active units and each head's line a x + b on it.
struct Pieces {
  std::vector<float> knots;               // (S - 1) ascending, > 0
  std::vector<std::vector<int>> active;   // (S) the hidden units on in each segment
  std::vector<double> slope, icept;       // (NH, S)
  int segments() const { return int(active.size()); }
};

Pieces pieces_of(const Mlp& m, int NH) {
  const int W = int(m.w1.size());
  Pieces p;
  for (int k = 0; k < W; ++k) {
    if (m.w1[k] == 0.0f) continue;
    const double t = -double(m.b1[k]) / double(m.w1[k]);
    if (t > 0.0 && std::isfinite(t)) p.knots.push_back(float(t));
  }
  std::sort(p.knots.begin(), p.knots.end());
  p.knots.erase(std::unique(p.knots.begin(), p.knots.end()), p.knots.end());
  const int S = int(p.knots.size()) + 1;
  p.active.resize(size_t(S));
  p.slope.assign(size_t(NH) * S, 0.0);
  p.icept.assign(size_t(NH) * S, 0.0);
  for (int s = 0; s < S; ++s) {
    // a point inside segment s: [knots[s - 1], knots[s]); segment 0 starts at x = 0
    const double lo = s == 0 ? 0.0 : double(p.knots[size_t(s - 1)]);
    const double hi = s == S - 1 ? lo + 2.0 : double(p.knots[size_t(s)]);
    const double x = 0.5 * (lo + hi);
    for (int k = 0; k < W; ++k)
      if (double(m.w1[k]) * x + double(m.b1[k]) > 0.0) p.active[size_t(s)].push_back(k);
    for (int h = 0; h < NH; ++h) {
      double a = 0.0, b = double(m.b2[h]);
      for (int k : p.active[size_t(s)]) {
        a += double(m.w2[size_t(h) * W + k]) * double(m.w1[k]);
        b += double(m.w2[size_t(h) * W + k]) * double(m.b1[k]);
      }
      p.slope[size_t(h) * S + s] = a;
      p.icept[size_t(h) * S + s] = b;
    }
  }
  return p;
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
                                  "normalises by psi(i) alone)")
                       .as_role(Role::shape)
                       .legacy_default()
                       .only_if(is_fire)
                       .at_least(0));
  }
  bool bias_sees_position() const override { return true; }
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
    for (const char* n : {"fire_w1", "fire_b1", "fire_w2", "fire_b2", "fire_c", "fire_lmult"})
      at_.push_back(l.at(n).offset);
    layers_.clear();
    layers_.resize(size_t(c.layers));
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
      y.key.clear();
      y.rows_for = {-1, -1};
    }
  }

  ScoreBias score_bias(const ParamSet& p, int layer, const AttnShape& s,
                       int64_t pos0) const override {
    const int64_t need = s.causal ? s.Tk : std::max(s.Tk, s.Tq);
    ALIBI_CHECK(need <= n_ && s.Tq <= n_, "a call spanning ", need, " distances; fire planned ",
                n_);
    Layer& y = layers_[size_t(layer)];
    refresh(p, layer, y);
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
    std::vector<float> key;  // the parameters the tables below come from
    Mlp mlp;
    Pieces pieces;
    double c = 0, thr = 0;   // |c|, |L_mult L|
    std::pair<int64_t, int64_t> rows_for{-1, -1};  // (pos0, Tq) of the rows
    DeviceArray<float> knots, lines, psi, rows, stats;
  };
  std::vector<float> host(const ParamSet& p, size_t at, size_t n) const {
    std::vector<float> v(n);
    be().download(v.data(), p.data.data() + at, n * sizeof(float));
    return v;
  }
  // The layer's parameters; where they changed, its pieces and psi tables anew.
  void refresh(const ParamSet& p, int layer, Layer& y) const;
  void fill_rows(Layer& y, int64_t pos0, int64_t Tq) const;

  int NH_ = 0, W_ = 0;
  double L_ = 0;
  std::vector<size_t> at_;  // offsets of fire_w1, b1, w2, b2, c, lmult
  int64_t n_ = 0;           // distances planned
  mutable std::vector<Layer> layers_;
};

void Fire::refresh(const ParamSet& p, int layer, Layer& y) const {
  const size_t l = size_t(layer), W = size_t(W_), NH = size_t(NH_);
  Mlp m;
  m.w1 = host(p, at_[0] + l * W, W);
  m.b1 = host(p, at_[1] + l * W, W);
  m.w2 = host(p, at_[2] + l * NH * W, NH * W);
  m.b2 = host(p, at_[3] + l * NH, NH);
  m.c = host(p, at_[4] + l, 1)[0];
  m.lmult = host(p, at_[5] + l, 1)[0];
  std::vector<float> key = m.w1;
  for (const auto* v : {&m.b1, &m.w2, &m.b2}) key.insert(key.end(), v->begin(), v->end());
  key.push_back(m.c);
  key.push_back(m.lmult);
  if (key == y.key) return;
  y.key = std::move(key);
  y.mlp = m;
  y.pieces = pieces_of(m, NH_);
  y.c = std::fabs(double(m.c));
  y.thr = std::fabs(double(m.lmult) * L_);
  const Pieces& pc = y.pieces;
  const size_t S = size_t(pc.segments());
  std::vector<float> lines(2 * NH * S);
  for (size_t i = 0; i < NH * S; ++i) {
    lines[i] = float(pc.slope[i]);
    lines[NH * S + i] = float(pc.icept[i]);
  }
  if (!pc.knots.empty())
    be().upload(y.knots.data(), pc.knots.data(), pc.knots.size() * sizeof(float));
  be().upload(y.lines.data(), lines.data(), lines.size() * sizeof(float));
  // psi(d) = log(|c| d + 1) and d psi / d|c| = d / (|c| d + 1), d < n
  std::vector<float> psi(2 * size_t(n_));
  for (int64_t d = 0; d < n_; ++d) {
    psi[size_t(d)] = float(std::log1p(y.c * double(d)));
    psi[size_t(n_ + d)] = float(double(d) / (y.c * double(d) + 1.0));
  }
  be().upload(y.psi.data(), psi.data(), psi.size() * sizeof(float));
  y.rows_for = {-1, -1};
}

// Row i at position pos = pos0 + i: n = max(thr, pos), r = 1 / (psi(n) + eps), and the
// derivatives of x = psi(|d|) r through r: d r/d|c| = -r^2 n / (|c| n + 1) (row_dc holds its
// negation), d r/d thr = -r^2 |c| / (|c| thr + 1) where thr > pos, else 0 (row_dthr, negated).
void Fire::fill_rows(Layer& y, int64_t pos0, int64_t Tq) const {
  std::vector<float> r(3 * size_t(n_), 0.0f);
  for (int64_t i = 0; i < Tq; ++i) {
    const double pos = double(pos0 + i), n = std::max(y.thr, pos);
    const double s = 1.0 / (std::log1p(y.c * n) + kEps);
    r[size_t(i)] = float(s);
    r[size_t(n_ + i)] = float(s * s * n / (y.c * n + 1.0));
    r[size_t(2 * n_ + i)] = y.thr > pos ? float(s * s * y.c / (y.c * y.thr + 1.0)) : 0.0f;
  }
  be().upload(y.rows.data(), r.data(), r.size() * sizeof(float));
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
  for (size_t l = 0; l < layers_.size(); ++l) {
    const Layer& y = layers_[l];
    const Pieces& pc = y.pieces;
    const size_t S = size_t(pc.segments());
    std::vector<float> st(NH * S * kFireStats);
    be().download(st.data(), y.stats.data(), st.size() * sizeof(float));
    std::vector<double> dw1(W, 0.0), db1(W, 0.0), dw2(NH * W, 0.0), db2(NH, 0.0), dc(1, 0.0),
        dl(1, 0.0);
    double dabs = 0.0, dthr = 0.0;
    for (size_t h = 0; h < NH; ++h)
      for (size_t s = 0; s < S; ++s) {
        const float* t = st.data() + (h * S + s) * kFireStats;
        const double s0 = t[0], s1 = t[1], a = pc.slope[h * S + s];
        db2[h] += s0;
        dabs += a * double(t[2]);
        dthr += a * double(t[3]);
        for (int k : pc.active[s]) {
          const double w2 = y.mlp.w2[h * W + size_t(k)];
          dw2[h * W + size_t(k)] += double(y.mlp.w1[size_t(k)]) * s1 + double(y.mlp.b1[size_t(k)]) * s0;
          dw1[size_t(k)] += w2 * s1;
          db1[size_t(k)] += w2 * s0;
        }
      }
    const double c = y.mlp.c, lm = double(y.mlp.lmult) * L_;
    dc[0] = (c > 0 ? 1.0 : c < 0 ? -1.0 : 0.0) * dabs;
    dl[0] = (lm > 0 ? 1.0 : lm < 0 ? -1.0 : 0.0) * L_ * dthr;
    const std::vector<double>* g[] = {&dw1, &db1, &dw2, &db2, &dc, &dl};
    for (size_t i = 0; i < 6; ++i) {
      const size_t at = at_[i] + l * g[i]->size();
      std::vector<float> cur = host(grads, at, g[i]->size());
      for (size_t j = 0; j < cur.size(); ++j) cur[j] += float((*g[i])[j]);
      be().upload(grads.data.data() + at, cur.data(), cur.size() * sizeof(float));
    }
  }
}

}  // namespace

std::unique_ptr<PositionMethod> make_fire() { return std::make_unique<Fire>(); }

}  // namespace alibi
