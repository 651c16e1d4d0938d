#pragma once
// Operand precision of the matrix products. fp32: every product in fp32. bf16: the operands of
// every product (the dense layers' gemm and the fused attention's tile products) are rounded to
// bfloat16 (8-bit mantissa) and multiplied with fp32 accumulation; master weights, biases, the
// softmax statistics, LayerNorm and the optimizer stay fp32. A backend computes in one
// precision, chosen when it is made (kernels/backend.h).
#include <string>

namespace alibi {

enum class MatmulPrecision { fp32, bf16 };

// "fp32" or "bf16"; anything else is a UsageError naming `flag`.
MatmulPrecision parse_precision(const std::string& name, const std::string& flag = "--dtype");
const char* precision_name(MatmulPrecision p);

// Whether this CPU has the AVX512-BF16 instructions the CPU backend's bf16 needs.
bool cpu_has_bf16();

}  // namespace alibi
