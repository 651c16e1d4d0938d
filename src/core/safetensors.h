#pragma once
// safetensors (https://github.com/huggingface/safetensors format): 8-byte little-endian header
// length N, N bytes of JSON {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__":
// {string: string}}, then the data. Readable by Python's `safetensors` package, except for the
// dtypes it does not know: alibi's quantized checkpoints store GGUF's block formats ("Q4_K", ...;
// core/ggml_types.h) under their GGUF names, a (rows, cols) shape holding rows x cols / block
// blocks (docs/gguf.md).
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace alibi {

struct StTensor {
  std::string dtype;  // "F32", "I32", "U8", ...
  std::vector<int64_t> shape;
  // The bytes: a view into the file's read-only mapping (read()), or owned (add()), or made
  // only when written (add_lazy(): fill, view_bytes of them; bytes() is null).
  const uint8_t* view = nullptr;
  size_t view_bytes = 0;
  std::vector<uint8_t> owned;
  std::function<void(uint8_t* dst)> fill;
  const uint8_t* bytes() const { return view ? view : fill ? nullptr : owned.data(); }
  size_t nbytes() const { return view || fill ? view_bytes : owned.size(); }
  bool same_bytes(const StTensor& o) const;
  int64_t numel() const;
  const float* f32() const;      // throws unless dtype F32
  const int32_t* i32() const;    // throws unless dtype I32
};

struct Safetensors {
  std::map<std::string, std::string> metadata;
  std::map<std::string, StTensor> tensors;

  // Maps PATH read-only: nothing is copied, and a tensor's pages are read from the file when
  // first touched (a checkpoint's AdamW moments never are by eval). Throws UsageError naming
  // `path` if it is missing, truncated or not safetensors.
  static Safetensors read(const std::string& path);
  // Lets the pages of a read() tensor go from this process's memory once it has been copied
  // where it is used (they are read from the file again if touched). No-op for owned tensors.
  void release(const StTensor& t) const;
  // Writes PATH through write_file_atomic (core/io.h): a crash leaves either the old file or the
  // new one, never half of one.
  void write_atomic(const std::string& path) const;

  void add(const std::string& name, const std::string& dtype, std::vector<int64_t> shape,
           const void* src, size_t bytes);
  void add_f32(const std::string& name, std::vector<int64_t> shape, const float* src);
  // Adds a tensor without copying: SRC must stay alive and unchanged until this is written.
  void add_view(const std::string& name, const std::string& dtype, std::vector<int64_t> shape,
                const void* src, size_t bytes);
  // Adds a tensor of BYTES bytes that FILL writes into a buffer when the file is written: the
  // writer holds one such tensor at a time (alibi import streams a model this way).
  void add_lazy(const std::string& name, const std::string& dtype, std::vector<int64_t> shape,
                size_t bytes, std::function<void(uint8_t* dst)> fill);
  // Keeps OWNER alive as long as this or any copy of it: what add_view()s point into (a GGUF
  // file's mapping, model/gguf_import.h).
  void hold(std::shared_ptr<const void> owner) { owner_ = std::move(owner); }
  const StTensor& at(const std::string& name) const;  // throws UsageError if absent
  bool has(const std::string& name) const { return tensors.count(name) != 0; }

 private:
  struct Mapping;
  std::shared_ptr<const Mapping> mapping_;  // read(): the file, unmapped with the last copy
  std::shared_ptr<const void> owner_;       // hold()
};

}  // namespace alibi
