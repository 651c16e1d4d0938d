// Products of GGUF's block-quantized weights with int8 activations (MatmulPrecision::int8), as
// llama.cpp computes them: each input row is rounded to 8 bits per block of 32 (Q8_0's scheme,
// quantize_activations), each block of weights meets its activations in one AVX512-VNNI integer
// dot product (vpdpbusd: 64 bytes, 16 sums of 4), and the sums are scaled by the weight block's
// (or sub-block's) scale times the activation block's and added in fp32, in a fixed order, one
// output per thread. Exactly what is rounded where (docs/gguf.md):
//   - the activations: q = x / d rounded to nearest even, d = max|x| / 127 per block of 32;
//   - the integer sums: exact;
//   - each scale product (the weight's scale, its sub-block scale, the activation's d): fp32;
//   - the accumulation: fp32 fused multiply-adds per 16 lanes, then their sum.
// The error against the exact product on the dequantized weights is bounded by
// sum_i |w_i| d_i / 2 (the activations' rounding) plus fp32 rounding (tests/test_gguf.cpp).
#include "kernels/cpu/simd.h"  // first: its pragmas must precede <immintrin.h>

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "core/half.h"
#include "kernels/cpu/ops_cpu.h"
#include "kernels/quant.h"

namespace alibi::cpu {

void quantize_activations(const float* x, int64_t n, int8_t* q, float* d, int32_t* s) {
  for (int64_t b = 0; b < n / 32; ++b) {
    const float* xb = x + 32 * b;
    float amax = 0.0f;
    for (int i = 0; i < 32; ++i) amax = std::max(amax, std::fabs(xb[i]));
    const float db = amax / 127.0f, id = db != 0.0f ? 1.0f / db : 0.0f;
    int32_t sum = 0;
    for (int i = 0; i < 32; ++i) {
      const float t = xb[i] * id;  // |t| <= 127 up to rounding; NaN (a non-finite input) -> 0
      const int v = t >= 127.0f ? 127 : t <= -127.0f ? -127 : t == t ? int(std::nearbyint(t)) : 0;
      q[32 * b + i] = int8_t(v);
      sum += v;
    }
    d[b] = db;
    s[b] = sum;
  }
}

#if defined(__AVX512VNNI__) && defined(__AVX512BW__) && defined(__AVX512VL__)
namespace {

struct Act {  // one input row: q (IC), per block of 32 d and sum q
  const int8_t* q;
  const float* d;
  const int32_t* s;
};

inline float f16_at(const uint8_t* p) {  // F16C's conversion: f16_to_float's value
  uint16_t h;
  std::memcpy(&h, p, 2);
  return _cvtsh_ss(h);
}
inline __m256i load256(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }
inline __m512i join(__m256i lo, __m256i hi) {
  return _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
}
// Sums of 4 products of signed bytes w and x, in 16 int32 lanes: vpdpbusd takes its first
// operand unsigned, so |w| meets x with w's sign.
inline __m512i dot_signed(__m512i w, __m512i x) {
  const __m512i zero = _mm512_setzero_si512();
  const __m512i xs = _mm512_mask_sub_epi8(x, _mm512_movepi8_mask(w), zero, x);
  return _mm512_dpbusd_epi32(zero, _mm512_abs_epi8(w), xs);
}
inline __m512i dot_unsigned(__m512i w, __m512i x) {
  return _mm512_dpbusd_epi32(_mm512_setzero_si512(), w, x);
}
// Lanes 0-7 (the first 32 bytes) a, lanes 8-15 b.
inline __m512 halves(float a, float b) {
  return _mm512_mask_blend_ps(0xFF00, _mm512_set1_ps(a), _mm512_set1_ps(b));
}
inline __m512 add_scaled(__m512 acc, __m512i sums, __m512 scale) {
  return _mm512_fmadd_ps(_mm512_cvtepi32_ps(sums), scale, acc);
}

// Q8_0 and Q4_0: a block of 32 as bytes, its scale d in its first two bytes. Q8_0's are signed;
// Q4_0's are its unsigned nibbles q (low nibbles elements 0-15), its values d (q - 8), so its
// dot products are d (sum q x - 8 sum x), the second term from the activations' block sums.
template <WeightType T>
struct Blocks32;
template <>
struct Blocks32<WeightType::q8_0> {
  static constexpr int kBytes = 34, kOffset = 0;
  static __m256i weights(const uint8_t* b) { return load256(b + 2); }
  static __m512i dot(__m512i w, __m512i x) { return dot_signed(w, x); }
};
template <>
struct Blocks32<WeightType::q4_0> {
  static constexpr int kBytes = 18, kOffset = 8;
  static __m256i weights(const uint8_t* b) {
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b + 2));
    const __m128i m = _mm_set1_epi8(0xF);
    const __m128i lo = _mm_and_si128(v, m), hi = _mm_and_si128(_mm_srli_epi16(v, 4), m);
    return _mm256_set_m128i(hi, lo);
  }
  static __m512i dot(__m512i w, __m512i x) { return dot_unsigned(w, x); }
};

// out[n * ldo] = dot(q8(x row n), w row) for N input rows: one weight row's every block.
template <WeightType T, int N>
void row_dot(float* out, int64_t ldo, const uint8_t* w, const Act* x, int64_t IC) {
  __m512 acc[N];
  float corr[N];  // subtracted at the end: Q4_0's offsets, Q4_K's minimums
  for (int n = 0; n < N; ++n) {
    acc[n] = _mm512_setzero_ps();
    corr[n] = 0.0f;
  }
  if constexpr (T == WeightType::q8_0 || T == WeightType::q4_0) {
    using B = Blocks32<T>;
    const int64_t nb = IC / 32;
    int64_t b = 0;
    for (; b + 2 <= nb; b += 2) {
      const uint8_t *b0 = w + b * B::kBytes, *b1 = b0 + B::kBytes;
      const __m512i wv = join(B::weights(b0), B::weights(b1));
      const float d0 = f16_at(b0), d1 = f16_at(b1);
      for (int n = 0; n < N; ++n) {
        const float s0 = d0 * x[n].d[b], s1 = d1 * x[n].d[b + 1];
        acc[n] = add_scaled(acc[n], B::dot(wv, _mm512_loadu_si512(x[n].q + 32 * b)), halves(s0, s1));
        if constexpr (B::kOffset != 0)
          corr[n] += float(B::kOffset) * (s0 * float(x[n].s[b]) + s1 * float(x[n].s[b + 1]));
      }
    }
    if (b < nb) {  // an odd last block: upper lanes zero
      const uint8_t* b0 = w + b * B::kBytes;
      const __m512i wv = _mm512_zextsi256_si512(B::weights(b0));
      const float d0 = f16_at(b0);
      for (int n = 0; n < N; ++n) {
        const float s0 = d0 * x[n].d[b];
        acc[n] = add_scaled(acc[n], B::dot(wv, _mm512_zextsi256_si512(load256(x[n].q + 32 * b))),
                            _mm512_set1_ps(s0));
        if constexpr (B::kOffset != 0) corr[n] += float(B::kOffset) * s0 * float(x[n].s[b]);
      }
    }
  } else if constexpr (T == WeightType::q4_k) {
    // 8 sub-blocks of 32: (d sc) q - (dmin mn), q unsigned; bytes 32j..32j+31 of qs hold
    // sub-block 2j in their low nibbles and 2j+1 in their high ones.
    const __m256i m = _mm256_set1_epi8(0xF);
    for (int64_t k = 0; k < IC / 256; ++k, w += 144) {
      const float d = f16_at(w), dmin = f16_at(w + 2);
      const uint8_t* s = w + 4;
      for (int j = 0; j < 4; ++j) {
        float D[2], M[2];
        for (int h = 0; h < 2; ++h) {
          const int i = 2 * j + h;
          const int sc = i < 4 ? s[i] & 63 : (s[i + 4] & 0xF) | ((s[i - 4] >> 6) << 4);
          const int mn = i < 4 ? s[i + 4] & 63 : (s[i + 4] >> 4) | ((s[i] >> 6) << 4);
          D[h] = d * float(sc);
          M[h] = dmin * float(mn);
        }
        const __m256i v = load256(w + 16 + 32 * j);
        const __m512i wv = join(_mm256_and_si256(v, m), _mm256_and_si256(_mm256_srli_epi16(v, 4), m));
        const int64_t a = k * 8 + 2 * j;  // the activation block of sub-block 2j
        for (int n = 0; n < N; ++n) {
          const float da = x[n].d[a], db = x[n].d[a + 1];
          acc[n] = add_scaled(acc[n], dot_unsigned(wv, _mm512_loadu_si512(x[n].q + 32 * a)),
                              halves(D[0] * da, D[1] * db));
          corr[n] += M[0] * da * float(x[n].s[a]) + M[1] * db * float(x[n].s[a + 1]);
        }
      }
    }
  } else {
    static_assert(T == WeightType::q6_k);
    // (d sc) (q - 32), a 6-bit q from ql's nibble and qh's 2 bits, an int8 sc per 16. Elements
    // 128h + 64p + [0, 64) take ql bytes 64h.. shifted by 4p and qh bytes 32h.. shifted by 4p
    // (the first 32) and 4p + 2 (the next 32); their scales are sc[8h + 4p + g], g < 4.
    const __m512i m4 = _mm512_set1_epi8(0xF), m2 = _mm512_set1_epi8(3), off = _mm512_set1_epi8(32);
    const __m512i each4 = _mm512_set_epi32(3, 3, 3, 3, 2, 2, 2, 2, 1, 1, 1, 1, 0, 0, 0, 0);
    for (int64_t k = 0; k < IC / 256; ++k, w += 210) {
      const uint8_t *ql = w, *qh = w + 128;
      const int8_t* sc = reinterpret_cast<const int8_t*>(w + 192);
      const float d = f16_at(w + 208);
      for (int h = 0; h < 2; ++h)
        for (int p = 0; p < 2; ++p) {
          __m512i lo = _mm512_loadu_si512(ql + 64 * h);
          if (p) lo = _mm512_srli_epi16(lo, 4);
          const __m256i h32 = load256(qh + 32 * h);
          const __m512i hi =
              _mm512_and_si512(join(_mm256_srli_epi16(h32, 4 * p), _mm256_srli_epi16(h32, 4 * p + 2)), m2);
          const __m512i q = _mm512_sub_epi8(
              _mm512_or_si512(_mm512_and_si512(lo, m4), _mm512_slli_epi16(hi, 4)), off);
          int32_t s4;
          std::memcpy(&s4, sc + 8 * h + 4 * p, 4);
          const __m512 sv = _mm512_permutexvar_ps(
              each4, _mm512_castps128_ps512(_mm_cvtepi32_ps(_mm_cvtepi8_epi32(_mm_cvtsi32_si128(s4)))));
          const int64_t a = k * 8 + 4 * h + 2 * p;
          for (int n = 0; n < N; ++n)
            acc[n] = add_scaled(acc[n], dot_signed(q, _mm512_loadu_si512(x[n].q + 32 * a)),
                                _mm512_mul_ps(sv, halves(d * x[n].d[a], d * x[n].d[a + 1])));
        }
    }
  }
  for (int n = 0; n < N; ++n) out[n * ldo] = _mm512_reduce_add_ps(acc[n]) - corr[n];
}

// Every input row against each weight row in turn, 4 at a time: a weight row (at most a few KiB)
// is read from memory once and meets the later rows from L1.
template <WeightType T>
void rows(float* out, const Act* x, const uint8_t* w, int64_t N, int64_t IC, int64_t OC) {
  const size_t rb = weight_row_bytes(T, IC);
#pragma omp parallel for schedule(static)
  for (int64_t o = 0; o < OC; ++o) {
    const uint8_t* wr = w + o * rb;
    int64_t n = 0;
    for (; n + 4 <= N; n += 4) row_dot<T, 4>(out + n * OC + o, OC, wr, x + n, IC);
    switch (N - n) {
      case 1: row_dot<T, 1>(out + n * OC + o, OC, wr, x + n, IC); break;
      case 2: row_dot<T, 2>(out + n * OC + o, OC, wr, x + n, IC); break;
      case 3: row_dot<T, 3>(out + n * OC + o, OC, wr, x + n, IC); break;
      default: break;
    }
  }
}

}  // namespace
#endif

bool quant_int8_product(float* out, const float* inp, WeightView W, int64_t N, int64_t IC,
                        int64_t OC) {
#if defined(__AVX512VNNI__) && defined(__AVX512BW__) && defined(__AVX512VL__)
  const WeightType t = W.type;
  const int64_t unit = t == WeightType::q4_k || t == WeightType::q6_k ? 256 : 32;
  const bool ours = t == WeightType::q8_0 || t == WeightType::q4_0 || t == WeightType::q4_k ||
                    t == WeightType::q6_k;
  if (!ours || N < 1 || IC % unit != 0 || !cpu_has_vnni()) return false;
  // Grow-only in the calling thread: no allocation once warm; the team reads them.
  thread_local std::vector<int8_t> q;
  thread_local std::vector<float> d;
  thread_local std::vector<int32_t> s;
  thread_local std::vector<Act> x;
  const int64_t nb = IC / 32;
  if (q.size() < size_t(N * IC)) q.resize(size_t(N * IC));
  if (d.size() < size_t(N * nb)) {
    d.resize(size_t(N * nb));
    s.resize(size_t(N * nb));
  }
  if (x.size() < size_t(N)) x.resize(size_t(N));
  // The team's threads have thread_locals of their own: they see these through pointers.
  int8_t* qp = q.data();
  float* dp = d.data();
  int32_t* sp = s.data();
  Act* xp = x.data();
#pragma omp parallel for schedule(static) if (N > 4)
  for (int64_t n = 0; n < N; ++n) {
    quantize_activations(inp + n * IC, IC, qp + n * IC, dp + n * nb, sp + n * nb);
    xp[n] = {qp + n * IC, dp + n * nb, sp + n * nb};
  }
  const uint8_t* w = W.bytes();
  switch (t) {
    case WeightType::q8_0: rows<WeightType::q8_0>(out, xp, w, N, IC, OC); break;
    case WeightType::q4_0: rows<WeightType::q4_0>(out, xp, w, N, IC, OC); break;
    case WeightType::q4_k: rows<WeightType::q4_k>(out, xp, w, N, IC, OC); break;
    default: rows<WeightType::q6_k>(out, xp, w, N, IC, OC); break;
  }
  return true;
#else
  (void)out, (void)inp, (void)W, (void)N, (void)IC, (void)OC;
  return false;
#endif
}

}  // namespace alibi::cpu
