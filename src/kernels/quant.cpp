// The block formats' definitions (kernels/quant.h). Compiled with -ffp-contract=off
// (CMakeLists.txt): every product and difference rounds on its own, as numpy's float32 does.
#include "kernels/quant.h"

#include <cmath>
#include <cstring>

#include "core/error.h"
#include "core/half.h"
#include "kernels/quant_k.h"

namespace alibi {
namespace {

// The 6-bit scale and min of sub-block j (0..7) of a Q4_K/Q5_K block's 12 scale bytes.
void scale_min_k4(const uint8_t* s, int j, uint8_t& sc, uint8_t& mn) {
  if (j < 4) {
    sc = s[j] & 63;
    mn = s[j + 4] & 63;
  } else {
    sc = uint8_t((s[j + 4] & 0xF) | ((s[j - 4] >> 6) << 4));
    mn = uint8_t((s[j + 4] >> 4) | ((s[j] >> 6) << 4));
  }
}

void block_q8_0(float* y, const uint8_t* b) {
  const float d = load_f16(b);
  for (int j = 0; j < 32; ++j) y[j] = float(int8_t(b[2 + j])) * d;
}

void block_q4_0(float* y, const uint8_t* b) {
  const float d = load_f16(b);
  const uint8_t* q = b + 2;
  for (int j = 0; j < 16; ++j) {
    y[j] = d * float(int(q[j] & 0xF) - 8);
    y[j + 16] = d * float(int(q[j] >> 4) - 8);
  }
}

void block_q4_1(float* y, const uint8_t* b) {
  const float d = load_f16(b), m = load_f16(b + 2);
  const uint8_t* q = b + 4;
  for (int j = 0; j < 16; ++j) {
    y[j] = d * float(q[j] & 0xF) + m;
    y[j + 16] = d * float(q[j] >> 4) + m;
  }
}

// Q5_0 (offset 16, no min) and Q5_1 (offset 0, min m).
void block_q5(float* y, const uint8_t* b, bool with_min) {
  const float d = load_f16(b), m = with_min ? load_f16(b + 2) : 0.0f;
  const uint8_t* p = b + (with_min ? 4 : 2);
  uint32_t qh;
  std::memcpy(&qh, p, 4);
  const uint8_t* q = p + 4;
  const int off = with_min ? 0 : 16;
  for (int j = 0; j < 16; ++j) {
    const int lo = (q[j] & 0xF) | int(((qh >> j) & 1) << 4);
    const int hi = (q[j] >> 4) | int(((qh >> (j + 16)) & 1) << 4);
    if (with_min) {
      y[j] = d * float(lo) + m;
      y[j + 16] = d * float(hi) + m;
    } else {
      y[j] = d * float(lo - off);
      y[j + 16] = d * float(hi - off);
    }
  }
}

// Q4_K (no qh) and Q5_K.
void block_k(float* y, const uint8_t* b, bool five) {
  const float d = load_f16(b), dmin = load_f16(b + 2);
  const uint8_t* scales = b + 4;
  const uint8_t* qh = five ? b + 16 : nullptr;
  const uint8_t* qs = b + (five ? 48 : 16);
  for (int i = 0; i < 8; ++i) {
    uint8_t sc, mn;
    scale_min_k4(scales, i, sc, mn);
    const float D = d * float(sc), M = dmin * float(mn);
    const uint8_t* q = qs + (i / 2) * 32;
    const int shift = (i % 2) * 4;
    for (int e = 0; e < 32; ++e) {
      int v = (q[e] >> shift) & 0xF;
      if (five) v |= ((qh[e] >> i) & 1) << 4;
      y[i * 32 + e] = D * float(v) - M;
    }
  }
}

void block_q6_k(float* y, const uint8_t* b) {
  const uint8_t *ql = b, *qh = b + 128;
  const int8_t* sc = reinterpret_cast<const int8_t*>(b + 192);
  const float d = load_f16(b + 208);
  for (int h = 0; h < 2; ++h)
    for (int t = 0; t < 4; ++t)
      for (int e = 0; e < 32; ++e) {
        const int idx = h * 128 + t * 32 + e;
        const int lo = (ql[h * 64 + (t % 2) * 32 + e] >> (4 * (t / 2))) & 0xF;
        const int hi = (qh[h * 32 + e] >> (2 * t)) & 3;
        y[idx] = (d * float(sc[idx / 16])) * float((lo | (hi << 4)) - 32);
      }
}

// The index of the first element of largest magnitude (numpy's argmax of abs).
int argmax_abs(const float* x, int n) {
  int k = 0;
  for (int j = 1; j < n; ++j)
    if (std::fabs(x[j]) > std::fabs(x[k])) k = j;
  return k;
}

void quant_q8_0(uint8_t* b, const float* x) {
  float amax = 0.0f;
  for (int j = 0; j < 32; ++j) amax = std::fmax(amax, std::fabs(x[j]));
  const float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
  store_f16(b, d);
  for (int j = 0; j < 32; ++j) b[2 + j] = uint8_t(int8_t(std::round(x[j] * id)));
}

// A block's 32 integers q (0..levels-1), written after its scales at p: for 32 levels the fifth bits
// (qh, bit j element j's), then the low nibbles, element j and j + 16 in byte j.
void pack(uint8_t* p, const uint8_t* q, int levels) {
  if (levels == 32) {
    uint32_t qh = 0;
    for (int j = 0; j < 32; ++j) qh |= uint32_t(q[j] >> 4) << j;
    std::memcpy(p, &qh, 4);
    p += 4;
  }
  for (int j = 0; j < 16; ++j) p[j] = uint8_t((q[j] & 0xF) | (q[j + 16] << 4));
}

// Q4_0 (levels 16, offset 8.5) and Q5_0 (32, 16.5): d = the signed extreme / -(levels / 2).
void quant_sym(uint8_t* b, const float* x, int levels) {
  const float max = x[argmax_abs(x, 32)];
  const float d = max / -float(levels / 2), id = d != 0.0f ? 1.0f / d : 0.0f;
  const float off = float(levels / 2) + 0.5f;
  uint8_t q[32];
  for (int j = 0; j < 32; ++j) {
    const float v = std::trunc(x[j] * id + off);
    q[j] = uint8_t(std::fmin(std::fmax(v, 0.0f), float(levels - 1)));
  }
  store_f16(b, d);
  pack(b + 2, q, levels);
}

// Q4_1 (levels 16) and Q5_1 (32): d = (max - min) / (levels - 1), m = min.
void quant_affine(uint8_t* b, const float* x, int levels) {
  float mn = x[0], mx = x[0];
  for (int j = 1; j < 32; ++j) {
    mn = std::fmin(mn, x[j]);
    mx = std::fmax(mx, x[j]);
  }
  const float d = (mx - mn) / float(levels - 1), id = d != 0.0f ? 1.0f / d : 0.0f;
  uint8_t q[32];
  for (int j = 0; j < 32; ++j) {
    const float v = std::trunc((x[j] - mn) * id + 0.5f);
    q[j] = uint8_t(std::fmin(std::fmax(v, 0.0f), float(levels - 1)));
  }
  store_f16(b, d);
  store_f16(b + 2, mn);
  pack(b + 4, q, levels);
}

}  // namespace

void dequantize(float* dst, const void* src, WeightType t, int64_t n) {
  const uint8_t* s = static_cast<const uint8_t*>(src);
  const GgmlType& g = ggml_of(t);
  ALIBI_CHECK(n % g.block == 0, weight_type_name(t), " of ", n);
  for (int64_t i = 0, k = 0; i < n; i += g.block, k += g.bytes) {
    float* y = dst + i;
    const uint8_t* b = s + k;
    switch (t) {
      case WeightType::fp32: std::memcpy(y, b, 4); break;
      case WeightType::bf16: y[0] = bf16_to_float(uint16_t(b[0] | (b[1] << 8))); break;
      case WeightType::f16: y[0] = load_f16(b); break;
      case WeightType::q8_0: block_q8_0(y, b); break;
      case WeightType::q4_0: block_q4_0(y, b); break;
      case WeightType::q4_1: block_q4_1(y, b); break;
      case WeightType::q5_0: block_q5(y, b, false); break;
      case WeightType::q5_1: block_q5(y, b, true); break;
      case WeightType::q4_k: block_k(y, b, false); break;
      case WeightType::q5_k: block_k(y, b, true); break;
      case WeightType::q6_k: block_q6_k(y, b); break;
    }
  }
}

void quantize(void* dst, const float* x, WeightType t, int64_t n) {
  uint8_t* d = static_cast<uint8_t*>(dst);
  const GgmlType& g = ggml_of(t);
  ALIBI_CHECK(n % g.block == 0, weight_type_name(t), " of ", n);
  for (int64_t i = 0, k = 0; i < n; i += g.block, k += g.bytes) {
    uint8_t* b = d + k;
    const float* v = x + i;
    switch (t) {
      case WeightType::fp32: std::memcpy(b, v, 4); break;
      case WeightType::bf16: {
        const uint16_t h = float_to_bf16(*v);
        std::memcpy(b, &h, 2);
        break;
      }
      case WeightType::f16: store_f16(b, *v); break;
      case WeightType::q8_0: quant_q8_0(b, v); break;
      case WeightType::q4_0: quant_sym(b, v, 16); break;
      case WeightType::q5_0: quant_sym(b, v, 32); break;
      case WeightType::q4_1: quant_affine(b, v, 16); break;
      case WeightType::q5_1: quant_affine(b, v, 32); break;
      case WeightType::q4_k:
      case WeightType::q5_k:
      case WeightType::q6_k: quantize_k_block(b, v, t); break;
    }
  }
}

}  // namespace alibi
