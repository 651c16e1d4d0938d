#include "position/distance_bias.h"

#include <algorithm>

#include "core/error.h"

namespace alibi {

void DistanceBias::bind(const ModelConfig& c, const ParamLayout& l, std::shared_ptr<Backend> be) {
  heads_ = c.heads;
  layers_ = c.layers;
  tables_.clear();
  tables_.resize(learned_ ? size_t(c.layers) : 1);
  size_t most = 0;
  for (size_t t = 0; t < tables_.size(); ++t) {
    key_slices(int(t), tables_[t].slices);
    tables_[t].key.assign(tables_[t].slices.size(), 0.0f);
    most = std::max(most, tables_[t].slices.size());
  }
  key_now_.assign(most, 0.0f);
  key_scratch_.assign(most, 0.0f);
  dkey_.assign(most, 0.0);
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
  host_.assign(n, 0.0f);
}

const DistanceBias::Table& DistanceBias::table(const ParamSet& params, int t) const {
  Table& tb = tables_[size_t(t)];
  const size_t k = tb.slices.size();
  tb.slices.gather(params, key_now_.data());
  if (!tb.filled || !std::equal(tb.key.begin(), tb.key.end(), key_now_.begin())) {
    fill(key_now_.data(), n_, n_, host_.data());
    be().upload(tb.bias.data(), host_.data(), host_.size() * sizeof(float));
    std::copy_n(key_now_.begin(), k, tb.key.begin());
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
  for (int t = 0; t < layers_; ++t) {
    const Table& tb = tables_[size_t(t)];
    tb.slices.gather(params, key_now_.data());
    ALIBI_CHECK(tb.filled && std::equal(tb.key.begin(), tb.key.end(), key_now_.begin()),
                pos_name(kind()), " backward of layer ", t, " without its forward");
    be().download(host_.data(), tb.grad.data(), host_.size() * sizeof(float));
    std::fill(dkey_.begin(), dkey_.end(), 0.0);
    chain(tb.key.data(), host_.data(), n_, n_, dkey_.data());
    tb.slices.add_to(grads, dkey_.data(), key_scratch_.data());
  }
}

}  // namespace alibi
