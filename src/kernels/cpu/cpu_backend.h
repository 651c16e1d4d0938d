#pragma once
// The CPU backend: host memory, OpenMP, oneDNN (kernels/cpu/*.cpp).
#include <memory>

#include "kernels/backend.h"

namespace alibi::cpu {

// bf16 needs AVX512-BF16: asking for it on a CPU without is a UsageError naming --dtype.
std::shared_ptr<Backend> make_cpu_backend(MatmulPrecision p);

}  // namespace alibi::cpu
