#pragma once
// A GGUF v3 writer for tests (core/gguf.h reads it): metadata and tensors laid out as llama.cpp
// writes them, with every field reachable so that a test can break one.
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace alibi::test {

struct GgufBuilder {
  struct Tensor {
    std::string name;
    std::vector<uint64_t> dims;  // innermost first
    uint32_t type;
    std::vector<uint8_t> data;
    int64_t offset = -1;  // -1: the next aligned place
  };
  uint32_t magic = 0x46554747u, version = 3, alignment = 32;
  std::vector<uint8_t> kv;  // encoded key/values
  uint64_t kv_count = 0;
  std::vector<Tensor> tensors;

  template <class T>
  static void put(std::vector<uint8_t>& b, T v) {
    const size_t at = b.size();
    b.resize(at + sizeof(T));
    std::memcpy(b.data() + at, &v, sizeof(T));
  }
  static void put_str(std::vector<uint8_t>& b, const std::string& s) {
    put<uint64_t>(b, s.size());
    b.insert(b.end(), s.begin(), s.end());
  }
  void key(const std::string& k, uint32_t type) {
    put_str(kv, k);
    put<uint32_t>(kv, type);
    ++kv_count;
  }
  void str(const std::string& k, const std::string& v) { key(k, 8); put_str(kv, v); }
  void u32(const std::string& k, uint32_t v) { key(k, 4); put<uint32_t>(kv, v); }
  void f32(const std::string& k, float v) { key(k, 6); put<float>(kv, v); }
  void strs(const std::string& k, const std::vector<std::string>& v) {
    key(k, 9);
    put<uint32_t>(kv, 8);
    put<uint64_t>(kv, v.size());
    for (const auto& s : v) put_str(kv, s);
  }
  void i32s(const std::string& k, const std::vector<int32_t>& v) {
    key(k, 9);
    put<uint32_t>(kv, 5);
    put<uint64_t>(kv, v.size());
    for (int32_t x : v) put<int32_t>(kv, x);
  }
  void tensor(const std::string& name, std::vector<uint64_t> dims, uint32_t type,
              std::vector<uint8_t> data) {
    tensors.push_back({name, std::move(dims), type, std::move(data)});
  }

  std::vector<uint8_t> bytes() const {
    std::vector<uint8_t> b;
    put<uint32_t>(b, magic);
    put<uint32_t>(b, version);
    put<uint64_t>(b, tensors.size());
    put<uint64_t>(b, kv_count);
    b.insert(b.end(), kv.begin(), kv.end());
    std::vector<uint64_t> offs;
    uint64_t off = 0;
    for (const Tensor& t : tensors) {
      put_str(b, t.name);
      put<uint32_t>(b, uint32_t(t.dims.size()));
      for (uint64_t d : t.dims) put<uint64_t>(b, d);
      put<uint32_t>(b, t.type);
      const uint64_t o = t.offset >= 0 ? uint64_t(t.offset) : off;
      put<uint64_t>(b, o);
      offs.push_back(o);
      off = (o + t.data.size() + alignment - 1) / alignment * alignment;
    }
    const size_t start = (b.size() + alignment - 1) / alignment * alignment;
    b.resize(start, 0);
    for (size_t k = 0; k < tensors.size(); ++k) {
      if (b.size() < start + offs[k]) b.resize(start + offs[k], 0);
      const auto& d = tensors[k].data;
      if (b.size() < start + offs[k] + d.size()) b.resize(start + offs[k] + d.size(), 0);
      std::memcpy(b.data() + start + offs[k], d.data(), d.size());
    }
    return b;
  }
};

}  // namespace alibi::test
