#pragma once
// Quantisation of one 256-element super-block into Q4_K, Q5_K or Q6_K (kernels/quant_k.cpp):
// byte for byte what ggml's reference quantisers, and so llama-quantize without an importance
// matrix, make. kernels/quant.h's quantize() calls it per block.
#include <cstdint>

#include "kernels/weights.h"

namespace alibi {

// b (the type's block bytes) = x (256) in t, one of q4_k, q5_k, q6_k.
void quantize_k_block(uint8_t* b, const float* x, WeightType t);

}  // namespace alibi
