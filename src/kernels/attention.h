#pragma once
// Multi-head attention, causal or bidirectional, with an additive score bias computed on the fly.
//
//   s(i,j) = q_i . k_j / sqrt(HS) + bias_h(d),   d = pos(i) - j,  pos(i) = (Tk - Tq) + i
//   p(i,.) = softmax over the visible keys: j <= pos(i) (causal), every j < Tk (bidirectional)
//   out_i  = sum_j dropout(p(i,j)) v_j
//
// Bidirectional (AttnShape::causal false) biases depend on |d| and the side: alibi -m_h |d|;
// t5 as T5's bidirectional rule, half the buckets per direction: the table's rows
// 0..NB/2-1 hold keys at or before the query (d >= 0), rows NB/2.. keys after it (d < 0), and
// t5_bucket gives the bucket of |d| within a half (|d| >= t5_max_distance: the half's last).
//
// Query row i sits at absolute position Tk - Tq + i, so Tq == Tk is training / full forward and
// Tq < Tk is a chunk of new tokens attending to a cache. The bias never exists as a T x T
// tensor: alibi needs the NH slopes, t5 a (num_buckets, NH) table and a bucket rule.
//
// This header is the contract every implementation shares: the maths above and the types below.
//   kernels/cpu/attention_cpu.h            cpu::attention_forward / _backward: fused, tiled,
//                                          online softmax (FlashAttention-2 style); memory O(T);
//                                          the CPU backend's
//   kernels/cuda/attention.cu              the CUDA backend's: fused, fp32 in-kernel bias, one
//                                          warp per query (forward, dq) or key row (dk, dv);
//                                          built where nvcc is, not yet run on a GPU (docs/cuda.md)
//   kernels/reference/attention_ref.h      ref::attention_forward_naive / _backward_naive:
//                                          materialise the (Tq,Tk) scores in double; tests and
//                                          benchmarks only
// Tensors: q (B,NH,Tq,HS); k, v (B,NH,ldk,HS) of which the first Tk rows are used. The forward
// overwrites out (B,NH,Tq,HS) and lse (B,NH,Tq), the log-sum-exp of each score row; the
// backward, given dout (B,NH,Tq,HS), overwrites dq, dk, dv (the shapes of q, k, v) and, when the
// dbias is non-null, accumulates the gradient of the bias's parameters into it (+=): the t5
// table (num_buckets, NH), or the alibi slopes (NH), d(loss)/d(m_h) = -sum over (i, j) of
// dS(i, j) (i - j); both reduced in a fixed order, the same for any thread count.
#include <cstddef>
#include <cstdint>

#include "kernels/precision.h"

namespace alibi {

enum class BiasKind { none, alibi, t5 };

struct ScoreBias {
  BiasKind kind = BiasKind::none;
  const float* slopes = nullptr;      // (NH) alibi: bias = -slopes[h] * d
  const float* t5_table = nullptr;    // (num_buckets, NH) t5: bias = t5_table[bucket(d)*NH + h]
  const int32_t* t5_bucket = nullptr; // (t5_max_distance) bucket of distance d < t5_max_distance;
                                      // d >= t5_max_distance maps to num_buckets - 1
  int num_buckets = 0;
  int t5_max_distance = 0;

  static ScoreBias alibi(const float* slopes) {
    return {BiasKind::alibi, slopes, nullptr, nullptr, 0, 0};
  }
  static ScoreBias t5(const float* table, const int32_t* bucket, int num_buckets,
                      int max_distance) {
    return {BiasKind::t5, nullptr, table, bucket, num_buckets, max_distance};
  }
};

// Attention-probability dropout. keep(b,h,i,j) = u01(hash64(seed, b*NH+h, i, j)) >= p, kept
// probabilities scaled by 1/(1-p); softmax statistics (lse) are those of the undropped p.
struct AttnDropout {
  float p = 0.0f;
  uint64_t seed = 0;
};

struct AttnShape {
  int B = 0, NH = 0, Tq = 0, Tk = 0, HS = 0;
  int ldk = 0;  // rows allocated per (b,h) in k and v (>= Tk); 0 means Tk
  // Operands of the fused kernels' tile products. bf16 (needs AVX512-BF16): q, k, v, dO, the
  // probabilities and dS are rounded to bfloat16 as they enter a product, which accumulates in
  // fp32; the bias, the scores, the softmax statistics (max, sum, lse), D = rowsum(dO*O) and
  // every output stay fp32. The naive kernels ignore it (always double).
  MatmulPrecision precision = MatmulPrecision::fp32;
  bool causal = true;  // false: every query sees every key (encoders)
  // The length of the sequence the call is part of, for a bias that depends on it (alibi's
  // --alibi-interpolate): a cached call's is its KV cache's capacity; 0: Tk. Kernels ignore it.
  int context = 0;
  int kv_rows() const { return ldk > 0 ? ldk : Tk; }
  int context_len() const { return context > 0 ? context : Tk; }
  // Distances d = pos(i) - j a call can see: 0..Tk-1, and down to -(Tq-1) if bidirectional.
  int distances() const { return causal ? Tk : Tk + Tq - 1; }
};

// Scratch of a fused kernel, planned once (one allocation, before the step loop) for `threads`
// OpenMP threads: each thread carves its tiles from its own slice. A kernel refuses to run on
// more threads than the workspace was planned for, or with fewer floats than its shape needs.
struct AttnWorkspace {
  float* data = nullptr;
  size_t floats = 0;  // floats at data
  int threads = 0;    // OpenMP threads it was planned for
};

}  // namespace alibi
