// Products of GGUF's block-quantized weights with int8 activations (MatmulPrecision::int8), as
// llama.cpp computes them: each input row is rounded to 8 bits per block of 32 (Q8_0's scheme,
// quantize_activations), weights meet activations in AVX512-VNNI integer dot products (vpdpbusd:
// 64 bytes, 16 sums of 4; up to 15 input rows a weight row at a time, from 16 in tiles of 16
// weight rows, below), and the sums are scaled by the weight block's (or sub-block's) scale
// times the activation block's and added in fp32, in a fixed order, one output per thread. vpdpbusd
// multiplies unsigned bytes by signed ones: the weights enter as unsigned codes u = w + K (Q8_0
// flipped in its top bit, K = 128; Q4_0's nibbles, K = 8; Q6_K's 6 bits, K = 32; Q4_K's nibbles, K
// = 0, its minimums summed apart) and each sum starts from -K times the activations' sum of 4, so
// the offsets leave the integer sums exact. Exactly what is rounded where (docs/gguf.md):
//   - the activations: quantize_activations (quant_act_cpu.cpp);
//   - the integer sums: exact;
//   - each scale product (the weight's scale, its sub-block scale, the activation's d): fp32;
//   - the accumulation: fp32 fused multiply-adds per 16 lanes, then their sum.
// The error against the exact product on the dequantized weights is bounded by
// sum_i |w_i| d_i / 2 (the activations' rounding) plus fp32 rounding (tests/test_gguf.cpp).
#include <omp.h>

#include <cstring>
#include <vector>

#include "core/half.h"
#include "kernels/cpu/ops_cpu.h"
#include "kernels/cpu/simd.h"  // first: its pragmas must precede <immintrin.h>
#include "kernels/quant.h"

namespace alibi::cpu {

#if defined(__AVX512VNNI__) && defined(__AVX512BW__) && defined(__AVX512VL__)
namespace {

// One input row: q (IC); per block of 32 its d, and (Q4_K) d times its sum of q; per 4 elements
// (Q8_0, Q4_0, Q6_K) -K times their sum of q, K the offset the weights' unsigned codes carry,
// which starts each block's integer dot product: sum (u - K) q in one vpdpbusd.
struct Act {
  const int8_t* q;
  const float* d;
  const float* ds;
  const int32_t* c;
  // Q8_0 and Q4_0, per 4 blocks (128 elements): elements 0-15 of each block, then 16-31 of
  // each (as Q4_0's nibbles lie, low then high); -K times the sum of each lane's 8 (its 4 and
  // the 4 64 later).
  const int8_t* q4;
  const int32_t* c4;
};

inline __m128i load128(const void* p) { return _mm_loadu_si128(static_cast<const __m128i*>(p)); }
inline __m256i load256(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }
inline __m512i load512(const void* p) { return _mm512_loadu_si512(p); }
// The f16 at p, widened.
inline float f16_at(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return _cvtsh_ss(h);
}
// The f16 at a and at b, widened, in lanes 0 and 1.
inline __m128 f16_pair(const uint8_t* a, const uint8_t* b) {
  uint16_t ha, hb;
  std::memcpy(&ha, a, 2);
  std::memcpy(&hb, b, 2);
  return _mm_cvtph_ps(_mm_insert_epi16(_mm_cvtsi32_si128(ha), hb, 1));
}
inline __m128 float_pair(const float* p) {  // p[0], p[1] in lanes 0 and 1
  return _mm_castsi128_ps(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
}
// Lanes 0-7 lane 0 of v, lanes 8-15 its lane 1: the scales of two blocks of 32.
inline __m512 spread_pair(__m128 v) {
  const __m512i idx = _mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0);
  return _mm512_permutexvar_ps(idx, _mm512_castps128_ps512(v));
}
inline __m512 add_scaled(__m512 acc, __m512i sums, __m512 scale) {
  return _mm512_fmadd_ps(_mm512_cvtepi32_ps(sums), scale, acc);
}

// K, the offset of a type's unsigned codes u = w + K (above).
constexpr int32_t code_offset(WeightType t) {
  return t == WeightType::q8_0 ? 128 : t == WeightType::q4_0 ? 8 : t == WeightType::q6_k ? 32 : 0;
}

// Q8_0 and Q4_0: a block of 32 as bytes, its scale d in its first two bytes. Q8_0's codes are
// signed: flipping their top bit gives u = w + 128. Q4_0's are its nibbles u (low nibbles
// elements 0-15), its values d (u - 8).
template <WeightType T>
struct Blocks32;
template <>
struct Blocks32<WeightType::q8_0> {
  static constexpr int kBytes = 34;
  static constexpr int kQuadLines = 3;  // 136 bytes a step
  // Blocks b0..b0+3: [b0 | b1] and [b2 | b3] as loaded, their halves regrouped by 16 bytes.
  static void quad(const uint8_t* b0, __m512i& lo, __m512i& hi) {
    const __m512i p = pair(b0, b0 + kBytes), q = pair(b0 + 2 * kBytes, b0 + 3 * kBytes);
    lo = _mm512_shuffle_i64x2(p, q, 0x88);
    hi = _mm512_shuffle_i64x2(p, q, 0xDD);
  }
  static __m512i pair(const uint8_t* b0, const uint8_t* b1) {
    const __m512i w =
        _mm512_inserti64x4(_mm512_castsi256_si512(load256(b0 + 2)), load256(b1 + 2), 1);
    return _mm512_xor_si512(w, _mm512_set1_epi8(char(0x80)));
  }
  static __m256i one(const uint8_t* b) {
    return _mm256_xor_si256(load256(b + 2), _mm256_set1_epi8(char(0x80)));
  }
};
template <>
struct Blocks32<WeightType::q4_0> {
  static constexpr int kBytes = 18;
  static constexpr int kQuadLines = 2;  // 72 bytes a step
  // Blocks b0..b0+3 as they lie: their 64 bytes of nibbles, low and high.
  static void quad(const uint8_t* b0, __m512i& lo, __m512i& hi) {
    __m512i v = _mm512_castsi128_si512(load128(b0 + 2));
    v = _mm512_inserti32x4(v, load128(b0 + 20), 1);
    v = _mm512_inserti32x4(v, load128(b0 + 38), 2);
    v = _mm512_inserti32x4(v, load128(b0 + 56), 3);
    const __m512i m4 = _mm512_set1_epi8(0xF);
    lo = _mm512_and_si512(v, m4);
    hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), m4);
  }
  static __m512i pair(const uint8_t* b0, const uint8_t* b1) {
    // [b0 | b1] -> [b0, b0, b1, b1] by 16 bytes, the second copy of each shifted by 4: its high
    // nibbles.
    const __m256i v =
        _mm256_inserti128_si256(_mm256_castsi128_si256(load128(b0 + 2)), load128(b1 + 2), 1);
    const __m512i dup = _mm512_permutexvar_epi64(_mm512_set_epi64(3, 2, 3, 2, 1, 0, 1, 0),
                                                 _mm512_castsi256_si512(v));
    const __m512i by = _mm512_set_epi64(0x0004000400040004, 0x0004000400040004, 0, 0,
                                        0x0004000400040004, 0x0004000400040004, 0, 0);
    return _mm512_and_si512(_mm512_srlv_epi16(dup, by), _mm512_set1_epi8(0xF));
  }
  static __m256i one(const uint8_t* b) {
    const __m256i by = _mm256_set_epi64x(0x0004000400040004, 0x0004000400040004, 0, 0);
    return _mm256_and_si256(_mm256_srlv_epi16(_mm256_broadcastsi128_si256(load128(b + 2)), by),
                            _mm256_set1_epi8(0xF));
  }
};

// Q4_K's 12 bytes of 6-bit scales and minimums: sc (bytes 0-7) and mn (bytes 8-15) of its 8
// sub-blocks. Sub-blocks 0-3 take the low 6 bits of bytes 0-3 (sc) and 4-7 (mn); sub-blocks 4-7
// the nibbles of bytes 8-11 (sc low, mn high) and, above them, the top 2 bits of bytes 0-3 (sc)
// and 4-7 (mn).
inline __m128i q4k_scales(const uint8_t* s) {
  uint32_t a, b, c;
  std::memcpy(&a, s, 4);
  std::memcpy(&b, s + 4, 4);
  std::memcpy(&c, s + 8, 4);
  const uint32_t six = 0x3F3F3F3F, nib = 0x0F0F0F0F, top = 0x03030303;
  const uint32_t sc_lo = a & six, sc_hi = (c & nib) | (((a >> 6) & top) << 4);
  const uint32_t mn_lo = b & six, mn_hi = ((c >> 4) & nib) | (((b >> 6) & top) << 4);
  return _mm_set_epi32(int(mn_hi), int(mn_lo), int(sc_hi), int(sc_lo));
}

// Q4_K super-block w: (d sc) u - (dmin mn) per sub-block of 32, u unsigned; bytes 32j..32j+31
// of qs hold sub-block 2j in their low nibbles and 2j+1 in their high ones. Its codes of
// sub-blocks 2j and 2j+1, in element order; d sc (lanes 0-7) and dmin mn (lanes 8-15).
inline __m512i q4k_codes(const uint8_t* w, int j) {
  const int64_t b4 = 4 * 0x0001000100010001;
  const __m512i by = _mm512_set_epi64(b4, b4, b4, b4, 0, 0, 0, 0);
  return _mm512_and_si512(_mm512_srlv_epi16(_mm512_broadcast_i64x4(load256(w + 16 + 32 * j)), by),
                          _mm512_set1_epi8(0xF));
}
inline __m512 q4k_scale_min(const uint8_t* w) {
  return _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(q4k_scales(w + 4))),
                       spread_pair(f16_pair(w, w + 2)));
}
// Q6_K super-block w: d sc (u - 32), a 6-bit u from ql's nibble and qh's 2 bits, an int8 sc per
// 16. Elements 128h + 64p + [0, 64) take ql bytes 64h.. shifted by 4p and qh bytes 32h.. shifted
// by 4p (the first 32) and 4p + 2 (the next 32); their scales are sc[8h + 4p + g], g < 4. qh's
// 2 bits are moved to bits 4-5: left by 4 and 2 (p = 0), right by 0 and 2 (p = 1). Those 64
// codes u in element order; d sc per 16 elements.
inline __m512i q6k_codes(const uint8_t* w, int h, int p) {
  const int64_t b4 = 4 * 0x0001000100010001, b2 = 2 * 0x0001000100010001;
  const __m512i l = load512(w + 64 * h), hq = _mm512_broadcast_i64x4(load256(w + 128 + 32 * h));
  const __m512i lo = p ? _mm512_srli_epi16(l, 4) : l;
  const __m512i hi = p ? _mm512_srlv_epi16(hq, _mm512_set_epi64(b2, b2, b2, b2, 0, 0, 0, 0))
                       : _mm512_sllv_epi16(hq, _mm512_set_epi64(b2, b2, b2, b2, b4, b4, b4, b4));
  // (lo & 0xF) | (hi & 0x30)
  return _mm512_ternarylogic_epi32(lo, _mm512_and_si512(hi, _mm512_set1_epi8(0x30)),
                                   _mm512_set1_epi8(0xF), 0xEC);
}
inline __m512 q6k_scales(const uint8_t* w) {
  return _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(load128(w + 192))),
                       _mm512_set1_ps(f16_at(w + 208)));
}

// Asks for the `lines` cache lines 2 KiB past p, as a row kernel reaches p: the 4- and 6-bit
// types decoded 5-15% faster on the MPT-1B and BLOOM-560m shapes than with none, and than asking
// for each row's lines at once as the row starts; Q8_0, 4 blocks at a time with them, 1.1-1.7x
// faster than 2 at a time without (docs/gguf.md). A prefetch past the end is dropped.
inline void prefetch_ahead(const uint8_t* p, int lines) {
  for (int i = 0; i < lines; ++i)
    _mm_prefetch(reinterpret_cast<const char*>(p + 2048 + 64 * i), _MM_HINT_T0);
}
// out[n * ldo] = dot(q8(x row n), w row) for N input rows: one weight row's every block.
template <WeightType T, int N>
void row_dot(float* out, int64_t ldo, const uint8_t* w, const Act* x, int64_t IC) {
  __m512 acc[N];
  for (int n = 0; n < N; ++n) acc[n] = _mm512_setzero_ps();
  __m256 corr[N];  // Q4_K's minimums per sub-block, subtracted at the end
  for (int n = 0; n < N; ++n) corr[n] = _mm256_setzero_ps();
  if constexpr (T == WeightType::q8_0 || T == WeightType::q4_0) {
    using B = Blocks32<T>;
    const int64_t nb = IC / 32;
    int64_t b = 0;
    // 4 blocks at a time: each block's elements 0-15 in one vector and 16-31 in another, 4
    // lanes a block in both, meet the activations in Act::q4's order, and the 16 lanes take one
    // scale vector. Then 2 at a time, 8 lanes a block, and an odd last one.
    const __m512i spread = _mm512_set_epi32(3, 3, 3, 3, 2, 2, 2, 2, 1, 1, 1, 1, 0, 0, 0, 0);
    for (; b + 4 <= nb; b += 4) {
      const uint8_t* b0 = w + b * B::kBytes;
      prefetch_ahead(b0, B::kQuadLines);
      __m512i lo, hi;
      B::quad(b0, lo, hi);
      uint16_t h[4];
      for (int i = 0; i < 4; ++i) std::memcpy(&h[i], b0 + i * B::kBytes, 2);
      const __m128 dw = _mm_cvtph_ps(
          _mm_setr_epi16(short(h[0]), short(h[1]), short(h[2]), short(h[3]), 0, 0, 0, 0));
      for (int n = 0; n < N; ++n) {
        const int8_t* xq = x[n].q4 + 32 * b;
        const __m512i sums = _mm512_dpbusd_epi32(
            _mm512_dpbusd_epi32(load512(x[n].c4 + 4 * b), lo, load512(xq)), hi, load512(xq + 64));
        const __m512 scale = _mm512_permutexvar_ps(
            spread, _mm512_castps128_ps512(_mm_mul_ps(dw, _mm_loadu_ps(x[n].d + b))));
        acc[n] = add_scaled(acc[n], sums, scale);
      }
    }
    for (; b + 2 <= nb; b += 2) {
      const uint8_t *b0 = w + b * B::kBytes, *b1 = b0 + B::kBytes;
      const __m512i wv = B::pair(b0, b1);
      const __m128 dw = f16_pair(b0, b1);
      for (int n = 0; n < N; ++n) {
        const __m512i sums =
            _mm512_dpbusd_epi32(load512(x[n].c + 8 * b), wv, load512(x[n].q + 32 * b));
        acc[n] = add_scaled(acc[n], sums, spread_pair(_mm_mul_ps(dw, float_pair(x[n].d + b))));
      }
    }
    if (b < nb) {  // an odd last block, in the lower 8 lanes
      const uint8_t* b0 = w + b * B::kBytes;
      const __m256i wv = B::one(b0);
      const float dw = f16_at(b0);
      for (int n = 0; n < N; ++n) {
        const __m256i sums =
            _mm256_dpbusd_epi32(load256(x[n].c + 8 * b), wv, load256(x[n].q + 32 * b));
        const __m512 f = _mm512_insertf32x8(_mm512_setzero_ps(), _mm256_cvtepi32_ps(sums), 0);
        acc[n] = _mm512_fmadd_ps(f, _mm512_set1_ps(dw * x[n].d[b]), acc[n]);
      }
    }
  } else if constexpr (T == WeightType::q4_k) {
    for (int64_t k = 0; k < IC / 256; ++k, w += 144) {
      prefetch_ahead(w, 3);  // 144 bytes a step
      const __m512 sm = q4k_scale_min(w);
      const __m256 mins = _mm512_extractf32x8_ps(sm, 1);
      __m512 da[N];  // per sub-block: d sc d_x (lanes 0-7)
      for (int n = 0; n < N; ++n) {
        const __m256 dx = _mm256_loadu_ps(x[n].d + 8 * k);
        da[n] = _mm512_castps256_ps512(_mm256_mul_ps(_mm512_castps512_ps256(sm), dx));
        corr[n] = _mm256_fmadd_ps(mins, _mm256_loadu_ps(x[n].ds + 8 * k), corr[n]);
      }
      for (int j = 0; j < 4; ++j) {
        const __m512i wv = q4k_codes(w, j);
        const __m512i pick = _mm512_set_epi32(2 * j + 1, 2 * j + 1, 2 * j + 1, 2 * j + 1, 2 * j + 1,
                                              2 * j + 1, 2 * j + 1, 2 * j + 1, 2 * j, 2 * j, 2 * j,
                                              2 * j, 2 * j, 2 * j, 2 * j, 2 * j);
        const int64_t a = k * 8 + 2 * j;  // the activation block of sub-block 2j
        for (int n = 0; n < N; ++n) {
          const __m512i sums =
              _mm512_dpbusd_epi32(_mm512_setzero_si512(), wv, load512(x[n].q + 32 * a));
          acc[n] = add_scaled(acc[n], sums, _mm512_permutexvar_ps(pick, da[n]));
        }
      }
    }
  } else {
    static_assert(T == WeightType::q6_k);
    // per 16 elements (lane l of a product's sums: elements 4l..4l+3), its activation block
    const __m512i block_of = _mm512_set_epi32(7, 7, 6, 6, 5, 5, 4, 4, 3, 3, 2, 2, 1, 1, 0, 0);
    for (int64_t k = 0; k < IC / 256; ++k, w += 210) {
      prefetch_ahead(w, 4);  // 210 bytes a step
      const __m512 scd = q6k_scales(w);
      __m512 da[N];  // per 16 elements: d sc d_x
      for (int n = 0; n < N; ++n)
        da[n] = _mm512_mul_ps(
            scd, _mm512_permutexvar_ps(block_of,
                                       _mm512_castps256_ps512(_mm256_loadu_ps(x[n].d + 8 * k))));
      for (int h = 0; h < 2; ++h)
        for (int p = 0; p < 2; ++p) {
          const __m512i u = q6k_codes(w, h, p);
          const int g = 8 * h + 4 * p;  // the chunk's first scale
          const __m512i pick = _mm512_set_epi32(g + 3, g + 3, g + 3, g + 3, g + 2, g + 2, g + 2,
                                                g + 2, g + 1, g + 1, g + 1, g + 1, g, g, g, g);
          const int64_t e = 256 * k + 128 * h + 64 * p;  // the chunk's first element
          for (int n = 0; n < N; ++n) {
            const __m512i sums =
                _mm512_dpbusd_epi32(load512(x[n].c + e / 4), u, load512(x[n].q + e));
            acc[n] = add_scaled(acc[n], sums, _mm512_permutexvar_ps(pick, da[n]));
          }
        }
    }
  }
  for (int n = 0; n < N; ++n)
    out[n * ldo] = _mm512_reduce_add_ps(acc[n]) -
                   _mm512_reduce_add_ps(_mm512_insertf32x8(_mm512_setzero_ps(), corr[n], 0));
}

// Every input row against each weight row in turn, 4 at a time: a weight row (at most a few KiB)
// is read from memory once and meets the later rows from L1.
template <WeightType T>
void rows(float* out, const Act* x, const uint8_t* w, int64_t N, int64_t IC, int64_t OC,
          int64_t o0 = 0) {
  const size_t rb = weight_row_bytes(T, IC);
#pragma omp parallel for schedule(static)
  for (int64_t o = o0; o < OC; ++o) {
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

// ---- Many input rows (prompts, eval): 16 weight rows at a time, unpacked once ----------------
// A tile holds 16 weight rows as signed codes w = u - K, interleaved by 4 bytes (elements
// 4g..4g+3 of row r at codes[64 g + 4 r]): one 64-byte load holds the same 4 elements of all 16
// rows, vpdpbusd meets it with 4 activation bytes broadcast, and the 16 rows' sums land in the
// 16 lanes. The activations enter unsigned (q + 128): each sum starts from -128 times the row's
// sum of codes over the sub-block (32 elements; Q6_K's 16), so it is exactly sum w q. Then per
// sub-block one fused multiply-add scales all 16 by their scales times the activation's d (and
// Q4_K's minimums, one more). The tile is unpacked once for every input row.
constexpr int kTile = 16;
// From this many input rows; below, the row kernels (each weight row against 4 input rows at a
// time) are as fast or faster (bench/bench_batch: at 16 rows 0.8-1.2x, at 32 1.4-1.9x).
constexpr int64_t kTileRows = 16;
template <WeightType T>
constexpr int kSub = T == WeightType::q6_k ? 16 : 32;

struct Tile {
  int8_t* codes;   // 16 IC
  float* scale;    // per sub-block, the 16 rows'
  int32_t* start;  // per sub-block, the 16 rows' -128 sum w
  float* mins;     // Q4_K: per sub-block, the 16 rows' dmin mn
};

// Weight row w into row r of the tile; line: IC bytes of scratch.
template <WeightType T>
void unpack(const uint8_t* w, int64_t IC, const Tile& t, int r, int8_t* line) {
  const __m512i K = _mm512_set1_epi8(char(code_offset(T)));
  auto put = [&](int64_t e, __m512i u) {  // 64 codes u from element e
    _mm512_storeu_si512(line + e, _mm512_sub_epi8(u, K));
  };
  if constexpr (T == WeightType::q8_0 || T == WeightType::q4_0) {
    using B = Blocks32<T>;
    for (int64_t b = 0; b < IC / 32; ++b, w += B::kBytes) {
      const __m256i u = B::one(w);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(line + 32 * b),
                          _mm256_sub_epi8(u, _mm512_castsi512_si256(K)));
      t.scale[kTile * b + r] = f16_at(w);
    }
  } else if constexpr (T == WeightType::q4_k) {
    for (int64_t k = 0; k < IC / 256; ++k, w += 144) {
      alignas(64) float sm[16];
      _mm512_store_ps(sm, q4k_scale_min(w));
      for (int i = 0; i < 8; ++i) {
        t.scale[kTile * (8 * k + i) + r] = sm[i];
        t.mins[kTile * (8 * k + i) + r] = sm[8 + i];
      }
      for (int j = 0; j < 4; ++j) put(256 * k + 64 * j, q4k_codes(w, j));
    }
  } else {
    static_assert(T == WeightType::q6_k);
    for (int64_t k = 0; k < IC / 256; ++k, w += 210) {
      alignas(64) float sc[16];
      _mm512_store_ps(sc, q6k_scales(w));
      for (int g = 0; g < 16; ++g) t.scale[kTile * (16 * k + g) + r] = sc[g];
      for (int h = 0; h < 2; ++h)
        for (int p = 0; p < 2; ++p) put(256 * k + 128 * h + 64 * p, q6k_codes(w, h, p));
    }
  }
  for (int64_t sb = 0; sb < IC / kSub<T>; ++sb) {
    int32_t sum = 0;
    for (int i = 0; i < kSub<T>; ++i) sum += line[kSub<T> * sb + i];
    t.start[kTile * sb + r] = -128 * sum;
  }
  for (int64_t g = 0; g < IC / 4; ++g) std::memcpy(t.codes + 64 * g + 4 * r, line + 4 * g, 4);
}

// out[m * OC + r] for the tile's 16 rows r and M input rows (xu: unsigned codes, stride IC).
template <WeightType T, int M>
void tile_dot(float* out, int64_t OC, const Tile& t, const uint8_t* xu, const Act* x, int64_t IC) {
  constexpr int S = kSub<T>;
  __m512 acc[M];
  for (int m = 0; m < M; ++m) acc[m] = _mm512_setzero_ps();
  for (int64_t sb = 0; sb < IC / S; ++sb) {
    __m512i sum[M];
    for (int m = 0; m < M; ++m) sum[m] = load512(t.start + kTile * sb);
    for (int g = 0; g < S / 4; ++g) {
      const __m512i wv = load512(t.codes + 64 * (sb * S / 4 + g));
      for (int m = 0; m < M; ++m) {
        int32_t a;
        std::memcpy(&a, xu + m * IC + S * sb + 4 * g, 4);
        sum[m] = _mm512_dpbusd_epi32(sum[m], _mm512_set1_epi32(a), wv);
      }
    }
    const int64_t b = S * sb / 32;
    const __m512 sc = _mm512_loadu_ps(t.scale + kTile * sb);
    for (int m = 0; m < M; ++m)
      acc[m] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sum[m]),
                               _mm512_mul_ps(sc, _mm512_set1_ps(x[m].d[b])), acc[m]);
    if constexpr (T == WeightType::q4_k) {
      const __m512 mn = _mm512_loadu_ps(t.mins + kTile * sb);
      for (int m = 0; m < M; ++m) acc[m] = _mm512_fnmadd_ps(mn, _mm512_set1_ps(x[m].ds[b]), acc[m]);
    }
  }
  for (int m = 0; m < M; ++m) _mm512_storeu_ps(out + m * OC, acc[m]);
}

template <WeightType T>
void tiles(float* out, const Act* x, const uint8_t* xu, const uint8_t* w, int64_t N, int64_t IC,
           int64_t OC) {
  const size_t rb = weight_row_bytes(T, IC);
  const int64_t nt = OC / kTile, nsub = IC / kSub<T>;
#pragma omp parallel
  {
    // Grow-only, each thread's own: nothing allocated once warm.
    thread_local std::vector<int8_t> codes, line;
    thread_local std::vector<float> scale, mins;
    thread_local std::vector<int32_t> start;
    if (codes.size() < size_t(kTile * IC)) {
      codes.resize(size_t(kTile * IC));
      line.resize(size_t(IC));
    }
    if (scale.size() < size_t(kTile * nsub)) {
      scale.resize(size_t(kTile * nsub));
      mins.resize(size_t(kTile * nsub));
      start.resize(size_t(kTile * nsub));
    }
    const Tile t{codes.data(), scale.data(), start.data(), mins.data()};
#pragma omp for schedule(static)
    for (int64_t i = 0; i < nt; ++i) {
      for (int r = 0; r < kTile; ++r) unpack<T>(w + (kTile * i + r) * rb, IC, t, r, line.data());
      float* o = out + kTile * i;
      int64_t n = 0;
      for (; n + 4 <= N; n += 4) tile_dot<T, 4>(o + n * OC, OC, t, xu + n * IC, x + n, IC);
      switch (N - n) {
        case 1:
          tile_dot<T, 1>(o + n * OC, OC, t, xu + n * IC, x + n, IC);
          break;
        case 2:
          tile_dot<T, 2>(o + n * OC, OC, t, xu + n * IC, x + n, IC);
          break;
        case 3:
          tile_dot<T, 3>(o + n * OC, OC, t, xu + n * IC, x + n, IC);
          break;
        default:
          break;
      }
    }
  }
  if (nt * kTile < OC) rows<T>(out, x, w, N, IC, OC, nt * kTile);  // the last OC % 16 rows
}

// The tiles from kTileRows input rows (xu their unsigned codes), the row kernels below.
template <WeightType T>
void product(float* out, const Act* x, const uint8_t* xu, const uint8_t* w, int64_t N, int64_t IC,
             int64_t OC) {
  if (N >= kTileRows) return tiles<T>(out, x, xu, w, N, IC, OC);
  rows<T>(out, x, w, N, IC, OC);
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
  thread_local std::vector<float> d, ds;
  thread_local std::vector<int32_t> s, c, c4;
  thread_local std::vector<int8_t> q4;
  thread_local std::vector<Act> x;
  const int64_t nb = IC / 32;
  // The row kernels read each sum of 4 times -K (c), Q8_0's and Q4_0's also the reordered copy
  // (q4, c4); the tiles only q, d and ds, and leave the rows past the last 16 to the rows.
  const bool tiled = N >= kTileRows, by_rows = !tiled || OC % kTile != 0;
  const bool reorder = by_rows && (t == WeightType::q4_0 || t == WeightType::q8_0);
  const int32_t K = code_offset(t);
  if (q.size() < size_t(N * IC)) q.resize(size_t(N * IC));
  if (by_rows && K != 0 && c.size() < size_t(N * IC / 4)) c.resize(size_t(N * IC / 4));
  if (reorder && q4.size() < size_t(N * IC)) {
    q4.resize(size_t(N * IC));
    c4.resize(size_t(N * IC / 8));
  }
  if (d.size() < size_t(N * nb)) {
    d.resize(size_t(N * nb));
    ds.resize(size_t(N * nb));
    s.resize(size_t(N * nb));
  }
  if (x.size() < size_t(N)) x.resize(size_t(N));
  // The team's threads have thread_locals of their own: they see these through pointers.
  int8_t* qp = q.data();
  float *dp = d.data(), *dsp = ds.data();
  int32_t *sp = s.data(), *cp = c.data(), *c4p = c4.data();
  int8_t* q4p = q4.data();
  Act* xp = x.data();
#pragma omp parallel for schedule(static) if (N > 4)
  for (int64_t n = 0; n < N; ++n) {
    int8_t* qn = qp + n * IC;
    quantize_activations(inp + n * IC, IC, qn, dp + n * nb, sp + n * nb);
    if (K == 0)  // Q4_K: d s per block, for its minimums
      for (int64_t b = 0; b < nb; ++b) dsp[n * nb + b] = dp[n * nb + b] * float(sp[n * nb + b]);
    else if (by_rows)
      for (int64_t i = 0; i < IC / 4; ++i)
        cp[n * IC / 4 + i] = -K * (qn[4 * i] + qn[4 * i + 1] + qn[4 * i + 2] + qn[4 * i + 3]);
    int8_t* q4n = reorder ? q4p + n * IC : nullptr;
    int32_t* c4n = reorder ? c4p + n * IC / 8 : nullptr;
    if (reorder)
      for (int64_t g = 0; g < IC / 128; ++g)
        for (int i = 0; i < 4; ++i) {
          std::memcpy(q4n + 128 * g + 16 * i, qn + 128 * g + 32 * i, 16);
          std::memcpy(q4n + 128 * g + 64 + 16 * i, qn + 128 * g + 32 * i + 16, 16);
          for (int l = 0; l < 4; ++l)
            c4n[16 * g + 4 * i + l] =
                cp[n * IC / 4 + 32 * g + 8 * i + l] + cp[n * IC / 4 + 32 * g + 8 * i + 4 + l];
        }
    int32_t* cn = by_rows && K != 0 ? cp + n * IC / 4 : nullptr;
    xp[n] = {qn, dp + n * nb, dsp + n * nb, cn, q4n, c4n};
  }
  const uint8_t* w = W.bytes();
  uint8_t* up = nullptr;
  if (tiled) {
    thread_local std::vector<uint8_t> u;  // the activations as unsigned codes, q + 128
    if (u.size() < size_t(N * IC)) u.resize(size_t(N * IC));
    up = u.data();
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < N * IC; ++i) up[i] = uint8_t(qp[i]) ^ 0x80;
  }
  switch (t) {
    case WeightType::q8_0:
      product<WeightType::q8_0>(out, xp, up, w, N, IC, OC);
      break;
    case WeightType::q4_0:
      product<WeightType::q4_0>(out, xp, up, w, N, IC, OC);
      break;
    case WeightType::q4_k:
      product<WeightType::q4_k>(out, xp, up, w, N, IC, OC);
      break;
    default:
      product<WeightType::q6_k>(out, xp, up, w, N, IC, OC);
      break;
  }
  return true;
#else
  (void)out, (void)inp, (void)W, (void)N, (void)IC, (void)OC;
  return false;
#endif
}

}  // namespace alibi::cpu
