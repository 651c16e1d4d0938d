// CudaBackend: kernels/backend.h on an NVIDIA GPU. Device memory from cudaMalloc, all work on
// one stream, products through cuBLAS, everything else through ops.cu and attention.cu. The
// host waits only where a method returns a number (the "->" reductions) or downloads.
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <memory>
#include <string>

#include "core/error.h"
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/ops.cuh"

namespace alibi::cuda {
namespace {

#define ALIBI_CUBLAS_CHECK(expr)                                                         \
  do {                                                                                   \
    const cublasStatus_t alibi_st_ = (expr);                                             \
    ALIBI_CHECK(alibi_st_ == CUBLAS_STATUS_SUCCESS, #expr, ": cuBLAS status ",           \
                int(alibi_st_), " (", __FILE__, ":", __LINE__, ")");                     \
  } while (0)

// Device scratch that only grows: planned by its first, largest use, so a step allocates
// nothing once every shape has been seen.
class Scratch {
 public:
  void* get(size_t bytes) {
    if (bytes > bytes_) {
      if (p_) ALIBI_CUDA_CHECK(cudaFree(p_));
      ALIBI_CUDA_CHECK(cudaMalloc(&p_, bytes));
      bytes_ = bytes;
    }
    return p_;
  }
  ~Scratch() {
    if (p_) cudaFree(p_);
  }

 private:
  void* p_ = nullptr;
  size_t bytes_ = 0;
};

class CudaBackend final : public Backend {
 public:
  explicit CudaBackend(MatmulPrecision p) : p_(p) {
    ALIBI_CUDA_CHECK(cudaStreamCreateWithFlags(&st_, cudaStreamNonBlocking));
    ALIBI_CUBLAS_CHECK(cublasCreate(&blas_));
    ALIBI_CUBLAS_CHECK(cublasSetStream(blas_, st_));
    // fp32 products in fp32 (no TF32): the CPU backend's fp32 is the reference they are held to.
    ALIBI_CUBLAS_CHECK(cublasSetMathMode(blas_, CUBLAS_DEFAULT_MATH));
    ALIBI_CUDA_CHECK(cudaMalloc(&scalars_, 64));
    ALIBI_CUDA_CHECK(cudaMalloc(&sum_partials_, kSumBlocks * sizeof(double)));
  }
  ~CudaBackend() override {
    cudaFree(scalars_);
    cudaFree(sum_partials_);
    cublasDestroy(blas_);
    cudaStreamDestroy(st_);
  }
  const char* device() const override { return "cuda"; }
  MatmulPrecision precision() const override { return p_; }

  // ---- memory ---------------------------------------------------------------------------------
  void* alloc(size_t bytes) override {
    void* p = nullptr;
    if (bytes == 0) return nullptr;
    ALIBI_CUDA_CHECK(cudaMalloc(&p, bytes));  // 256-byte aligned
    ALIBI_CUDA_CHECK(cudaMemsetAsync(p, 0, bytes, st_));
    return p;
  }
  void free(void* p) override {
    if (!p) return;
    ALIBI_CUDA_CHECK(cudaStreamSynchronize(st_));  // no kernel may still use it
    ALIBI_CUDA_CHECK(cudaFree(p));
  }
  void upload(void* dst, const void* host, size_t bytes) override {
    if (bytes == 0) return;
    ALIBI_CUDA_CHECK(cudaMemcpyAsync(dst, host, bytes, cudaMemcpyHostToDevice, st_));
    ALIBI_CUDA_CHECK(cudaStreamSynchronize(st_));  // the host buffer may go once we return
  }
  void download(void* host, const void* src, size_t bytes) override {
    if (bytes == 0) return;
    ALIBI_CUDA_CHECK(cudaMemcpyAsync(host, src, bytes, cudaMemcpyDeviceToHost, st_));
    ALIBI_CUDA_CHECK(cudaStreamSynchronize(st_));
  }
  void copy(void* dst, const void* src, size_t bytes) override {
    if (bytes == 0) return;
    ALIBI_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, st_));
  }
  void fill(float* x, float value, int64_t n) override {
    if (n > 0) cuda::fill(st_, x, value, n);
  }
  int64_t first_nonfinite(const float* x, int64_t n) override {
    if (n <= 0) return -1;
    auto* first = static_cast<unsigned long long*>(scalars_);
    const unsigned long long none = static_cast<unsigned long long>(n);
    ALIBI_CUDA_CHECK(cudaMemcpyAsync(first, &none, sizeof(none), cudaMemcpyHostToDevice, st_));
    cuda::first_nonfinite(st_, x, n, first);
    unsigned long long got = 0;
    download(&got, first, sizeof(got));
    return got == none ? -1 : int64_t(got);
  }
  void synchronize() override { ALIBI_CUDA_CHECK(cudaStreamSynchronize(st_)); }
  bool host_memory() const override { return false; }

  // ---- dense layers ---------------------------------------------------------------------------
  void gemm(bool transA, bool transB, int64_t M, int64_t N, int64_t K, float alpha,
            const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
            int64_t ldc) override {
    if (M == 0 || N == 0) return;
    if (p_ == MatmulPrecision::fp32) {
      product(transA, transB, M, N, K, alpha, A, CUDA_R_32F, lda, B, CUDA_R_32F, ldb, beta, C,
              ldc);
      return;
    }
    // bf16: the operands rounded into dense scratch, as the CPU backend does.
    const int64_t a_rows = transA ? K : M, a_cols = transA ? M : K;
    const int64_t b_rows = transB ? N : K, b_cols = transB ? K : N;
    uint16_t* a16 = static_cast<uint16_t*>(a16_.get(size_t(a_rows * a_cols) * 2));
    uint16_t* b16 = static_cast<uint16_t*>(b16_.get(size_t(b_rows * b_cols) * 2));
    round_rows(a16, A, a_rows, a_cols, lda);
    round_rows(b16, B, b_rows, b_cols, ldb);
    product(transA, transB, M, N, K, alpha, a16, CUDA_R_16BF, a_cols, b16, CUDA_R_16BF, b_cols,
            beta, C, ldc);
  }
  void gelu_forward(float* out, const float* inp, int64_t n, Gelu g) override {
    cuda::gelu_forward(st_, out, inp, n, g);
  }
  void gelu_backward(float* dinp, const float* inp, const float* dout, int64_t n,
                     Gelu g) override {
    cuda::gelu_backward(st_, dinp, inp, dout, n, g);
  }
  void embedding_forward(float* x, const int32_t* tokens, WeightView wte, int64_t N, int64_t C,
                         float scale) override {
    cuda::embedding_forward(st_, x, tokens, wte, N, C, scale);
  }
  void embedding_backward(float* dwte, const float* dx, const int32_t* tokens, int64_t N,
                          int64_t C, int64_t, float scale) override {
    cuda::embedding_backward(st_, dwte, dx, tokens, N, C, scale);
  }
  void split_heads(float* q, float* k, float* v, const float* qkv, int64_t B, int64_t T,
                   int64_t NH, int64_t HS) override {
    cuda::split_heads(st_, q, k, v, qkv, B, T, NH, HS);
  }
  void split_heads_backward(float* dqkv, const float* dq, const float* dk, const float* dv,
                            int64_t B, int64_t T, int64_t NH, int64_t HS) override {
    cuda::split_heads_backward(st_, dqkv, dq, dk, dv, B, T, NH, HS);
  }
  void merge_heads(float* y, const float* o, int64_t B, int64_t T, int64_t NH,
                   int64_t HS) override {
    cuda::merge_heads(st_, y, o, B, T, NH, HS);
  }
  void merge_heads_backward(float* do_, const float* dy, int64_t B, int64_t T, int64_t NH,
                            int64_t HS) override {
    cuda::merge_heads_backward(st_, do_, dy, B, T, NH, HS);
  }
  void residual_forward(float* x, const float* branch, int64_t N, int64_t C, float p,
                        uint64_t seed) override {
    cuda::residual(st_, x, branch, N, C, p, seed, /*add=*/true);
  }
  void residual_backward(float* dbranch, const float* dx, int64_t N, int64_t C, float p,
                         uint64_t seed) override {
    cuda::residual(st_, dbranch, dx, N, C, p, seed, /*add=*/false);
  }
  float crossentropy_forward(float* lse, const float* logits, const int32_t* targets, int64_t N,
                             int64_t V) override {
    cuda::crossentropy_forward(st_, lse, logits, targets, N, V, mean());
    return host_mean();
  }
  void crossentropy_backward(float* logits, const float* lse, const int32_t* targets, int64_t N,
                             int64_t V, float scale) override {
    cuda::crossentropy_backward(st_, logits, lse, targets, N, V, scale,
                                static_cast<int*>(scalars_) + 4);
  }
  float crossentropy_block(float* state, float* loss, const float* logits,
                           const int32_t* targets, int64_t N, int64_t cols, int64_t v0,
                           int64_t V) override {
    cuda::crossentropy_block(st_, state, loss, logits, targets, N, cols, v0, V, mean());
    return v0 + cols < V ? 0.0f : host_mean();
  }
  void token_losses(float* loss, const float* logits, const float* lse, const int32_t* targets,
                    int64_t N, int64_t V) override {
    cuda::token_losses(st_, loss, logits, lse, targets, N, V);
  }

  // ---- position kernels -----------------------------------------------------------------------
  void posemb_forward(float* x, const float* wpe, int64_t B, int64_t T, int64_t C,
                      int64_t pos0) override {
    cuda::posemb_forward(st_, x, wpe, B, T, C, pos0);
  }
  void posemb_backward(float* dwpe, const float* dx, int64_t B, int64_t T, int64_t C,
                       int64_t pos0) override {
    cuda::posemb_backward(st_, dwpe, dx, B, T, C, pos0);
  }
  void sinusoidal_add(float* x, int B, int T, int C, int64_t pos0) override {
    cuda::sinusoidal_add(st_, x, B, T, C, pos0);
  }
  void rotary(float* x, int B, int NH, int T, int HS, const Rotation& r) override {
    cuda::rotary(st_, x, B, NH, T, HS, r);
  }

  // ---- attention ------------------------------------------------------------------------------
  AttnWorkspace plan_attention(const AttnShape& s) const override {
    return AttnWorkspace{nullptr, attention_workspace_floats(s), 1};
  }
  // ---- kernels/layer_ops.h: Backend::run checks the shapes, then these compute --------------
 protected:
  using Backend::compute;  // the batch of attentions: one after another, as Backend does
  void compute(const LinearForward& a) override {
    const int64_t N = a.inp[0], IC = a.inp[1], OC = a.W[0];
    const WeightView W = a.W.data;
    if (W.type == WeightType::fp32) {
      gemm(false, true, N, OC, IC, 1.0f, a.inp.data, IC, W.f32(), IC, 0.0f, a.out.data, OC);
    } else if (p_ == MatmulPrecision::bf16 && W.type == WeightType::bf16) {
      // The stored bf16 matrix as it is; only the activations are rounded.
      uint16_t* a16 = static_cast<uint16_t*>(a16_.get(size_t(N * IC) * 2));
      cuda::to_bf16(st_, a16, a.inp.data, N * IC);
      product(false, true, N, OC, IC, 1.0f, a16, CUDA_R_16BF, IC, W.half(), CUDA_R_16BF, IC,
              0.0f, a.out.data, OC);
    } else {  // widened to fp32 exactly, then the product in this backend's precision
      float* wide = static_cast<float*>(wide_.get(size_t(OC * IC) * 4));
      cuda::widen(st_, wide, W.half(), W.type, OC * IC);
      gemm(false, true, N, OC, IC, 1.0f, a.inp.data, IC, wide, IC, 0.0f, a.out.data, OC);
    }
    if (a.b.data) cuda::add_bias(st_, a.out.data, a.b.data, N, OC);
  }
  void compute(const LinearBackward& a) override {
    const int64_t N = a.inp[0], IC = a.inp[1], OC = a.W[0];
    if (a.dinp.data)
      gemm(false, false, N, IC, OC, 1.0f, a.dout.data, OC, a.W.data, IC, 0.0f, a.dinp.data, IC);
    gemm(true, false, OC, IC, N, 1.0f, a.dout.data, OC, a.inp.data, IC, 1.0f, a.dW.data, IC);
    if (a.db.data) cuda::colsum_add(st_, a.db.data, a.dout.data, N, OC);
  }
  void compute(const LayerNormForward& a) override {
    cuda::layernorm_forward(st_, a.out.data, a.mean.data, a.rstd.data, a.inp.data, a.w.data,
                            a.b.data, a.inp[0], a.inp[1], a.eps);
  }
  void compute(const LayerNormBackward& a) override {
    cuda::layernorm_backward(st_, a.dinp.data, a.dw.data, a.db.data, a.dout.data, a.inp.data,
                             a.w.data, a.mean.data, a.rstd.data, a.inp[0], a.inp[1]);
  }
  void compute(const AttentionForward& a) override {
    refuse_bias(a.bias);
    cuda::attention_forward(st_, with_precision(a.s), a.q.data, a.k.data, a.v.data, a.bias,
                            a.drop, a.out.data, a.lse.data);
  }
  void compute(const AttentionBackward& a) override {
    refuse_bias(a.bias);
    ALIBI_CHECK(a.ws.floats >= attention_workspace_floats(a.s), "cuda attention: workspace of ",
                a.ws.floats, " floats for a shape that needs ", attention_workspace_floats(a.s));
    cuda::attention_backward(st_, with_precision(a.s), a.q.data, a.k.data, a.v.data, a.out.data,
                             a.lse.data, a.dout.data, a.bias, a.drop, a.dq.data, a.dk.data,
                             a.dv.data, a.dbias.data, a.ws.data);
  }

 public:
  // ---- KV cache -------------------------------------------------------------------------------
  void kv_append(float* cache, int64_t rows, int64_t row0, const float* x, int NH, int T,
                 int HS) override {
    const size_t width = size_t(T) * HS * sizeof(float);
    if (width == 0) return;
    ALIBI_CUDA_CHECK(cudaMemcpy2DAsync(cache + row0 * HS, size_t(rows) * HS * sizeof(float), x,
                                       width, width, size_t(NH), cudaMemcpyDeviceToDevice, st_));
  }
  void kv_move(float* dst, int64_t dst_rows, const float* src, int64_t src_rows, int64_t start,
               int64_t len, int64_t blocks, int HS) override {
    const size_t width = size_t(len) * HS * sizeof(float);
    if (width == 0 || blocks == 0) return;
    // Through scratch: in place, a block's rows may overlap where they go.
    float* tmp = static_cast<float*>(kv_.get(width * size_t(blocks)));
    ALIBI_CUDA_CHECK(cudaMemcpy2DAsync(tmp, width, src + start * HS,
                                       size_t(src_rows) * HS * sizeof(float), width,
                                       size_t(blocks), cudaMemcpyDeviceToDevice, st_));
    ALIBI_CUDA_CHECK(cudaMemcpy2DAsync(dst, size_t(dst_rows) * HS * sizeof(float), tmp, width,
                                       width, size_t(blocks), cudaMemcpyDeviceToDevice, st_));
  }

  // An f16 KV cache is the CPU's (generate and serve refuse --kv-cache f16 on this device).
  void kv_append(uint16_t*, int64_t, int64_t, const float*, int, int, int) override {
    ALIBI_CHECK(false, "an f16 KV cache runs on the CPU only");
  }
  void kv_move(uint16_t*, int64_t, const uint16_t*, int64_t, int64_t, int64_t, int64_t,
               int) override {
    ALIBI_CHECK(false, "an f16 KV cache runs on the CPU only");
  }

  void kv_rescale(float* cache, int64_t rows, int64_t len, int64_t blocks, int HS,
                  const double* decay, int64_t delta) override {
    if (len > 0 && blocks > 0) cuda::kv_rescale(st_, cache, rows, len, blocks, HS, decay, delta);
  }

  // ---- optimizer ------------------------------------------------------------------------------
  void adamw_update(float* p, const float* g, float* m, float* v, int64_t n,
                    const AdamWUpdate& u) override {
    if (n > 0) cuda::adamw_update(st_, p, g, m, v, n, u);
  }
  // A fixed tree over kSumBlocks blocks, not the CPU's left-to-right order: the same on every
  // run, equal to the CPU's only up to rounding, and a sum split across processes does not
  // continue exactly where the previous part ended.
  double sum_squares(const float* x, int64_t n, double start) override {
    double* out = static_cast<double*>(scalars_) + 4;  // bytes 32..39 of the 64
    cuda::sum_squares(st_, x, n, start, static_cast<double*>(sum_partials_), out);
    double s = 0.0;
    download(&s, out, sizeof(s));
    return s;
  }
  void accumulate(float* acc, const float* x, int64_t n) override {
    if (n > 0) cuda::accumulate(st_, acc, x, n);
  }
  void scale(float* x, float s, int64_t n) override {
    if (n > 0) cuda::scale(st_, x, s, n);
  }

 private:
  // The mean loss a cross-entropy leaves on the device, and its value on the host.
  float* mean() { return static_cast<float*>(scalars_); }
  float host_mean() {
    float m = 0.0f;
    download(&m, mean(), sizeof(m));
    return m;
  }
  // The biases the CUDA attention computes: alibi and t5 (docs/cuda.md); the distance tables
  // (KERPLE, Sandwich) and FIRE run on the CPU for now.
  static void refuse_bias(const ScoreBias& b) {
    if (b.kind == BiasKind::table || b.kind == BiasKind::fire)
      usage_error("--device cuda: the attention has no ",
                  b.kind == BiasKind::fire ? "FIRE" : "distance-table (KERPLE, Sandwich)",
                  " bias yet; use --device cpu (docs/cuda.md)");
  }
  AttnShape with_precision(AttnShape s) const {
    s.precision = p_;
    return s;
  }
  // dst (rows, cols) dense bf16 = src (rows, cols) with row stride ld.
  void round_rows(uint16_t* dst, const float* src, int64_t rows, int64_t cols, int64_t ld) {
    if (ld == cols) {
      cuda::to_bf16(st_, dst, src, rows * cols);
      return;
    }
    for (int64_t r = 0; r < rows; ++r) cuda::to_bf16(st_, dst + r * cols, src + r * ld, cols);
  }
  // Row-major C (M,N) = alpha op(A) op(B) + beta C through column-major cuBLAS: C^T = op(B)^T
  // op(A)^T, i.e. the operands swapped, each with its own flag.
  void product(bool transA, bool transB, int64_t M, int64_t N, int64_t K, float alpha,
               const void* A, cudaDataType ta, int64_t lda, const void* B, cudaDataType tb,
               int64_t ldb, float beta, float* C, int64_t ldc) {
    ALIBI_CUBLAS_CHECK(cublasGemmEx(blas_, transB ? CUBLAS_OP_T : CUBLAS_OP_N,
                                    transA ? CUBLAS_OP_T : CUBLAS_OP_N, int(N), int(M), int(K),
                                    &alpha, B, tb, int(ldb), A, ta, int(lda), &beta, C,
                                    CUDA_R_32F, int(ldc), CUBLAS_COMPUTE_32F,
                                    CUBLAS_GEMM_DEFAULT));
  }

  MatmulPrecision p_;
  cudaStream_t st_ = nullptr;
  cublasHandle_t blas_ = nullptr;
  // 64 bytes: bytes 0..7 the first non-finite index or a mean loss, 16..19 the scored-row count,
  // 32..39 the sum of squares.
  void* scalars_ = nullptr;
  void* sum_partials_ = nullptr;  // sum_squares' per-block partials
  Scratch a16_, b16_, wide_, kv_;
};

}  // namespace

std::shared_ptr<Backend> make_cuda_backend(MatmulPrecision p) {
  if (p == MatmulPrecision::int8)
    usage_error("--dtype int8 is a CPU option (block-quantized weights, AVX512-VNNI); the CUDA "
                "backend takes fp32 | bf16");
  int count = 0;
  const cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess || count == 0)
    usage_error("--device cuda: no CUDA device is visible (",
                err != cudaSuccess ? cudaGetErrorString(err) : "0 devices", ")");
  return std::make_shared<CudaBackend>(p);
}

}  // namespace alibi::cuda

// What kernels/backend.cpp looks up in this module (dlsym): make_cuda_backend, with C linkage.
extern "C" __attribute__((visibility("default"))) void alibi_make_cuda_backend(
    alibi::MatmulPrecision p, std::shared_ptr<alibi::Backend>* out) {
  *out = alibi::cuda::make_cuda_backend(p);
}
