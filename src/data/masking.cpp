#include "data/masking.h"

#include <cmath>

#include "core/error.h"
#include "core/rng.h"
#include "kernels/backend.h"

namespace alibi {

void mask_tokens(int32_t* tokens, int32_t* targets, int64_t n, const MaskSpec& spec,
                 uint64_t seed, int64_t pos0) {
  ALIBI_CHECK(spec.mask_token >= 1, "mask token ", spec.mask_token);
  for (int64_t i = 0; i < n; ++i) {
    const uint64_t h = hash64(seed, uint64_t(pos0 + i), 0x4D4C4Dull);  // "MLM"
    if (!(u01(h) < spec.rate)) {
      targets[i] = kIgnoreTarget;
      continue;
    }
    targets[i] = tokens[i];
    const uint64_t h2 = mix64(h);  // the corruption, independent of the choice
    const float u = u01(h2);
    if (u < 0.8f)
      tokens[i] = spec.mask_token;
    else if (u < 0.9f)
      tokens[i] = int32_t(mix64(h2) % uint64_t(spec.mask_token));
  }
}

void check_mask_rate(float rate, const char* flag) {
  if (!(rate > 0 && rate < 1))
    usage_error(flag, " ", rate, " must be in (0, 1): the share of positions masked (BERT: 0.15)");
}

}  // namespace alibi
