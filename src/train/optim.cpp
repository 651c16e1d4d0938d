#include "train/optim.h"

#include <cmath>

namespace alibi {

void adamw_step(ParamSet& params, const ParamSet& grads, ParamSet& m, ParamSet& v, float lr,
                int64_t t, const AdamWConfig& c) {
  const float bc1 = 1.0f - std::pow(c.beta1, float(t));
  const float bc2_sqrt = std::sqrt(1.0f - std::pow(c.beta2, float(t)));
  const float step_size = lr / bc1;
  for (const TensorInfo& ti : params.layout->tensors) {
    float* p = params.data.data() + ti.offset;
    const float* g = grads.data.data() + ti.offset;
    float* mm = m.data.data() + ti.offset;
    float* vv = v.data.data() + ti.offset;
    const float decay = ti.decay ? 1.0f - lr * c.weight_decay : 1.0f;
    const int64_t n = int64_t(ti.numel);
#pragma omp parallel for simd schedule(static)
    for (int64_t i = 0; i < n; ++i) {
      const float gi = g[i];
      p[i] *= decay;
      mm[i] = c.beta1 * mm[i] + (1.0f - c.beta1) * gi;
      vv[i] = c.beta2 * vv[i] + (1.0f - c.beta2) * gi * gi;
      p[i] -= step_size * mm[i] / (std::sqrt(vv[i]) / bc2_sqrt + c.eps);
    }
  }
}

float clip_grad_norm(ParamSet& grads, float max_norm) {
  // Per-tensor sums in a fixed order; the result does not depend on the thread count.
  double total = 0.0;
  for (const TensorInfo& ti : grads.layout->tensors) {
    const float* g = grads.data.data() + ti.offset;
    double s = 0.0;
    for (size_t i = 0; i < ti.numel; ++i) s += double(g[i]) * double(g[i]);
    total += s;
  }
  const float norm = float(std::sqrt(total));
  const float coef = std::min(1.0f, max_norm / (norm + 1e-6f));
  if (coef < 1.0f) {
    const int64_t n = int64_t(grads.data.size());
    float* g = grads.data.data();
#pragma omp parallel for simd schedule(static)
    for (int64_t i = 0; i < n; ++i) g[i] *= coef;
  }
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
