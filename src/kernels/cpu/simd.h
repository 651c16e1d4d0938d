#pragma once
// The x86 intrinsics, for the kernels that use AVX-512. GCC 12's AVX-512 conversion intrinsics
// start from _mm512_undefined_*(), which its -Wmaybe-uninitialized reports as used uninitialized
// at every inlined call (a false positive); the kernel files that include this header have those
// two warnings off from here on.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif
#include <immintrin.h>

namespace alibi::cpu {
#if defined(__AVX512F__)
// The sums of the 16 lanes of each of a, b, c and d: halves added (256, then 128 bits, the four
// together), then the 4 lanes of each quarter. 11 operations where four reductions take ~32.
// Each sum is lane l plus lane l + 8, then l + 4, l + 2 and l + 1: _mm512_reduce_add_ps's order.
inline __m128 sum4(__m512 a, __m512 b, __m512 c, __m512 d) {
  const __m512 ab =
      _mm512_add_ps(_mm512_shuffle_f32x4(a, b, 0x44), _mm512_shuffle_f32x4(a, b, 0xEE));
  const __m512 cd =
      _mm512_add_ps(_mm512_shuffle_f32x4(c, d, 0x44), _mm512_shuffle_f32x4(c, d, 0xEE));
  // quarters: a's, b's, c's, d's (each the sum of its 4 quarters)
  __m512 q = _mm512_add_ps(_mm512_shuffle_f32x4(ab, cd, 0x88), _mm512_shuffle_f32x4(ab, cd, 0xDD));
  q = _mm512_add_ps(q, _mm512_shuffle_ps(q, q, 0x4E));
  q = _mm512_add_ps(q, _mm512_shuffle_ps(q, q, 0xB1));
  return _mm512_castps512_ps128(
      _mm512_permutexvar_ps(_mm512_set_epi32(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 12, 8, 4, 0), q));
}
#endif
}  // namespace alibi::cpu
