// sinusoidal: the fixed sinusoids of Vaswani et al. added to the token embeddings.
#include "position/position.h"

namespace alibi {
namespace {

class Sinusoidal final : public PositionMethod {
 public:
  PosKind kind() const override { return PosKind::sinusoidal; }
  bool keys_hold_position() const override { return true; }
  void bind(const ModelConfig& c, const ParamLayout& l, std::shared_ptr<Backend> be) override {
    C_ = c.d_model;
    PositionMethod::bind(c, l, std::move(be));
  }
  void embed_forward(float* x, int B, int T, int64_t pos0, const ParamSet&) const override {
    be().sinusoidal_add(x, B, T, C_, pos0);
  }

 private:
  int C_ = 0;
};

}  // namespace

std::unique_ptr<PositionMethod> make_sinusoidal() { return std::make_unique<Sinusoidal>(); }

}  // namespace alibi
