#pragma once
// What a device must provide: the one interface between the model and the hardware. The model
// owns a Backend; its parameters, activations and KV cache live in the backend's memory, and
// everything they compute goes through the methods below. kernels/cpu/ and kernels/cuda/ (built
// where nvcc is; docs/cuda.md) implement it; a new device implements this class in
// kernels/<device>/ and adds one line to kernels/backend.cpp.
//
// Device memory is opaque: pointers from alloc() are read and written only by the backend, and
// data crosses to and from the host by upload()/download(). Shapes: N = B*T rows, C channels,
// NH heads of HS, V vocabulary. A backward op adds into parameter gradients (+=, the caller
// zeroes them) and overwrites the input gradient unless it says +=. Results are deterministic
// for a given thread count; the reductions that return a number to the host are marked "->".
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "core/error.h"
#include "kernels/attention.h"
#include "kernels/layer_kinds.h"
#include "kernels/layer_ops.h"
#include "kernels/precision.h"
#include "kernels/weights.h"

namespace alibi {

// A target the cross-entropy skips (a position a masked LM does not score).
constexpr int32_t kIgnoreTarget = -1;

// One AdamW step on a tensor (torch.optim.AdamW, decoupled decay), all factors fp32:
//   p *= decay; m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2;
//   p -= step_size m / (sqrt(v) / bc2_sqrt + eps)
struct AdamWUpdate {
  float beta1, beta2, eps;
  float decay;      // 1 - lr * weight_decay, or 1 for tensors without decay
  float step_size;  // lr / (1 - beta1^t)
  float bc2_sqrt;   // sqrt(1 - beta2^t)
};

// One application of the rotary family's op (Backend::rotary) to q or k (B,NH,T,HS): pair i
// (dimensions i and i + HS/2) of the row at position p = pos0 + t is rotated by
// sign * p * freq[i] radians and scaled by mscale * exp(power * (p - anchor) * decay[i]), where
// sign is -1 for the backward (the inverse rotation; the scale is its own transpose).
struct Rotation {
  const double* freq = nullptr;   // (HS/2) in the backend's memory
  const double* decay = nullptr;  // (HS/2) xpos' ln(zeta_i)/gamma; null: no decay
  float mscale = 1.0f;            // YaRN's attention temperature on q and k; 1 otherwise
  int64_t pos0 = 0;
  int64_t anchor = 0;             // the position where the decay's factor is 1
  int power = 1;                  // +1 for q, -1 for k: their product decays with i - j
  bool backward = false;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual const char* device() const = 0;            // its --device name
  virtual MatmulPrecision precision() const = 0;     // of every product it computes

  // ---- memory --------------------------------------------------------------------------------
  virtual void* alloc(size_t bytes) = 0;              // zero-filled, 64-byte aligned
  virtual void free(void* p) = 0;
  virtual void upload(void* dst, const void* host, size_t bytes) = 0;
  virtual void download(void* host, const void* src, size_t bytes) = 0;
  virtual void copy(void* dst, const void* src, size_t bytes) = 0;  // device to device, disjoint
  virtual void fill(float* x, float value, int64_t n) = 0;
  // The index of the first element of x (n) that is NaN or infinite, or -1 if none (the
  // --check-finite mode: Model::set_check_finite).
  virtual int64_t first_nonfinite(const float* x, int64_t n) = 0;
  virtual void synchronize() = 0;  // returns when all work handed to the backend is done
  // Whether the backend's memory is the host's: then read-only weights can be used where they
  // lie (a checkpoint file's mapping) instead of being copied in.
  virtual bool host_memory() const = 0;
  // Bytes of an (OC, IC) fp32 weight matrix packed into the layout this backend's linear layers
  // read fastest, or 0 where it packs none (the CPU: oneDNN's blocked layout, in fp32, or in
  // bf16 rounded to nearest in bf16 precision; kernels/cpu/packed_cpu.cpp). A model on a
  // checkpoint's weights packs its layers' fp32 matrices at load (Model::packed_bytes); only
  // LinearForward reads them then.
  virtual size_t packed_weight_bytes(int64_t /*OC*/, int64_t /*IC*/) const { return 0; }
  // dst (packed_weight_bytes, the backend's memory) = W (OC, IC) row-major fp32 on the host,
  // packed; returns the view of dst that LinearForward reads.
  virtual WeightView pack_weight(void* /*dst*/, const float* /*W*/, int64_t /*OC*/,
                                 int64_t /*IC*/) {
    ALIBI_CHECK(false, device(), " packs no weights");
    return {};
  }

  // ---- the dense layers and the attention (kernels/layer_ops.h) -------------------------------
  // Runs op after checking its operands' shapes against each other, the one place they are
  // checked (a bug in the caller is an internal error naming the op and the shapes):
  // LinearForward / Backward, LayerNormForward / Backward, AttentionForward / Backward.
  template <class Op>
  void run(const Op& op) {
    op.check();
    compute(op);
  }
  // n independent attentions (one batched step's sequences, each on its own KV cache), checked,
  // then computed with the results each would give alone: one after another, or together where
  // the device can (the CPU: one parallel region for all). (No std::span: the .cu files that
  // include this header are C++17.)
  void run_all(const AttentionForward* ops, size_t n) {
    for (size_t i = 0; i < n; ++i) ops[i].check();
    compute(ops, n);
  }

  // ---- other dense ops -----------------------------------------------------------------------
  // C (M,N) = alpha op(A) op(B) + beta C, row-major, op = transpose where the flag is set.
  virtual void gemm(bool transA, bool transB, int64_t M, int64_t N, int64_t K, float alpha,
                    const float* A, int64_t lda, const float* B, int64_t ldb, float beta,
                    float* C, int64_t ldc) = 0;
  // out = gelu(inp) in form g, n elements; dinp = dout gelu'(inp).
  virtual void gelu_forward(float* out, const float* inp, int64_t n, Gelu g) = 0;
  virtual void gelu_backward(float* dinp, const float* inp, const float* dout, int64_t n,
                             Gelu g) = 0;
  // x (N,C) = scale wte[tokens] (wte fp32, bf16 or f16); dwte (V,C) += scale (dx scattered by
  // token).
  virtual void embedding_forward(float* x, const int32_t* tokens, WeightView wte, int64_t N,
                                 int64_t C, float scale) = 0;
  virtual void embedding_backward(float* dwte, const float* dx, const int32_t* tokens,
                                  int64_t N, int64_t C, int64_t V, float scale) = 0;
  // qkv (B,T,3C) <-> q, k, v (B,NH,T,HS); o (B,NH,T,HS) <-> y (B,T,C).
  virtual void split_heads(float* q, float* k, float* v, const float* qkv, int64_t B,
                           int64_t T, int64_t NH, int64_t HS) = 0;
  virtual void split_heads_backward(float* dqkv, const float* dq, const float* dk,
                                    const float* dv, int64_t B, int64_t T, int64_t NH,
                                    int64_t HS) = 0;
  virtual void merge_heads(float* y, const float* o, int64_t B, int64_t T, int64_t NH,
                           int64_t HS) = 0;
  virtual void merge_heads_backward(float* do_, const float* dy, int64_t B, int64_t T,
                                    int64_t NH, int64_t HS) = 0;
  // x (N,C) += dropout(branch), keep(n,c) = u01(hash64(seed, n, c)) >= p, kept / (1 - p);
  // backward: dbranch = the mask applied to dx.
  virtual void residual_forward(float* x, const float* branch, int64_t N, int64_t C, float p,
                                uint64_t seed) = 0;
  virtual void residual_backward(float* dbranch, const float* dx, int64_t N, int64_t C,
                                 float p, uint64_t seed) = 0;
  // -> mean cross-entropy of logits (N,V) against targets (N), saving lse (N). The backward
  // overwrites logits with d(scale * mean loss)/d(logits); token_losses: loss (N) per row.
  // A target < 0 (kIgnoreTarget: a position a masked LM does not score) adds nothing: the mean
  // is over the other rows (0 if none), its row's gradient and token loss are 0.
  virtual float crossentropy_forward(float* lse, const float* logits, const int32_t* targets,
                                     int64_t N, int64_t V) = 0;
  virtual void crossentropy_backward(float* logits, const float* lse, const int32_t* targets,
                                     int64_t N, int64_t V, float scale) = 0;
  // The cross-entropy of N rows whose logits (N,cols) come one block of vocabulary columns
  // [v0, v0 + cols) at a time, blocks in order from v0 = 0 to V (an online log-sum-exp): state
  // (3N floats: running max, running sum of exp, the target's logit) carries across blocks. The
  // last block (v0 + cols == V) writes loss (N) per row and -> returns their mean; others return 0.
  virtual float crossentropy_block(float* state, float* loss, const float* logits,
                                   const int32_t* targets, int64_t N, int64_t cols, int64_t v0,
                                   int64_t V) = 0;
  virtual void token_losses(float* loss, const float* logits, const float* lse,
                            const int32_t* targets, int64_t N, int64_t V) = 0;

  // ---- position kernels (src/position decides which run) -------------------------------------
  // x (B,T,C) += wpe[pos0 + t] (learned); dwpe += the sum over b.
  virtual void posemb_forward(float* x, const float* wpe, int64_t B, int64_t T, int64_t C,
                              int64_t pos0) = 0;
  virtual void posemb_backward(float* dwpe, const float* dx, int64_t B, int64_t T, int64_t C,
                               int64_t pos0) = 0;
  // x (B,T,C) += PE(pos0 + t), the fixed sinusoids.
  virtual void sinusoidal_add(float* x, int B, int T, int C, int64_t pos0) = 0;
  // x (B,NH,T,HS) rotated (and scaled) in place as r says; with r.backward, dx of the same op.
  virtual void rotary(float* x, int B, int NH, int T, int HS, const Rotation& r) = 0;

  // ---- attention (kernels/attention.h: the maths, ScoreBias, AttnShape) ----------------------
  // The scratch one call of shape s needs, planned once by the caller (data left null).
  virtual AttnWorkspace plan_attention(const AttnShape& s) const = 0;

  // ---- KV cache: one block of `rows` x HS floats per (layer, head) ---------------------------
  // x (NH,T,HS) -> rows [row0, row0 + T) of the NH blocks from `cache` on.
  virtual void kv_append(float* cache, int64_t rows, int64_t row0, const float* x, int NH, int T,
                         int HS) = 0;
  // Rows [start, start + len) of each of `blocks` source blocks of src_rows rows -> rows
  // [0, len) of the destination blocks of dst_rows rows; dst may be src (compaction).
  virtual void kv_move(float* dst, int64_t dst_rows, const float* src, int64_t src_rows,
                       int64_t start, int64_t len, int64_t blocks, int HS) = 0;
  // The same for an f16 cache (KvType::f16): kv_append rounds x to binary16, nearest even.
  virtual void kv_append(uint16_t* cache, int64_t rows, int64_t row0, const float* x, int NH, int T,
                         int HS) = 0;
  virtual void kv_move(uint16_t* dst, int64_t dst_rows, const uint16_t* src, int64_t src_rows,
                       int64_t start, int64_t len, int64_t blocks, int HS) = 0;
  // Rows [0, len) of each of `blocks` blocks of `rows` rows: columns i and i + HS/2 times
  // exp(delta * decay[i]), decay (HS/2) in the backend's memory (xpos keys re-anchored).
  virtual void kv_rescale(float* cache, int64_t rows, int64_t len, int64_t blocks, int HS,
                          const double* decay, int64_t delta) = 0;

  // ---- optimizer -----------------------------------------------------------------------------
  virtual void adamw_update(float* p, const float* g, float* m, float* v, int64_t n,
                            const AdamWUpdate& u) = 0;
  // start + x[0]^2 + x[1]^2 + ... in double, left to right (a fixed order, so a sum split
  // across processes continues exactly where the previous part ended).
  virtual double sum_squares(const float* x, int64_t n, double start) = 0;
  // acc += x, elementwise (the gradients of micro-batches, summed in a fixed order)
  virtual void accumulate(float* acc, const float* x, int64_t n) = 0;
  virtual void scale(float* x, float s, int64_t n) = 0;

 protected:
  // What run() computes once the shapes are checked: one override per op and device.
  virtual void compute(const LinearForward& op) = 0;
  virtual void compute(const LinearBackward& op) = 0;
  virtual void compute(const LayerNormForward& op) = 0;
  virtual void compute(const LayerNormBackward& op) = 0;
  virtual void compute(const AttentionForward& op) = 0;
  virtual void compute(const AttentionBackward& op) = 0;
  virtual void compute(const AttentionForward* ops, size_t n) {
    for (size_t i = 0; i < n; ++i) compute(ops[i]);
  }
};

// The one dispatch point: a backend for `device` ("cpu", ...) computing in precision p. An
// unknown device, or one this build lacks, is a UsageError naming `flag`, the value and the
// devices this build has; so is a precision the device cannot do.
std::shared_ptr<Backend> make_backend(const std::string& device, MatmulPrecision p,
                                      const std::string& flag = "--device");
std::string device_names();  // "cpu", or "cpu|cuda" in a build with CUDA

// The CPU backend in fp32, shared: the default of Model and ParamSet for tests and tools that do
// not choose (the jobs always make theirs from --device and --dtype).
std::shared_ptr<Backend> default_backend();

}  // namespace alibi
