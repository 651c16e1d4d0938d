// CpuBackend: each op of kernels/backend.h forwards to its CPU kernel; memory is host memory.
#include "kernels/cpu/cpu_backend.h"

#include <omp.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>

#include "core/error.h"
#include "kernels/cpu/attention_cpu.h"
#include "kernels/cpu/ops_cpu.h"

namespace alibi::cpu {
namespace {

constexpr size_t kAlign = 64;  // a cache line: every buffer starts on one

class CpuBackend final : public Backend {
 public:
  explicit CpuBackend(MatmulPrecision p) : p_(p) {}
  const char* device() const override { return "cpu"; }
  MatmulPrecision precision() const override { return p_; }

  void* alloc(size_t bytes) override {
    const size_t n = (bytes + kAlign - 1) / kAlign * kAlign;
    void* p = std::aligned_alloc(kAlign, n);
    if (!p) throw std::bad_alloc();
    std::memset(p, 0, n);  // touched now, as the std::vector arena it replaces was
    return p;
  }
  void free(void* p) override { std::free(p); }
  void upload(void* dst, const void* host, size_t bytes) override { std::memcpy(dst, host, bytes); }
  void download(void* host, const void* src, size_t bytes) override {
    std::memcpy(host, src, bytes);
  }
  void copy(void* dst, const void* src, size_t bytes) override { std::memcpy(dst, src, bytes); }
  void fill(float* x, float value, int64_t n) override { std::fill(x, x + n, value); }
  int64_t first_nonfinite(const float* x, int64_t n) override {
    return cpu::first_nonfinite(x, n);
  }
  void synchronize() override {}  // every op has finished when it returns
  bool host_memory() const override { return true; }
  size_t packed_weight_bytes(int64_t OC, int64_t IC) const override {
    if (p_ == MatmulPrecision::bf16 && !cpu_has_bf16()) return 0;  // refused where it runs
    return cpu::packed_bytes(OC, IC, p_);
  }
  WeightView pack_weight(void* dst, const float* W, int64_t OC, int64_t IC) override {
    return cpu::pack_weight(dst, W, OC, IC, p_);
  }

  void gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
            int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) override {
    cpu::gemm(p_, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  }
  void gelu_forward(float* out, const float* inp, int64_t n, Gelu g) override {
    cpu::gelu_forward(out, inp, n, g);
  }
  void gelu_backward(float* dinp, const float* inp, const float* dout, int64_t n,
                     Gelu g) override {
    cpu::gelu_backward(dinp, inp, dout, n, g);
  }
  void embedding_forward(float* x, const int32_t* tokens, WeightView wte, int64_t N, int64_t C,
                         float scale) override {
    cpu::embedding_forward(x, tokens, wte, N, C, scale);
  }
  void embedding_backward(float* dwte, const float* dx, const int32_t* tokens, int64_t N,
                          int64_t C, int64_t V, float scale) override {
    cpu::embedding_backward(dwte, dx, tokens, N, C, V, scale);
  }
  void split_heads(float* q, float* k, float* v, const float* qkv, int64_t B, int64_t T,
                   int64_t NH, int64_t HS) override {
    cpu::split_heads(q, k, v, qkv, B, T, NH, HS);
  }
  void split_heads_backward(float* dqkv, const float* dq, const float* dk, const float* dv,
                            int64_t B, int64_t T, int64_t NH, int64_t HS) override {
    cpu::split_heads_backward(dqkv, dq, dk, dv, B, T, NH, HS);
  }
  void merge_heads(float* y, const float* o, int64_t B, int64_t T, int64_t NH,
                   int64_t HS) override {
    cpu::merge_heads(y, o, B, T, NH, HS);
  }
  void merge_heads_backward(float* do_, const float* dy, int64_t B, int64_t T, int64_t NH,
                            int64_t HS) override {
    cpu::merge_heads_backward(do_, dy, B, T, NH, HS);
  }
  void residual_forward(float* x, const float* branch, int64_t N, int64_t C, float p,
                        uint64_t seed) override {
    cpu::residual_forward(x, branch, N, C, p, seed);
  }
  void residual_backward(float* dbranch, const float* dx, int64_t N, int64_t C, float p,
                         uint64_t seed) override {
    cpu::residual_backward(dbranch, dx, N, C, p, seed);
  }
  float crossentropy_forward(float* lse, const float* logits, const int32_t* targets, int64_t N,
                             int64_t V) override {
    return cpu::crossentropy_forward(lse, logits, targets, N, V);
  }
  float crossentropy_block(float* state, float* loss, const float* logits,
                           const int32_t* targets, int64_t N, int64_t cols, int64_t v0,
                           int64_t V) override {
    return cpu::crossentropy_block(state, loss, logits, targets, N, cols, v0, V);
  }
  void crossentropy_backward(float* logits, const float* lse, const int32_t* targets, int64_t N,
                             int64_t V, float scale) override {
    cpu::crossentropy_backward(logits, lse, targets, N, V, scale);
  }
  void token_losses(float* loss, const float* logits, const float* lse, const int32_t* targets,
                    int64_t N, int64_t V) override {
    cpu::token_losses(loss, logits, lse, targets, N, V);
  }

  void posemb_forward(float* x, const float* wpe, int64_t B, int64_t T, int64_t C,
                      int64_t pos0) override {
    cpu::posemb_forward(x, wpe, B, T, C, pos0);
  }
  void posemb_backward(float* dwpe, const float* dx, int64_t B, int64_t T, int64_t C,
                       int64_t pos0) override {
    cpu::posemb_backward(dwpe, dx, B, T, C, pos0);
  }
  void sinusoidal_add(float* x, int B, int T, int C, int64_t pos0) override {
    cpu::sinusoidal_add(x, B, T, C, pos0);
  }
  void rotary(float* x, int B, int NH, int T, int HS, const Rotation& r) override {
    cpu::rotary(x, B, NH, T, HS, r);
  }

  // The scratch is per OpenMP thread: planned for the threads of this moment, and the kernels
  // refuse to run with more.
  AttnWorkspace plan_attention(const AttnShape& s) const override {
    AttnShape sp = s;
    sp.precision = p_;
    const int threads = omp_get_max_threads();
    return AttnWorkspace{nullptr, cpu::attention_workspace_floats(sp, threads), threads};
  }

 protected:  // Backend::run checks the shapes, then these compute
  void compute(const LinearForward& a) override { cpu::linear_forward(p_, a); }
  void compute(const LinearBackward& a) override { cpu::linear_backward(p_, a); }
  void compute(const LayerNormForward& a) override { cpu::layernorm_forward(a); }
  void compute(const LayerNormBackward& a) override { cpu::layernorm_backward(a); }
  void compute(const AttentionForward& a) override {
    cpu::attention_forward(with_precision(a.s), a.q.data, a.k.data, a.v.data, a.bias, a.drop,
                           a.out.data, a.lse.data, a.ws);
  }
  void compute(const AttentionForward* ops, size_t n) override {
    cpu::attention_forward_all({ops, n}, p_);
  }
  void compute(const AttentionBackward& a) override {
    cpu::attention_backward(with_precision(a.s), a.q.data, a.k.data, a.v.data, a.out.data,
                            a.lse.data, a.dout.data, a.bias, a.drop, a.dq.data, a.dk.data,
                            a.dv.data, a.dbias.data, a.ws);
  }

 public:
  void kv_append(float* cache, int64_t rows, int64_t row0, const float* x, int NH, int T,
                 int HS) override {
    cpu::kv_append(cache, rows, row0, x, NH, T, HS);
  }
  void kv_move(float* dst, int64_t dst_rows, const float* src, int64_t src_rows, int64_t start,
               int64_t len, int64_t blocks, int HS) override {
    cpu::kv_move(dst, dst_rows, src, src_rows, start, len, blocks, HS);
  }
  void kv_append(uint16_t* cache, int64_t rows, int64_t row0, const float* x, int NH, int T,
                 int HS) override {
    cpu::kv_append(cache, rows, row0, x, NH, T, HS);
  }
  void kv_move(uint16_t* dst, int64_t dst_rows, const uint16_t* src, int64_t src_rows,
               int64_t start, int64_t len, int64_t blocks, int HS) override {
    cpu::kv_move(dst, dst_rows, src, src_rows, start, len, blocks, HS);
  }
  void kv_rescale(float* cache, int64_t rows, int64_t len, int64_t blocks, int HS,
                  const double* decay, int64_t delta) override {
    cpu::kv_rescale(cache, rows, len, blocks, HS, decay, delta);
  }

  void adamw_update(float* p, const float* g, float* m, float* v, int64_t n,
                    const AdamWUpdate& u) override {
    cpu::adamw_update(p, g, m, v, n, u);
  }
  double sum_squares(const float* x, int64_t n, double start) override {
    return cpu::sum_squares(x, n, start);
  }
  void accumulate(float* acc, const float* x, int64_t n) override { cpu::accumulate(acc, x, n); }
  void scale(float* x, float s, int64_t n) override { cpu::scale(x, s, n); }

 private:
  AttnShape with_precision(AttnShape s) const {
    s.precision = p_;
    return s;
  }
  MatmulPrecision p_;
};

}  // namespace

std::shared_ptr<Backend> make_cpu_backend(MatmulPrecision p) {
  if (p == MatmulPrecision::bf16 && !cpu_has_bf16())
    usage_error("--dtype bf16 needs a CPU with AVX512-BF16 instructions and this one has none; "
                "use --dtype fp32");
  if (p == MatmulPrecision::int8 && !cpu_has_vnni())
    usage_error("--dtype int8 needs a CPU with AVX512-VNNI instructions (and a build for it) and "
                "this one has none; use --dtype fp32");
  return std::make_shared<CpuBackend>(p);
}

}  // namespace alibi::cpu
