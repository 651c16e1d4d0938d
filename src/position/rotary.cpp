// rotary (RoFormer): q and k of every head rotated by position-dependent angles in every layer.
#include "core/error.h"
#include "position/position.h"

namespace alibi {
namespace {

class Rotary final : public PositionMethod {
 public:
  PosKind kind() const override { return PosKind::rotary; }
  void validate(const ModelConfig& c) const override {
    if (c.head_size() % 2 != 0)
      usage_error("--pos rotary needs an even head size; --d-model ", c.d_model, " / --heads ",
                  c.heads, " = ", c.head_size());
  }
  void qk_forward(float* q, float* k, int B, int NH, int T, int HS,
                  int64_t pos0) const override {
    be().rotary_forward(q, B, NH, T, HS, pos0);
    be().rotary_forward(k, B, NH, T, HS, pos0);
  }
  // The rotation is orthogonal: its backward is the inverse rotation of the gradients.
  void qk_backward(float* dq, float* dk, int B, int NH, int T, int HS,
                   int64_t pos0) const override {
    be().rotary_backward(dq, B, NH, T, HS, pos0);
    be().rotary_backward(dk, B, NH, T, HS, pos0);
  }
};

}  // namespace

std::unique_ptr<PositionMethod> make_rotary() { return std::make_unique<Rotary>(); }

}  // namespace alibi
