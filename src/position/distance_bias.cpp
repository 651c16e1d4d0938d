#include "position/distance_bias.h"

#include "core/error.h"

namespace alibi {

void DistanceBias::bind(const ModelConfig& c, const ParamLayout& l, std::shared_ptr<Backend> be) {
  heads_ = c.heads;
  layers_ = c.layers;
  tables_.clear();
  tables_.resize(learned_ ? size_t(c.layers) : 1);
  n_ = 0;
  PositionMethod::bind(c, l, std::move(be));
}

void DistanceBias::plan(int64_t distances) {
  if (distances <= n_) return;
  n_ = distances;
  const size_t n = size_t(heads_) * size_t(n_);
  for (Table& t : tables_) {
    t.bias = DeviceArray<float>(backend_ptr(), n);
    if (learned_) t.grad = DeviceArray<float>(backend_ptr(), n);
    t.filled = false;
  }
}

const DistanceBias::Table& DistanceBias::table(const ParamSet& params, int t) const {
  Table& tb = tables_[size_t(t)];
  std::vector<float> k = key(params, t);
  if (!tb.filled || k != tb.key) {
    std::vector<float> h(size_t(heads_) * size_t(n_));
    fill(k, n_, n_, h.data());
    be().upload(tb.bias.data(), h.data(), h.size() * sizeof(float));
    tb.key = std::move(k);
    tb.filled = true;
  }
  return tb;
}

ScoreBias DistanceBias::score_bias(const ParamSet& params, int layer, const AttnShape& s,
                                   int64_t) const {
  const int64_t need = s.causal ? s.Tk : std::max(s.Tk, s.Tq);
  ALIBI_CHECK(need <= n_, "a call spanning ", need, " distances; ", pos_name(kind()),
              " planned ", n_);
  return ScoreBias::distance_table(table(params, learned_ ? layer : 0).bias.data(), int(n_));
}

Tensor DistanceBias::score_bias_grad(ParamSet&, int layer) const {
  if (!learned_) return {};
  Table& tb = tables_[size_t(layer)];
  const int64_t n = int64_t(heads_) * n_;
  be().fill(tb.grad.data(), 0.0f, n);
  return mat(tb.grad.data(), heads_, n_);
}

void DistanceBias::score_bias_backward(const ParamSet& params, ParamSet& grads) const {
  if (!learned_) return;
  std::vector<float> g(size_t(heads_) * size_t(n_));
  for (int t = 0; t < layers_; ++t) {
    const Table& tb = tables_[size_t(t)];
    ALIBI_CHECK(tb.filled && tb.key == key(params, t), pos_name(kind()),
                " backward of layer ", t, " without its forward");
    be().download(g.data(), tb.grad.data(), g.size() * sizeof(float));
    chain(tb.key, g.data(), n_, n_, t, grads);
  }
}

std::vector<float> DistanceBias::host(const ParamSet& set, size_t at, size_t n) const {
  std::vector<float> v(n);
  be().download(v.data(), set.data.data() + at, n * sizeof(float));
  return v;
}

void DistanceBias::add_to(ParamSet& set, size_t at, const std::vector<double>& v) const {
  std::vector<float> cur = host(set, at, v.size());
  for (size_t i = 0; i < v.size(); ++i) cur[i] += float(v[i]);
  be().upload(set.data.data() + at, cur.data(), cur.size() * sizeof(float));
}

}  // namespace alibi
