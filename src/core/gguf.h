#pragma once
// GGUF v3 files (llama.cpp's model format), read from a read-only mapping. Layout (little-endian):
//   "GGUF", u32 version (3), u64 tensor count, u64 metadata count,
//   metadata: {string key, u32 value type, value}, where a string is {u64 length, bytes} and an
//     array {u32 element type, u64 count, elements};
//   tensor infos: {string name, u32 n_dims, u64 dims[n_dims] (innermost first), u32 ggml type,
//     u64 offset}; then, aligned to general.alignment (default 32), the data, each tensor at its
//     offset (a multiple of the alignment) from the data's start.
// Every length, count, offset and the alignment are checked against the file before use; a file
// that fails is a UsageError of one line naming the file and the field.
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/ggml_types.h"

namespace alibi {

// A metadata value. Integers of every width are widened into `i` (signed) or `u` (unsigned, and
// bool), floats into `f`. An array keeps its element type and count: a string array its strings,
// any other its bytes in the mapping (`raw`, decoded by Gguf::get_ints). Arrays of arrays are
// refused.
struct GgufValue {
  enum Type : uint32_t {
    u8 = 0, i8 = 1, u16 = 2, i16 = 3, u32 = 4, i32 = 5, f32 = 6, boolean = 7, string = 8,
    array = 9, u64 = 10, i64 = 11, f64 = 12
  };
  Type type = u8;
  uint64_t u = 0;
  int64_t i = 0;
  double f = 0;
  std::string s;
  Type elem = u8;       // an array's element type
  uint64_t count = 0;   // an array's elements
  const uint8_t* raw = nullptr;
  std::vector<std::string> strings;
  bool is_integer() const { return is_integer(type); }
  static bool is_integer(Type t);
  // Bytes of one value of a fixed-size type; 0 for string and array.
  static size_t fixed_size(Type t);
  static const char* type_name(Type t);
};

struct GgufTensor {
  std::string name;
  std::vector<int64_t> dims;  // innermost first, as GGUF stores them: a (rows, cols) matrix is
                              // {cols, rows}
  const GgmlType* type = nullptr;
  const uint8_t* data = nullptr;  // in the mapping
  size_t bytes = 0;
  int64_t numel() const;
  // The shape outermost first, as ours are: {rows, cols}.
  std::vector<int64_t> shape() const;
};

class Gguf {
 public:
  // Maps PATH and checks it (see above). A tensor of a type alibi does not compute on is
  // refused naming the tensor and the type.
  static Gguf read(const std::string& path);
  // The same on bytes in memory (the fuzz target and tests); `data` must outlive the result.
  static Gguf parse(const uint8_t* data, size_t size, const std::string& path);

  const std::string& path() const { return path_; }
  uint32_t alignment() const { return alignment_; }
  const std::map<std::string, GgufValue>& metadata() const { return kv_; }
  const std::vector<std::string>& keys() const { return keys_; }  // in the file's order
  const std::vector<GgufTensor>& tensors() const { return tensors_; }
  const GgufTensor* find(const std::string& name) const;
  bool has(const std::string& key) const { return kv_.count(key) != 0; }

  // Typed metadata; a missing key or one of another type is a UsageError naming the file and
  // the key. u32/i32 accept any integer type whose value fits.
  const GgufValue& at(const std::string& key) const;
  std::string get_string(const std::string& key) const;
  int64_t get_int(const std::string& key) const;
  double get_float(const std::string& key) const;  // f32 or f64
  bool get_bool(const std::string& key) const;
  // The elements of a string array / an integer array.
  std::vector<std::string> get_strings(const std::string& key) const;
  std::vector<int64_t> get_ints(const std::string& key) const;
  // One line: "GGUF file 'PATH': field 'KEY' WHY".
  [[noreturn]] void refuse(const std::string& key, const std::string& why) const;

 private:
  struct Mapping;
  std::shared_ptr<const Mapping> mapping_;
  std::string path_;
  uint32_t alignment_ = 32;
  std::map<std::string, GgufValue> kv_;
  std::vector<std::string> keys_;
  std::vector<GgufTensor> tensors_;
};

// Writes a GGUF v3 file laid out as gguf-py's GGUFWriter lays it out (so that a file read and
// written again is the same bytes): the header, the metadata and the tensor infos in the order
// added, zeros up to the alignment, then each tensor's data followed by zeros up to the
// alignment. A tensor's bytes are read from the caller's memory as the file is written.
class GgufWriter {
 public:
  explicit GgufWriter(uint32_t alignment = 32);
  // Any value, e.g. one of a file read (its arrays' elements copied).
  void add(const std::string& key, const GgufValue& v);
  void add_string(const std::string& key, const std::string& v);
  void add_u32(const std::string& key, uint32_t v);
  void add_f32(const std::string& key, float v);
  void add_bool(const std::string& key, bool v);
  void add_strings(const std::string& key, const std::vector<std::string>& v);
  void add_i32s(const std::string& key, const std::vector<int32_t>& v);
  void add_f32s(const std::string& key, const std::vector<float>& v);
  // A tensor of `shape` (outermost first, as ours are) in type t: `data` holds its
  // ggml_row_bytes(t, shape.back()) x rows bytes and must outlive write().
  void add_tensor(const std::string& name, const std::vector<int64_t>& shape, const GgmlType& t,
                  const void* data);
  // The file at PATH, written atomically (core/io.h): on failure nothing is left.
  void write(const std::string& path) const;

 private:
  struct Pending {
    const uint8_t* data;
    size_t bytes;
  };
  uint32_t alignment_;
  uint64_t kv_count_ = 0, tensor_count_ = 0;
  std::vector<uint8_t> kv_, infos_;
  std::vector<Pending> data_;
  uint64_t data_size_ = 0;  // the data section so far, each tensor padded
  std::vector<std::string> names_;
};

}  // namespace alibi
