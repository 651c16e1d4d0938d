// Products of a batch of rows with stored weights (bf16/f16 or a block format) that read the
// weights once per product: continuous batching's steps and prompt chunks (kernels/cpu/ops_cpu.h,
// panel_product). Each thread widens a panel of W's rows into fp32 scratch small enough to stay
// in its core's cache (fp32 weights, at the few rows where sgemm is slow, are used in place),
// then multiplies every input row by it in register tiles of 4 rows of W by 6 rows of inputs.
// Widening is exact (to_fp32), so a product equals the fp32 product on the widened matrix up to
// summation order; each output is one thread's sum in a fixed order (16 lanes along IC, then their
// sum), and panels are fixed by the shape alone, so the result does not depend on the thread count.
#include "kernels/cpu/simd.h"  // first: its pragmas must precede <immintrin.h>

#include <omp.h>

#include <algorithm>
#include <vector>

#include "kernels/cpu/ops_cpu.h"

namespace alibi::cpu {
namespace {

// Floats of W's rows one panel holds (64 KiB): 16 rows at IC = 1,024, the smallest panel of 4
// rows at IC >= 4,096. A group of 4 of its rows meets every input row while it is in L1/L2.
constexpr int64_t kPanelFloats = int64_t(1) << 14;
// A register tile: 4 rows of W by 6 input rows, 24 accumulators (4 by 4 ran at 0.55-0.6 of
// sgemm's rate on the widened matrix, 4 by 6 at 0.9; 4 by 8 spills; bench/bench_batch, 1 thread).
constexpr int kTile = 4, kTileN = 6;

// Bytes to ask for into L2 while the tiles compute: two cache lines per call of next().
struct Ahead {
  const char* at;
  const char* end;
  void next() {
    if (at < end) {
      _mm_prefetch(at, _MM_HINT_T1);
      _mm_prefetch(at + 64, _MM_HINT_T1);
      at += 128;
    }
  }
};

#if defined(__AVX512F__)
// out[n * ldo + r] = dot(x row n, w row r) for R rows of w and NN rows of x.
template <int R, int NN>
void tile(float* out, int64_t ldo, const float* x, const float* w, int64_t IC, Ahead& ahead) {
  __m512 acc[R][NN];
  for (int r = 0; r < R; ++r)
    for (int n = 0; n < NN; ++n) acc[r][n] = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= IC; i += 16) {
    ahead.next();
    __m512 wv[R];
    for (int r = 0; r < R; ++r) wv[r] = _mm512_loadu_ps(w + r * IC + i);
    for (int n = 0; n < NN; ++n) {
      __m512 xv = _mm512_loadu_ps(x + n * IC + i);
      // In a register: GCC would otherwise fold the load into each of the R FMAs, R loads
      // where one does (the loop is then bound by loads, at half the FMA rate).
      __asm__("" : "+v"(xv));
      for (int r = 0; r < R; ++r) acc[r][n] = _mm512_fmadd_ps(wv[r], xv, acc[r][n]);
    }
  }
  if (i < IC) {  // the tail, masked: absent lanes add 0
    const __mmask16 m = __mmask16((1u << (IC - i)) - 1);
    __m512 wv[R];
    for (int r = 0; r < R; ++r) wv[r] = _mm512_maskz_loadu_ps(m, w + r * IC + i);
    for (int n = 0; n < NN; ++n) {
      const __m512 xv = _mm512_maskz_loadu_ps(m, x + n * IC + i);
      for (int r = 0; r < R; ++r) acc[r][n] = _mm512_fmadd_ps(wv[r], xv, acc[r][n]);
    }
  }
  if constexpr (R == 4) {
    for (int n = 0; n < NN; ++n)
      _mm_storeu_ps(out + n * ldo, sum4(acc[0][n], acc[1][n], acc[2][n], acc[3][n]));
  } else {
    for (int r = 0; r < R; ++r)
      for (int n = 0; n < NN; ++n) out[n * ldo + r] = _mm512_reduce_add_ps(acc[r][n]);
  }
}
#else
template <int R, int NN>
void tile(float* out, int64_t ldo, const float* x, const float* w, int64_t IC, Ahead&) {
  for (int r = 0; r < R; ++r)
    for (int n = 0; n < NN; ++n) {
      float s = 0.0f;
      for (int64_t i = 0; i < IC; ++i) s += w[r * IC + i] * x[n * IC + i];
      out[n * ldo + r] = s;
    }
}
#endif

template <int R, int NN = kTileN>
void rows_by_all(float* out, int64_t ldo, const float* x, const float* w, int64_t N, int64_t IC,
                 Ahead& ahead) {
  int64_t n = 0;
  for (; n + NN <= N; n += NN) tile<R, NN>(out + n * ldo, ldo, x + n * IC, w, IC, ahead);
  if constexpr (NN > 1)
    if (n < N) rows_by_all<R, NN - 1>(out + n * ldo, ldo, x + n * IC, w, N - n, IC, ahead);
}

}  // namespace

void panel_product(float* out, const float* inp, WeightView W, int64_t N, int64_t IC, int64_t OC) {
  const int64_t P =
      std::max<int64_t>(kTile, kPanelFloats / std::max<int64_t>(IC, 1) / kTile * kTile);
  const int64_t panels = (OC + P - 1) / P;
  const size_t row_bytes = weight_row_bytes(W.type, IC);
  const bool fp32 = W.type == WeightType::fp32;
#pragma omp parallel
  {
    // Grow-only per thread: no allocation once warm. fp32 weights are used where they lie.
    thread_local std::vector<float> scratch;
    if (!fp32 && scratch.size() < size_t(P * IC)) scratch.resize(size_t(P * IC));
#pragma omp for schedule(static)
    for (int64_t p = 0; p < panels; ++p) {
      const int64_t o0 = p * P, rows = std::min(P, OC - o0);
      const float* panel = fp32 ? W.f32() + o0 * IC : scratch.data();
      if (!fp32) to_fp32(scratch.data(), W.rows_from(o0, IC), rows * IC);
      // The next panel's bytes are asked for into L2 while this one is multiplied, two cache
      // lines per step of the tiles, so that its widening does not wait for memory.
      const int64_t n0 = o0 + rows;
      const char* next = reinterpret_cast<const char*>(W.bytes() + n0 * row_bytes);
      Ahead ahead{next, next + (n0 < OC ? std::min(P, OC - n0) * int64_t(row_bytes) : 0)};
      for (int64_t r = 0; r < rows; r += kTile) {
        float* o = out + o0 + r;
        const float* w = panel + r * IC;
        switch (std::min<int64_t>(kTile, rows - r)) {
          case 1: rows_by_all<1>(o, OC, inp, w, N, IC, ahead); break;
          case 2: rows_by_all<2>(o, OC, inp, w, N, IC, ahead); break;
          case 3: rows_by_all<3>(o, OC, inp, w, N, IC, ahead); break;
          default: rows_by_all<kTile>(o, OC, inp, w, N, IC, ahead); break;
        }
      }
    }
  }
}

}  // namespace alibi::cpu
