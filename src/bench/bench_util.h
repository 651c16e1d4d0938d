#pragma once
// Pieces shared by the benchmarks (`alibi bench`, bench/): the benchmark models, the machine's
// matmul rate, and the timing of training and inference steps.
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "core/memory_plan.h"
#include "kernels/backend.h"
#include "model/config.h"

namespace alibi {

// The two benchmark models of docs/benchmarks.md:
//   tiny:  V 256 (bytes), C 256, L 4, NH 8, F 1024 (3.2M parameters)
//   small: V 8192 (BPE),  C 512, L 8, NH 8, F 2048 (29.4M parameters)
// Throws UsageError naming `flag` for any other name.
ModelConfig bench_config(const std::string& name, const std::string& flag);

// Seconds of fn's fastest call, calling it until min_seconds have passed (at least once).
double best_call_seconds(const std::function<void()>& fn, double min_seconds);

// GFLOP/s of the best of five 2048^3 products through the backend's gemm, in its precision, on
// the current thread count (for bf16 it includes rounding both operands, as training does).
double gemm_gflops(Backend& backend);

// Median seconds of `steps` training steps (forward, backward, clipping, AdamW) or, when
// !train, inference forwards, after one warm-up step, on random tokens drawn with token_seed,
// of a model built on `backend` (init_weights(1)).
double median_step_seconds(const ModelConfig& c, int B, int T, int steps, bool train,
                           uint64_t token_seed, const std::shared_ptr<Backend>& backend);
// The memory median_step_seconds holds besides what the process holds now (core/memory_plan.h):
// the weights, and for training their gradients and AdamW moments; the activations; the tokens.
MemoryPlan step_memory(const ModelConfig& c, int B, int T, bool train, const Backend& backend);

}  // namespace alibi
