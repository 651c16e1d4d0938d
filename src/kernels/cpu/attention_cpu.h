#pragma once
// The CPU's fused causal attention: tiled, online softmax (FlashAttention-2 style), the score
// bias computed on the fly, memory O(T). Maths, tensor shapes and types: kernels/attention.h.
// AttnShape::precision picks fp32 tile products or bf16 operands (AVX512-BF16).
#include <cstddef>
#include <span>

#include "kernels/attention.h"
#include "kernels/layer_ops.h"

namespace alibi::cpu {

// Floats of workspace the kernels need for shape s on `threads` OpenMP threads (depends on
// s.precision). Plan it once with the thread count the kernels will run on.
size_t attention_workspace_floats(const AttnShape& s, int threads);

// Both run omp_get_max_threads() threads and throw std::logic_error if that is more than
// ws.threads, or if ws.floats < attention_workspace_floats(s, omp_get_max_threads()). Their
// results do not depend on the thread count.
void attention_forward(const AttnShape& s, const float* q, const float* k, const float* v,
                       const ScoreBias& bias, const AttnDropout& drop, float* out, float* lse,
                       const AttnWorkspace& ws);

// Independent forwards (each its own shape, operands and workspace, all in precision p) in one
// parallel region instead of one region each: continuous batching's step, where each sequence
// attends to its own KV cache (Model::forward_batch). Each call's results equal
// attention_forward's on it alone, bit for bit: a tile's sums do not depend on the thread that
// computes it.
void attention_forward_all(std::span<const AttentionForward> calls, MatmulPrecision p);

void attention_backward(const AttnShape& s, const float* q, const float* k, const float* v,
                        const float* out, const float* lse, const float* dout,
                        const ScoreBias& bias, const AttnDropout& drop, float* dq, float* dk,
                        float* dv, float* dbias, const AttnWorkspace& ws);

}  // namespace alibi::cpu
