#pragma once
// Counter-based random numbers. Every random draw in alibi (initialisation, batch windows,
// dropout masks) is a pure function of (seed, stream, counter), so a run resumed at step s draws
// exactly what an uninterrupted run draws at step s, whatever the thread count, and nothing but
// the seed and the step has to be stored in a checkpoint.
#include <cmath>
#include <cstdint>
#include <string_view>

namespace alibi {

// splitmix64 finaliser: a bijective 64-bit mixer with good avalanche.
inline uint64_t mix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// 64-bit FNV-1a of a byte string, finished with mix64 so that nearby inputs spread over all bits.
inline uint64_t hash_bytes(std::string_view s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : s) h = (h ^ c) * 0x100000001b3ull;
  return mix64(h);
}

inline uint64_t hash64(uint64_t a, uint64_t b) { return mix64(a ^ mix64(b)); }
inline uint64_t hash64(uint64_t a, uint64_t b, uint64_t c) { return hash64(hash64(a, b), c); }
inline uint64_t hash64(uint64_t a, uint64_t b, uint64_t c, uint64_t d) {
  return hash64(hash64(a, b, c), d);
}

// Uniform in [0, 1) with 24 random bits (exact in fp32).
inline float u01(uint64_t h) { return float(h >> 40) * (1.0f / 16777216.0f); }

// A sequential stream for places where draws are consumed in order (initialisation).
struct Rng {
  uint64_t seed, counter = 0;
  explicit Rng(uint64_t s) : seed(s) {}
  uint64_t next() { return hash64(seed, counter++); }
  float uniform() { return u01(next()); }
  // Box-Muller; two uniforms per normal keeps the stream position simple to reason about.
  float normal() {
    double u1 = (double(next() >> 11) + 1.0) * (1.0 / 9007199254740993.0);  // (0, 1]
    double u2 = double(next() >> 11) * (1.0 / 9007199254740992.0);
    return float(std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2));
  }
  uint64_t below(uint64_t n) { return next() % n; }
};

}  // namespace alibi
