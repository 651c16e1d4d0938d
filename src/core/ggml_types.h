#pragma once
// The tensor types of GGUF files (ggml's type ids): the plain floats and the block formats, each
// `block` elements in `bytes` bytes (docs/gguf.md). alibi computes on the types of `supported()`;
// the others are known by name only, so that a file holding one is refused naming it.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace alibi {

struct GgmlType {
  uint32_t id;       // ggml's enum value, as GGUF stores it
  const char* name;  // "Q4_K": GGUF's and llama.cpp's spelling, and our checkpoints' dtype
  int64_t block;     // elements per block (1 for the plain floats)
  int64_t bytes;     // bytes per block
};

// The types alibi reads and computes on: F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K,
// Q5_K, Q6_K.
const std::vector<GgmlType>& supported_ggml_types();
// A supported type by id or by name; nullptr for any other.
const GgmlType* ggml_type(uint32_t id);
const GgmlType* ggml_type(std::string_view name);
// ggml's name of any type id it defines ("IQ2_XXS"), or "" for an id it does not.
const char* ggml_type_name(uint32_t id);
// "F32, F16, ...": the supported names, for messages.
std::string supported_ggml_names();
// Bytes of a row of n elements of type t, or -1 where n is not a multiple of its block or the
// bytes would pass 2^63.
int64_t ggml_row_bytes(const GgmlType& t, int64_t n);

}  // namespace alibi
