// The sizes Model's allocations are made with, for the memory plan (core/memory_plan.h,
// docs/memory.md): a checkpoint's weights, the KV cache, a plan's activations as its parts.
#include <cstdint>

#include "core/error.h"
#include "model/model.h"
#include "model/params.h"

namespace alibi {

void add_activations(MemoryPlan& plan, const Model::PlanBytes& b) {
  const bool over = b.total == SIZE_MAX;  // saturated: the whole of it is "activations"
  plan.add("activations", over ? b.total : b.total - b.logits).add("logits", over ? 0 : b.logits);
}

// In place where the backend reads host memory and the data is aligned to its element;
// otherwise copied into one allocation, each matrix on a 64-byte boundary.
bool Model::in_place(const StTensor& st, WeightType wt, const Backend& backend) {
  return backend.host_memory() && reinterpret_cast<uintptr_t>(st.bytes()) % weight_align(wt) == 0;
}

size_t Model::packed_bytes(const TensorInfo& t, WeightType wt, const Backend& backend) {
  if (!t.matrix || wt != WeightType::fp32 || t.name == "wte" || t.name == "lm_head.w") return 0;
  return backend.packed_weight_bytes(t.shape[0], t.shape[1]);
}

Model::MatrixBytes Model::matrix_bytes(const ModelConfig& c, const Safetensors& file,
                                       const Backend& backend) {
  MatrixBytes mb;
  for (const TensorInfo& t : make_param_layout(c).tensors) {
    if (!t.matrix) continue;
    const StTensor& st = file.at(t.name);
    WeightType wt;
    ALIBI_CHECK(weight_type_of_dtype(st.dtype, wt) && size_t(st.numel()) == t.numel, "tensor ",
                t.name);
    if (is_quantized(wt) && std::string(backend.device()) != "cpu")
      usage_error("tensor '", t.name, "' is ", st.dtype, "; the ", backend.device(),
                  " backend computes on fp32, bf16 and f16 matrices only (GGUF's block formats "
                  "run on --device cpu)");
    if (const size_t packed = packed_bytes(t, wt, backend))
      mb.copied += (packed + 63) / 64 * 64;
    else if (in_place(st, wt, backend))
      mb.mapped += st.nbytes();
    else
      mb.copied += (st.nbytes() + 63) / 64 * 64;
  }
  return mb;
}

size_t Model::file_weight_bytes(const ModelConfig& c, const Safetensors& file,
                                const Backend& backend) {
  const MatrixBytes mb = matrix_bytes(c, file, backend);
  const size_t others = make_param_layout(c).without_matrices().total * sizeof(float);
  return mb.mapped + mb.copied + 2 * others;  // the others: the file's pages and params
}

size_t Model::cache_bytes(const ModelConfig& c, int T, int capacity, bool sliding,
                          const Backend& backend, KvType type) {
  const CacheSizes sz = cache_sizes(c, T, capacity, sliding, backend, type);
  const size_t elem = type == KvType::f16 ? sizeof(uint16_t) : sizeof(float);
  return sat_add(sat_mul(sat_mul(2, sz.kv_elems), elem), sat_mul(sz.ws.floats, sizeof(float)));
}

Model::CacheSizes Model::cache_sizes(const ModelConfig& c, int T, int capacity, bool sliding,
                                     const Backend& backend, KvType type) {
  KVCache kv;
  kv.capacity = capacity;
  kv.sliding = sliding;
  AttnShape s{1, c.heads, T, capacity, c.head_size(), kv.rows(), MatmulPrecision::fp32};
  s.kv = type;
  return {sat_mul(uint64_t(c.layers) * uint64_t(c.heads) * uint64_t(c.head_size()),
                  uint64_t(kv.rows())),
          backend.plan_attention(s)};
}

}  // namespace alibi
