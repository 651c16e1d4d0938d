#pragma once
// GGUF's block formats element by element (core/ggml_types.h has their layouts): dequantisation
// of every type alibi reads, bit for bit as gguf-py's reference (gguf/quants.py) computes it in
// float32, and quantisation into every one of them, byte for byte as gguf-py's quantize_blocks
// and ggml's *_ref functions make them (the K types: kernels/quant_k.h). These are the
// definitions; the CPU kernels (kernels/cpu/quant_cpu.cpp) compute the same values vectorised and
// are tested against them.
//
// Dequantisation, per element (d, m, dmin: the block's f16 scales widened; q: its integer):
//   Q8_0 q d;  Q4_0 d (q - 8);  Q5_0 d (q - 16);  Q4_1, Q5_1 (d q) + m;
//   Q4_K, Q5_K (d sc) q - (dmin mn), sc and mn the 6-bit scale and min of its 32-element
//   sub-block;  Q6_K (d sc) (q - 32), sc the int8 scale of its 16 elements.
// Each product and difference is one fp32 operation, rounded, in that order (never fused: this
// file is compiled with -ffp-contract=off).
#include <cstddef>
#include <cstdint>

#include "kernels/weights.h"

namespace alibi {

// dst (n) = the n elements stored at src in type t (n a multiple of its block).
void dequantize(float* dst, const void* src, WeightType t, int64_t n);
// dst (weight_row_bytes(t, n)) = x (n) in type t, n a multiple of its block.
void quantize(void* dst, const float* x, WeightType t, int64_t n);

}  // namespace alibi
