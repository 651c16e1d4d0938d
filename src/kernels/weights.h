#pragma once
// Weight matrices in the type they are stored in. Training keeps fp32 master weights; inference
// can run on a checkpoint's bf16 or f16 matrices as they are (half the bytes to hold and to read
// per decoded token), or on GGUF's block-quantized formats (docs/gguf.md). A product widens each
// stored element to fp32 exactly (a quantized one: its block's scale times its integer, as GGUF's
// reference dequantisation computes it, kernels/quant.h) and multiplies and accumulates in fp32
// (in the backend's precision), so it gives the results of the fp32 matrix holding the same values.
#include <cstdint>
#include <string>

#include "core/ggml_types.h"

namespace alibi {

// The order of ggml_types.cpp's supported types after the three plain ones.
enum class WeightType { fp32, bf16, f16, q8_0, q4_0, q4_1, q5_0, q5_1, q4_k, q5_k, q6_k };
constexpr int kWeightTypes = 11;

// A weight matrix (or embedding table) in a backend's memory. From a float pointer: fp32.
struct WeightView {
  const void* data = nullptr;
  WeightType type = WeightType::fp32;
  WeightView() = default;
  WeightView(const float* p) : data(p) {}  // NOLINT(google-explicit-constructor): fp32 is the norm
  WeightView(const void* p, WeightType t) : data(p), type(t) {}
  // fp32 or bf16 in the layout Backend::pack_weight wrote: only a linear layer's product reads
  // it.
  bool packed = false;
  static WeightView packed_as(const void* p, WeightType t) {
    WeightView w(p, t);
    w.packed = true;
    return w;
  }
  const float* f32() const { return static_cast<const float*>(data); }
  const uint16_t* half() const { return static_cast<const uint16_t*>(data); }
  const uint8_t* bytes() const { return static_cast<const uint8_t*>(data); }
  // Rows [r0, ...) of a matrix of `cols` columns.
  WeightView rows_from(int64_t r0, int64_t cols) const;
};

bool is_quantized(WeightType t);  // a block format (not fp32, bf16, f16)
const GgmlType& ggml_of(WeightType t);
// Bytes of a row of `cols` elements (cols a multiple of the type's block).
size_t weight_row_bytes(WeightType t, int64_t cols);
// The alignment a stored matrix needs to be used in place: its element, or 2 for the block
// formats (their f16 scales).
size_t weight_align(WeightType t);
// "fp32", "bf16", "f16", "q8_0", ...; the checkpoint dtypes "F32", "BF16", "F16", "Q8_0", ...
const char* weight_type_name(WeightType t);
// Every weight_type_name(), in order, joined by sep: "fp32 | bf16 | ... | q6_k".
std::string weight_type_names(const std::string& sep = " | ");
const char* weight_dtype(WeightType t);
// A checkpoint (or GGUF) dtype as a weight type; false for any other dtype.
bool weight_type_of_dtype(const std::string& dtype, WeightType& out);
// One of weight_type_name()'s names; anything else is a UsageError naming `flag` and `allowed`
// (a "|"-list of the names the caller takes, all by default).
WeightType parse_weight_type(const std::string& name, const std::string& flag,
                             const std::string& allowed = "");

}  // namespace alibi
