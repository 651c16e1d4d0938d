#pragma once
// Naive attention references (double): tests and benchmarks only.
#include "kernels/attention.h"

namespace alibi::ref {

void attention_forward_naive(const AttnShape& s, const float* q, const float* k, const float* v,
                             const ScoreBias& bias, const AttnDropout& drop, float* out,
                             float* lse);
void attention_backward_naive(const AttnShape& s, const float* q, const float* k, const float* v,
                              const float* out, const float* lse, const float* dout,
                              const ScoreBias& bias, const AttnDropout& drop, float* dq,
                              float* dk, float* dv, float* dt5_table);

}  // namespace alibi::ref
