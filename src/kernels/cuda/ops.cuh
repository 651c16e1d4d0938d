#pragma once
// Launchers of the CUDA backend's kernels (ops.cu, attention.cu), each on `st`. Shapes and
// semantics are kernels/backend.h's; every reduction has a fixed order (no atomics on floats),
// so a run repeats bit for bit on the same GPU.
#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/backend.h"

namespace alibi::cuda {

using Stream = cudaStream_t;

// ---- ops.cu: element-wise and row kernels ---------------------------------------------------
void fill(Stream st, float* x, float v, int64_t n);
// Index of the first non-finite element into *first (device, preset to n by the launcher).
void first_nonfinite(Stream st, const float* x, int64_t n, unsigned long long* first);
void widen(Stream st, float* dst, const uint16_t* src, WeightType t, int64_t n);
// dst (n) = src rounded to bf16 (as 16-bit patterns).
void to_bf16(Stream st, uint16_t* dst, const float* src, int64_t n);
void add_bias(Stream st, float* out, const float* b, int64_t N, int64_t OC);
void colsum_add(Stream st, float* dst, const float* src, int64_t N, int64_t C);
void layernorm_forward(Stream st, float* out, float* mean, float* rstd, const float* inp,
                       const float* w, const float* b, int64_t N, int64_t C, float eps);
void layernorm_backward(Stream st, float* dinp, float* dw, float* db, const float* dout,
                        const float* inp, const float* w, const float* mean, const float* rstd,
                        int64_t N, int64_t C);
void gelu_forward(Stream st, float* out, const float* inp, int64_t n, Gelu g);
void gelu_backward(Stream st, float* dinp, const float* inp, const float* dout, int64_t n, Gelu g);
void embedding_forward(Stream st, float* x, const int32_t* tokens, WeightView wte, int64_t N,
                       int64_t C, float scale);
void embedding_backward(Stream st, float* dwte, const float* dx, const int32_t* tokens, int64_t N,
                        int64_t C, float scale);
void split_heads(Stream st, float* q, float* k, float* v, const float* qkv, int64_t B, int64_t T,
                 int64_t NH, int64_t HS);
void split_heads_backward(Stream st, float* dqkv, const float* dq, const float* dk,
                          const float* dv, int64_t B, int64_t T, int64_t NH, int64_t HS);
void merge_heads(Stream st, float* y, const float* o, int64_t B, int64_t T, int64_t NH,
                 int64_t HS);
void merge_heads_backward(Stream st, float* do_, const float* dy, int64_t B, int64_t T,
                          int64_t NH, int64_t HS);
void residual(Stream st, float* dst, const float* src, int64_t N, int64_t C, float p,
              uint64_t seed, bool add);
// Row log-sum-exps (lse) of logits (N,V), then the mean loss of the scored rows into *mean.
void crossentropy_forward(Stream st, float* lse, const float* logits, const int32_t* targets,
                          int64_t N, int64_t V, float* mean);
void crossentropy_block(Stream st, float* state, float* loss, const float* logits,
                        const int32_t* targets, int64_t N, int64_t cols, int64_t v0, int64_t V,
                        float* mean);
// scored: one device int of scratch (the count of rows with a target).
void crossentropy_backward(Stream st, float* logits, const float* lse, const int32_t* targets,
                           int64_t N, int64_t V, float scale, int* scored);
void token_losses(Stream st, float* loss, const float* logits, const float* lse,
                  const int32_t* targets, int64_t N, int64_t V);
void posemb_forward(Stream st, float* x, const float* wpe, int64_t B, int64_t T, int64_t C,
                    int64_t pos0);
void posemb_backward(Stream st, float* dwpe, const float* dx, int64_t B, int64_t T, int64_t C,
                     int64_t pos0);
void sinusoidal_add(Stream st, float* x, int B, int T, int C, int64_t pos0);
void rotary(Stream st, float* x, int B, int NH, int T, int HS, const Rotation& r);
void kv_rescale(Stream st, float* cache, int64_t rows, int64_t len, int64_t blocks, int HS,
                const double* decay, int64_t delta);
void adamw_update(Stream st, float* p, const float* g, float* m, float* v, int64_t n,
                  const AdamWUpdate& u);
// *out = start + the sum of x^2 in double, in a fixed tree order.
void sum_squares(Stream st, const float* x, int64_t n, double start, double* partials,
                 double* out);
constexpr int kSumBlocks = 256;  // partials sum_squares needs
void accumulate(Stream st, float* acc, const float* x, int64_t n);
void scale(Stream st, float* x, float s, int64_t n);

// ---- attention.cu ----------------------------------------------------------------------------
// Floats of workspace one call of shape s needs (D = rowsum(dO * O), and the per-key-row
// partials of the bias gradient for up to kMaxT5Buckets T5 buckets).
constexpr int kMaxT5Buckets = 32;
size_t attention_workspace_floats(const AttnShape& s);
void attention_forward(Stream st, const AttnShape& s, const float* q, const float* k,
                       const float* v, const ScoreBias& bias, const AttnDropout& drop,
                       float* out, float* lse);
void attention_backward(Stream st, const AttnShape& s, const float* q, const float* k,
                        const float* v, const float* out, const float* lse, const float* dout,
                        const ScoreBias& bias, const AttnDropout& drop, float* dq, float* dk,
                        float* dv, float* dbias, float* ws);

}  // namespace alibi::cuda
