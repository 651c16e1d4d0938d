// TEMPORARY (replaced by the attention split): the new API over the old entry points.
#include "kernels/cpu/attention_cpu.h"
#include "kernels/reference/attention_ref.h"

namespace alibi::cpu {
size_t attention_workspace_floats(const AttnShape& s, int threads) {
  return ::alibi::attention_workspace_floats(s, threads);
}
void attention_forward(const AttnShape& s, const float* q, const float* k, const float* v,
                       const ScoreBias& bias, const AttnDropout& drop, float* out, float* lse,
                       const AttnWorkspace& ws) {
  ::alibi::attention_forward(s, q, k, v, bias, drop, out, lse, ws.data);
}
void attention_backward(const AttnShape& s, const float* q, const float* k, const float* v,
                        const float* out, const float* lse, const float* dout,
                        const ScoreBias& bias, const AttnDropout& drop, float* dq, float* dk,
                        float* dv, float* dt5_table, const AttnWorkspace& ws) {
  ::alibi::attention_backward(s, q, k, v, out, lse, dout, bias, drop, dq, dk, dv, dt5_table, ws.data);
}
}  // namespace alibi::cpu
namespace alibi::ref {
void attention_forward_naive(const AttnShape& s, const float* q, const float* k, const float* v,
                             const ScoreBias& bias, const AttnDropout& drop, float* out,
                             float* lse) {
  ::alibi::attention_forward_naive(s, q, k, v, bias, drop, out, lse);
}
void attention_backward_naive(const AttnShape& s, const float* q, const float* k, const float* v,
                              const float* out, const float* lse, const float* dout,
                              const ScoreBias& bias, const AttnDropout& drop, float* dq,
                              float* dk, float* dv, float* dt5_table) {
  ::alibi::attention_backward_naive(s, q, k, v, out, lse, dout, bias, drop, dq, dk, dv, dt5_table);
}
}  // namespace alibi::ref
