#pragma once
// The base of the score biases b_h(|d|) that depend on distance only (KERPLE, Sandwich): the
// attention kernel reads a table (NH, distances) of them (BiasKind::table, attention.h). A method
// says how its table is made from a few of its parameters (the table's key) and how the table's
// gradient reaches them; this class keeps the tables, one per layer (learned: each layer's own
// parameters) or one for every layer (fixed), planned once for the distances a model or cache
// spans, refilled on the host only when the key changes (an optimizer step), never per token.
// Memory: O(NH x distances) per table, never T x T.
#include <vector>

#include "kernels/device_array.h"
#include "position/param_slices.h"
#include "position/position.h"

namespace alibi {

class DistanceBias : public PositionMethod {
 public:
  void bind(const ModelConfig& c, const ParamLayout& l, std::shared_ptr<Backend> be) override;
  void plan(int64_t distances) override;
  ScoreBias score_bias(const ParamSet& params, int layer, const AttnShape& s,
                       int64_t pos0) const override;
  Tensor score_bias_grad(ParamSet& grads, int layer) const override;
  void score_bias_backward(const ParamSet& params, ParamSet& grads) const override;

 protected:
  // learned: a table per layer, from that layer's parameters, with a gradient; fixed: one table,
  // from the config alone.
  explicit DistanceBias(bool learned) : learned_(learned) {}
  // The parameters table t (a layer's, when learned) is made from: its key, read onto the host
  // before each forward and compared with what the table was filled from.
  virtual void key_slices(int /*t*/, ParamSlices& /*out*/) const {}
  // out (NH, ld): b_h(d) for d < n, h < NH, from the key.
  virtual void fill(const float* key, int64_t n, int64_t ld, float* out) const = 0;
  // dkey (the key's size, zeroed) = d(loss)/d(key), given g (NH, ld): d(loss)/d b_h(d), d < n,
  // summed in the order of h and d (the same for any thread count).
  virtual void chain(const float* /*key*/, const float* /*g*/, int64_t /*n*/, int64_t /*ld*/,
                     double* /*dkey*/) const {}

  int heads_ = 0;

 private:
  struct Table {
    DeviceArray<float> bias, grad;  // (NH, n_)
    ParamSlices slices;             // where its key is
    std::vector<float> key;         // what bias was filled from
    bool filled = false;
  };
  const Table& table(const ParamSet& params, int t) const;
  bool learned_;
  int layers_ = 0;
  int64_t n_ = 0;  // distances planned: each table's row length
  mutable std::vector<Table> tables_;
  // Host buffers, planned with the tables: a key as read now, a table (NH, n_) on its way to or
  // from the backend, the key's gradient and its float partner.
  mutable std::vector<float> key_now_, host_, key_scratch_;
  mutable std::vector<double> dkey_;
};

}  // namespace alibi
