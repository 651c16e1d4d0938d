#pragma once
// What every CUDA file of the backend shares: error checks, launch shapes, and the device twins
// of the host helpers whose results must match bit for bit (the dropout hash of core/rng.h,
// bf16 rounding of core/half.h).
#include <cuda_runtime.h>

#include <cstdint>

#include "core/error.h"

namespace alibi::cuda {

#define ALIBI_CUDA_CHECK(expr)                                                                 \
  do {                                                                                         \
    const cudaError_t alibi_err_ = (expr);                                                     \
    ALIBI_CHECK(alibi_err_ == cudaSuccess, #expr, ": ", cudaGetErrorString(alibi_err_), " (", \
                __FILE__, ":", __LINE__, ")");                                                 \
  } while (0)

// After a launch: a bad configuration shows here, a fault at the next synchronisation.
#define ALIBI_CUDA_LAUNCHED() ALIBI_CUDA_CHECK(cudaGetLastError())

constexpr int kThreads = 256;  // threads per block of the element-wise kernels
constexpr int kWarp = 32;

inline unsigned blocks_for(int64_t n, int threads = kThreads) {
  const int64_t b = (n + threads - 1) / threads;
  return unsigned(b < 1 ? 1 : b > 65535 * 16 ? 65535 * 16 : b);
}

// core/rng.h's mix64 / hash64 / u01, on the device: the same bits.
__device__ __forceinline__ uint64_t mix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}
__device__ __forceinline__ uint64_t hash64(uint64_t a, uint64_t b) { return mix64(a ^ mix64(b)); }
__device__ __forceinline__ uint64_t hash64(uint64_t a, uint64_t b, uint64_t c) {
  return hash64(hash64(a, b), c);
}
__device__ __forceinline__ uint64_t hash64(uint64_t a, uint64_t b, uint64_t c, uint64_t d) {
  return hash64(hash64(a, b, c), d);
}
__device__ __forceinline__ float u01(uint64_t h) {
  return float(h >> 40) * (1.0f / 16777216.0f);
}

// fp32 rounded to the nearest bf16 (ties to even) and back: the value a bf16 operand carries.
__device__ __forceinline__ float round_bf16(float x) {
  uint32_t u = __float_as_uint(x);
  if ((u & 0x7fffffffu) > 0x7f800000u) return x;  // NaN stays NaN
  u += 0x7fffu + ((u >> 16) & 1u);
  return __uint_as_float(u & 0xffff0000u);
}

__device__ __forceinline__ float warp_sum(float v) {
  for (int o = kWarp / 2; o > 0; o /= 2) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ float warp_max(float v) {
  for (int o = kWarp / 2; o > 0; o /= 2) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

}  // namespace alibi::cuda
