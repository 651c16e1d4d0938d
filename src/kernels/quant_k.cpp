// Quantisation into the K formats (kernels/quant_k.h), byte for byte as ggml's reference row
// quantisers (ggml-quants.c, quantize_row_q{4,5,6}_K_ref, the ones llama-quantize runs when it
// has no importance matrix) make them. Compiled with -ffp-contract=off (CMakeLists.txt): ggml
// compiles those functions for plain x86-64, without fused multiply-adds, so every product and
// sum here rounds on its own, in their order.
//
// Q4_K / Q5_K: a super-block of 256 is 8 sub-blocks of 32, each fitted with an affine map
// x ~ scale q - min over q in 0..15 (0..31) by a weighted least-squares search over the scale
// (weights |x| + rms of the sub-block); the 8 scales and mins are then rounded to 6 bits against
// the super-block's largest (d, dmin in f16), and each element re-rounded to its final map.
// Q6_K: 16 sub-blocks of 16, each fitted symmetrically (q in -32..31, weights x^2), the 16 scales
// rounded to int8 against the largest-magnitude one (d in f16), then every element re-rounded.
#include "kernels/quant_k.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/half.h"

namespace alibi {
namespace {

// Round to nearest, ties to even, by adding 1.5 * 2^23 (ggml's nearest_int; |v| < 2^22).
int nearest(float v) {
  const float t = v + 12582912.0f;
  int32_t i;
  std::memcpy(&i, &t, 4);
  return (i & 0x007fffff) - 0x00400000;
}

float f16_round(uint8_t* p, float x) {  // stores x as f16 at p and returns the stored value
  store_f16(p, x);
  return load_f16(p);
}

// Fits x (32) ~ scale L - min, L in 0..nmax, minimising sum w (scale L - min - x)^2: the plain
// map over [min(x, 0), max(x)], then nstep + 1 trial scales (nmax + rmin + rdelta is) / range,
// each followed by the weighted least-squares scale and min of its L. Returns the scale; *neg_min
// is the min negated (>= 0), L the levels of the best fit.
float fit_affine(const float* x, const float* w, int nmax, float rmin, float rdelta, int nstep,
                 uint8_t* L, float* neg_min) {
  constexpr int n = 32;
  float mn = x[0], mx = x[0], sum_w = w[0], sum_x = sum_w * x[0];
  for (int i = 1; i < n; ++i) {
    if (x[i] < mn) mn = x[i];
    if (x[i] > mx) mx = x[i];
    sum_w += w[i];
    sum_x += w[i] * x[i];
  }
  if (mn > 0) mn = 0;
  if (mx == mn) {
    std::fill(L, L + n, uint8_t(0));
    *neg_min = -mn;
    return 0.0f;
  }
  float iscale = float(nmax) / (mx - mn), scale = 1 / iscale, best = 0;
  for (int i = 0; i < n; ++i) {
    L[i] = uint8_t(std::clamp(nearest(iscale * (x[i] - mn)), 0, nmax));
    const float diff = scale * float(L[i]) + mn - x[i];
    best += w[i] * (diff * diff);
  }
  uint8_t trial[n];
  for (int is = 0; is <= nstep; ++is) {
    iscale = (rmin + rdelta * float(is) + float(nmax)) / (mx - mn);
    float sum_l = 0, sum_l2 = 0, sum_xl = 0;
    for (int i = 0; i < n; ++i) {
      const int l = std::clamp(nearest(iscale * (x[i] - mn)), 0, nmax);
      trial[i] = uint8_t(l);
      sum_l += w[i] * float(l);
      sum_l2 += w[i] * float(l) * float(l);
      sum_xl += w[i] * float(l) * x[i];
    }
    const float D = sum_w * sum_l2 - sum_l * sum_l;
    if (!(D > 0)) continue;
    float s = (sum_w * sum_xl - sum_x * sum_l) / D;
    float m = (sum_l2 * sum_x - sum_l * sum_xl) / D;
    if (m > 0) {
      m = 0;
      s = sum_xl / sum_l2;
    }
    float err = 0;
    for (int i = 0; i < n; ++i) {
      const float diff = s * float(trial[i]) + m - x[i];
      err += w[i] * (diff * diff);
    }
    if (err < best) {
      std::memcpy(L, trial, n);
      best = err;
      scale = s;
      mn = m;
    }
  }
  *neg_min = -mn;
  return scale;
}

// Q4_K (levels 16) and Q5_K (32): d, dmin, 12 bytes of 6-bit scales and mins, (Q5_K) the fifth
// bits, the low nibbles.
void quant_k_affine(uint8_t* b, const float* x, int levels) {
  const int nmax = levels - 1;
  const bool five = levels == 32;
  uint8_t L[256];
  float scales[8], mins[8], w[32];
  float max_scale = 0, max_min = 0;
  for (int j = 0; j < 8; ++j) {
    const float* xs = x + 32 * j;
    float sum_x2 = 0;
    for (int l = 0; l < 32; ++l) sum_x2 += xs[l] * xs[l];
    const float av_x = std::sqrt(sum_x2 / 32);
    for (int l = 0; l < 32; ++l) w[l] = av_x + std::fabs(xs[l]);
    scales[j] = five ? fit_affine(xs, w, nmax, -0.5f, 0.1f, 15, L + 32 * j, &mins[j])
                     : fit_affine(xs, w, nmax, -1.0f, 0.1f, 20, L + 32 * j, &mins[j]);
    if (scales[j] > max_scale) max_scale = scales[j];
    if (mins[j] > max_min) max_min = mins[j];
  }
  uint8_t* sc = b + 4;
  std::memset(sc, 0, 12);
  const float inv_scale = max_scale > 0 ? 63.0f / max_scale : 0.0f;
  const float inv_min = max_min > 0 ? 63.0f / max_min : 0.0f;
  uint8_t ls[8], lm[8];
  for (int j = 0; j < 8; ++j) {
    ls[j] = std::min<uint8_t>(63, uint8_t(nearest(inv_scale * scales[j])));
    lm[j] = std::min<uint8_t>(63, uint8_t(nearest(inv_min * mins[j])));
    if (j < 4) {
      sc[j] = ls[j];
      sc[j + 4] = lm[j];
    } else {
      sc[j + 4] = uint8_t((ls[j] & 0xF) | ((lm[j] & 0xF) << 4));
      sc[j - 4] |= uint8_t((ls[j] >> 4) << 6);
      sc[j] |= uint8_t((lm[j] >> 4) << 6);
    }
  }
  const float d = f16_round(b, max_scale / 63.0f);
  const float dmin = f16_round(b + 2, max_min / 63.0f);
  for (int j = 0; j < 8; ++j) {
    const float D = d * float(ls[j]);
    if (D == 0) continue;  // the sub-block keeps its fit's levels
    const float M = dmin * float(lm[j]);
    for (int i = 0; i < 32; ++i)
      L[32 * j + i] = uint8_t(std::clamp(nearest((x[32 * j + i] + M) / D), 0, nmax));
  }
  uint8_t* qh = b + 16;
  uint8_t* qs = b + (five ? 48 : 16);
  if (five) std::memset(qh, 0, 32);
  // Sub-blocks 2k and 2k + 1 share 32 bytes: low nibble and high nibble; their fifth bits are
  // bits 2k and 2k + 1 of qh.
  for (int k = 0; k < 4; ++k)
    for (int e = 0; e < 32; ++e) {
      const int lo = L[64 * k + e], hi = L[64 * k + 32 + e];
      if (five) qh[e] |= uint8_t(((lo >> 4) << (2 * k)) | ((hi >> 4) << (2 * k + 1)));
      qs[32 * k + e] = uint8_t((lo & 0xF) | ((hi & 0xF) << 4));
    }
}

// Fits x (16) ~ scale l, l in -32..31, with weights x^2: the map of the largest magnitude to
// -32, then the trial scales (32 + 0.1 is) for is = -9..9, keeping the one whose least-squares
// fit explains most. Returns the scale; L holds l + 32.
float fit_symmetric(const float* x, uint8_t* L) {
  constexpr int n = 16, nmax = 32;
  float max = 0, amax = 0;
  for (int i = 0; i < n; ++i)
    if (std::fabs(x[i]) > amax) {
      amax = std::fabs(x[i]);
      max = x[i];
    }
  if (amax < 1e-15f) {
    std::fill(L, L + n, uint8_t(0));
    return 0.0f;
  }
  auto sums = [&](float iscale, float& sum_lx, float& sum_l2, bool keep) {
    sum_lx = sum_l2 = 0;
    for (int i = 0; i < n; ++i) {
      const int l = std::clamp(nearest(iscale * x[i]), -nmax, nmax - 1);
      if (keep) L[i] = uint8_t(l + nmax);
      const float w = x[i] * x[i];
      sum_lx += w * x[i] * float(l);
      sum_l2 += w * float(l) * float(l);
    }
  };
  float sum_lx, sum_l2;
  sums(-float(nmax) / max, sum_lx, sum_l2, true);
  float scale = sum_l2 != 0 ? sum_lx / sum_l2 : 0.0f;
  float best = scale * sum_lx;
  for (int is = -9; is <= 9; ++is) {
    if (is == 0) continue;
    const float iscale = -(float(nmax) + 0.1f * float(is)) / max;
    sums(iscale, sum_lx, sum_l2, false);
    if (sum_l2 > 0 && sum_lx * sum_lx > best * sum_l2) {
      sums(iscale, sum_lx, sum_l2, true);
      scale = sum_lx / sum_l2;
      best = scale * sum_lx;
    }
  }
  return scale;
}

// Q6_K: 128 bytes of low nibbles, 64 of high bit pairs, 16 int8 scales, d.
void quant_q6_k(uint8_t* b, const float* x) {
  uint8_t L[256];
  float scales[16], max_scale = 0, max_abs = 0;
  for (int s = 0; s < 16; ++s) {
    scales[s] = fit_symmetric(x + 16 * s, L + 16 * s);
    if (std::fabs(scales[s]) > max_abs) {
      max_abs = std::fabs(scales[s]);
      max_scale = scales[s];
    }
  }
  std::memset(b, 0, 210);
  if (max_abs < 1e-15f) return;  // all zero, d included
  const float iscale = -128.0f / max_scale;
  const float d = f16_round(b + 208, 1 / iscale);
  int8_t* sc = reinterpret_cast<int8_t*>(b + 192);
  for (int s = 0; s < 16; ++s) sc[s] = int8_t(std::min(127, nearest(iscale * scales[s])));
  for (int s = 0; s < 16; ++s) {
    const float D = d * float(sc[s]);
    if (D == 0) continue;
    for (int i = 0; i < 16; ++i)
      L[16 * s + i] = uint8_t(std::clamp(nearest(x[16 * s + i] / D), -32, 31) + 32);
  }
  // Per half of 128: ql byte e holds elements e (low) and e + 64 (high), byte 32 + e elements
  // e + 32 and e + 96; qh byte e the high bit pairs of e, e + 32, e + 64, e + 96.
  for (int h = 0; h < 2; ++h) {
    const uint8_t* l = L + 128 * h;
    uint8_t* ql = b + 64 * h;
    uint8_t* qh = b + 128 + 32 * h;
    for (int e = 0; e < 32; ++e) {
      ql[e] = uint8_t((l[e] & 0xF) | ((l[e + 64] & 0xF) << 4));
      ql[e + 32] = uint8_t((l[e + 32] & 0xF) | ((l[e + 96] & 0xF) << 4));
      qh[e] = uint8_t((l[e] >> 4) | ((l[e + 32] >> 4) << 2) | ((l[e + 64] >> 4) << 4) |
                      ((l[e + 96] >> 4) << 6));
    }
  }
}

}  // namespace

void quantize_k_block(uint8_t* b, const float* x, WeightType t) {
  switch (t) {
    case WeightType::q4_k: quant_k_affine(b, x, 16); break;
    case WeightType::q5_k: quant_k_affine(b, x, 32); break;
    case WeightType::q6_k: quant_q6_k(b, x); break;
    default: break;
  }
}

}  // namespace alibi
