// Products and lookups on stored weights (kernels/weights.h): bf16/f16, and the block formats,
// whose decoding products are quant_cpu.cpp's. Each stored element is widened to fp32 exactly
// (bf16: a 16-bit shift; f16: F16C's vcvtph2ps; a block: kernels/quant.h) and every product and
// sum is fp32, except that bf16 precision multiplies bf16 weights as they are (gemm_cpu.cpp's
// linear_bf16).
#include "kernels/cpu/simd.h"  // first: its pragmas must precede <immintrin.h>

#include <omp.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "core/half.h"
#include "kernels/cpu/ops_cpu.h"

namespace alibi::cpu {
namespace {

// Rows of inputs up to which a product streams W once through dot products (decoding, short
// prefill chunks): reading W is the cost there, and each weight loaded serves every row.
constexpr int64_t kStreamRows = 4;
// Floats of the widened block of W a bf16-precision product multiplies at a time (16 MiB): each
// block is one gemm call, which packs the inputs again, so blocks must be large (at 1,024 rows
// of a BLOOM-560m-shaped model, 4 MiB blocks ran at 0.84-0.89 of 16 MiB's tokens/s).
constexpr int64_t kBlockFloats = int64_t(1) << 22;

#if defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
#define ALIBI_WIDEN_AVX2 1
// How far ahead of its loads a streaming product asks for bf16 weights (4 rows at a time: the
// hardware prefetcher alone reached ~65% of the bandwidth sgemm's fp32 reads do, 512 bytes ~85%,
// 256 ~78%, 1,024 ~75%, 8,192 worse; measured here on 2 cores).
constexpr int kPrefetchBytes = 512;
// 8 stored elements at p as fp32.
inline __m256 widen8(const uint16_t* p, WeightType t) {
  const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  if (t == WeightType::f16) return _mm256_cvtph_ps(h);
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}
#endif

inline float widen1(uint16_t h, WeightType t) {
  return t == WeightType::f16 ? f16_to_float(h) : bf16_to_float(h);
}

// out[r + n * ldo] = dot(inp row n, w row r) for R consecutive rows of w and the N <= kStreamRows
// rows of inp (IC each): R * N * 2 independent accumulators, R streams of weights in flight. For
// bf16 the inputs come deinterleaved (see deinterleave): 16 weights load as one vector whose
// 32-bit lanes hold an even and an odd element, a shift and a mask widen both halves, and each
// meets its inputs in order. For f16, vcvtph2ps widens 8 at a time.
template <int N, int R>
void dot_rows(float* out, int64_t ldo, const float* inp, const float* split, const uint16_t* w,
              WeightType t, int64_t IC) {
  float sum[R][N];
  int64_t i = 0;
#ifdef ALIBI_WIDEN_AVX2
  __m256 acc0[R][N], acc1[R][N];
  for (int r = 0; r < R; ++r)
    for (int n = 0; n < N; ++n) acc0[r][n] = acc1[r][n] = _mm256_setzero_ps();
  if (t == WeightType::bf16) {
    const __m256i high = _mm256_set1_epi32(int(0xffff0000u));
    for (; i + 16 <= IC; i += 16)
      for (int r = 0; r < R; ++r) {
        _mm_prefetch(reinterpret_cast<const char*>(w + r * IC + i) + kPrefetchBytes, _MM_HINT_T0);
        const __m256i x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + r * IC + i));
        const __m256 even = _mm256_castsi256_ps(_mm256_slli_epi32(x, 16));
        const __m256 odd = _mm256_castsi256_ps(_mm256_and_si256(x, high));
        for (int n = 0; n < N; ++n) {
          acc0[r][n] = _mm256_fmadd_ps(even, _mm256_loadu_ps(split + n * IC + i), acc0[r][n]);
          acc1[r][n] = _mm256_fmadd_ps(odd, _mm256_loadu_ps(split + n * IC + i + 8), acc1[r][n]);
        }
      }
  } else {
    for (; i + 16 <= IC; i += 16)
      for (int r = 0; r < R; ++r) {
        const __m256 w0 = widen8(w + r * IC + i, t), w1 = widen8(w + r * IC + i + 8, t);
        for (int n = 0; n < N; ++n) {
          acc0[r][n] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(inp + n * IC + i), acc0[r][n]);
          acc1[r][n] = _mm256_fmadd_ps(w1, _mm256_loadu_ps(inp + n * IC + i + 8), acc1[r][n]);
        }
      }
  }
  for (int r = 0; r < R; ++r)
    for (int n = 0; n < N; ++n) sum[r][n] = hsum(_mm256_add_ps(acc0[r][n], acc1[r][n]));
#else
  (void)split;
  for (int r = 0; r < R; ++r)
    for (int n = 0; n < N; ++n) sum[r][n] = 0.0f;
#endif
  for (; i < IC; ++i)
    for (int r = 0; r < R; ++r) {
      const float wi = widen1(w[r * IC + i], t);
      for (int n = 0; n < N; ++n) sum[r][n] += wi * inp[n * IC + i];
    }
  for (int r = 0; r < R; ++r)
    for (int n = 0; n < N; ++n) out[r + n * ldo] = sum[r][n];
}

// split (N,IC) = inp with each full block of 16 reordered as its 8 even then its 8 odd elements
// (the tail as it is): the order bf16 weights widen in.
void deinterleave(float* split, const float* inp, int64_t N, int64_t IC) {
  for (int64_t n = 0; n < N; ++n) {
    const float* x = inp + n * IC;
    float* y = split + n * IC;
    int64_t i = 0;
    for (; i + 16 <= IC; i += 16)
      for (int j = 0; j < 8; ++j) {
        y[i + j] = x[i + 2 * j];
        y[i + 8 + j] = x[i + 2 * j + 1];
      }
    for (; i < IC; ++i) y[i] = x[i];
  }
}

template <int N>
void stream_product(float* out, const float* inp, WeightView W, int64_t IC, int64_t OC) {
  // Rows at a time: for one input row, 8 streams of weights in flight read at 0.86-0.95 of
  // sgemm's rate on the fp32 matrix here, 4 at ~0.8 (bench/bench_weights, 2 threads).
  constexpr int R = N == 1 ? 8 : N == 2 ? 2 : 1;
  // Grow-only per calling thread: no allocation once warm.
  thread_local std::vector<float> split_buf;
  if (split_buf.size() < size_t(N * IC)) split_buf.resize(size_t(N * IC));
  float* split = split_buf.data();  // the team's threads have thread_locals of their own
  deinterleave(split, inp, N, IC);
  const uint16_t* w = W.half();
  const int64_t groups = OC / R;
#pragma omp parallel for schedule(static)
  for (int64_t g = 0; g < groups; ++g)
    dot_rows<N, R>(out + g * R, OC, inp, split, w + g * R * IC, W.type, IC);
  for (int64_t o = groups * R; o < OC; ++o)  // the last OC % R rows
    dot_rows<N, 1>(out + o, OC, inp, split, w + o * IC, W.type, IC);
}

// out (N,OC) = inp W^T: which kernel multiplies, by precision, type and rows.
void product(MatmulPrecision p, float* out, const float* inp, WeightView W, int64_t N, int64_t IC,
             int64_t OC) {
  // fp32 weights come here only for the rows linear_forward gives the panels (ops_cpu.cpp).
  if (W.type == WeightType::fp32) return panel_product(out, inp, W, N, IC, OC);
  if (p == MatmulPrecision::int8 && is_quantized(W.type) &&
      quant_int8_product(out, inp, W, N, IC, OC))
    return;
  if (is_quantized(W.type) && N <= kStreamRows) return quant_stream_product(out, inp, W, N, IC, OC);
  // bf16 precision on bf16 weights: a few rows round their inputs to bf16 and stream W as the
  // fp32 path does (bf16 times bf16 is exact in fp32; the sums are fp32). oneDNN's product
  // copied the whole matrix into its layout on every call, so decoding in bf16 ran at 0.7x the
  // fp32 path's speed (docs/hf.md).
  const bool bf16_rows = p == MatmulPrecision::bf16 && W.type == WeightType::bf16;
  if (bf16_rows && N > kStreamRows) return linear_bf16(out, inp, W.half(), N, IC, OC);
  if (bf16_rows || (p != MatmulPrecision::bf16 && N <= kStreamRows)) {
    if (bf16_rows) {  // grow-only per calling thread: no allocation once warm
      thread_local std::vector<float> rounded;
      if (rounded.size() < size_t(N * IC)) rounded.resize(size_t(N * IC));
      for (int64_t i = 0; i < N * IC; ++i) rounded[size_t(i)] = round_to_bf16(inp[i]);
      inp = rounded.data();
    }
    switch (N) {
      case 1: return stream_product<1>(out, inp, W, IC, OC);
      case 2: return stream_product<2>(out, inp, W, IC, OC);
      case 3: return stream_product<3>(out, inp, W, IC, OC);
      default: return stream_product<4>(out, inp, W, IC, OC);
    }
  }
  // More rows in fp32: W widened a cache-sized panel at a time, each panel multiplied by every
  // row; W read once and nothing widened leaves the cache. At 8 to 512 rows of a 4,096 x 1,024
  // F16 matrix, 0.9-6x the rate of sgemm on the matrix already widened (bench/bench_batch).
  if (p != MatmulPrecision::bf16) return panel_product(out, inp, W, N, IC, OC);
  // bf16 precision on f16 or block weights: blocks of W's rows widened, then gemm's bf16 product.
  // Grow-only per calling thread, like gemm's bf16 operands: no allocation once warm.
  thread_local std::vector<float> block;
  const int64_t rows = std::clamp<int64_t>(kBlockFloats / std::max<int64_t>(IC, 1), 1, OC);
  if (block.size() < size_t(rows * IC)) block.resize(size_t(rows * IC));
  float* blk = block.data();  // the team's threads have thread_locals of their own
  for (int64_t o0 = 0; o0 < OC; o0 += rows) {
    const int64_t n = std::min(rows, OC - o0);
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < n; ++r) to_fp32(blk + r * IC, W.rows_from(o0 + r, IC), IC);
    gemm(p, false, true, N, n, IC, 1.0f, inp, IC, blk, IC, 0.0f, out + o0, OC);
  }
}

}  // namespace

void widen(float* dst, const uint16_t* src, WeightType t, int64_t n) {
  int64_t i = 0;
#if defined(__AVX512F__)
  for (; i + 16 <= n; i += 16) {
    const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + i));
    const __m512 bf = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    _mm512_storeu_ps(dst + i, t == WeightType::f16 ? _mm512_cvtph_ps(h) : bf);
  }
#endif
#ifdef ALIBI_WIDEN_AVX2
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, widen8(src + i, t));
#endif
  for (; i < n; ++i) dst[i] = widen1(src[i], t);
}

void to_fp32(float* dst, WeightView w, int64_t n) {
  if (is_quantized(w.type))
    dequantize_rows(dst, w, n);
  else if (w.type == WeightType::fp32)
    std::memcpy(dst, w.f32(), size_t(n) * sizeof(float));
  else
    widen(dst, w.half(), w.type, n);
}

void linear_forward_stored(MatmulPrecision p, float* out, const float* inp, WeightView W,
                           const float* b, int64_t N, int64_t IC, int64_t OC) {
  product(p, out, inp, W, N, IC, OC);
  if (b) add_bias(out, b, N, OC);
}

void embedding_forward_stored(float* x, const int32_t* tokens, WeightView wte, int64_t N,
                              int64_t C, float scale) {
#pragma omp parallel for schedule(static) if (N * C >= (int64_t(1) << 15))
  for (int64_t n = 0; n < N; ++n) {
    float* r = x + n * C;
    to_fp32(r, wte.rows_from(tokens[n], C), C);
#pragma omp simd
    for (int64_t c = 0; c < C; ++c) r[c] *= scale;
  }
}

}  // namespace alibi::cpu
