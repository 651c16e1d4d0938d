#pragma once
// The CPU kernels behind CpuBackend (kernels/backend.h states what each op computes). They work
// on host memory and run OpenMP teams of omp_get_max_threads() threads; every reduction has a
// fixed order for a given thread count, so a seeded run is bit-identical when repeated on the
// same number of threads. The fused attention is in attention_cpu.h.
#include <cstdint>

#include "kernels/backend.h"

namespace alibi::cpu {

// ---- gemm_cpu.cpp: the one place matrix products go through ---------------------------------
// fp32: oneDNN sgemm. bf16: A and B rounded to bfloat16 and multiplied by oneDNN's bf16 matmul
// with fp32 accumulation and fp32 C (needs AVX512-BF16).
void gemm(MatmulPrecision p, bool transA, bool transB, int64_t M, int64_t N, int64_t K,
          float alpha, const float* A, int64_t lda, const float* B, int64_t ldb, float beta,
          float* C, int64_t ldc);
// out (N,OC) = inp (N,IC) W^T for W (OC,IC) stored in bf16: the bf16 gemm with W used where it
// lies (only inp is rounded), so it equals gemm(bf16, ...) on W widened to fp32.
void linear_bf16(float* out, const float* inp, const uint16_t* W, int64_t N, int64_t IC,
                 int64_t OC);
// dst (rows, cols) dense bf16 = src (rows, cols) with row stride ld, rounded to nearest even.
void to_bf16(uint16_t* dst, const float* src, int64_t rows, int64_t cols, int64_t ld);

// ---- packed_cpu.cpp: fp32 weights packed for inference --------------------------------------
// Bytes of an (OC, IC) fp32 matrix in the blocked layout oneDNN's matmul primitive reads in
// precision p (bf16 elements in bf16 precision, fp32 otherwise), or 0 where that layout is not
// the same for every row count (the weights then stay as they are).
size_t packed_bytes(int64_t OC, int64_t IC, MatmulPrecision p);
// dst (packed_bytes) = W (OC, IC) row-major, packed (and in bf16 precision rounded to bf16);
// returns the view of dst that linear_packed reads.
WeightView pack_weight(void* dst, const float* W, int64_t OC, int64_t IC, MatmulPrecision p);
// out (N, OC) = inp (N, IC) W^T (+ b) for W packed by pack_weight, accumulated in fp32. W packed
// in bf16: inp is rounded to bf16 first, as gemm's bf16 product rounds its operands.
void linear_packed(float* out, const float* inp, WeightView Wp, const float* b, int64_t N,
                   int64_t IC, int64_t OC);

// ---- ops_cpu.cpp: dense layers -----------------------------------------------------------------
// The ops of kernels/layer_ops.h (their shapes checked by Backend::run). W fp32, or bf16/f16
// (weights_cpu.cpp).
void linear_forward(MatmulPrecision p, const LinearForward& a);
void linear_backward(MatmulPrecision p, const LinearBackward& a);
// out (N,OC) += b (OC) on every row.
void add_bias(float* out, const float* b, int64_t N, int64_t OC);
void layernorm_forward(const LayerNormForward& a);
void layernorm_backward(const LayerNormBackward& a);
void gelu_forward(float* out, const float* inp, int64_t n, Gelu g);
void gelu_backward(float* dinp, const float* inp, const float* dout, int64_t n, Gelu g);
void embedding_forward(float* x, const int32_t* tokens, WeightView wte, int64_t N, int64_t C,
                       float scale);
void embedding_backward(float* dwte, const float* dx, const int32_t* tokens, int64_t N,
                        int64_t C, int64_t V, float scale);
void split_heads(float* q, float* k, float* v, const float* qkv, int64_t B, int64_t T,
                 int64_t NH, int64_t HS);
void split_heads_backward(float* dqkv, const float* dq, const float* dk, const float* dv,
                          int64_t B, int64_t T, int64_t NH, int64_t HS);
void merge_heads(float* y, const float* o, int64_t B, int64_t T, int64_t NH, int64_t HS);
void merge_heads_backward(float* do_, const float* dy, int64_t B, int64_t T, int64_t NH,
                          int64_t HS);
void residual_forward(float* x, const float* branch, int64_t N, int64_t C, float p, uint64_t seed);
void residual_backward(float* dbranch, const float* dx, int64_t N, int64_t C, float p,
                       uint64_t seed);
float crossentropy_forward(float* lse, const float* logits, const int32_t* targets, int64_t N,
                           int64_t V);
int64_t first_nonfinite(const float* x, int64_t n);
float crossentropy_block(float* state, float* loss, const float* logits, const int32_t* targets,
                         int64_t N, int64_t cols, int64_t v0, int64_t V);
void crossentropy_backward(float* logits, const float* lse, const int32_t* targets, int64_t N,
                           int64_t V, float scale);
void token_losses(float* loss, const float* logits, const float* lse, const int32_t* targets,
                  int64_t N, int64_t V);

// ---- weights_cpu.cpp: products and lookups on stored weights, widened to fp32 exactly -----------
// out (N,OC) = inp W^T + b for a bf16/f16 or block-quantized W, or an fp32 W at the rows that
// linear_forward gives to panel_product. In bf16 precision a bf16 W goes to linear_bf16 as it is;
// in int8 precision a block W goes to quant_int8_product. Otherwise a few rows (decoding) stream
// W once through fp32 dot products (quant_stream_product for the block formats), more rows go to
// panel_product, and in bf16 precision blocks of W's rows are widened into scratch for gemm.
void linear_forward_stored(MatmulPrecision p, float* out, const float* inp, WeightView W,
                           const float* b, int64_t N, int64_t IC, int64_t OC);
void embedding_forward_stored(float* x, const int32_t* tokens, WeightView wte, int64_t N,
                              int64_t C, float scale);
// dst (n) = the n stored elements at src, widened to fp32.
void widen(float* dst, const uint16_t* src, WeightType t, int64_t n);
// dst (n) = the n elements of w in any stored type, widened or dequantized.
void to_fp32(float* dst, WeightView w, int64_t n);

// ---- panel_cpu.cpp: batches of rows on stored weights -------------------------------------------
// out (N,OC) = inp (N,IC) W^T for a bf16/f16 or block-quantized W: panels of W's rows widened
// (to_fp32) into per-thread scratch that stays in cache, each multiplied by every input row in
// fp32; W read once. An fp32 W's panels are read in place. Each output one thread's sum in a fixed
// order, whatever the thread count.
void panel_product(float* out, const float* inp, WeightView W, int64_t N, int64_t IC, int64_t OC);

// ---- quant_cpu.cpp: the block formats (kernels/quant.h's values, in registers) ------------------
// dst (n) = the n elements at w (a block type), dequantized.
void dequantize_rows(float* dst, WeightView w, int64_t n);
// out (N,OC) = inp (N,IC) W^T for a block-quantized W (OC,IC), N <= 4: each output one thread's
// fp32 sum in a fixed order.
void quant_stream_product(float* out, const float* inp, WeightView W, int64_t N, int64_t IC,
                          int64_t OC);

// ---- quant_int8_cpu.cpp: int8 activations against the block formats (MatmulPrecision::int8) -----
// quant_act_cpu.cpp: rounds x (n, a multiple of 32) to 8 bits per block of 32, as llama.cpp's
// Q8_0: d = max|x| / 127, q = x times fl(1 / d) rounded to nearest even (0 where d is 0); per
// block d and s = sum q.
void quantize_activations(const float* x, int64_t n, int8_t* q, float* d, int32_t* s);
// out (N,OC) = q8(inp) (N,IC) W^T for W in Q8_0, Q4_0, Q4_K or Q6_K, any N, on AVX512-VNNI:
// integer dot products per block, scaled and summed in fp32 in a fixed order (each output one
// thread's). False, with nothing written, for another type or without VNNI.
bool quant_int8_product(float* out, const float* inp, WeightView W, int64_t N, int64_t IC,
                        int64_t OC);

// ---- position_cpu.cpp ------------------------------------------------------------------------
void posemb_forward(float* x, const float* wpe, int64_t B, int64_t T, int64_t C, int64_t pos0);
void posemb_backward(float* dwpe, const float* dx, int64_t B, int64_t T, int64_t C, int64_t pos0);
void sinusoidal_add(float* x, int B, int T, int C, int64_t pos0);
void rotary(float* x, int B, int NH, int T, int HS, const Rotation& r);
// Rows [0, len) of `blocks` blocks of `rows` rows: columns i, i + HS/2 times exp(delta decay[i]).
void kv_rescale(float* cache, int64_t rows, int64_t len, int64_t blocks, int HS,
                const double* decay, int64_t delta);

// ---- state_cpu.cpp: KV cache rows and the optimizer -------------------------------------------
void kv_append(float* cache, int64_t rows, int64_t row0, const float* x, int NH, int T, int HS);
void kv_append(uint16_t* cache, int64_t rows, int64_t row0, const float* x, int NH, int T, int HS);
void kv_move(float* dst, int64_t dst_rows, const float* src, int64_t src_rows, int64_t start,
             int64_t len, int64_t blocks, int HS);
void kv_move(uint16_t* dst, int64_t dst_rows, const uint16_t* src, int64_t src_rows, int64_t start,
             int64_t len, int64_t blocks, int HS);
void adamw_update(float* p, const float* g, float* m, float* v, int64_t n, const AdamWUpdate& u);
double sum_squares(const float* x, int64_t n, double start);
void accumulate(float* acc, const float* x, int64_t n);
void scale(float* x, float s, int64_t n);

}  // namespace alibi::cpu
