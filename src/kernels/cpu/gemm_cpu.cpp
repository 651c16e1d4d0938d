// cpu::gemm (kernels/cpu/ops_cpu.h): oneDNN sgemm in fp32; in bf16, the operands are rounded
// into bf16 scratch and multiplied by oneDNN's matmul primitive (bf16 src and weights, fp32 dst,
// fp32 accumulation). The oneDNN 2.x C API has no bf16 gemm, hence the C++ primitive API.
// cpu::linear_bf16 is the same product with weights already stored in bf16: used where they lie.
#include <dnnl.h>
#include <immintrin.h>
#include <omp.h>

#include <cstring>
#include <dnnl.hpp>
#include <map>
#include <tuple>
#include <vector>

#include "core/error.h"
#include "core/half.h"
#include "kernels/cpu/ops_cpu.h"

namespace alibi::cpu {
namespace {

// Elements converted per thread below which the conversion stays on the calling thread.
constexpr int64_t kConvertParallelMin = int64_t(1) << 15;

// One cached primitive per product shape. The operands are packed densely when converted, so
// lda and ldb do not change the primitive; alpha and beta are baked into its attributes and the
// thread count into its blocking (oneDNN plans a primitive for the threads it was created with).
using Key = std::tuple<int64_t, int64_t, int64_t, bool, bool, int64_t, float, float, int>;

struct Entry {
  dnnl::matmul prim;
  dnnl::memory a, b, c;  // data handles set on each call
};

// Per calling thread (gemm is not called concurrently today, but nothing here needs a lock):
// the engine, stream, primitive cache and the grow-only bf16 operand buffers. They live for the
// process: built on first use, never rebuilt, so the training loop allocates nothing once every
// shape has been seen.
struct Bf16State {
  dnnl::engine eng{dnnl::engine::kind::cpu, 0};
  dnnl::stream strm{eng};
  std::map<Key, Entry> cache;
  std::vector<uint16_t> a_buf, b_buf;  // op(A), op(B) operands as bf16; grow-only
};

Entry make_entry(Bf16State& st, bool transA, bool transB, int64_t M, int64_t N, int64_t K,
                 float alpha, float beta, int64_t ldc) {
  using dt = dnnl::memory::data_type;
  // op(A) (M,K): stored (M,K) dense, or (K,M) dense when transposed; likewise op(B) (K,N).
  const dnnl::memory::desc a_md({M, K}, dt::bf16,
                                transA ? dnnl::memory::dims{1, M} : dnnl::memory::dims{K, 1});
  const dnnl::memory::desc b_md({K, N}, dt::bf16,
                                transB ? dnnl::memory::dims{1, K} : dnnl::memory::dims{N, 1});
  const dnnl::memory::desc c_md({M, N}, dt::f32, dnnl::memory::dims{ldc, 1});
  dnnl::primitive_attr attr;
  if (alpha != 1.0f) attr.set_output_scales(0, {alpha});
  if (beta != 0.0f) {
    dnnl::post_ops po;
    po.append_sum(beta);
    attr.set_post_ops(po);
  }
  const dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(a_md, b_md, c_md), attr, st.eng);
  return Entry{dnnl::matmul(pd), dnnl::memory(a_md, st.eng, DNNL_MEMORY_NONE),
               dnnl::memory(b_md, st.eng, DNNL_MEMORY_NONE),
               dnnl::memory(c_md, st.eng, DNNL_MEMORY_NONE)};
}

Entry& entry(Bf16State& st, bool transA, bool transB, int64_t M, int64_t N, int64_t K,
             float alpha, float beta, int64_t ldc) {
  const Key key{M, N, K, transA, transB, ldc, alpha, beta, omp_get_max_threads()};
  auto it = st.cache.find(key);
  if (it == st.cache.end())
    it = st.cache.emplace(key, make_entry(st, transA, transB, M, N, K, alpha, beta, ldc)).first;
  return it->second;
}

void run(Bf16State& st, Entry& e, const uint16_t* a, const uint16_t* b, float* C) {
  // oneDNN takes non-const handles; a primitive never writes its inputs.
  e.a.set_data_handle(const_cast<uint16_t*>(a));
  e.b.set_data_handle(const_cast<uint16_t*>(b));
  e.c.set_data_handle(C);
  e.prim.execute(st.strm, {{DNNL_ARG_SRC, e.a}, {DNNL_ARG_WEIGHTS, e.b}, {DNNL_ARG_DST, e.c}});
  st.strm.wait();
}

void gemm_bf16(Bf16State& st, bool transA, bool transB, int64_t M, int64_t N, int64_t K,
               float alpha, const float* A, int64_t lda, const float* B, int64_t ldb, float beta,
               float* C, int64_t ldc) {
  Entry& e = entry(st, transA, transB, M, N, K, alpha, beta, ldc);
  if (st.a_buf.size() < size_t(M * K)) st.a_buf.resize(size_t(M * K));
  if (st.b_buf.size() < size_t(K * N)) st.b_buf.resize(size_t(K * N));
  // Stored shapes: A is (M,K), or (K,M) when transposed; B is (K,N), or (N,K).
  to_bf16(st.a_buf.data(), A, transA ? K : M, transA ? M : K, lda);
  to_bf16(st.b_buf.data(), B, transB ? N : K, transB ? K : N, ldb);
  run(st, e, st.a_buf.data(), st.b_buf.data(), C);
}

Bf16State& bf16_state() {
  thread_local Bf16State st;
  return st;
}

}  // namespace

void to_bf16(uint16_t* dst, const float* src, int64_t rows, int64_t cols, int64_t ld) {
#pragma omp parallel for schedule(static) if (rows * cols >= kConvertParallelMin)
  for (int64_t r = 0; r < rows; ++r) {
    const float* s = src + r * ld;
    uint16_t* d = dst + r * cols;
    int64_t c = 0;
#ifdef __AVX512BF16__
    for (; c + 16 <= cols; c += 16)
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(d + c),
                          (__m256i)_mm512_cvtneps_pbh(_mm512_loadu_ps(s + c)));
#endif
    for (; c < cols; ++c) d[c] = float_to_bf16(s[c]);
  }
}

void gemm(MatmulPrecision p, bool transA, bool transB, int64_t M, int64_t N, int64_t K,
          float alpha, const float* A, int64_t lda, const float* B, int64_t ldb, float beta,
          float* C, int64_t ldc) {
  if (p == MatmulPrecision::bf16 && M > 0 && N > 0 && K > 0) {
    ALIBI_CHECK(cpu_has_bf16(), "bf16 gemm needs AVX512-BF16, which this CPU lacks");
    gemm_bf16(bf16_state(), transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    return;
  }
  const dnnl_status_t st = dnnl_sgemm(transA ? 'T' : 'N', transB ? 'T' : 'N', M, N, K, alpha, A,
                                      lda, B, ldb, beta, C, ldc);
  ALIBI_CHECK(st == dnnl_success, "dnnl_sgemm status ", int(st), " M=", M, " N=", N, " K=", K);
}

void linear_bf16(float* out, const float* inp, const uint16_t* W, int64_t N, int64_t IC,
                 int64_t OC) {
  if (N <= 0 || OC <= 0 || IC <= 0) return;
  ALIBI_CHECK(cpu_has_bf16(), "bf16 gemm needs AVX512-BF16, which this CPU lacks");
  Bf16State& st = bf16_state();
  Entry& e = entry(st, false, true, N, OC, IC, 1.0f, 0.0f, OC);
  if (st.a_buf.size() < size_t(N * IC)) st.a_buf.resize(size_t(N * IC));
  to_bf16(st.a_buf.data(), inp, N, IC, IC);
  run(st, e, st.a_buf.data(), W, out);
}

}  // namespace alibi::cpu
