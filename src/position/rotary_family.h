#pragma once
// The rotary family (rotary.cpp, xpos.cpp): q and k of every head rotated pairwise by angles
// proportional to their position, in every layer, and for xpos scaled by a power of the position
// measured from the attention's anchor (position.h). The members differ only in their tables
// (rotary_tables, position.h), which bind() puts in the backend's memory once.
#include "core/error.h"
#include "kernels/device_array.h"
#include "position/position.h"

namespace alibi {

class RotaryFamily : public PositionMethod {
 public:
  bool keys_hold_position() const override { return true; }
  void validate(const ModelConfig& c) const override {
    if (c.head_size() % 2 != 0)
      usage_error("--pos ", pos_name(kind()), " needs an even head size; --d-model ", c.d_model,
                  " / --heads ", c.heads, " = ", c.head_size());
  }
  void bind(const ModelConfig& c, const ParamLayout& l, std::shared_ptr<Backend> be) override {
    const RotaryTables t = rotary_tables(c);
    freq_ = upload(t.freq, be);
    decay_ = upload(t.decay, be);
    mscale_ = float(t.mscale);
    PositionMethod::bind(c, l, std::move(be));
  }
  void qk_forward(float* q, float* k, int B, int NH, int T, int HS, int64_t pos0,
                  int64_t anchor) const override {
    be().rotary(q, B, NH, T, HS, rotation(pos0, anchor, +1, false));
    be().rotary(k, B, NH, T, HS, rotation(pos0, anchor, -1, false));
  }
  // Each op is a rotation times a diagonal scale: its backward is the inverse rotation of the
  // gradients, scaled the same.
  void qk_backward(float* dq, float* dk, int B, int NH, int T, int HS, int64_t pos0,
                   int64_t anchor) const override {
    be().rotary(dq, B, NH, T, HS, rotation(pos0, anchor, +1, true));
    be().rotary(dk, B, NH, T, HS, rotation(pos0, anchor, -1, true));
  }
  // A key scaled by exp(-decay (j - a)) is re-measured from a + delta by exp(decay delta).
  bool rebases_keys() const override { return decay_.size() > 0; }
  void rebase_keys(float* k, int64_t rows, int64_t len, int64_t blocks, int HS,
                   int64_t delta) const override {
    if (decay_.size() > 0 && delta != 0)
      be().kv_rescale(k, rows, len, blocks, HS, decay_.data(), delta);
  }

 private:
  static DeviceArray<double> upload(const std::vector<double>& v,
                                    const std::shared_ptr<Backend>& be) {
    DeviceArray<double> d(be, v.size());
    if (!v.empty()) be->upload(d.data(), v.data(), v.size() * sizeof(double));
    return d;
  }
  Rotation rotation(int64_t pos0, int64_t anchor, int power, bool backward) const {
    return Rotation{
        freq_.data(), decay_.size() > 0 ? decay_.data() : nullptr, mscale_, pos0, anchor, power,
        backward};
  }
  DeviceArray<double> freq_;   // (HS/2)
  DeviceArray<double> decay_;  // (HS/2) xpos; empty otherwise
  float mscale_ = 1.0f;
};

// xpos' ln(zeta_i) / gamma per pair (HS/2) of model c (xpos.cpp).
std::vector<double> xpos_decay(const ModelConfig& c);

}  // namespace alibi
