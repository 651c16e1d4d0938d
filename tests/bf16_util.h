#pragma once
// bf16 helpers shared by the tests of the bf16 paths (gemm, attention).
#include <cstdint>
#include <cstring>

namespace alibi::test {

// bf16 keeps 8 significant bits: round-to-nearest-even moves a value by at most 2^-9 of it
// relatively, and 2^-8 is the spacing. Tolerances are stated in this unit.
constexpr double kBf16Unit = 1.0 / 256.0;  // 2^-8

// x rounded to the nearest bf16, ties to even (finite x), as vcvtneps2bf16 does.
inline float round_bf16(float x) {
  uint32_t u;
  std::memcpy(&u, &x, 4);
  u = (u + 0x7FFFu + ((u >> 16) & 1u)) & 0xFFFF0000u;
  std::memcpy(&x, &u, 4);
  return x;
}

}  // namespace alibi::test
