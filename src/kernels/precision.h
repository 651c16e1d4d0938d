#pragma once
// Operand precision of the matrix products. fp32: every product in fp32. bf16: the operands of
// every product (the dense layers' gemm and the fused attention's tile products) are rounded to
// bfloat16 (8-bit mantissa) and multiplied with fp32 accumulation; master weights, biases, the
// softmax statistics, LayerNorm and the optimizer stay fp32. A backend computes in one
// precision, chosen when it is made (kernels/backend.h). int8 (inference, CPU with AVX512-VNNI):
// the products of block-quantized weights (GGUF's Q8_0, Q4_0, Q4_K, Q6_K) with a few rows
// (decoding) round the activations to 8 bits per block of 32 and multiply in integers, as
// llama.cpp does (kernels/cpu/quant_int8_cpu.cpp, docs/gguf.md); everything else as fp32.
#include <string>

namespace alibi {

enum class MatmulPrecision { fp32, bf16, int8 };

// "fp32", "bf16" or "int8"; anything else is a UsageError naming `flag`.
MatmulPrecision parse_precision(const std::string& name, const std::string& flag = "--dtype");
const char* precision_name(MatmulPrecision p);

// How a KV cache holds its keys and values (generate and serve --kv-cache). f32: as computed.
// f16 (the CPU): rounded to IEEE binary16 as they are appended and widened back to fp32, exactly,
// as the attention reads them, so the scores and the P V products run in fp32 on the rounded
// values; half the bytes per cached token.
enum class KvType { f32, f16 };

// "f32" or "f16"; anything else is a UsageError naming `flag`.
KvType parse_kv_type(const std::string& name, const std::string& flag = "--kv-cache");
const char* kv_type_name(KvType t);

// Whether this CPU has the AVX512-BF16 instructions the CPU backend's bf16 needs.
bool cpu_has_bf16();
// Whether this CPU has the AVX512-VNNI instructions the CPU backend's int8 needs (and this build
// was compiled for them).
bool cpu_has_vnni();

}  // namespace alibi
