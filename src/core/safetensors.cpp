#include "core/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <optional>
#include <nlohmann/json.hpp>
#include <string_view>

#include "core/error.h"
#include "core/ggml_types.h"
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

// The bytes of a tensor of `numel` elements whose rows have `cols`: numel times the element size,
// or for GGUF's block formats (alibi's quantized checkpoints, docs/gguf.md) the blocks' bytes.
// -1 for an unknown dtype or rows that are not whole blocks.
int64_t dtype_bytes(const std::string& dtype, uint64_t numel, int64_t cols) {
  if (const size_t es = dtype_size(dtype)) return int64_t(numel * es);
  const GgmlType* g = ggml_type(dtype);
  if (!g || g->block == 1 || cols <= 0 || cols % g->block) return -1;
  return int64_t(numel / uint64_t(g->block) * uint64_t(g->bytes));
}

// Where a tensor of this dtype may start: its element size, or 2 for a block format (f16 scales).
size_t dtype_align(const std::string& dtype) {
  const size_t es = dtype_size(dtype);
  return es ? es : 2;
}

// Caps the JSON header so a foreign file cannot make us allocate gigabytes.
constexpr uint64_t kMaxHeaderBytes = 100u << 20;

// A JSON array of non-negative integers (shape, data_offsets), or nullopt: get<uint64_t>() would
// convert a float such as 1e30 with undefined behaviour, and a negative size means nothing.
std::optional<std::vector<uint64_t>> sizes_of(const nlohmann::json& a) {
  if (!a.is_array()) return std::nullopt;
  std::vector<uint64_t> out;
  for (const auto& x : a) {
    if (!x.is_number_unsigned() || x.get<uint64_t>() > uint64_t(INT64_MAX)) return std::nullopt;
    out.push_back(x.get<uint64_t>());
  }
  return out;
}

}  // namespace

int64_t StTensor::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

const float* StTensor::f32() const {
  ALIBI_CHECK(dtype == "F32", "tensor has dtype ", dtype);
  return reinterpret_cast<const float*>(bytes());
}

const int32_t* StTensor::i32() const {
  ALIBI_CHECK(dtype == "I32", "tensor has dtype ", dtype);
  return reinterpret_cast<const int32_t*>(bytes());
}

struct Safetensors::Mapping {
  const uint8_t* base = nullptr;
  size_t size = 0;
  ~Mapping() {
    if (base) ::munmap(const_cast<uint8_t*>(base), size);
  }
};

Safetensors Safetensors::read(const std::string& path) {
  auto bad = [&](const std::string& why) {
    usage_error("checkpoint '", path, "' is not a valid safetensors file (", why, ")");
  };
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) usage_error("checkpoint '", path, "' cannot be opened; expected a .safetensors file");
  struct stat sb {};
  if (::fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
    ::close(fd);
    usage_error("checkpoint '", path, "' is not a regular file; expected a .safetensors file");
  }
  const uint64_t size = uint64_t(sb.st_size);
  if (size < 8) {
    ::close(fd);
    bad(str_cat("only ", size, " bytes"));
  }
  void* p = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (p == MAP_FAILED) usage_error("checkpoint '", path, "' cannot be mapped into memory");
  Safetensors st;
  auto mapping = std::make_shared<Mapping>();
  mapping->base = static_cast<const uint8_t*>(p);
  mapping->size = size;
  st.mapping_ = mapping;
  uint64_t hlen = 0;
  std::memcpy(&hlen, mapping->base, 8);
  if (hlen > kMaxHeaderBytes || 8 + hlen > size)
    bad(str_cat("header length ", hlen, " of ", size, " bytes"));
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(
        std::string_view(reinterpret_cast<const char*>(mapping->base) + 8, hlen));
  } catch (const std::exception&) {
    bad("header is not JSON");
  }
  if (!j.is_object()) bad("header is not a JSON object");
  const uint64_t data_size = size - 8 - hlen;
  const uint8_t* data = mapping->base + 8 + hlen;
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
      const auto dims = sizes_of(v.at("shape"));
      const auto off = sizes_of(v.at("data_offsets"));
      if (!dims || !off)
        bad(str_cat("tensor '", name, "' has shape ", v.at("shape").dump(), " and data_offsets ",
                    v.at("data_offsets").dump(), "; expected arrays of non-negative integers"));
      if (off->size() != 2 || (*off)[0] > (*off)[1] || (*off)[1] > data_size)
        bad(str_cat("tensor '", name, "' lies outside the file: truncated?"));
      // Saturates above data_size (no such tensor fits), so the product cannot overflow.
      uint64_t numel = 1;
      for (uint64_t d : *dims) numel = d == 0 || numel <= data_size / d ? numel * d : data_size + 1;
      t.shape.assign(dims->begin(), dims->end());
      const int64_t bytes = dtype_bytes(t.dtype, numel, t.shape.empty() ? 1 : t.shape.back());
      if (bytes < 0) bad(str_cat("tensor '", name, "' has unknown dtype ", t.dtype, " for its shape"));
      if (uint64_t(bytes) != (*off)[1] - (*off)[0])
        bad(str_cat("tensor '", name, "' has ", (*off)[1] - (*off)[0], " bytes for its shape"));
      t.view = data + (*off)[0];
      t.view_bytes = (*off)[1] - (*off)[0];
    } catch (const nlohmann::json::exception&) {
      bad(str_cat("entry '", name, "' is malformed"));
    }
    st.tensors.emplace(name, std::move(t));
  }
  return st;
}

void Safetensors::release(const StTensor& t) const {
  if (!t.view || !mapping_) return;
  // Whole pages inside the tensor only: a neighbour's pages stay.
  const uintptr_t page = uintptr_t(::sysconf(_SC_PAGESIZE));
  const uintptr_t a = (uintptr_t(t.view) + page - 1) / page * page;
  const uintptr_t b = (uintptr_t(t.view) + t.view_bytes) / page * page;
  if (b > a) ::madvise(reinterpret_cast<void*>(a), b - a, MADV_DONTNEED);
}

bool StTensor::same_bytes(const StTensor& o) const {
  return nbytes() == o.nbytes() && std::memcmp(bytes(), o.bytes(), nbytes()) == 0;
}

void Safetensors::add(const std::string& name, const std::string& dtype,
                      std::vector<int64_t> shape, const void* src, size_t bytes) {
  add_view(name, dtype, std::move(shape), src, bytes);
  StTensor& t = tensors[name];
  t.owned.assign(t.view, t.view + bytes);
  t.view = nullptr;
  t.view_bytes = 0;
}

void Safetensors::add_view(const std::string& name, const std::string& dtype,
                           std::vector<int64_t> shape, const void* src, size_t bytes) {
  StTensor t;
  t.dtype = dtype;
  t.shape = std::move(shape);
  ALIBI_CHECK(dtype_bytes(dtype, uint64_t(t.numel()), t.shape.empty() ? 1 : t.shape.back()) ==
                  int64_t(bytes),
              name);
  t.view = static_cast<const uint8_t*>(src);
  t.view_bytes = bytes;
  tensors[name] = std::move(t);
}

void Safetensors::add_lazy(const std::string& name, const std::string& dtype,
                           std::vector<int64_t> shape, size_t bytes,
                           std::function<void(uint8_t* dst)> fill) {
  StTensor t;
  t.dtype = dtype;
  t.shape = std::move(shape);
  ALIBI_CHECK(dtype_bytes(dtype, uint64_t(t.numel()), t.shape.empty() ? 1 : t.shape.back()) ==
                  int64_t(bytes),
              name);
  t.view_bytes = bytes;
  t.fill = std::move(fill);
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
  // Tensors laid out by element size, largest first, then by name (as the Python writer does):
  // every tensor then starts aligned to its element, so readers can use it in place.
  std::vector<const std::pair<const std::string, StTensor>*> order;
  for (const auto& e : tensors) order.push_back(&e);
  std::stable_sort(order.begin(), order.end(), [&](const auto* a, const auto* b) {
    return dtype_align(a->second.dtype) > dtype_align(b->second.dtype);
  });
  nlohmann::json j = nlohmann::json::object();
  if (!metadata.empty()) j["__metadata__"] = metadata;
  uint64_t off = 0;
  for (const auto* e : order) {
    const StTensor& t = e->second;
    j[e->first] = {
        {"dtype", t.dtype}, {"shape", t.shape}, {"data_offsets", {off, off + t.nbytes()}}};
    off += t.nbytes();
  }
  std::string header = j.dump();
  while ((8 + header.size()) % 8 != 0) header.push_back(' ');  // keep the data 8-byte aligned
  const uint64_t hlen = header.size();

  // Header length, header, then each tensor's bytes as they are (no copy of the weights), a lazy
  // tensor's made in one buffer that the largest of them fits.
  size_t lazy_bytes = 0;
  for (const auto* e : order)
    if (e->second.fill) lazy_bytes = std::max(lazy_bytes, e->second.nbytes());
  std::vector<uint8_t> buf(lazy_bytes);
  auto part = [&](size_t i) -> std::string_view {
    if (i == 0) return {reinterpret_cast<const char*>(&hlen), 8};
    if (i == 1) return header;
    const StTensor& t = order[i - 2]->second;
    if (!t.fill) return {reinterpret_cast<const char*>(t.bytes()), t.nbytes()};
    t.fill(buf.data());
    return {reinterpret_cast<const char*>(buf.data()), t.nbytes()};
  };
  write_file_atomic(path, order.size() + 2, 8 + header.size() + off, part);
}

}  // namespace alibi
