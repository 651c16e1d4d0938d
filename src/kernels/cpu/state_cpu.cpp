// The CPU kernels of the model's state: KV cache rows and the optimizer (kernels/cpu/ops_cpu.h).
#include <cmath>
#include <cstring>

#include "core/half.h"
#include "kernels/cpu/ops_cpu.h"
#include "kernels/cpu/simd.h"  // the intrinsics

namespace alibi::cpu {

namespace {

// dst (n) = src rounded to binary16, nearest even (core/half.h's float_to_f16).
void narrow_f16(uint16_t* dst, const float* src, int64_t n) {
  int64_t i = 0;
#if defined(__AVX512F__)
  for (; i + 16 <= n; i += 16)
    _mm256_storeu_si256(
        reinterpret_cast<__m256i*>(dst + i),
        _mm512_cvtps_ph(_mm512_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
#endif
  for (; i < n; ++i) dst[i] = float_to_f16(src[i]);
}

template <class T>
void move_rows(T* dst, int64_t dst_rows, const T* src, int64_t src_rows, int64_t start, int64_t len,
               int64_t blocks, int HS) {
  const size_t bytes = size_t(len) * size_t(HS) * sizeof(T);
  if (bytes == 0) return;               // nothing to move, and src may be null
  for (int64_t b = 0; b < blocks; ++b)  // memmove: in place the rows may overlap their target
    std::memmove(dst + b * dst_rows * HS, src + (b * src_rows + start) * HS, bytes);
}

}  // namespace

void kv_append(float* cache, int64_t rows, int64_t row0, const float* x, int NH, int T, int HS) {
  const size_t bytes = size_t(T) * size_t(HS) * sizeof(float);
  if (bytes == 0) return;  // an empty cache may have no storage: memcpy from null is undefined
  for (int64_t h = 0; h < NH; ++h)
    std::memcpy(cache + (h * rows + row0) * HS, x + h * int64_t(T) * HS, bytes);
}

void kv_append(uint16_t* cache, int64_t rows, int64_t row0, const float* x, int NH, int T, int HS) {
  for (int64_t h = 0; h < NH; ++h)
    narrow_f16(cache + (h * rows + row0) * HS, x + h * int64_t(T) * HS, int64_t(T) * HS);
}

void kv_move(float* dst, int64_t dst_rows, const float* src, int64_t src_rows, int64_t start,
             int64_t len, int64_t blocks, int HS) {
  move_rows(dst, dst_rows, src, src_rows, start, len, blocks, HS);
}

void kv_move(uint16_t* dst, int64_t dst_rows, const uint16_t* src, int64_t src_rows, int64_t start,
             int64_t len, int64_t blocks, int HS) {
  move_rows(dst, dst_rows, src, src_rows, start, len, blocks, HS);
}

void adamw_update(float* p, const float* g, float* m, float* v, int64_t n, const AdamWUpdate& u) {
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const float gi = g[i];
    p[i] *= u.decay;
    m[i] = u.beta1 * m[i] + (1.0f - u.beta1) * gi;
    v[i] = u.beta2 * v[i] + (1.0f - u.beta2) * gi * gi;
    p[i] -= u.step_size * m[i] / (std::sqrt(v[i]) / u.bc2_sqrt + u.eps);
  }
}

double sum_squares(const float* x, int64_t n, double start) {
  double s = start;  // sequential: the same sum whatever the thread count
  for (int64_t i = 0; i < n; ++i) s += double(x[i]) * double(x[i]);
  return s;
}

void accumulate(float* acc, const float* x, int64_t n) {
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < n; ++i) acc[i] += x[i];
}

void scale(float* x, float s, int64_t n) {
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < n; ++i) x[i] *= s;
}

}  // namespace alibi::cpu
