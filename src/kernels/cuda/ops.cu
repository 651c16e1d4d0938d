// The CUDA backend's element-wise and row kernels (ops.cuh). Row reductions run one warp or
// block per row in a fixed tree; column reductions run one thread per column over the rows in
// order; nothing accumulates floats with atomics, so results repeat bit for bit.
#include <cuda_fp16.h>

#include <cmath>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/ops.cuh"

namespace alibi::cuda {
namespace {

constexpr float kGeluC = 0.7978845608028654f;  // sqrt(2/pi)
constexpr float kGeluA = 0.044715f;
constexpr float kInvSqrt2 = 0.7071067811865476f;
constexpr float kInvSqrt2Pi = 0.3989422804014327f;
constexpr double kSinusoidBase = 10000.0;

#define GRID_STRIDE(i, n) \
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < (n); \
       i += int64_t(gridDim.x) * blockDim.x)

__global__ void fill_k(float* x, float v, int64_t n) { GRID_STRIDE(i, n) x[i] = v; }

__global__ void first_nonfinite_k(const float* x, int64_t n, unsigned long long* first) {
  GRID_STRIDE(i, n) if (!isfinite(x[i])) atomicMin(first, (unsigned long long)i);  // an integer min
}

__device__ __forceinline__ float widen1(uint16_t h, WeightType t) {
  if (t == WeightType::f16) return __half2float(__ushort_as_half(h));
  return __uint_as_float(uint32_t(h) << 16);
}

__global__ void widen_k(float* dst, const uint16_t* src, WeightType t, int64_t n) {
  GRID_STRIDE(i, n) dst[i] = widen1(src[i], t);
}

// core/half.h's float_to_bf16: nearest even, a NaN kept a (quiet) NaN.
__global__ void to_bf16_k(uint16_t* dst, const float* src, int64_t n) {
  GRID_STRIDE(i, n) {
    const uint32_t u = __float_as_uint(src[i]);
    dst[i] = (u & 0x7fffffffu) > 0x7f800000u ? uint16_t((u >> 16) | 0x40)
                                              : uint16_t((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
  }
}

__global__ void add_bias_k(float* out, const float* b, int64_t N, int64_t OC) {
  GRID_STRIDE(i, N * OC) out[i] += b[i % OC];
}

__global__ void colsum_add_k(float* dst, const float* src, int64_t N, int64_t C) {
  const int64_t c = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (c >= C) return;
  float acc = 0.0f;
  for (int64_t n = 0; n < N; ++n) acc += src[n * C + c];
  dst[c] += acc;
}

// One warp per row.
__global__ void layernorm_forward_k(float* out, float* mean, float* rstd, const float* inp,
                                    const float* w, const float* b, int64_t N, int64_t C,
                                    float eps) {
  const int64_t n = blockIdx.x * int64_t(blockDim.x / kWarp) + threadIdx.x / kWarp;
  const int lane = threadIdx.x % kWarp;
  if (n >= N) return;
  const float* x = inp + n * C;
  float s = 0.0f;
  for (int64_t c = lane; c < C; c += kWarp) s += x[c];
  const float m = warp_sum(s) / float(C);
  float v = 0.0f;
  for (int64_t c = lane; c < C; c += kWarp) v += (x[c] - m) * (x[c] - m);
  const float r = rsqrtf(warp_sum(v) / float(C) + eps);
  float* o = out + n * C;
  for (int64_t c = lane; c < C; c += kWarp) o[c] = (x[c] - m) * r * w[c] + (b ? b[c] : 0.0f);
  if (lane == 0) mean[n] = m, rstd[n] = r;
}

__global__ void layernorm_backward_rows_k(float* dinp, const float* dout, const float* inp,
                                          const float* w, const float* mean, const float* rstd,
                                          int64_t N, int64_t C) {
  const int64_t n = blockIdx.x * int64_t(blockDim.x / kWarp) + threadIdx.x / kWarp;
  const int lane = threadIdx.x % kWarp;
  if (n >= N) return;
  const float* x = inp + n * C;
  const float* g = dout + n * C;
  const float m = mean[n], r = rstd[n];
  float sg = 0.0f, sgx = 0.0f;
  for (int64_t c = lane; c < C; c += kWarp) {
    const float dn = g[c] * w[c];
    sg += dn;
    sgx += dn * (x[c] - m) * r;
  }
  sg = warp_sum(sg) / float(C);
  sgx = warp_sum(sgx) / float(C);
  float* d = dinp + n * C;
  for (int64_t c = lane; c < C; c += kWarp)
    d[c] += (g[c] * w[c] - sg - (x[c] - m) * r * sgx) * r;
}

__global__ void layernorm_backward_cols_k(float* dw, float* db, const float* dout,
                                          const float* inp, const float* mean, const float* rstd,
                                          int64_t N, int64_t C) {
  const int64_t c = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (c >= C) return;
  float aw = 0.0f, ab = 0.0f;
  for (int64_t n = 0; n < N; ++n) {
    const float g = dout[n * C + c];
    aw += g * (inp[n * C + c] - mean[n]) * rstd[n];
    ab += g;
  }
  dw[c] += aw;
  if (db) db[c] += ab;
}

__device__ __forceinline__ float normal_cdf(float x) {
  const float q = 0.5f * erfcf(fabsf(x) * kInvSqrt2);
  return x < 0.0f ? q : 1.0f - q;
}

__global__ void gelu_forward_k(float* out, const float* inp, int64_t n, Gelu g) {
  GRID_STRIDE(i, n) {
    const float x = inp[i];
    out[i] = g == Gelu::erf ? x * normal_cdf(x)
                            : 0.5f * x * (1.0f + tanhf(kGeluC * (x + kGeluA * x * x * x)));
  }
}

__global__ void gelu_backward_k(float* dinp, const float* inp, const float* dout, int64_t n,
                                Gelu g) {
  GRID_STRIDE(i, n) {
    const float x = inp[i];
    float grad;
    if (g == Gelu::erf) {
      grad = normal_cdf(x) + x * kInvSqrt2Pi * expf(-0.5f * x * x);
    } else {
      const float th = tanhf(kGeluC * (x + kGeluA * x * x * x));
      grad = 0.5f * (1.0f + th) +
             0.5f * x * (1.0f - th * th) * kGeluC * (1.0f + 3.0f * kGeluA * x * x);
    }
    dinp[i] = grad * dout[i];
  }
}

__global__ void embedding_forward_k(float* x, const int32_t* tokens, const void* table,
                                    WeightType t, int64_t N, int64_t C, float scale) {
  GRID_STRIDE(i, N * C) {
    const int64_t e = int64_t(tokens[i / C]) * C + i % C;
    x[i] = scale * (t == WeightType::fp32 ? static_cast<const float*>(table)[e]
                                          : widen1(static_cast<const uint16_t*>(table)[e], t));
  }
}

// One thread per channel, the positions in order: no two threads write one element.
__global__ void embedding_backward_k(float* dwte, const float* dx, const int32_t* tokens,
                                     int64_t N, int64_t C, float scale) {
  const int64_t c = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (c >= C) return;
  for (int64_t n = 0; n < N; ++n) dwte[int64_t(tokens[n]) * C + c] += scale * dx[n * C + c];
}

// Element e of (B,NH,T,HS) and its place in a (B,T,parts*C) row-major tensor, part `part`.
__device__ __forceinline__ int64_t rows_index(int64_t e, int64_t NH, int64_t T, int64_t HS,
                                              int64_t parts, int64_t part) {
  const int64_t d = e % HS, t = e / HS % T, h = e / (HS * T) % NH, b = e / (HS * T * NH);
  const int64_t C = NH * HS;
  return (b * T + t) * parts * C + part * C + h * HS + d;
}

__global__ void split_heads_k(float* q, float* k, float* v, const float* qkv, int64_t n,
                              int64_t NH, int64_t T, int64_t HS, bool backward) {
  GRID_STRIDE(e, n) {
    float* dst[3] = {q, k, v};
    for (int part = 0; part < 3; ++part) {
      const int64_t r = rows_index(e, NH, T, HS, 3, part);
      if (backward)
        const_cast<float*>(qkv)[r] = dst[part][e];
      else
        dst[part][e] = qkv[r];
    }
  }
}

__global__ void merge_heads_k(float* y, float* o, int64_t n, int64_t NH, int64_t T, int64_t HS,
                              bool backward) {
  GRID_STRIDE(e, n) {
    const int64_t r = rows_index(e, NH, T, HS, 1, 0);
    if (backward)
      o[e] = y[r];
    else
      y[r] = o[e];
  }
}

__global__ void residual_k(float* dst, const float* src, int64_t N, int64_t C, float p,
                           uint64_t seed, bool add) {
  const float inv_keep = 1.0f / (1.0f - p);
  GRID_STRIDE(i, N * C) {
    const float f =
        p == 0.0f ? 1.0f
                  : (u01(hash64(seed, uint64_t(i / C), uint64_t(i % C))) >= p ? inv_keep : 0.0f);
    if (add)
      dst[i] += src[i] * f;
    else
      dst[i] = src[i] * f;
  }
}

// One block per row: the maximum, then the sum of exp, each a fixed tree.
template <class F>
__device__ float block_reduce(float v, F op, float* shared) {
  const int lane = threadIdx.x % kWarp, w = threadIdx.x / kWarp, nw = blockDim.x / kWarp;
  for (int o = kWarp / 2; o > 0; o /= 2) v = op(v, __shfl_xor_sync(0xffffffffu, v, o));
  __syncthreads();  // shared may still be read from a previous call
  if (lane == 0) shared[w] = v;
  __syncthreads();
  v = shared[0];
  for (int i = 1; i < nw; ++i) v = op(v, shared[i]);
  return v;
}

__device__ __forceinline__ float fmax_op(float a, float b) { return fmaxf(a, b); }
__device__ __forceinline__ float add_op(float a, float b) { return a + b; }

__global__ void row_lse_k(float* lse, const float* logits, int64_t V) {
  __shared__ float sh[kThreads / kWarp];
  const float* l = logits + blockIdx.x * V;
  float mx = -INFINITY;
  for (int64_t v = threadIdx.x; v < V; v += blockDim.x) mx = fmaxf(mx, l[v]);
  mx = block_reduce(mx, fmax_op, sh);
  float s = 0.0f;
  for (int64_t v = threadIdx.x; v < V; v += blockDim.x) s += expf(l[v] - mx);
  s = block_reduce(s, add_op, sh);
  if (threadIdx.x == 0) lse[blockIdx.x] = mx + logf(s);
}

// Sequential, as on the CPU: the mean of the scored rows' losses, in double, rows in order.
__global__ void mean_loss_k(const float* lse, const float* logits, const int32_t* targets,
                            int64_t N, int64_t V, float* mean) {
  double total = 0.0;
  int64_t scored = 0;
  for (int64_t n = 0; n < N; ++n) {
    if (targets[n] < 0) continue;
    total += double(lse[n]) - double(logits[n * V + targets[n]]);
    ++scored;
  }
  *mean = scored ? float(total / double(scored)) : 0.0f;
}

__global__ void ce_block_k(float* state, const float* logits, const int32_t* targets, int64_t N,
                           int64_t cols, int64_t v0) {
  __shared__ float sh[kThreads / kWarp];
  const int64_t n = blockIdx.x;
  float *mx = state, *sum = state + N, *tgt = state + 2 * N;
  const float* l = logits + n * cols;
  float bm = -INFINITY;
  for (int64_t v = threadIdx.x; v < cols; v += blockDim.x) bm = fmaxf(bm, l[v]);
  bm = block_reduce(bm, fmax_op, sh);
  const float m = v0 == 0 ? bm : fmaxf(mx[n], bm);
  float s = 0.0f;
  for (int64_t v = threadIdx.x; v < cols; v += blockDim.x) s += expf(l[v] - m);
  s = block_reduce(s, add_op, sh);
  if (threadIdx.x != 0) return;
  sum[n] = v0 == 0 ? s : sum[n] * expf(mx[n] - m) + s;
  mx[n] = m;
  const int64_t t = targets[n] - v0;
  if (t >= 0 && t < cols) tgt[n] = l[t];
}

__global__ void ce_block_loss_k(const float* state, float* loss, const int32_t* targets,
                                int64_t N, float* mean) {
  const float *mx = state, *sum = state + N, *tgt = state + 2 * N;
  double total = 0.0;
  int64_t scored = 0;
  for (int64_t n = 0; n < N; ++n) {
    if (targets[n] < 0) {
      loss[n] = 0.0f;
      continue;
    }
    loss[n] = mx[n] + logf(sum[n]) - tgt[n];
    total += double(mx[n]) + double(logf(sum[n])) - double(tgt[n]);
    ++scored;
  }
  *mean = scored ? float(total / double(scored)) : 0.0f;
}

// The rows a cross-entropy scores, counted once (by one block, an integer sum) for the backward.
__global__ void count_scored_k(const int32_t* targets, int64_t N, int* scored) {
  __shared__ int sh[kThreads];
  int c = 0;
  for (int64_t n = threadIdx.x; n < N; n += blockDim.x) c += targets[n] >= 0;
  sh[threadIdx.x] = c;
  __syncthreads();
  for (int o = blockDim.x / 2; o > 0; o /= 2) {
    if (threadIdx.x < o) sh[threadIdx.x] += sh[threadIdx.x + o];
    __syncthreads();
  }
  if (threadIdx.x == 0) *scored = sh[0];
}

__global__ void ce_backward_k(float* logits, const float* lse, const int32_t* targets, int64_t V,
                              float scale, const int* scored) {
  const float s = *scored ? scale / float(*scored) : 0.0f;
  const int64_t n = blockIdx.x;
  float* l = logits + n * V;
  const int32_t t = targets[n];
  for (int64_t v = threadIdx.x; v < V; v += blockDim.x)
    l[v] = t < 0 ? 0.0f : expf(l[v] - lse[n]) * s - (v == t ? s : 0.0f);
}

__global__ void token_losses_k(float* loss, const float* logits, const float* lse,
                               const int32_t* targets, int64_t N, int64_t V) {
  GRID_STRIDE(i, N) loss[i] = targets[i] < 0 ? 0.0f : lse[i] - logits[i * V + targets[i]];
}

__global__ void posemb_forward_k(float* x, const float* wpe, int64_t B, int64_t T, int64_t C,
                                 int64_t pos0) {
  GRID_STRIDE(i, B * T * C) x[i] += wpe[(pos0 + i / C % T) * C + i % C];
}

// One thread per (t, c), the batch rows in order.
__global__ void posemb_backward_k(float* dwpe, const float* dx, int64_t B, int64_t T, int64_t C,
                                  int64_t pos0) {
  GRID_STRIDE(i, T * C) {
    const int64_t t = i / C, c = i % C;
    float acc = dwpe[(pos0 + t) * C + c];
    for (int64_t b = 0; b < B; ++b) acc += dx[(b * T + t) * C + c];
    dwpe[(pos0 + t) * C + c] = acc;
  }
}

__global__ void sinusoidal_k(float* x, int B, int T, int C, int64_t pos0) {
  GRID_STRIDE(e, int64_t(T) * ((C + 1) / 2)) {
    const int t = int(e / ((C + 1) / 2)), i = int(e % ((C + 1) / 2));
    const double a = double(pos0 + t) / pow(kSinusoidBase, 2.0 * i / C);
    const float s = float(sin(a)), c = float(cos(a));
    for (int b = 0; b < B; ++b) {
      float* row = x + (int64_t(b) * T + t) * C;
      row[2 * i] += s;
      if (2 * i + 1 < C) row[2 * i + 1] += c;
    }
  }
}

// One thread per (b, h, t, pair). Angles and scales in double, as the CPU's.
__global__ void rotary_k(float* x, int B, int NH, int T, int HS, Rotation r) {
  const int half = HS / 2;
  GRID_STRIDE(e, int64_t(B) * NH * T * half) {
    const int i = int(e % half);
    const int64_t row = e / half;  // (b, h, t)
    const int64_t p = r.pos0 + row % T;
    const double a = double(p) * r.freq[i];
    const double m = r.decay ? r.mscale * exp(double(r.power) * double(p - r.anchor) * r.decay[i])
                             : double(r.mscale);
    const float cs = float(cos(a) * m), sn = float((r.backward ? -1.0 : 1.0) * sin(a) * m);
    float* v = x + row * HS;
    const float x1 = v[i], x2 = v[i + half];
    v[i] = x1 * cs - x2 * sn;
    v[i + half] = x2 * cs + x1 * sn;
  }
}

// One thread per (block, row, pair) of the rows in use.
__global__ void kv_rescale_k(float* cache, int64_t rows, int64_t len, int64_t blocks, int HS,
                             const double* decay, int64_t delta) {
  const int half = HS / 2;
  GRID_STRIDE(e, blocks * len * half) {
    const int i = int(e % half);
    const int64_t r = e / half, b = r / len, t = r % len;
    const float f = float(exp(double(delta) * decay[i]));
    float* v = cache + (b * rows + t) * HS;
    v[i] *= f;
    v[i + half] *= f;
  }
}

__global__ void adamw_k(float* p, const float* g, float* m, float* v, int64_t n, AdamWUpdate u) {
  GRID_STRIDE(i, n) {
    const float gi = g[i];
    float pi = p[i] * u.decay;
    const float mi = u.beta1 * m[i] + (1.0f - u.beta1) * gi;
    const float vi = u.beta2 * v[i] + (1.0f - u.beta2) * gi * gi;
    pi -= u.step_size * mi / (sqrtf(vi) / u.bc2_sqrt + u.eps);
    p[i] = pi, m[i] = mi, v[i] = vi;
  }
}

// kSumBlocks blocks, each a fixed grid-stride share reduced by a fixed tree; then one thread
// adds the partials in block order.
__global__ void sum_squares_k(const float* x, int64_t n, double* partials) {
  __shared__ double sh[kThreads];
  double s = 0.0;
  GRID_STRIDE(i, n) s += double(x[i]) * double(x[i]);
  sh[threadIdx.x] = s;
  __syncthreads();
  for (int o = blockDim.x / 2; o > 0; o /= 2) {
    if (threadIdx.x < o) sh[threadIdx.x] += sh[threadIdx.x + o];
    __syncthreads();
  }
  if (threadIdx.x == 0) partials[blockIdx.x] = sh[0];
}

__global__ void sum_partials_k(const double* partials, double start, double* out) {
  double s = start;
  for (int i = 0; i < kSumBlocks; ++i) s += partials[i];
  *out = s;
}

__global__ void accumulate_k(float* acc, const float* x, int64_t n) {
  GRID_STRIDE(i, n) acc[i] += x[i];
}
__global__ void scale_k(float* x, float s, int64_t n) { GRID_STRIDE(i, n) x[i] *= s; }

unsigned warp_rows_blocks(int64_t rows) { return blocks_for(rows, kThreads / kWarp); }

}  // namespace

#define LAUNCH(kernel, grid, st, ...)                  \
  do {                                                 \
    kernel<<<(grid), kThreads, 0, (st)>>>(__VA_ARGS__); \
    ALIBI_CUDA_LAUNCHED();                             \
  } while (0)

void fill(Stream st, float* x, float v, int64_t n) { LAUNCH(fill_k, blocks_for(n), st, x, v, n); }

void first_nonfinite(Stream st, const float* x, int64_t n, unsigned long long* first) {
  LAUNCH(first_nonfinite_k, blocks_for(n), st, x, n, first);
}

void widen(Stream st, float* dst, const uint16_t* src, WeightType t, int64_t n) {
  LAUNCH(widen_k, blocks_for(n), st, dst, src, t, n);
}

void to_bf16(Stream st, uint16_t* dst, const float* src, int64_t n) {
  LAUNCH(to_bf16_k, blocks_for(n), st, dst, src, n);
}

void add_bias(Stream st, float* out, const float* b, int64_t N, int64_t OC) {
  LAUNCH(add_bias_k, blocks_for(N * OC), st, out, b, N, OC);
}

void colsum_add(Stream st, float* dst, const float* src, int64_t N, int64_t C) {
  LAUNCH(colsum_add_k, blocks_for(C), st, dst, src, N, C);
}

void layernorm_forward(Stream st, float* out, float* mean, float* rstd, const float* inp,
                       const float* w, const float* b, int64_t N, int64_t C, float eps) {
  LAUNCH(layernorm_forward_k, warp_rows_blocks(N), st, out, mean, rstd, inp, w, b, N, C, eps);
}

void layernorm_backward(Stream st, float* dinp, float* dw, float* db, const float* dout,
                        const float* inp, const float* w, const float* mean, const float* rstd,
                        int64_t N, int64_t C) {
  LAUNCH(layernorm_backward_rows_k, warp_rows_blocks(N), st, dinp, dout, inp, w, mean, rstd, N,
         C);
  LAUNCH(layernorm_backward_cols_k, blocks_for(C), st, dw, db, dout, inp, mean, rstd, N, C);
}

void gelu_forward(Stream st, float* out, const float* inp, int64_t n, Gelu g) {
  LAUNCH(gelu_forward_k, blocks_for(n), st, out, inp, n, g);
}

void gelu_backward(Stream st, float* dinp, const float* inp, const float* dout, int64_t n,
                   Gelu g) {
  LAUNCH(gelu_backward_k, blocks_for(n), st, dinp, inp, dout, n, g);
}

void embedding_forward(Stream st, float* x, const int32_t* tokens, WeightView wte, int64_t N,
                       int64_t C, float scale) {
  LAUNCH(embedding_forward_k, blocks_for(N * C), st, x, tokens, wte.data, wte.type, N, C,
         scale);
}

void embedding_backward(Stream st, float* dwte, const float* dx, const int32_t* tokens,
                        int64_t N, int64_t C, float scale) {
  LAUNCH(embedding_backward_k, blocks_for(C), st, dwte, dx, tokens, N, C, scale);
}

void split_heads(Stream st, float* q, float* k, float* v, const float* qkv, int64_t B, int64_t T,
                 int64_t NH, int64_t HS) {
  const int64_t n = B * NH * T * HS;
  LAUNCH(split_heads_k, blocks_for(n), st, q, k, v, qkv, n, NH, T, HS, false);
}

void split_heads_backward(Stream st, float* dqkv, const float* dq, const float* dk,
                          const float* dv, int64_t B, int64_t T, int64_t NH, int64_t HS) {
  const int64_t n = B * NH * T * HS;
  LAUNCH(split_heads_k, blocks_for(n), st, const_cast<float*>(dq), const_cast<float*>(dk),
         const_cast<float*>(dv), dqkv, n, NH, T, HS, true);
}

void merge_heads(Stream st, float* y, const float* o, int64_t B, int64_t T, int64_t NH,
                 int64_t HS) {
  const int64_t n = B * NH * T * HS;
  LAUNCH(merge_heads_k, blocks_for(n), st, y, const_cast<float*>(o), n, NH, T, HS, false);
}

void merge_heads_backward(Stream st, float* do_, const float* dy, int64_t B, int64_t T,
                          int64_t NH, int64_t HS) {
  const int64_t n = B * NH * T * HS;
  LAUNCH(merge_heads_k, blocks_for(n), st, const_cast<float*>(dy), do_, n, NH, T, HS, true);
}

void residual(Stream st, float* dst, const float* src, int64_t N, int64_t C, float p,
              uint64_t seed, bool add) {
  LAUNCH(residual_k, blocks_for(N * C), st, dst, src, N, C, p, seed, add);
}

void crossentropy_forward(Stream st, float* lse, const float* logits, const int32_t* targets,
                          int64_t N, int64_t V, float* mean) {
  if (N > 0) LAUNCH(row_lse_k, unsigned(N), st, lse, logits, V);
  mean_loss_k<<<1, 1, 0, st>>>(lse, logits, targets, N, V, mean);
  ALIBI_CUDA_LAUNCHED();
}

void crossentropy_block(Stream st, float* state, float* loss, const float* logits,
                        const int32_t* targets, int64_t N, int64_t cols, int64_t v0, int64_t V,
                        float* mean) {
  if (N > 0) LAUNCH(ce_block_k, unsigned(N), st, state, logits, targets, N, cols, v0);
  if (v0 + cols < V) return;
  ce_block_loss_k<<<1, 1, 0, st>>>(state, loss, targets, N, mean);
  ALIBI_CUDA_LAUNCHED();
}

void crossentropy_backward(Stream st, float* logits, const float* lse, const int32_t* targets,
                           int64_t N, int64_t V, float scale, int* scored) {
  if (N <= 0) return;
  LAUNCH(count_scored_k, 1, st, targets, N, scored);
  LAUNCH(ce_backward_k, unsigned(N), st, logits, lse, targets, V, scale, scored);
}

void token_losses(Stream st, float* loss, const float* logits, const float* lse,
                  const int32_t* targets, int64_t N, int64_t V) {
  LAUNCH(token_losses_k, blocks_for(N), st, loss, logits, lse, targets, N, V);
}

void posemb_forward(Stream st, float* x, const float* wpe, int64_t B, int64_t T, int64_t C,
                    int64_t pos0) {
  LAUNCH(posemb_forward_k, blocks_for(B * T * C), st, x, wpe, B, T, C, pos0);
}

void posemb_backward(Stream st, float* dwpe, const float* dx, int64_t B, int64_t T, int64_t C,
                     int64_t pos0) {
  LAUNCH(posemb_backward_k, blocks_for(T * C), st, dwpe, dx, B, T, C, pos0);
}

void sinusoidal_add(Stream st, float* x, int B, int T, int C, int64_t pos0) {
  LAUNCH(sinusoidal_k, blocks_for(int64_t(T) * ((C + 1) / 2)), st, x, B, T, C, pos0);
}

void rotary(Stream st, float* x, int B, int NH, int T, int HS, const Rotation& r) {
  LAUNCH(rotary_k, blocks_for(int64_t(B) * NH * T * (HS / 2)), st, x, B, NH, T, HS, r);
}

void kv_rescale(Stream st, float* cache, int64_t rows, int64_t len, int64_t blocks, int HS,
                const double* decay, int64_t delta) {
  LAUNCH(kv_rescale_k, blocks_for(blocks * len * (HS / 2)), st, cache, rows, len, blocks, HS,
         decay, delta);
}

void adamw_update(Stream st, float* p, const float* g, float* m, float* v, int64_t n,
                  const AdamWUpdate& u) {
  LAUNCH(adamw_k, blocks_for(n), st, p, g, m, v, n, u);
}

void sum_squares(Stream st, const float* x, int64_t n, double start, double* partials,
                 double* out) {
  LAUNCH(sum_squares_k, kSumBlocks, st, x, n, partials);
  sum_partials_k<<<1, 1, 0, st>>>(partials, start, out);
  ALIBI_CUDA_LAUNCHED();
}

void accumulate(Stream st, float* acc, const float* x, int64_t n) {
  LAUNCH(accumulate_k, blocks_for(n), st, acc, x, n);
}

void scale(Stream st, float* x, float s, int64_t n) { LAUNCH(scale_k, blocks_for(n), st, x, s, n); }

}  // namespace alibi::cuda
