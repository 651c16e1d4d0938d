#pragma once
// AdamW (decoupled weight decay, as torch.optim.AdamW), global-norm clipping and the learning-rate
// schedule of docs/model.md; the arithmetic runs on the parameters' backend.
#include <cstdint>

#include "model/params.h"

namespace alibi {

struct AdamWConfig {
  float beta1 = 0.9f, beta2 = 0.95f, eps = 1e-8f, weight_decay = 0.1f;
};

// t is the 1-based step count used for bias correction.
void adamw_step(ParamSet& params, const ParamSet& grads, ParamSet& m, ParamSet& v, float lr,
                int64_t t, const AdamWConfig& c);

// Scales grads by min(1, max_norm / (norm + 1e-6)); returns the norm before clipping.
float clip_grad_norm(ParamSet& grads, float max_norm);

struct LrSchedule {
  float lr = 3e-4f;
  int64_t warmup = 100;
  int64_t total = 1000;
  float min_lr_ratio = 0.1f;
  float at(int64_t step) const;  // step is 0-based
};

}  // namespace alibi
