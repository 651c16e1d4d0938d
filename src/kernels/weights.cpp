#include "kernels/weights.h"

#include "core/error.h"

namespace alibi {

size_t weight_bytes(WeightType t) { return t == WeightType::fp32 ? 4 : 2; }

const char* weight_type_name(WeightType t) {
  return t == WeightType::bf16 ? "bf16" : t == WeightType::f16 ? "f16" : "fp32";
}

const char* weight_dtype(WeightType t) {
  return t == WeightType::bf16 ? "BF16" : t == WeightType::f16 ? "F16" : "F32";
}

bool weight_type_of_dtype(const std::string& dtype, WeightType& out) {
  for (WeightType t : {WeightType::fp32, WeightType::bf16, WeightType::f16})
    if (dtype == weight_dtype(t)) {
      out = t;
      return true;
    }
  return false;
}

WeightType parse_weight_type(const std::string& name, const std::string& flag) {
  for (WeightType t : {WeightType::fp32, WeightType::bf16, WeightType::f16})
    if (name == weight_type_name(t)) return t;
  usage_error(flag, " '", name, "' is not one of fp32, bf16, f16");
}

}  // namespace alibi
