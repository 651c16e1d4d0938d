// none: no position information at all; causal attention alone.
#include "position/position.h"

namespace alibi {
namespace {

class NoPosition final : public PositionMethod {
 public:
  PosKind kind() const override { return PosKind::none; }
};

}  // namespace

std::unique_ptr<PositionMethod> make_none() { return std::make_unique<NoPosition>(); }

}  // namespace alibi
