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
// tensor: alibi needs the NH slopes, t5 a (num_buckets, NH) table and a bucket rule, a distance
// table (KERPLE, Sandwich) NH values per distance the call spans, and fire a piecewise-linear
// function of x = psi(|d|) * row_scale(i) (FIRE's one-input MLP; position/fire.cpp) with O(T)
// tables. Distance biases are symmetric: a bidirectional call reads them at |d|.
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
// table (num_buckets, NH), the alibi slopes (NH), d(loss)/d(m_h) = -sum over (i, j) of
// dS(i, j) |i - j|, a distance table (NH, table_len): the sum of dS at each |d|, or fire's
// statistics (NH, segments, 4) (FireBias); all reduced in a fixed order, the same for any
// thread count.
#include <cstddef>
#include <cstdint>

#include "kernels/precision.h"
#include "kernels/tensor.h"

namespace alibi {

enum class BiasKind { none, alibi, t5, table, fire };

// FIRE's bias of head h at query row i and distance d (Li et al. 2024): f_h(x), x = psi[|d|] *
// row_scale[i], where f_h, a one-input MLP with ReLU, is piecewise linear: a_h[s] x + c_h[s] on
// segment s of x, between knots[s - 1] and knots[s] (segments - 1 knots, ascending). The
// backward's gradient is, per head and segment, four sums over the elements whose x falls there:
// [dS, dS x, dS dx/dc, dS dx/dthr], from which the method gets every parameter's (the chain rule
// through x = psi(|d|) / (psi(max(thr, pos)) + eps), psi(t) = log(c t + 1)).
struct FireBias {
  int segments = 0;
  const float* knots = nullptr;      // (segments - 1) ascending
  const float* slope = nullptr;      // (NH, segments) a_h[s]
  const float* icept = nullptr;      // (NH, segments) c_h[s]
  const float* psi = nullptr;        // (len) psi(|d|) for |d| < len
  const float* dpsi = nullptr;       // (len) d psi(|d|) / dc = |d| / (c |d| + 1)
  const float* row_scale = nullptr;  // (Tq) r_i = 1 / (psi(max(thr, pos_i)) + eps)
  const float* row_dc = nullptr;     // (Tq) r_i^2 n_i / (c n_i + 1), n_i = max(thr, pos_i)
  const float* row_dthr = nullptr;   // (Tq) r_i^2 c / (c thr + 1) where thr > pos_i, else 0
};

struct ScoreBias {
  BiasKind kind = BiasKind::none;
  const float* slopes = nullptr;      // (NH) alibi: bias = -slopes[h] * d
  const float* t5_table = nullptr;    // (num_buckets, NH) t5: bias = t5_table[bucket(d)*NH + h]
  const int32_t* t5_bucket = nullptr; // (t5_max_distance) bucket of distance d < t5_max_distance;
                                      // d >= t5_max_distance maps to num_buckets - 1
  int num_buckets = 0;
  int t5_max_distance = 0;
  // table: bias = table[h * table_len + |d|] (NH, table_len); fire: the psi tables' length. Both
  // cover every |d| of the call: table_len >= Tk (and >= Tq bidirectional).
  const float* table = nullptr;
  int table_len = 0;
  FireBias fire;

  static ScoreBias alibi(const float* slopes) {
    ScoreBias b;
    b.kind = BiasKind::alibi;
    b.slopes = slopes;
    return b;
  }
  static ScoreBias t5(const float* table, const int32_t* bucket, int num_buckets,
                      int max_distance) {
    ScoreBias b;
    b.kind = BiasKind::t5;
    b.t5_table = table;
    b.t5_bucket = bucket;
    b.num_buckets = num_buckets;
    b.t5_max_distance = max_distance;
    return b;
  }
  static ScoreBias distance_table(const float* table, int len) {
    ScoreBias b;
    b.kind = BiasKind::table;
    b.table = table;
    b.table_len = len;
    return b;
  }
  static ScoreBias fire_bias(const FireBias& f, int len) {
    ScoreBias b;
    b.kind = BiasKind::fire;
    b.fire = f;
    b.table_len = len;
    return b;
  }
  // The shape of the bias's gradient for NH heads (the dbias an AttentionBackward takes): (NH)
  // alibi, (num_buckets, NH) t5, (NH, table_len) table, (NH, segments, kFireStats) fire.
  Shape grad_shape(int NH) const;
};

constexpr int kFireStats = 4;  // per head and segment: dS, dS x, dS dx/dc, dS dx/dthr

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
  // The keys and values as stored (a KV cache's --kv-cache). f16, forward only: each tile is
  // widened to fp32 as it is read and its products run in fp32, whatever `precision` says.
  KvType kv = KvType::f32;
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
