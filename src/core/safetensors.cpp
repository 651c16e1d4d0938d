#include "core/safetensors.h"

#include <fstream>
#include <nlohmann/json.hpp>
#include <string_view>

#include "core/error.h"
#include "core/io.h"

namespace alibi {
namespace {

size_t dtype_size(const std::string& dtype) {
  if (dtype == "F32" || dtype == "I32" || dtype == "U32") return 4;
  if (dtype == "F64" || dtype == "I64" || dtype == "U64") return 8;
  if (dtype == "F16" || dtype == "BF16" || dtype == "I16" || dtype == "U16") return 2;
  if (dtype == "U8" || dtype == "I8" || dtype == "BOOL") return 1;
  return 0;
}

// Caps the JSON header so a foreign file cannot make us allocate gigabytes.
constexpr uint64_t kMaxHeaderBytes = 100u << 20;

}  // namespace

int64_t StTensor::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

const float* StTensor::f32() const {
  ALIBI_CHECK(dtype == "F32", "tensor has dtype ", dtype);
  return reinterpret_cast<const float*>(data.data());
}

const int32_t* StTensor::i32() const {
  ALIBI_CHECK(dtype == "I32", "tensor has dtype ", dtype);
  return reinterpret_cast<const int32_t*>(data.data());
}

Safetensors Safetensors::read(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) usage_error("checkpoint '", path, "' cannot be opened; expected a .safetensors file");
  f.seekg(0, std::ios::end);
  const uint64_t size = uint64_t(f.tellg());
  f.seekg(0);
  auto bad = [&](const std::string& why) {
    usage_error("checkpoint '", path, "' is not a valid safetensors file (", why, ")");
  };
  if (size < 8) bad(str_cat("only ", size, " bytes"));
  uint64_t hlen = 0;
  f.read(reinterpret_cast<char*>(&hlen), 8);
  if (hlen > kMaxHeaderBytes || 8 + hlen > size) bad(str_cat("header length ", hlen, " of ", size, " bytes"));
  std::string header(hlen, '\0');
  f.read(header.data(), std::streamsize(hlen));
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(header);
  } catch (const std::exception&) {
    bad("header is not JSON");
  }
  if (!j.is_object()) bad("header is not a JSON object");
  Safetensors st;
  const uint64_t data_size = size - 8 - hlen;
  for (auto& [name, v] : j.items()) {
    if (name == "__metadata__") {
      if (!v.is_object()) bad("__metadata__ is not an object");
      for (auto& [k, val] : v.items()) {
        if (!val.is_string()) bad("metadata value of '" + k + "' is not a string");
        st.metadata[k] = val.get<std::string>();
      }
      continue;
    }
    StTensor t;
    try {
      t.dtype = v.at("dtype").get<std::string>();
      t.shape = v.at("shape").get<std::vector<int64_t>>();
      auto off = v.at("data_offsets").get<std::vector<uint64_t>>();
      if (off.size() != 2 || off[0] > off[1] || off[1] > data_size)
        bad(str_cat("tensor '", name, "' lies outside the file: truncated?"));
      const size_t es = dtype_size(t.dtype);
      if (es == 0) bad(str_cat("tensor '", name, "' has unknown dtype ", t.dtype));
      if (uint64_t(t.numel()) * es != off[1] - off[0])
        bad(str_cat("tensor '", name, "' has ", off[1] - off[0], " bytes for its shape"));
      t.data.resize(off[1] - off[0]);
      f.seekg(std::streamoff(8 + hlen + off[0]));
      f.read(reinterpret_cast<char*>(t.data.data()), std::streamsize(t.data.size()));
      if (!f) bad(str_cat("tensor '", name, "' cannot be read: truncated?"));
    } catch (const nlohmann::json::exception&) {
      bad(str_cat("entry '", name, "' is malformed"));
    }
    st.tensors.emplace(name, std::move(t));
  }
  return st;
}

void Safetensors::add(const std::string& name, const std::string& dtype,
                      std::vector<int64_t> shape, const void* src, size_t bytes) {
  StTensor t;
  t.dtype = dtype;
  t.shape = std::move(shape);
  ALIBI_CHECK(uint64_t(t.numel()) * dtype_size(dtype) == bytes, name);
  t.data.assign(static_cast<const uint8_t*>(src), static_cast<const uint8_t*>(src) + bytes);
  tensors[name] = std::move(t);
}

void Safetensors::add_f32(const std::string& name, std::vector<int64_t> shape, const float* src) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  add(name, "F32", std::move(shape), src, size_t(n) * sizeof(float));
}

const StTensor& Safetensors::at(const std::string& name) const {
  auto it = tensors.find(name);
  if (it == tensors.end()) usage_error("safetensors file has no tensor '", name, "'");
  return it->second;
}

void Safetensors::write_atomic(const std::string& path) const {
  nlohmann::json j = nlohmann::json::object();
  if (!metadata.empty()) j["__metadata__"] = metadata;
  uint64_t off = 0;
  for (auto& [name, t] : tensors) {  // std::map: sorted names, as the Python writer does
    j[name] = {{"dtype", t.dtype}, {"shape", t.shape}, {"data_offsets", {off, off + t.data.size()}}};
    off += t.data.size();
  }
  std::string header = j.dump();
  while ((8 + header.size()) % 8 != 0) header.push_back(' ');  // keep the data 8-byte aligned
  const uint64_t hlen = header.size();

  // Header length, header, then each tensor's bytes as they are: no copy of the weights.
  std::vector<std::string_view> parts = {
      std::string_view(reinterpret_cast<const char*>(&hlen), 8), header};
  for (auto& [name, t] : tensors)
    parts.emplace_back(reinterpret_cast<const char*>(t.data.data()), t.data.size());
  write_file_atomic(path, parts);
}

}  // namespace alibi
