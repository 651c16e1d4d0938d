#pragma once
// The naive references of kernels/attention.h: every (Tq,Tk) score row materialised and summed
// in double, straight from the definition, sharing no code with a fused kernel (the bias
// included). Slow: tests and benchmarks only. AttnShape::precision is ignored.
#include "kernels/attention.h"

namespace alibi::ref {

void attention_forward_naive(const AttnShape& s, const float* q, const float* k, const float* v,
                             const ScoreBias& bias, const AttnDropout& drop, float* out,
                             float* lse);

// Recomputes everything from q, k, v; out and lse are not read, so the reference does not share
// a fused kernel's use of the saved statistics.
void attention_backward_naive(const AttnShape& s, const float* q, const float* k, const float* v,
                              const float* out, const float* lse, const float* dout,
                              const ScoreBias& bias, const AttnDropout& drop, float* dq,
                              float* dk, float* dv, float* dbias);

}  // namespace alibi::ref
