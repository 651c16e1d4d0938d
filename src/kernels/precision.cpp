#include "kernels/precision.h"

#include "core/error.h"

namespace alibi {

MatmulPrecision parse_precision(const std::string& name, const std::string& flag) {
  if (name == "fp32") return MatmulPrecision::fp32;
  if (name == "bf16") return MatmulPrecision::bf16;
  if (name == "int8") return MatmulPrecision::int8;
  usage_error(flag, " '", name, "' is not one of fp32, bf16, int8");
}

const char* precision_name(MatmulPrecision p) {
  return p == MatmulPrecision::bf16 ? "bf16" : p == MatmulPrecision::int8 ? "int8" : "fp32";
}

KvType parse_kv_type(const std::string& name, const std::string& flag) {
  if (name == "f32") return KvType::f32;
  if (name == "f16") return KvType::f16;
  usage_error(flag, " '", name, "' is not one of f32, f16");
}

const char* kv_type_name(KvType t) { return t == KvType::f16 ? "f16" : "f32"; }

bool cpu_has_bf16() {
  static const bool has = __builtin_cpu_supports("avx512bf16");
  return has;
}

bool cpu_has_vnni() {
#if defined(__AVX512VNNI__) && defined(__AVX512BW__) && defined(__AVX512VL__)
  static const bool has = __builtin_cpu_supports("avx512vnni");
  return has;
#else
  return false;
#endif
}

}  // namespace alibi
