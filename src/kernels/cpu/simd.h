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
