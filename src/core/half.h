#pragma once
// The 16-bit float formats of stored weights, one element at a time: bfloat16 (fp32's 8-bit
// exponent, 7-bit mantissa) and IEEE binary16 (5-bit exponent, 10-bit mantissa). Narrowing rounds
// to nearest even, as the hardware conversions (vcvtneps2bf16, vcvtps2ph) do; NaN stays NaN.
// Widening is exact. Vector kernels have their own conversions and are tested against these.
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>

namespace alibi {

inline float bf16_to_float(uint16_t h) { return std::bit_cast<float>(uint32_t(h) << 16); }

inline uint16_t float_to_bf16(float x) {
  const uint32_t u = std::bit_cast<uint32_t>(x);
  if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x40);  // quiet NaN
  return uint16_t((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

// x rounded to the nearest bf16 and widened back: the fp32 value a bf16 operand holds.
inline float round_to_bf16(float x) { return bf16_to_float(float_to_bf16(x)); }

inline float f16_to_float(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu;
  if (exp == 31)  // infinity, or NaN made quiet (as vcvtph2ps does)
    return std::bit_cast<float>(sign | 0x7f800000u | (mant ? 0x400000u : 0u) | (mant << 13));
  if (exp != 0) return std::bit_cast<float>(sign | ((exp + 112) << 23) | (mant << 13));
  // zero or subnormal: mant * 2^-24, exact in fp32
  const float mag = float(mant) * 0x1p-24f;
  return std::bit_cast<float>(sign | std::bit_cast<uint32_t>(mag));
}

inline uint16_t float_to_f16(float x) {
  const uint32_t u = std::bit_cast<uint32_t>(x);
  const uint16_t sign = uint16_t((u >> 16) & 0x8000u);
  const uint32_t a = u & 0x7fffffffu;
  if (a > 0x7f800000u) return uint16_t(sign | 0x7e00u | ((a >> 13) & 0x3ffu));  // NaN
  if (a >= 0x477ff000u) return uint16_t(sign | 0x7c00u);  // rounds past 65504: infinity
  if (a < 0x38800000u) {
    // below 2^-14: a subnormal (or zero) step of 2^-24, rounded to nearest even by the FPU
    const float mag = std::bit_cast<float>(a) * 0x1p24f;
    const uint32_t m = uint32_t(std::nearbyint(mag));
    return uint16_t(sign | m);  // m == 0x400 becomes the smallest normal, as it should
  }
  const uint32_t r = a + 0xfffu + ((a >> 13) & 1u);  // round the 13 dropped bits to even
  return uint16_t(sign | ((r - 0x38000000u) >> 13));
}

// The f16 stored at p (2 bytes, little-endian, any alignment), and x stored there as f16.
inline float load_f16(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return f16_to_float(h);
}
inline void store_f16(uint8_t* p, float x) {
  const uint16_t h = float_to_f16(x);
  std::memcpy(p, &h, 2);
}

// dst (n) = the n bf16 (or, with bf16 false, f16) values stored at src, which need not be
// aligned (a tensor in a file's mapping).
inline void widen_stored(float* dst, const uint8_t* src, size_t n, bool bf16) {
  for (size_t i = 0; i < n; ++i) {
    uint16_t h;
    std::memcpy(&h, src + 2 * i, 2);
    dst[i] = bf16 ? bf16_to_float(h) : f16_to_float(h);
  }
}

}  // namespace alibi
