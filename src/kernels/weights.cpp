#include "kernels/weights.h"

#include "core/error.h"

namespace alibi {
namespace {

constexpr const char* kNames[kWeightTypes] = {"fp32", "bf16", "f16",  "q8_0", "q4_0", "q4_1",
                                              "q5_0", "q5_1", "q4_k", "q5_k", "q6_k"};
constexpr const char* kDtypes[kWeightTypes] = {"F32",  "BF16", "F16",  "Q8_0", "Q4_0", "Q4_1",
                                               "Q5_0", "Q5_1", "Q4_K", "Q5_K", "Q6_K"};

}  // namespace

WeightView WeightView::rows_from(int64_t r0, int64_t cols) const {
  ALIBI_CHECK(!packed, "rows of a packed matrix");
  return {bytes() + size_t(r0) * weight_row_bytes(type, cols), type};
}

bool is_quantized(WeightType t) { return int(t) >= int(WeightType::q8_0); }

const GgmlType& ggml_of(WeightType t) {
  const GgmlType* g = ggml_type(std::string(kDtypes[int(t)]));
  ALIBI_CHECK(g != nullptr, kDtypes[int(t)]);
  return *g;
}

size_t weight_row_bytes(WeightType t, int64_t cols) {
  const int64_t b = ggml_row_bytes(ggml_of(t), cols);
  ALIBI_CHECK(b >= 0, weight_type_name(t), " row of ", cols);
  return size_t(b);
}

size_t weight_align(WeightType t) { return t == WeightType::fp32 ? 4 : 2; }

const char* weight_type_name(WeightType t) { return kNames[int(t)]; }

std::string weight_type_names(const std::string& sep) {
  std::string all;
  for (const char* n : kNames) all += (all.empty() ? "" : sep) + n;
  return all;
}

const char* weight_dtype(WeightType t) { return kDtypes[int(t)]; }

bool weight_type_of_dtype(const std::string& dtype, WeightType& out) {
  for (int i = 0; i < kWeightTypes; ++i)
    if (dtype == kDtypes[i]) {
      out = WeightType(i);
      return true;
    }
  return false;
}

WeightType parse_weight_type(const std::string& name, const std::string& flag,
                             const std::string& allowed) {
  const std::string list = allowed.empty() ? weight_type_names("|") : allowed;
  for (int i = 0; i < kWeightTypes; ++i)
    if (name == kNames[i] && ("|" + list + "|").find("|" + name + "|") != std::string::npos)
      return WeightType(i);
  usage_error(flag, " '", name, "' is not one of ", list);
}

}  // namespace alibi
