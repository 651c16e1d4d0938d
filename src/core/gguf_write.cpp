// GgufWriter (core/gguf.h): GGUF v3 files in gguf-py's layout.
#include <cstring>
#include <string_view>

#include "core/error.h"
#include "core/gguf.h"
#include "core/io.h"

namespace alibi {
namespace {

constexpr uint32_t kMagic = 0x46554747u, kVersion = 3;

template <class T>
void put(std::vector<uint8_t>& b, T v) {
  const size_t at = b.size();
  b.resize(at + sizeof(T));
  std::memcpy(b.data() + at, &v, sizeof(T));
}

void put_string(std::vector<uint8_t>& b, const std::string& s) {
  put<uint64_t>(b, s.size());
  b.insert(b.end(), s.begin(), s.end());
}

uint64_t padded(uint64_t n, uint32_t align) { return (n + align - 1) / align * align; }

}  // namespace

GgufWriter::GgufWriter(uint32_t alignment) : alignment_(alignment) {
  ALIBI_CHECK(alignment > 0 && (alignment & (alignment - 1)) == 0, alignment);
}

void GgufWriter::add(const std::string& key, const GgufValue& v) {
  put_string(kv_, key);
  put<uint32_t>(kv_, v.type);
  ++kv_count_;
  switch (v.type) {
    case GgufValue::string: put_string(kv_, v.s); break;
    case GgufValue::array:
      put<uint32_t>(kv_, v.elem);
      put<uint64_t>(kv_, v.count);
      if (v.elem == GgufValue::string) {
        for (const std::string& s : v.strings) put_string(kv_, s);
      } else {
        kv_.insert(kv_.end(), v.raw, v.raw + v.count * GgufValue::fixed_size(v.elem));
      }
      break;
    case GgufValue::u8: put<uint8_t>(kv_, uint8_t(v.u)); break;
    case GgufValue::i8: put<int8_t>(kv_, int8_t(v.i)); break;
    case GgufValue::u16: put<uint16_t>(kv_, uint16_t(v.u)); break;
    case GgufValue::i16: put<int16_t>(kv_, int16_t(v.i)); break;
    case GgufValue::u32: put<uint32_t>(kv_, uint32_t(v.u)); break;
    case GgufValue::i32: put<int32_t>(kv_, int32_t(v.i)); break;
    case GgufValue::u64: put<uint64_t>(kv_, v.u); break;
    case GgufValue::i64: put<int64_t>(kv_, v.i); break;
    case GgufValue::f32: put<float>(kv_, float(v.f)); break;
    case GgufValue::f64: put<double>(kv_, v.f); break;
    case GgufValue::boolean: put<uint8_t>(kv_, uint8_t(v.u != 0)); break;
  }
}

namespace {

GgufValue scalar(GgufValue::Type t) {
  GgufValue x;
  x.type = t;
  return x;
}

GgufValue array(GgufValue::Type elem, size_t count, const void* raw) {
  GgufValue x = scalar(GgufValue::array);
  x.elem = elem;
  x.count = count;
  x.raw = static_cast<const uint8_t*>(raw);
  return x;
}

}  // namespace

void GgufWriter::add_string(const std::string& key, const std::string& v) {
  GgufValue x = scalar(GgufValue::string);
  x.s = v;
  add(key, x);
}

void GgufWriter::add_u32(const std::string& key, uint32_t v) {
  GgufValue x = scalar(GgufValue::u32);
  x.u = v;
  add(key, x);
}

void GgufWriter::add_f32(const std::string& key, float v) {
  GgufValue x = scalar(GgufValue::f32);
  x.f = v;
  add(key, x);
}

void GgufWriter::add_bool(const std::string& key, bool v) {
  GgufValue x = scalar(GgufValue::boolean);
  x.u = v;
  add(key, x);
}

void GgufWriter::add_strings(const std::string& key, const std::vector<std::string>& v) {
  GgufValue x = array(GgufValue::string, v.size(), nullptr);
  x.strings = v;
  add(key, x);
}

void GgufWriter::add_i32s(const std::string& key, const std::vector<int32_t>& v) {
  add(key, array(GgufValue::i32, v.size(), v.data()));
}

void GgufWriter::add_f32s(const std::string& key, const std::vector<float>& v) {
  add(key, array(GgufValue::f32, v.size(), v.data()));
}

void GgufWriter::add_tensor(const std::string& name, const std::vector<int64_t>& shape,
                            const GgmlType& t, const void* data) {
  ALIBI_CHECK(!shape.empty() && shape.size() <= 4, name);
  for (const std::string& n : names_) ALIBI_CHECK(n != name, "tensor ", name, " added twice");
  int64_t bytes = ggml_row_bytes(t, shape.back());
  ALIBI_CHECK(bytes >= 0, name, ": rows of ", shape.back(), " are not whole ", t.name, " blocks");
  for (size_t d = 0; d + 1 < shape.size(); ++d) bytes *= shape[d];
  put_string(infos_, name);
  put<uint32_t>(infos_, uint32_t(shape.size()));
  for (auto it = shape.rbegin(); it != shape.rend(); ++it) put<uint64_t>(infos_, uint64_t(*it));
  put<uint32_t>(infos_, t.id);
  put<uint64_t>(infos_, data_size_);
  ++tensor_count_;
  names_.push_back(name);
  data_.push_back({static_cast<const uint8_t*>(data), size_t(bytes)});
  data_size_ = padded(data_size_ + uint64_t(bytes), alignment_);
}

void GgufWriter::write(const std::string& path) const {
  std::vector<uint8_t> head;
  put<uint32_t>(head, kMagic);
  put<uint32_t>(head, kVersion);
  put<uint64_t>(head, tensor_count_);
  put<uint64_t>(head, kv_count_);
  head.insert(head.end(), kv_.begin(), kv_.end());
  head.insert(head.end(), infos_.begin(), infos_.end());
  head.resize(padded(head.size(), alignment_), 0);
  const std::vector<uint8_t> zeros(alignment_, 0);
  // Parts: the head, then each tensor's bytes and its padding.
  const size_t n = 1 + 2 * data_.size();
  write_file_atomic(path, n, head.size() + data_size_, [&](size_t i) -> std::string_view {
    if (i == 0) return {reinterpret_cast<const char*>(head.data()), head.size()};
    const Pending& p = data_[(i - 1) / 2];
    if (i % 2 == 1) return {reinterpret_cast<const char*>(p.data), p.bytes};
    return {reinterpret_cast<const char*>(zeros.data()),
            size_t(padded(p.bytes, alignment_) - p.bytes)};
  });
}

}  // namespace alibi
