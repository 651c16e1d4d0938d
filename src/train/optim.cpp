#include "train/optim.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "core/error.h"

namespace alibi {

void adamw_step(ParamSet& params, const ParamSet& grads, ParamSet& m, ParamSet& v, float lr,
                int64_t t, const AdamWConfig& c) {
  Backend& be = params.backend();
  for (const ParamSet* s : std::initializer_list<const ParamSet*>{&grads, &m, &v})
    ALIBI_CHECK(std::string(s->backend().device()) == be.device(), "AdamW across devices");
  AdamWUpdate u{c.beta1, c.beta2, c.eps, 1.0f, 0.0f, 0.0f};
  const float bc1 = 1.0f - std::pow(c.beta1, float(t));
  u.bc2_sqrt = std::sqrt(1.0f - std::pow(c.beta2, float(t)));
  for (const TensorInfo& ti : params.layout->tensors) {
    const float tlr = lr * ti.lr_scale;
    u.step_size = tlr / bc1;
    u.decay = ti.decay ? 1.0f - tlr * c.weight_decay : 1.0f;
    be.adamw_update(params.data.data() + ti.offset, grads.data.data() + ti.offset,
                    m.data.data() + ti.offset, v.data.data() + ti.offset, int64_t(ti.numel), u);
  }
}

float clip_grad_norm(ParamSet& grads, float max_norm) {
  Backend& be = grads.backend();
  // Per-tensor sums in a fixed order; the result does not depend on the thread count.
  double total = 0.0;
  for (const TensorInfo& ti : grads.layout->tensors)
    total += be.sum_squares(grads.data.data() + ti.offset, int64_t(ti.numel), 0.0);
  const float norm = float(std::sqrt(total));
  const float coef = std::min(1.0f, max_norm / (norm + 1e-6f));
  if (coef < 1.0f) be.scale(grads.data.data(), coef, int64_t(grads.data.size()));
  return norm;
}

float LrSchedule::at(int64_t step) const {
  if (step < warmup) return lr * float(step + 1) / float(warmup);
  const float min_lr = lr * min_lr_ratio;
  const int64_t span = std::max<int64_t>(1, total - warmup);
  const double progress = std::min(1.0, double(step - warmup) / double(span));
  return min_lr + 0.5f * (lr - min_lr) * float(1.0 + std::cos(M_PI * progress));
}

}  // namespace alibi
