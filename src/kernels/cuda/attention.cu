// The CUDA fused attention (kernels/attention.h's maths): FlashAttention-style, the (Tq, Tk)
// scores never exist. One warp per query row in the forward and for dq, one warp per key row
// for dk and dv, so no two warps write one element and nothing needs atomics; the bias
// gradient is reduced from per-key-row partials in a fixed order. In bf16 precision, q, k, v,
// dO, the probabilities and dS are rounded to bf16 as they enter a product (the CPU backend's
// contract); every sum and softmax statistic is fp32.
//
// This is the first, plain version: products are warp dot products on the CUDA cores, not
// tensor-core tiles. docs/cuda.md says what has been measured on a GPU (nothing yet).
#include <cmath>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/ops.cuh"

namespace alibi::cuda {
namespace {

constexpr int kMaxPerLane = 32;  // channels per lane: head size up to 1,024 (the config's cap)
constexpr int kWarpsPerBlock = 4;

struct Bias {
  BiasKind kind;
  const float* slopes;
  const float* table;
  const int32_t* bucket;
  int num_buckets, max_distance, NH;
  bool causal;
  // bias_h(d) for d = pos(i) - j.
  __device__ float at(int h, int d) const {
    if (kind == BiasKind::alibi) return -slopes[h] * float(abs(d));
    if (kind == BiasKind::t5) return table[bucket_of(d) * NH + h];
    return 0.0f;
  }
  __device__ int bucket_of(int d) const {
    const int half = causal ? num_buckets : num_buckets / 2, a = abs(d);
    return (d < 0 ? half : 0) + (a < max_distance ? bucket[a] : half - 1);
  }
};

Bias make_bias(const ScoreBias& b, const AttnShape& s) {
  return {b.kind, b.slopes, b.t5_table, b.t5_bucket, b.num_buckets, b.t5_max_distance, s.NH,
          s.causal};
}

struct Geometry {
  int B, NH, Tq, Tk, HS, ldk;
  bool causal, bf16;
  float scale;
  __device__ int off() const { return Tk - Tq; }
  __device__ int last_key(int i) const { return causal ? off() + i : Tk - 1; }
  __device__ int first_query(int j) const { return causal ? max(0, j - off()) : 0; }
};

Geometry geometry(const AttnShape& s) {
  return {s.B, s.NH, s.Tq, s.Tk, s.HS, s.kv_rows(), s.causal,
          s.precision == MatmulPrecision::bf16, 1.0f / std::sqrt(float(s.HS))};
}

__device__ __forceinline__ float operand(float x, bool bf16) { return bf16 ? round_bf16(x) : x; }

// A row of HS floats spread over the warp: lane holds channels lane, lane + 32, ...
struct Row {
  float x[kMaxPerLane];
  __device__ void load(const float* p, int HS, bool bf16) {
    const int lane = threadIdx.x % kWarp;
#pragma unroll
    for (int r = 0; r < kMaxPerLane; ++r) {
      const int d = lane + r * kWarp;
      x[r] = d < HS ? operand(p[d], bf16) : 0.0f;
    }
  }
  __device__ void zero() {
#pragma unroll
    for (int r = 0; r < kMaxPerLane; ++r) x[r] = 0.0f;
  }
  __device__ float dot(const float* p, int HS, bool bf16) const {
    const int lane = threadIdx.x % kWarp;
    float s = 0.0f;
#pragma unroll
    for (int r = 0; r < kMaxPerLane; ++r) {
      const int d = lane + r * kWarp;
      if (d < HS) s += x[r] * operand(p[d], bf16);
    }
    return warp_sum(s);
  }
  // x = x * keep + f * p
  __device__ void axpy(float keep, float f, const float* p, int HS, bool bf16) {
    const int lane = threadIdx.x % kWarp;
#pragma unroll
    for (int r = 0; r < kMaxPerLane; ++r) {
      const int d = lane + r * kWarp;
      if (d < HS) x[r] = x[r] * keep + f * operand(p[d], bf16);
    }
  }
  __device__ void store(float* p, int HS, float mul) const {
    const int lane = threadIdx.x % kWarp;
#pragma unroll
    for (int r = 0; r < kMaxPerLane; ++r) {
      const int d = lane + r * kWarp;
      if (d < HS) p[d] = x[r] * mul;
    }
  }
};

__device__ __forceinline__ float drop_factor(const AttnDropout& drop, int bh, int i, int j) {
  if (drop.p == 0.0f) return 1.0f;
  const float u = u01(hash64(drop.seed, uint64_t(bh), uint64_t(i), uint64_t(j)));
  return u >= drop.p ? 1.0f / (1.0f - drop.p) : 0.0f;
}

__device__ __forceinline__ int warp_id() {
  return blockIdx.x * kWarpsPerBlock + threadIdx.x / kWarp;
}

// out_i = sum_j dropout(p_ij) v_j with an online softmax over the visible keys; lse_i saved.
__global__ void forward_k(Geometry g, const float* q, const float* k, const float* v, Bias bias,
                          AttnDropout drop, float* out, float* lse) {
  const int row = warp_id();  // (bh, i)
  if (row >= g.B * g.NH * g.Tq) return;
  const int bh = row / g.Tq, i = row % g.Tq, h = bh % g.NH;
  Row qi, acc;
  qi.load(q + int64_t(row) * g.HS, g.HS, g.bf16);
  acc.zero();
  const float* kb = k + int64_t(bh) * g.ldk * g.HS;
  const float* vb = v + int64_t(bh) * g.ldk * g.HS;
  float m = -INFINITY, l = 0.0f;
  for (int j = 0; j <= g.last_key(i); ++j) {
    const float s = qi.dot(kb + int64_t(j) * g.HS, g.HS, g.bf16) * g.scale +
                    bias.at(h, g.off() + i - j);
    const float m_new = fmaxf(m, s);
    const float corr = expf(m - m_new), p = expf(s - m_new);
    l = l * corr + p;
    acc.axpy(corr, operand(p, g.bf16) * drop_factor(drop, bh, i, j), vb + int64_t(j) * g.HS,
             g.HS, g.bf16);
    m = m_new;
  }
  acc.store(out + int64_t(row) * g.HS, g.HS, 1.0f / l);
  if (threadIdx.x % kWarp == 0) lse[row] = m + logf(l);
}

// D_i = dO_i . O_i
__global__ void rowdot_k(Geometry g, const float* dout, const float* out, float* D) {
  const int row = warp_id();
  if (row >= g.B * g.NH * g.Tq) return;
  Row o;
  o.load(out + int64_t(row) * g.HS, g.HS, false);
  const float d = o.dot(dout + int64_t(row) * g.HS, g.HS, false);
  if (threadIdx.x % kWarp == 0) D[row] = d;
}

// dS_ij = P_ij (z_ij dO_i . v_j - D_i) for one pair, given the score.
__device__ __forceinline__ float dscore(float s, float lse, float dpv, float z, float D) {
  return expf(s - lse) * (z * dpv - D);
}

__global__ void dq_k(Geometry g, const float* q, const float* k, const float* v,
                     const float* lse, const float* dout, const float* D, Bias bias,
                     AttnDropout drop, float* dq) {
  const int row = warp_id();
  if (row >= g.B * g.NH * g.Tq) return;
  const int bh = row / g.Tq, i = row % g.Tq, h = bh % g.NH;
  Row qi, doi, acc;
  qi.load(q + int64_t(row) * g.HS, g.HS, g.bf16);
  doi.load(dout + int64_t(row) * g.HS, g.HS, g.bf16);
  acc.zero();
  const float* kb = k + int64_t(bh) * g.ldk * g.HS;
  const float* vb = v + int64_t(bh) * g.ldk * g.HS;
  for (int j = 0; j <= g.last_key(i); ++j) {
    const float s = qi.dot(kb + int64_t(j) * g.HS, g.HS, g.bf16) * g.scale +
                    bias.at(h, g.off() + i - j);
    const float dpv = doi.dot(vb + int64_t(j) * g.HS, g.HS, g.bf16);
    const float ds = dscore(s, lse[row], dpv, drop_factor(drop, bh, i, j), D[row]);
    acc.axpy(1.0f, operand(ds, g.bf16), kb + int64_t(j) * g.HS, g.HS, g.bf16);
  }
  acc.store(dq + int64_t(row) * g.HS, g.HS, g.scale);
}

// dk_j, dv_j over the queries that see key j; the bias gradient's partials of this key row:
// alibi one float (sum of -dS |d|), t5 one per bucket.
__global__ void dkv_k(Geometry g, const float* q, const float* k, const float* v,
                      const float* lse, const float* dout, const float* D, Bias bias,
                      AttnDropout drop, float* dk, float* dv, float* partial) {
  const int row = warp_id();  // (bh, j)
  if (row >= g.B * g.NH * g.Tk) return;
  const int bh = row / g.Tk, j = row % g.Tk, h = bh % g.NH;
  const int lane = threadIdx.x % kWarp;
  Row kj, vj, dka, dva;
  kj.load(k + (int64_t(bh) * g.ldk + j) * g.HS, g.HS, g.bf16);
  vj.load(v + (int64_t(bh) * g.ldk + j) * g.HS, g.HS, g.bf16);
  dka.zero();
  dva.zero();
  const bool t5 = bias.kind == BiasKind::t5;
  float gsum = 0.0f;
  float* tp = t5 && partial ? partial + int64_t(row) * kMaxT5Buckets : nullptr;
  if (tp && lane == 0)
    for (int b = 0; b < kMaxT5Buckets; ++b) tp[b] = 0.0f;
  for (int i = g.first_query(j); i < g.Tq; ++i) {
    const int64_t qrow = int64_t(bh) * g.Tq + i;
    const int d = g.off() + i - j;
    const float s = kj.dot(q + qrow * g.HS, g.HS, g.bf16) * g.scale + bias.at(h, d);
    const float dpv = vj.dot(dout + qrow * g.HS, g.HS, g.bf16);
    const float z = drop_factor(drop, bh, i, j);
    const float p = expf(s - lse[qrow]);
    const float ds = p * (z * dpv - D[qrow]);
    dva.axpy(1.0f, operand(p * z, g.bf16), dout + qrow * g.HS, g.HS, g.bf16);
    dka.axpy(1.0f, operand(ds, g.bf16), q + qrow * g.HS, g.HS, g.bf16);
    if (bias.kind == BiasKind::alibi) gsum -= ds * float(abs(d));
    if (tp && lane == 0) tp[bias.bucket_of(d)] += ds;
  }
  dka.store(dk + (int64_t(bh) * g.ldk + j) * g.HS, g.HS, g.scale);
  dva.store(dv + (int64_t(bh) * g.ldk + j) * g.HS, g.HS, 1.0f);
  if (partial && !t5 && lane == 0) partial[row] = gsum;
}

// dbias[h] (alibi) or dbias[bucket * NH + h] (t5) += the partials over (b, j), in order.
__global__ void reduce_bias_k(Geometry g, const float* partial, bool t5, int num_buckets,
                              float* dbias) {
  const int e = blockIdx.x * blockDim.x + threadIdx.x;  // (bucket, h) or h
  if (e >= (t5 ? num_buckets : 1) * g.NH) return;
  const int h = e % g.NH, bucket = e / g.NH;
  float acc = 0.0f;
  for (int b = 0; b < g.B; ++b)
    for (int j = 0; j < g.Tk; ++j) {
      const int64_t row = (int64_t(b) * g.NH + h) * g.Tk + j;
      acc += t5 ? partial[row * kMaxT5Buckets + bucket] : partial[row];
    }
  dbias[e] += acc;
}

unsigned warp_blocks(int64_t rows) {
  return unsigned((rows + kWarpsPerBlock - 1) / kWarpsPerBlock);
}

}  // namespace

size_t attention_workspace_floats(const AttnShape& s) {
  const size_t rows_q = size_t(s.B) * s.NH * s.Tq, rows_k = size_t(s.B) * s.NH * s.Tk;
  return rows_q + rows_k * kMaxT5Buckets;
}

void attention_forward(Stream st, const AttnShape& s, const float* q, const float* k,
                       const float* v, const ScoreBias& bias, const AttnDropout& drop,
                       float* out, float* lse) {
  ALIBI_CHECK(s.HS <= kMaxPerLane * kWarp, "cuda attention: head size ", s.HS, " > 1024");
  const int64_t rows = int64_t(s.B) * s.NH * s.Tq;
  if (rows == 0) return;
  forward_k<<<warp_blocks(rows), kWarpsPerBlock * kWarp, 0, st>>>(
      geometry(s), q, k, v, make_bias(bias, s), drop, out, lse);
  ALIBI_CUDA_LAUNCHED();
}

void attention_backward(Stream st, const AttnShape& s, const float* q, const float* k,
                        const float* v, const float* out, const float* lse, const float* dout,
                        const ScoreBias& bias, const AttnDropout& drop, float* dq, float* dk,
                        float* dv, float* dbias, float* ws) {
  ALIBI_CHECK(s.HS <= kMaxPerLane * kWarp, "cuda attention: head size ", s.HS, " > 1024");
  ALIBI_CHECK(bias.kind != BiasKind::t5 || bias.num_buckets <= kMaxT5Buckets,
              "cuda attention: t5 with ", bias.num_buckets, " buckets; at most ", kMaxT5Buckets);
  const Geometry g = geometry(s);
  const Bias b = make_bias(bias, s);
  const int64_t rows_q = int64_t(s.B) * s.NH * s.Tq, rows_k = int64_t(s.B) * s.NH * s.Tk;
  float* D = ws;
  float* partial = dbias && bias.kind != BiasKind::none ? ws + rows_q : nullptr;
  const int threads = kWarpsPerBlock * kWarp;
  if (rows_q > 0) {
    rowdot_k<<<warp_blocks(rows_q), threads, 0, st>>>(g, dout, out, D);
    ALIBI_CUDA_LAUNCHED();
    dq_k<<<warp_blocks(rows_q), threads, 0, st>>>(g, q, k, v, lse, dout, D, b, drop, dq);
    ALIBI_CUDA_LAUNCHED();
  }
  if (rows_k > 0) {
    dkv_k<<<warp_blocks(rows_k), threads, 0, st>>>(g, q, k, v, lse, dout, D, b, drop, dk, dv,
                                                   partial);
    ALIBI_CUDA_LAUNCHED();
  }
  if (partial) {
    const bool t5 = bias.kind == BiasKind::t5;
    const int n = (t5 ? bias.num_buckets : 1) * s.NH;
    reduce_bias_k<<<(n + 127) / 128, 128, 0, st>>>(g, partial, t5, bias.num_buckets, dbias);
    ALIBI_CUDA_LAUNCHED();
  }
}

}  // namespace alibi::cuda
