#pragma once
// The dense layers' forward/backward pairs (llm.c style): each backward adds into parameter
// gradients (+=, the caller zeroes) and into input gradients where noted. N = B*T rows.
// Every function here is the single entry point the model uses; the CPU versions live in
// kernels/cpu/, and a CUDA backend adds kernels/cuda/ behind the same declarations.
#include <cstdint>
#include <string>

#include "kernels/precision.h"

namespace alibi {

// Precision of the operands of gemm(), process-wide. fp32: oneDNN sgemm. bf16: A and B are
// rounded to bfloat16 (8-bit mantissa) and multiplied by oneDNN's bf16 matmul with fp32
// accumulation and fp32 C; everything else (master weights, softmax, LN, biases, optimizer)
// stays fp32. Default fp32. A Model built while bf16 is set also runs its fused attention's
// tile products in bf16 (AttnShape::precision).
// Throws UsageError naming --dtype when bf16 is asked for on a CPU without AVX512-BF16.
void set_matmul_precision(MatmulPrecision p);
// set_matmul_precision by the value of --dtype ("fp32" or "bf16"; anything else: UsageError).
void set_matmul_precision(const std::string& dtype);
MatmulPrecision matmul_precision();

// Row-major C = alpha * op(A) op(B) + beta * C in the precision set above; op is a transpose
// when the flag is set. The one place matrix products go through.
void gemm(bool transA, bool transB, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
          int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc);

// out (N,OC) = inp (N,IC) W^T + b; W (OC,IC), b (OC) or null.
void linear_forward(float* out, const float* inp, const float* W, const float* b, int64_t N,
                    int64_t IC, int64_t OC);
// dinp (N,IC) = dout W (overwritten, when non-null); dW += dout^T inp; db += colsum(dout).
void linear_backward(float* dinp, float* dW, float* db, const float* dout, const float* inp,
                     const float* W, int64_t N, int64_t IC, int64_t OC);

// out (N,C) = (inp - mean) * rstd * w + b; saves mean, rstd (N).
void layernorm_forward(float* out, float* mean, float* rstd, const float* inp, const float* w,
                       const float* b, int64_t N, int64_t C);
// dinp (N,C) += ...; dw, db (C) += ...
void layernorm_backward(float* dinp, float* dw, float* db, const float* dout, const float* inp,
                        const float* w, const float* mean, const float* rstd, int64_t N,
                        int64_t C);

// out = gelu_tanh(inp), n elements.
void gelu_forward(float* out, const float* inp, int64_t n);
// dinp = dout * gelu'(inp) (overwritten).
void gelu_backward(float* dinp, const float* inp, const float* dout, int64_t n);

// x (N,C) = scale * wte[tokens]; dwte (V,C) += scale * (scatter of dx by token).
void embedding_forward(float* x, const int32_t* tokens, const float* wte, int64_t N, int64_t C,
                       float scale);
void embedding_backward(float* dwte, const float* dx, const int32_t* tokens, int64_t N,
                        int64_t C, int64_t V, float scale);
// x (B,T,C) += wpe[pos0 + t]; dwpe += sum over b.
void posemb_forward(float* x, const float* wpe, int64_t B, int64_t T, int64_t C, int64_t pos0);
void posemb_backward(float* dwpe, const float* dx, int64_t B, int64_t T, int64_t C, int64_t pos0);

// qkv (B,T,3C) -> q, k, v (B,NH,T,HS) and back (dq, dk, dv -> dqkv, overwritten).
void split_heads(float* q, float* k, float* v, const float* qkv, int64_t B, int64_t T,
                 int64_t NH, int64_t HS);
void split_heads_backward(float* dqkv, const float* dq, const float* dk, const float* dv,
                          int64_t B, int64_t T, int64_t NH, int64_t HS);
// o (B,NH,T,HS) -> y (B,T,C), and its backward (overwrites do_).
void merge_heads(float* y, const float* o, int64_t B, int64_t T, int64_t NH, int64_t HS);
void merge_heads_backward(float* do_, const float* dy, int64_t B, int64_t T, int64_t NH,
                          int64_t HS);

// x (N,C) += dropout(branch): keep(n,c) = u01(hash64(seed, n, c)) >= p, kept values / (1-p).
// With p == 0 this is x += branch.
void residual_forward(float* x, const float* branch, int64_t N, int64_t C, float p, uint64_t seed);
// dbranch (N,C) = dropout mask applied to dx (overwritten).
void residual_backward(float* dbranch, const float* dx, int64_t N, int64_t C, float p,
                       uint64_t seed);

// Mean cross-entropy of logits (N,V) against targets (N); saves lse (N); returns the mean.
float crossentropy_forward(float* lse, const float* logits, const int32_t* targets, int64_t N,
                           int64_t V);
// logits (N,V) is overwritten by d(scale * mean loss)/d(logits).
void crossentropy_backward(float* logits, const float* lse, const int32_t* targets, int64_t N,
                           int64_t V, float scale);

}  // namespace alibi
