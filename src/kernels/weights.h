#pragma once
// Weight matrices in the type they are stored in. Training keeps fp32 master weights; inference
// can run on a checkpoint's bf16 or f16 matrices as they are (half the bytes to hold and to read
// per decoded token). A product widens each stored element to fp32 exactly and multiplies and
// accumulates in fp32 (in the backend's precision), so a bf16 matrix gives the results of the fp32
// matrix holding the same values.
#include <cstdint>
#include <string>

namespace alibi {

enum class WeightType { fp32, bf16, f16 };

// A weight matrix (or embedding table) in a backend's memory. From a float pointer: fp32.
struct WeightView {
  const void* data = nullptr;
  WeightType type = WeightType::fp32;
  WeightView() = default;
  WeightView(const float* p) : data(p) {}  // NOLINT(google-explicit-constructor): fp32 is the norm
  WeightView(const void* p, WeightType t) : data(p), type(t) {}
  const float* f32() const { return static_cast<const float*>(data); }
  const uint16_t* half() const { return static_cast<const uint16_t*>(data); }
  // Rows [r0, ...) of a matrix of `cols` columns.
  WeightView rows_from(int64_t r0, int64_t cols) const {
    const size_t bytes = type == WeightType::fp32 ? 4 : 2;
    return {static_cast<const char*>(data) + size_t(r0 * cols) * bytes, type};
  }
};

size_t weight_bytes(WeightType t);  // of one element: 4 or 2
// "fp32", "bf16", "f16"; the safetensors dtypes "F32", "BF16", "F16".
const char* weight_type_name(WeightType t);
const char* weight_dtype(WeightType t);
// A safetensors dtype as a weight type; false for any other dtype.
bool weight_type_of_dtype(const std::string& dtype, WeightType& out);
// "fp32", "bf16" or "f16"; anything else is a UsageError naming `flag`.
WeightType parse_weight_type(const std::string& name, const std::string& flag);

}  // namespace alibi
