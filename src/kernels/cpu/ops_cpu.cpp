// The CPU dense layers (kernels/cpu/ops_cpu.h): the products go through gemm() (gemm_cpu.cpp),
// OpenMP + vectorised loops do the rest.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/error.h"
#include "core/rng.h"
#include "kernels/cpu/vec_math.h"
#include "kernels/cpu/ops_cpu.h"

namespace alibi::cpu {
namespace {

// Column sums are reduced in blocks of this many channels, rows in ascending order: the result
// does not depend on the thread count, and each thread streams whole cache lines.
constexpr int64_t kColBlock = 64;

// Below this many elements a loop runs on one thread: waking a team costs more than the work
// (single-token decoding runs ~20 such loops per layer). On `parallel for simd` the condition is
// `if (parallel : ...)`: without the modifier it applies to the simd too (OpenMP 5.0), and GCC
// then runs the loop scalar below the threshold.
constexpr int64_t kParallelMin = 1 << 15;
// Rows of inputs for which fp32 weights go through panel_product instead of sgemm: at 4-24 rows
// sgemm packs W for few rows, and the panels ran at 1.1-2x its rate; at 2-3 rows and from 32 on,
// sgemm was faster (768 x 256, 1,024 x 256 and 4,096 x 1,024; docs/serve.md, bench/bench_batch).
constexpr int64_t kPanelRowsFp32Min = 4, kPanelRowsFp32Max = 24;

// dst (C) += sum over rows of src (N,C).
void colsum_add(float* dst, const float* src, int64_t N, int64_t C) {
  const int64_t nblocks = (C + kColBlock - 1) / kColBlock;
#pragma omp parallel for schedule(static)
  for (int64_t blk = 0; blk < nblocks; ++blk) {
    const int64_t c0 = blk * kColBlock, c1 = std::min(C, c0 + kColBlock);
    float acc[kColBlock] = {};
    for (int64_t n = 0; n < N; ++n) {
      const float* r = src + n * C;
#pragma omp simd
      for (int64_t c = c0; c < c1; ++c) acc[c - c0] += r[c];
    }
    for (int64_t c = c0; c < c1; ++c) dst[c] += acc[c - c0];
  }
}

inline float dropout_scale(uint64_t seed, int64_t n, int64_t c, float p, float inv_keep) {
  return u01(hash64(seed, uint64_t(n), uint64_t(c))) >= p ? inv_keep : 0.0f;
}

constexpr float kGeluC = 0.7978845608028654f;  // sqrt(2/pi)
constexpr float kGeluA = 0.044715f;
constexpr float kInvSqrt2 = 0.7071067811865476f;
constexpr float kInvSqrt2Pi = 0.3989422804014327f;  // 1/sqrt(2 pi)

// Phi(x) = (1 + erf(x / sqrt 2)) / 2, from erfc of |x| / sqrt 2 so that the lower tail keeps its
// relative precision.
inline float normal_cdf(float x) {
  const float q = 0.5f * fast_erfc_nonneg(std::fabs(x) * kInvSqrt2);
  return x < 0.0f ? q : 1.0f - q;
}

}  // namespace

void add_bias(float* out, const float* b, int64_t N, int64_t OC) {
#pragma omp parallel for schedule(static) if (N * OC >= kParallelMin)
  for (int64_t n = 0; n < N; ++n) {
    float* r = out + n * OC;
#pragma omp simd
    for (int64_t o = 0; o < OC; ++o) r[o] += b[o];
  }
}

void linear_forward(MatmulPrecision p, const LinearForward& a) {
  const int64_t N = a.inp[0], IC = a.inp[1], OC = a.W[0];
  if (a.W.data.packed) {  // packed in this backend's precision (CpuBackend::pack_weight)
    linear_packed(a.out.data, a.inp.data, a.W.data, a.b.data, N, IC, OC);
    return;
  }
  const bool panels =
      p == MatmulPrecision::fp32 && N >= kPanelRowsFp32Min && N <= kPanelRowsFp32Max;
  if (a.W.data.type != WeightType::fp32 || panels) {
    linear_forward_stored(p, a.out.data, a.inp.data, a.W.data, a.b.data, N, IC, OC);
    return;
  }
  gemm(p, false, true, N, OC, IC, 1.0f, a.inp.data, IC, a.W.data.f32(), IC, 0.0f, a.out.data, OC);
  if (a.b.data) add_bias(a.out.data, a.b.data, N, OC);
}

void linear_backward(MatmulPrecision p, const LinearBackward& a) {
  const int64_t N = a.inp[0], IC = a.inp[1], OC = a.W[0];
  if (a.dinp.data)
    gemm(p, false, false, N, IC, OC, 1.0f, a.dout.data, OC, a.W.data, IC, 0.0f, a.dinp.data, IC);
  gemm(p, true, false, OC, IC, N, 1.0f, a.dout.data, OC, a.inp.data, IC, 1.0f, a.dW.data, IC);
  if (a.db.data) colsum_add(a.db.data, a.dout.data, N, OC);
}

void layernorm_forward(const LayerNormForward& a) {
  const int64_t N = a.inp[0], C = a.inp[1];
  float *out = a.out.data, *mean = a.mean.data, *rstd = a.rstd.data;
  const float *inp = a.inp.data, *w = a.w.data, *b = a.b.data;
  const float eps = a.eps;
#pragma omp parallel for schedule(static) if (N * C >= kParallelMin)
  for (int64_t n = 0; n < N; ++n) {
    const float* x = inp + n * C;
    float s = 0.0f;
#pragma omp simd reduction(+ : s)
    for (int64_t c = 0; c < C; ++c) s += x[c];
    const float m = s / float(C);
    float v = 0.0f;
#pragma omp simd reduction(+ : v)
    for (int64_t c = 0; c < C; ++c) v += (x[c] - m) * (x[c] - m);
    const float r = 1.0f / std::sqrt(v / float(C) + eps);
    float* o = out + n * C;
    if (b) {
#pragma omp simd
      for (int64_t c = 0; c < C; ++c) o[c] = (x[c] - m) * r * w[c] + b[c];
    } else {
#pragma omp simd
      for (int64_t c = 0; c < C; ++c) o[c] = (x[c] - m) * r * w[c];
    }
    mean[n] = m;
    rstd[n] = r;
  }
}

void layernorm_backward(const LayerNormBackward& a) {
  const int64_t N = a.inp[0], C = a.inp[1];
  float *dinp = a.dinp.data, *dw = a.dw.data, *db = a.db.data;
  const float *dout = a.dout.data, *inp = a.inp.data, *w = a.w.data, *mean = a.mean.data,
              *rstd = a.rstd.data;
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < N; ++n) {
    const float* x = inp + n * C;
    const float* g = dout + n * C;
    const float m = mean[n], r = rstd[n];
    float sum_g = 0.0f, sum_gx = 0.0f;  // mean of dnorm and of dnorm * xhat
#pragma omp simd reduction(+ : sum_g, sum_gx)
    for (int64_t c = 0; c < C; ++c) {
      const float dn = g[c] * w[c];
      sum_g += dn;
      sum_gx += dn * (x[c] - m) * r;
    }
    sum_g /= float(C);
    sum_gx /= float(C);
    float* d = dinp + n * C;
#pragma omp simd
    for (int64_t c = 0; c < C; ++c) {
      const float xh = (x[c] - m) * r;
      d[c] += (g[c] * w[c] - sum_g - xh * sum_gx) * r;
    }
  }
  const int64_t nblocks = (C + kColBlock - 1) / kColBlock;
#pragma omp parallel for schedule(static)
  for (int64_t blk = 0; blk < nblocks; ++blk) {
    const int64_t c0 = blk * kColBlock, c1 = std::min(C, c0 + kColBlock);
    float aw[kColBlock] = {}, ab[kColBlock] = {};
    for (int64_t n = 0; n < N; ++n) {
      const float* x = inp + n * C;
      const float* g = dout + n * C;
      const float m = mean[n], r = rstd[n];
#pragma omp simd
      for (int64_t c = c0; c < c1; ++c) {
        aw[c - c0] += g[c] * (x[c] - m) * r;
        ab[c - c0] += g[c];
      }
    }
    for (int64_t c = c0; c < c1; ++c) {
      dw[c] += aw[c - c0];
      if (db) db[c] += ab[c - c0];
    }
  }
}

void gelu_forward(float* out, const float* inp, int64_t n, Gelu g) {
  if (g == Gelu::erf) {
#pragma omp parallel for simd schedule(static) if (parallel : n >= kParallelMin)
    for (int64_t i = 0; i < n; ++i) out[i] = inp[i] * normal_cdf(inp[i]);
    return;
  }
#pragma omp parallel for simd schedule(static) if (parallel : n >= kParallelMin)
  for (int64_t i = 0; i < n; ++i) {
    const float x = inp[i];
    out[i] = 0.5f * x * (1.0f + fast_tanh(kGeluC * (x + kGeluA * x * x * x)));
  }
}

void gelu_backward(float* dinp, const float* inp, const float* dout, int64_t n, Gelu g) {
  if (g == Gelu::erf) {  // d/dx x Phi(x) = Phi(x) + x phi(x)
#pragma omp parallel for simd schedule(static) if (parallel : n >= kParallelMin)
    for (int64_t i = 0; i < n; ++i) {
      const float x = inp[i];
      dinp[i] = (normal_cdf(x) + x * kInvSqrt2Pi * fast_exp(-0.5f * x * x)) * dout[i];
    }
    return;
  }
#pragma omp parallel for simd schedule(static) if (parallel : n >= kParallelMin)
  for (int64_t i = 0; i < n; ++i) {
    const float x = inp[i];
    const float u = kGeluC * (x + kGeluA * x * x * x);
    const float th = fast_tanh(u);
    const float sech2 = 1.0f - th * th;
    const float grad =
        0.5f * (1.0f + th) + 0.5f * x * sech2 * kGeluC * (1.0f + 3.0f * kGeluA * x * x);
    dinp[i] = grad * dout[i];
  }
}

void embedding_forward(float* x, const int32_t* tokens, WeightView table, int64_t N, int64_t C,
                       float scale) {
  if (table.type != WeightType::fp32) {
    embedding_forward_stored(x, tokens, table, N, C, scale);
    return;
  }
  const float* wte = table.f32();
#pragma omp parallel for schedule(static) if (N * C >= kParallelMin)
  for (int64_t n = 0; n < N; ++n) {
    const float* e = wte + int64_t(tokens[n]) * C;
    float* r = x + n * C;
#pragma omp simd
    for (int64_t c = 0; c < C; ++c) r[c] = scale * e[c];
  }
}

void embedding_backward(float* dwte, const float* dx, const int32_t* tokens, int64_t N,
                        int64_t C, int64_t V, float scale) {
  // Each thread owns a contiguous range of vocabulary rows and scans every position in order,
  // so no two threads write one row and the sum order is fixed.
#pragma omp parallel
  {
    const int nt = omp_get_num_threads(), id = omp_get_thread_num();
    const int64_t v0 = V * id / nt, v1 = V * (id + 1) / nt;
    for (int64_t n = 0; n < N; ++n) {
      const int64_t tok = tokens[n];
      if (tok < v0 || tok >= v1) continue;
      float* d = dwte + tok * C;
      const float* g = dx + n * C;
#pragma omp simd
      for (int64_t c = 0; c < C; ++c) d[c] += scale * g[c];
    }
  }
}

void split_heads(float* q, float* k, float* v, const float* qkv, int64_t B, int64_t T,
                 int64_t NH, int64_t HS) {
  const int64_t C = NH * HS;
#pragma omp parallel for collapse(2) schedule(static) if (B * T * C >= kParallelMin)
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < NH; ++h)
      for (int64_t t = 0; t < T; ++t) {
        const float* src = qkv + (b * T + t) * 3 * C + h * HS;
        const int64_t dst = ((b * NH + h) * T + t) * HS;
        std::memcpy(q + dst, src, size_t(HS) * sizeof(float));
        std::memcpy(k + dst, src + C, size_t(HS) * sizeof(float));
        std::memcpy(v + dst, src + 2 * C, size_t(HS) * sizeof(float));
      }
}

void split_heads_backward(float* dqkv, const float* dq, const float* dk, const float* dv,
                          int64_t B, int64_t T, int64_t NH, int64_t HS) {
  const int64_t C = NH * HS;
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t)
      for (int64_t h = 0; h < NH; ++h) {
        float* dst = dqkv + (b * T + t) * 3 * C + h * HS;
        const int64_t src = ((b * NH + h) * T + t) * HS;
        std::memcpy(dst, dq + src, size_t(HS) * sizeof(float));
        std::memcpy(dst + C, dk + src, size_t(HS) * sizeof(float));
        std::memcpy(dst + 2 * C, dv + src, size_t(HS) * sizeof(float));
      }
}

void merge_heads(float* y, const float* o, int64_t B, int64_t T, int64_t NH, int64_t HS) {
  const int64_t C = NH * HS;
#pragma omp parallel for collapse(2) schedule(static) if (B * T * C >= kParallelMin)
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t)
      for (int64_t h = 0; h < NH; ++h)
        std::memcpy(y + (b * T + t) * C + h * HS, o + ((b * NH + h) * T + t) * HS,
                    size_t(HS) * sizeof(float));
}

void merge_heads_backward(float* do_, const float* dy, int64_t B, int64_t T, int64_t NH,
                          int64_t HS) {
  const int64_t C = NH * HS;
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < NH; ++h)
      for (int64_t t = 0; t < T; ++t)
        std::memcpy(do_ + ((b * NH + h) * T + t) * HS, dy + (b * T + t) * C + h * HS,
                    size_t(HS) * sizeof(float));
}

void residual_forward(float* x, const float* branch, int64_t N, int64_t C, float p,
                      uint64_t seed) {
  if (p == 0.0f) {
#pragma omp parallel for simd schedule(static) if (parallel : N * C >= kParallelMin)
    for (int64_t i = 0; i < N * C; ++i) x[i] += branch[i];
    return;
  }
  const float inv_keep = 1.0f / (1.0f - p);
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < C; ++c)
      x[n * C + c] += branch[n * C + c] * dropout_scale(seed, n, c, p, inv_keep);
}

void residual_backward(float* dbranch, const float* dx, int64_t N, int64_t C, float p,
                       uint64_t seed) {
  if (p == 0.0f) {
    std::memcpy(dbranch, dx, size_t(N * C) * sizeof(float));
    return;
  }
  const float inv_keep = 1.0f / (1.0f - p);
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < C; ++c)
      dbranch[n * C + c] = dx[n * C + c] * dropout_scale(seed, n, c, p, inv_keep);
}

float crossentropy_forward(float* lse, const float* logits, const int32_t* targets, int64_t N,
                           int64_t V) {
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < N; ++n) {
    const float* l = logits + n * V;
    float mx = -INFINITY;
#pragma omp simd reduction(max : mx)
    for (int64_t v = 0; v < V; ++v) mx = std::max(mx, l[v]);
    float s = 0.0f;
#pragma omp simd reduction(+ : s)
    for (int64_t v = 0; v < V; ++v) s += fast_exp(l[v] - mx);
    lse[n] = mx + std::log(s);
  }
  double total = 0.0;  // sequential: the same sum whatever the thread count
  int64_t scored = 0;
  for (int64_t n = 0; n < N; ++n) {
    if (targets[n] < 0) continue;
    total += double(lse[n]) - double(logits[n * V + targets[n]]);
    ++scored;
  }
  return scored ? float(total / double(scored)) : 0.0f;
}

int64_t first_nonfinite(const float* x, int64_t n) {
  int64_t first = n;  // each thread's first hit, reduced by min: the first of all
#pragma omp parallel for schedule(static) reduction(min : first)
  for (int64_t i = 0; i < n; ++i)
    if (i < first && !std::isfinite(x[i])) first = i;
  return first == n ? -1 : first;
}

float crossentropy_block(float* state, float* loss, const float* logits, const int32_t* targets,
                         int64_t N, int64_t cols, int64_t v0, int64_t V) {
  float *mx = state, *sum = state + N, *tgt = state + 2 * N;
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < N; ++n) {
    const float* l = logits + n * cols;
    float bm = -INFINITY;
#pragma omp simd reduction(max : bm)
    for (int64_t v = 0; v < cols; ++v) bm = std::max(bm, l[v]);
    const float m = v0 == 0 ? bm : std::max(mx[n], bm);
    float s = 0.0f;
#pragma omp simd reduction(+ : s)
    for (int64_t v = 0; v < cols; ++v) s += fast_exp(l[v] - m);
    sum[n] = v0 == 0 ? s : sum[n] * fast_exp(mx[n] - m) + s;
    mx[n] = m;
    const int64_t t = targets[n] - v0;
    if (t >= 0 && t < cols) tgt[n] = l[t];
  }
  if (v0 + cols < V) return 0.0f;
  double total = 0.0;  // sequential: the same sum whatever the thread count
  int64_t scored = 0;
  for (int64_t n = 0; n < N; ++n) {
    if (targets[n] < 0) {
      loss[n] = 0.0f;
      continue;
    }
    loss[n] = mx[n] + std::log(sum[n]) - tgt[n];
    total += double(mx[n]) + double(std::log(sum[n])) - double(tgt[n]);
    ++scored;
  }
  return scored ? float(total / double(scored)) : 0.0f;
}

void crossentropy_backward(float* logits, const float* lse, const int32_t* targets, int64_t N,
                           int64_t V, float scale) {
  int64_t scored = 0;
  for (int64_t n = 0; n < N; ++n) scored += targets[n] >= 0;
  const float s = scored ? scale / float(scored) : 0.0f;
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < N; ++n) {
    float* l = logits + n * V;
    if (targets[n] < 0) {
      std::fill(l, l + V, 0.0f);
      continue;
    }
    const float m = lse[n];
#pragma omp simd
    for (int64_t v = 0; v < V; ++v) l[v] = fast_exp(l[v] - m) * s;
    l[targets[n]] -= s;
  }
}

void token_losses(float* loss, const float* logits, const float* lse, const int32_t* targets,
                  int64_t N, int64_t V) {
  for (int64_t i = 0; i < N; ++i)
    loss[i] = targets[i] < 0 ? 0.0f : lse[i] - logits[i * V + targets[i]];
}

}  // namespace alibi::cpu
