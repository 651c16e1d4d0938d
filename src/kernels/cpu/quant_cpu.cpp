// Products on GGUF's block-quantized weights (kernels/quant.h). Each block is dequantized in
// registers to exactly the fp32 values of quant.h's definition (the same operations in the same
// order, one rounding each: this file is compiled with -ffp-contract=off) and meets the fp32
// activations in fp32 FMAs. The activations are not rounded (llama.cpp rounds them to 8 bits per
// block); a product equals the fp32 product on the dequantized matrix up to summation order, and
// each output is one thread's sum in a fixed order, whatever the thread count (docs/gguf.md).
#include "kernels/cpu/simd.h"  // first: its pragmas must precede <immintrin.h>

#include <omp.h>

#include <cstring>
#include <vector>

#include "core/half.h"
#include "kernels/cpu/ops_cpu.h"
#include "kernels/quant.h"

namespace alibi::cpu {
namespace {

#if defined(__AVX512F__) && defined(__AVX512BW__)
#define ALIBI_QUANT_AVX512 1

// 16 bytes at p as 16 int32 lanes, unsigned or signed.
inline __m512i u8x16(const uint8_t* p) {
  return _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}
inline __m512i i8x16(const uint8_t* p) {
  return _mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}
inline __m512 ps(__m512i v) { return _mm512_cvtepi32_ps(v); }

// Each type's blocks as 16-element chunks: each(block, f) calls f(c, w) for chunk c (elements
// 16c .. 16c+15 of the block) with w its dequantized values.
template <WeightType T>
struct Blocks;

template <>
struct Blocks<WeightType::q8_0> {
  static constexpr int kElems = 32, kBytes = 34;
  template <class F>
  static void each(const uint8_t* b, F&& f) {
    const __m512 d = _mm512_set1_ps(load_f16(b));
    f(0, _mm512_mul_ps(ps(i8x16(b + 2)), d));
    f(1, _mm512_mul_ps(ps(i8x16(b + 18)), d));
  }
};

// Q4_0 and Q4_1: 16 bytes of nibbles, low nibbles the first 16 elements.
template <bool kMin, class F>
void each_q4(const uint8_t* b, F&& f) {
  const __m512 d = _mm512_set1_ps(load_f16(b));
  const uint8_t* q = b + (kMin ? 4 : 2);
  const __m512i all = u8x16(q), low = _mm512_set1_epi32(0xF);
  const __m512i lo = _mm512_and_si512(all, low), hi = _mm512_srli_epi32(all, 4);
  if constexpr (kMin) {
    const __m512 m = _mm512_set1_ps(load_f16(b + 2));
    f(0, _mm512_add_ps(_mm512_mul_ps(d, ps(lo)), m));
    f(1, _mm512_add_ps(_mm512_mul_ps(d, ps(hi)), m));
  } else {
    const __m512i eight = _mm512_set1_epi32(8);
    f(0, _mm512_mul_ps(d, ps(_mm512_sub_epi32(lo, eight))));
    f(1, _mm512_mul_ps(d, ps(_mm512_sub_epi32(hi, eight))));
  }
}
template <>
struct Blocks<WeightType::q4_0> {
  static constexpr int kElems = 32, kBytes = 18;
  template <class F>
  static void each(const uint8_t* b, F&& f) { each_q4<false>(b, f); }
};
template <>
struct Blocks<WeightType::q4_1> {
  static constexpr int kElems = 32, kBytes = 20;
  template <class F>
  static void each(const uint8_t* b, F&& f) { each_q4<true>(b, f); }
};

// Q5_0 and Q5_1: bit j of qh is element j's fifth bit.
template <bool kMin, class F>
void each_q5(const uint8_t* b, F&& f) {
  const __m512 d = _mm512_set1_ps(load_f16(b));
  const uint8_t* p = b + (kMin ? 4 : 2);
  uint32_t qh;
  std::memcpy(&qh, p, 4);
  const __m512i all = u8x16(p + 4), sixteen = _mm512_set1_epi32(16);
  __m512i lo = _mm512_and_si512(all, _mm512_set1_epi32(0xF)), hi = _mm512_srli_epi32(all, 4);
  lo = _mm512_mask_or_epi32(lo, __mmask16(qh & 0xFFFF), lo, sixteen);
  hi = _mm512_mask_or_epi32(hi, __mmask16(qh >> 16), hi, sixteen);
  if constexpr (kMin) {
    const __m512 m = _mm512_set1_ps(load_f16(b + 2));
    f(0, _mm512_add_ps(_mm512_mul_ps(d, ps(lo)), m));
    f(1, _mm512_add_ps(_mm512_mul_ps(d, ps(hi)), m));
  } else {
    f(0, _mm512_mul_ps(d, ps(_mm512_sub_epi32(lo, sixteen))));
    f(1, _mm512_mul_ps(d, ps(_mm512_sub_epi32(hi, sixteen))));
  }
}
template <>
struct Blocks<WeightType::q5_0> {
  static constexpr int kElems = 32, kBytes = 22;
  template <class F>
  static void each(const uint8_t* b, F&& f) { each_q5<false>(b, f); }
};
template <>
struct Blocks<WeightType::q5_1> {
  static constexpr int kElems = 32, kBytes = 24;
  template <class F>
  static void each(const uint8_t* b, F&& f) { each_q5<true>(b, f); }
};

// Q4_K and Q5_K: 8 sub-blocks of 32, each (d sc) q - (dmin mn).
template <bool kFive, class F>
void each_k(const uint8_t* b, F&& f) {
  const float d = load_f16(b), dmin = load_f16(b + 2);
  const uint8_t* s = b + 4;
  const uint8_t* qh = b + 16;
  const uint8_t* qs = b + (kFive ? 48 : 16);
  const __m512i low = _mm512_set1_epi32(0xF), one = _mm512_set1_epi32(1);
  __m512i h0, h1;
  if constexpr (kFive) {
    h0 = u8x16(qh);
    h1 = u8x16(qh + 16);
  }
  for (int i = 0; i < 8; ++i) {
    const int sc = i < 4 ? s[i] & 63 : (s[i + 4] & 0xF) | ((s[i - 4] >> 6) << 4);
    const int mn = i < 4 ? s[i + 4] & 63 : (s[i + 4] >> 4) | ((s[i] >> 6) << 4);
    const __m512 D = _mm512_set1_ps(d * float(sc)), M = _mm512_set1_ps(dmin * float(mn));
    const uint8_t* q = qs + (i / 2) * 32;
    const int shift = (i % 2) * 4;
    for (int c = 0; c < 2; ++c) {
      __m512i v = _mm512_and_si512(_mm512_srli_epi32(u8x16(q + 16 * c), shift), low);
      if constexpr (kFive) {
        const __m512i bit = _mm512_and_si512(_mm512_srli_epi32(c ? h1 : h0, i), one);
        v = _mm512_or_si512(v, _mm512_slli_epi32(bit, 4));
      }
      f(2 * i + c, _mm512_sub_ps(_mm512_mul_ps(D, ps(v)), M));
    }
  }
}
template <>
struct Blocks<WeightType::q4_k> {
  static constexpr int kElems = 256, kBytes = 144;
  template <class F>
  static void each(const uint8_t* b, F&& f) { each_k<false>(b, f); }
};
template <>
struct Blocks<WeightType::q5_k> {
  static constexpr int kElems = 256, kBytes = 176;
  template <class F>
  static void each(const uint8_t* b, F&& f) { each_k<true>(b, f); }
};

template <>
struct Blocks<WeightType::q6_k> {
  static constexpr int kElems = 256, kBytes = 210;
  template <class F>
  static void each(const uint8_t* b, F&& f) {
    const uint8_t *ql = b, *qh = b + 128;
    const int8_t* sc = reinterpret_cast<const int8_t*>(b + 192);
    const float d = load_f16(b + 208);
    const __m512i low = _mm512_set1_epi32(0xF), three = _mm512_set1_epi32(3),
                  off = _mm512_set1_epi32(32);
    for (int h = 0; h < 2; ++h)
      for (int t = 0; t < 4; ++t)
        for (int c = 0; c < 2; ++c) {
          const int e = 16 * c, idx = h * 128 + t * 32 + e;
          const __m512i lo = _mm512_and_si512(
              _mm512_srli_epi32(u8x16(ql + h * 64 + (t % 2) * 32 + e), 4 * (t / 2)), low);
          const __m512i hi =
              _mm512_and_si512(_mm512_srli_epi32(u8x16(qh + h * 32 + e), 2 * t), three);
          const __m512i q = _mm512_sub_epi32(_mm512_or_si512(lo, _mm512_slli_epi32(hi, 4)), off);
          f(idx / 16, _mm512_mul_ps(_mm512_set1_ps(d * float(sc[idx / 16])), ps(q)));
        }
  }
};

inline float hsum(__m512 v) { return _mm512_reduce_add_ps(v); }

template <WeightType T>
void dequant_row(float* dst, const uint8_t* w, int64_t n) {
  using B = Blocks<T>;
  for (int64_t i = 0; i < n; i += B::kElems, w += B::kBytes)
    B::each(w, [&](int c, __m512 v) { _mm512_storeu_ps(dst + i + 16 * c, v); });
}

// out[r + n * ldo] = dot(inp row n, w row r) for R consecutive rows and N input rows.
template <WeightType T, int N, int R>
void dot_rows(float* out, int64_t ldo, const float* inp, const uint8_t* w, int64_t IC,
              size_t row_bytes) {
  using B = Blocks<T>;
  __m512 acc[R][N];
  for (int r = 0; r < R; ++r)
    for (int n = 0; n < N; ++n) acc[r][n] = _mm512_setzero_ps();
  for (int64_t i = 0, k = 0; i < IC; i += B::kElems, k += B::kBytes)
    for (int r = 0; r < R; ++r)
      B::each(w + r * row_bytes + k, [&](int c, __m512 v) {
        for (int n = 0; n < N; ++n)
          acc[r][n] = _mm512_fmadd_ps(v, _mm512_loadu_ps(inp + n * IC + i + 16 * c), acc[r][n]);
      });
  for (int r = 0; r < R; ++r)
    for (int n = 0; n < N; ++n) out[r + n * ldo] = hsum(acc[r][n]);
}

template <WeightType T, int N>
void stream(float* out, const float* inp, const uint8_t* w, int64_t IC, int64_t OC) {
  constexpr int R = N == 1 ? 4 : N == 2 ? 2 : 1;
  const size_t rb = weight_row_bytes(T, IC);
  const int64_t groups = OC / R;
#pragma omp parallel for schedule(static)
  for (int64_t g = 0; g < groups; ++g)
    dot_rows<T, N, R>(out + g * R, OC, inp, w + g * R * rb, IC, rb);
  for (int64_t o = groups * R; o < OC; ++o) dot_rows<T, N, 1>(out + o, OC, inp, w + o * rb, IC, rb);
}

template <WeightType T>
void stream_n(float* out, const float* inp, const uint8_t* w, int64_t N, int64_t IC, int64_t OC) {
  switch (N) {
    case 1: stream<T, 1>(out, inp, w, IC, OC); break;
    case 2: stream<T, 2>(out, inp, w, IC, OC); break;
    case 3: stream<T, 3>(out, inp, w, IC, OC); break;
    default: stream<T, 4>(out, inp, w, IC, OC); break;
  }
}
#endif

}  // namespace

void dequantize_rows(float* dst, WeightView w, int64_t n) {
#ifdef ALIBI_QUANT_AVX512
  switch (w.type) {
    case WeightType::q8_0: return dequant_row<WeightType::q8_0>(dst, w.bytes(), n);
    case WeightType::q4_0: return dequant_row<WeightType::q4_0>(dst, w.bytes(), n);
    case WeightType::q4_1: return dequant_row<WeightType::q4_1>(dst, w.bytes(), n);
    case WeightType::q5_0: return dequant_row<WeightType::q5_0>(dst, w.bytes(), n);
    case WeightType::q5_1: return dequant_row<WeightType::q5_1>(dst, w.bytes(), n);
    case WeightType::q4_k: return dequant_row<WeightType::q4_k>(dst, w.bytes(), n);
    case WeightType::q5_k: return dequant_row<WeightType::q5_k>(dst, w.bytes(), n);
    case WeightType::q6_k: return dequant_row<WeightType::q6_k>(dst, w.bytes(), n);
    default: break;
  }
#endif
  dequantize(dst, w.data, w.type, n);
}

void quant_stream_product(float* out, const float* inp, WeightView W, int64_t N, int64_t IC,
                          int64_t OC) {
#ifdef ALIBI_QUANT_AVX512
  const uint8_t* w = W.bytes();
  switch (W.type) {
    case WeightType::q8_0: return stream_n<WeightType::q8_0>(out, inp, w, N, IC, OC);
    case WeightType::q4_0: return stream_n<WeightType::q4_0>(out, inp, w, N, IC, OC);
    case WeightType::q4_1: return stream_n<WeightType::q4_1>(out, inp, w, N, IC, OC);
    case WeightType::q5_0: return stream_n<WeightType::q5_0>(out, inp, w, N, IC, OC);
    case WeightType::q5_1: return stream_n<WeightType::q5_1>(out, inp, w, N, IC, OC);
    case WeightType::q4_k: return stream_n<WeightType::q4_k>(out, inp, w, N, IC, OC);
    case WeightType::q5_k: return stream_n<WeightType::q5_k>(out, inp, w, N, IC, OC);
    case WeightType::q6_k: return stream_n<WeightType::q6_k>(out, inp, w, N, IC, OC);
    default: break;
  }
#endif
  // Without AVX-512: each row of W dequantized into per-thread scratch, then fp32 dot products
  // in a fixed order.
  const size_t rb = weight_row_bytes(W.type, IC);
#pragma omp parallel
  {
    thread_local std::vector<float> row;
    if (row.size() < size_t(IC)) row.resize(size_t(IC));
#pragma omp for schedule(static)
    for (int64_t o = 0; o < OC; ++o) {
      dequantize(row.data(), W.bytes() + o * rb, W.type, IC);
      for (int64_t n = 0; n < N; ++n) {
        float s = 0.0f;
        for (int64_t i = 0; i < IC; ++i) s += row[size_t(i)] * inp[n * IC + i];
        out[n * OC + o] = s;
      }
    }
  }
}

}  // namespace alibi::cpu
