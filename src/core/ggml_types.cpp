#include "core/ggml_types.h"

#include <cstdint>

namespace alibi {

const std::vector<GgmlType>& supported_ggml_types() {
  // Block layouts (little-endian; d, m: f16 scales):
  //   Q8_0 {d, int8 q[32]}           Q4_0 {d, q[16]: 32 nibbles}   Q4_1 {d, m, q[16]}
  //   Q5_0 {d, qh[4], q[16]}         Q5_1 {d, m, qh[4], q[16]}
  //   Q4_K {d, dmin, scales[12], q[128]}  Q5_K {d, dmin, scales[12], qh[32], q[128]}
  //   Q6_K {ql[128], qh[64], int8 scales[16], d}
  static const std::vector<GgmlType> kTypes = {
      {0, "F32", 1, 4},     {1, "F16", 1, 2},     {30, "BF16", 1, 2},   {8, "Q8_0", 32, 34},
      {2, "Q4_0", 32, 18},  {3, "Q4_1", 32, 20},  {6, "Q5_0", 32, 22},  {7, "Q5_1", 32, 24},
      {12, "Q4_K", 256, 144}, {13, "Q5_K", 256, 176}, {14, "Q6_K", 256, 210}};
  return kTypes;
}

const GgmlType* ggml_type(uint32_t id) {
  for (const GgmlType& t : supported_ggml_types())
    if (t.id == id) return &t;
  return nullptr;
}

const GgmlType* ggml_type(std::string_view name) {
  for (const GgmlType& t : supported_ggml_types())
    if (name == t.name) return &t;
  return nullptr;
}

const char* ggml_type_name(uint32_t id) {
  // ggml.h's enum ggml_type; 4, 5 (Q4_2, Q4_3) and 31-33 were removed from it.
  static const char* const kNames[] = {
      "F32",     "F16",    "Q4_0",  "Q4_1",   "",      "",      "Q5_0",   "Q5_1",   "Q8_0",
      "Q8_1",    "Q2_K",   "Q3_K",  "Q4_K",   "Q5_K",  "Q6_K",  "Q8_K",   "IQ2_XXS", "IQ2_XS",
      "IQ3_XXS", "IQ1_S",  "IQ4_NL", "IQ3_S", "IQ2_S", "IQ4_XS", "I8",    "I16",    "I32",
      "I64",     "F64",    "IQ1_M", "BF16",   "",      "",      "",       "TQ1_0",  "TQ2_0",
      "",        "",       "",      "MXFP4"};
  return id < sizeof(kNames) / sizeof(kNames[0]) ? kNames[id] : "";
}

std::string supported_ggml_names() {
  std::string s;
  for (const GgmlType& t : supported_ggml_types()) s += std::string(s.empty() ? "" : ", ") + t.name;
  return s;
}

int64_t ggml_row_bytes(const GgmlType& t, int64_t n) {
  if (n < 0 || n % t.block != 0 || n / t.block > INT64_MAX / t.bytes) return -1;
  return n / t.block * t.bytes;
}

}  // namespace alibi
