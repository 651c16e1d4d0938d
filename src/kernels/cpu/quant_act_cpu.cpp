// The activations' rounding of the int8 products (quant_int8_cpu.cpp), as llama.cpp rounds
// them for Q8_0: per block of 32, d = max|x| / 127 and q = x times fl(1 / d) in fp32, rounded to
// nearest even; s the block's sum of q (docs/gguf.md).
#include <algorithm>
#include <cmath>

#include "kernels/cpu/ops_cpu.h"
#include "kernels/cpu/simd.h"  // first: its pragmas must precede <immintrin.h>

namespace alibi::cpu {

void quantize_activations(const float* x, int64_t n, int8_t* q, float* d, int32_t* s) {
  for (int64_t b = 0; b < n / 32; ++b) {
    const float* xb = x + 32 * b;
#if defined(__AVX512F__) && defined(__AVX512BW__)
    // The loop below in 16 lanes, the same operations: max(|x|, amax) keeps amax where x is NaN,
    // as std::max does; vcvtps2dq rounds to nearest even, as nearbyint in the default mode.
    const __m512 x0 = _mm512_loadu_ps(xb), x1 = _mm512_loadu_ps(xb + 16);
    const float amax = _mm512_reduce_max_ps(
        _mm512_max_ps(_mm512_abs_ps(x1), _mm512_max_ps(_mm512_abs_ps(x0), _mm512_setzero_ps())));
    const float db = amax / 127.0f, id = db != 0.0f ? 1.0f / db : 0.0f;
    auto codes = [&](__m512 v) {
      const __m512 t = _mm512_mul_ps(v, _mm512_set1_ps(id));
      const __m512 c =
          _mm512_min_ps(_mm512_max_ps(t, _mm512_set1_ps(-127.0f)), _mm512_set1_ps(127.0f));
      return _mm512_maskz_cvtps_epi32(_mm512_cmp_ps_mask(t, t, _CMP_ORD_Q), c);
    };
    const __m512i c0 = codes(x0), c1 = codes(x1);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(q + 32 * b), _mm512_cvtepi32_epi8(c0));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(q + 32 * b + 16), _mm512_cvtepi32_epi8(c1));
    d[b] = db;
    s[b] = _mm512_reduce_add_epi32(_mm512_add_epi32(c0, c1));
#else
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
#endif
  }
}

}  // namespace alibi::cpu
