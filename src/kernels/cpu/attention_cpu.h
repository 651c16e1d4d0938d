#pragma once
// The fused causal attention on the CPU (kernels/attention.h has the maths and the types).
#include <cstddef>

#include "kernels/attention.h"

namespace alibi::cpu {

// Floats of scratch one call of shape s needs with `threads` OpenMP threads.
size_t attention_workspace_floats(const AttnShape& s, int threads);

void attention_forward(const AttnShape& s, const float* q, const float* k, const float* v,
                       const ScoreBias& bias, const AttnDropout& drop, float* out, float* lse,
                       const AttnWorkspace& ws);
void attention_backward(const AttnShape& s, const float* q, const float* k, const float* v,
                        const float* out, const float* lse, const float* dout,
                        const ScoreBias& bias, const AttnDropout& drop, float* dq, float* dk,
                        float* dv, float* dt5_table, const AttnWorkspace& ws);

}  // namespace alibi::cpu
