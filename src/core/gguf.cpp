#include "core/gguf.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <set>

#include "core/error.h"

namespace alibi {
namespace {

constexpr uint32_t kVersion = 3;
constexpr int kMaxDims = 4;  // GGML_MAX_DIMS

// A little-endian cursor over [p, end): every read checks the bytes it needs are there first.
class Cursor {
 public:
  Cursor(const uint8_t* base, size_t size, const std::string& path)
      : base_(base), size_(size), path_(path) {}
  size_t pos() const { return pos_; }
  size_t left() const { return size_ - pos_; }
  const uint8_t* here() const { return base_ + pos_; }

  [[noreturn]] void fail(const std::string& field, const std::string& why) const {
    usage_error("GGUF file '", path_, "': ", field, " ", why);
  }
  void need(uint64_t n, const std::string& field) const {
    if (n > left())
      fail(field, str_cat("needs ", n, " bytes at offset ", pos_, " but the file has ", left(),
                          " left: truncated?"));
  }
  template <class T>
  T get(const std::string& field) {
    need(sizeof(T), field);
    T v;
    std::memcpy(&v, base_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }
  std::string string(const std::string& field) {
    const uint64_t n = get<uint64_t>(field + " (its length)");
    if (n > left())
      fail(field, str_cat("has length ", n, ", longer than the ", left(), " bytes left in the file"));
    std::string s(reinterpret_cast<const char*>(base_ + pos_), size_t(n));
    pos_ += size_t(n);
    return s;
  }
  void skip(uint64_t n, const std::string& field) {
    need(n, field);
    pos_ += size_t(n);
  }

 private:
  const uint8_t* base_;
  size_t size_;
  size_t pos_ = 0;
  const std::string& path_;
};

void read_scalar(Cursor& c, GgufValue& v, const std::string& field) {
  switch (v.type) {
    case GgufValue::u8: v.u = c.get<uint8_t>(field); break;
    case GgufValue::i8: v.i = c.get<int8_t>(field); break;
    case GgufValue::u16: v.u = c.get<uint16_t>(field); break;
    case GgufValue::i16: v.i = c.get<int16_t>(field); break;
    case GgufValue::u32: v.u = c.get<uint32_t>(field); break;
    case GgufValue::i32: v.i = c.get<int32_t>(field); break;
    case GgufValue::u64: v.u = c.get<uint64_t>(field); break;
    case GgufValue::i64: v.i = c.get<int64_t>(field); break;
    case GgufValue::f32: v.f = c.get<float>(field); break;
    case GgufValue::f64: v.f = c.get<double>(field); break;
    case GgufValue::boolean: {
      const uint8_t b = c.get<uint8_t>(field);
      if (b > 1) c.fail(field, str_cat("is a bool of value ", int(b), "; expected 0 or 1"));
      v.u = b;
      break;
    }
    default: break;
  }
}

GgufValue::Type value_type(Cursor& c, const std::string& field) {
  const uint32_t t = c.get<uint32_t>(field);
  if (t > GgufValue::f64) c.fail(field, str_cat("has value type ", t, "; expected 0 to 12"));
  return GgufValue::Type(t);
}

GgufValue read_value(Cursor& c, const std::string& field) {
  GgufValue v;
  v.type = value_type(c, field + " (its type)");
  if (v.type == GgufValue::string) {
    v.s = c.string(field);
  } else if (v.type == GgufValue::array) {
    v.elem = value_type(c, field + " (its element type)");
    if (v.elem == GgufValue::array) c.fail(field, "is an array of arrays, which alibi does not read");
    v.count = c.get<uint64_t>(field + " (its count)");
    // Every element takes at least its fixed size, and a string at least its 8-byte length.
    const uint64_t min = v.elem == GgufValue::string ? 8 : GgufValue::fixed_size(v.elem);
    if (v.count > c.left() / min)
      c.fail(field, str_cat("has ", v.count, " elements, more than the ", c.left(),
                            " bytes left in the file hold"));
    if (v.elem == GgufValue::string) {
      v.strings.reserve(size_t(v.count));
      for (uint64_t k = 0; k < v.count; ++k)
        v.strings.push_back(c.string(str_cat(field, "[", k, "]")));
    } else {
      v.raw = c.here();
      c.skip(v.count * min, field);
      if (v.elem == GgufValue::boolean)
        for (uint64_t k = 0; k < v.count; ++k)
          if (v.raw[k] > 1) c.fail(str_cat(field, "[", k, "]"), "is a bool other than 0 or 1");
    }
  } else {
    read_scalar(c, v, field);
  }
  return v;
}

}  // namespace

size_t GgufValue::fixed_size(Type t) {
  switch (t) {
    case u8: case i8: case boolean: return 1;
    case u16: case i16: return 2;
    case u32: case i32: case f32: return 4;
    case u64: case i64: case f64: return 8;
    default: return 0;
  }
}

bool GgufValue::is_integer(Type t) {
  return t == u8 || t == i8 || t == u16 || t == i16 || t == u32 || t == i32 || t == u64 ||
         t == i64;
}

const char* GgufValue::type_name(Type t) {
  static const char* const kNames[] = {"u8",  "i8",   "u16",    "i16", "u32", "i32", "f32",
                                       "bool", "string", "array", "u64", "i64", "f64"};
  return t <= f64 ? kNames[t] : "?";
}

int64_t GgufTensor::numel() const {
  int64_t n = 1;
  for (int64_t d : dims) n *= d;
  return n;
}

std::vector<int64_t> GgufTensor::shape() const { return {dims.rbegin(), dims.rend()}; }

struct Gguf::Mapping {
  void* base = nullptr;
  size_t size = 0;
  ~Mapping() {
    if (base) ::munmap(base, size);
  }
};

Gguf Gguf::read(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) usage_error("GGUF file '", path, "' cannot be opened");
  struct stat sb {};
  if (::fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
    ::close(fd);
    usage_error("GGUF file '", path, "' is not a regular file");
  }
  auto m = std::make_shared<Mapping>();
  m->size = size_t(sb.st_size);
  if (m->size > 0) {
    m->base = ::mmap(nullptr, m->size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (m->base == MAP_FAILED) {
      ::close(fd);
      usage_error("GGUF file '", path, "' cannot be mapped into memory");
    }
  }
  ::close(fd);
  Gguf g = parse(static_cast<const uint8_t*>(m->base), m->size, path);
  g.mapping_ = m;
  return g;
}

Gguf Gguf::parse(const uint8_t* data, size_t size, const std::string& path) {
  Gguf g;
  g.path_ = path;
  Cursor c(data, size, g.path_);
  const uint32_t magic = c.get<uint32_t>("magic");
  if (magic != 0x46554747u)  // "GGUF"
    c.fail("magic", str_cat("is 0x", std::hex, magic, std::dec, "; expected \"GGUF\" (0x46554747)"));
  const uint32_t version = c.get<uint32_t>("version");
  if (version != kVersion) c.fail("version", str_cat("is ", version, "; expected 3"));
  const uint64_t n_tensors = c.get<uint64_t>("tensor_count");
  const uint64_t n_kv = c.get<uint64_t>("metadata_kv_count");
  // A key/value takes at least 8 + 4 + 1 bytes, a tensor info 8 + 4 + 8 + 4 + 8.
  if (n_kv > c.left() / 13)
    c.fail("metadata_kv_count", str_cat("is ", n_kv, ", more than the file can hold"));
  if (n_tensors > c.left() / 32)
    c.fail("tensor_count", str_cat("is ", n_tensors, ", more than the file can hold"));
  for (uint64_t k = 0; k < n_kv; ++k) {
    const std::string key = c.string(str_cat("metadata key ", k));
    GgufValue v = read_value(c, str_cat("field '", key, "'"));
    if (!g.kv_.emplace(key, std::move(v)).second) c.fail(str_cat("field '", key, "'"), "appears twice");
    g.keys_.push_back(key);
  }
  if (g.has("general.alignment")) {
    const GgufValue& a = g.kv_.at("general.alignment");
    if (a.type != GgufValue::u32) g.refuse("general.alignment", "is not a u32");
    if (a.u == 0 || (a.u & (a.u - 1)) != 0) g.refuse("general.alignment", "is not a power of two");
    g.alignment_ = uint32_t(a.u);
  }
  struct Info {
    uint32_t type;
    uint64_t offset;
  };
  std::vector<Info> infos;
  std::set<std::string> names;
  g.tensors_.reserve(size_t(n_tensors));
  for (uint64_t k = 0; k < n_tensors; ++k) {
    GgufTensor t;
    t.name = c.string(str_cat("tensor ", k, "'s name"));
    const std::string field = str_cat("tensor '", t.name, "'");
    if (!names.insert(t.name).second) c.fail(field, "appears twice");
    const uint32_t nd = c.get<uint32_t>(field + " (n_dims)");
    if (nd < 1 || nd > kMaxDims) c.fail(field, str_cat("has ", nd, " dimensions; expected 1 to 4"));
    uint64_t numel = 1;
    for (uint32_t d = 0; d < nd; ++d) {
      const uint64_t n = c.get<uint64_t>(field + " (dims)");
      if (n == 0 || n > uint64_t(INT64_MAX) / numel)
        c.fail(field, str_cat("has dimension ", n, "; expected 1 or more, the product under 2^63"));
      numel *= n;
      t.dims.push_back(int64_t(n));
    }
    infos.push_back({c.get<uint32_t>(field + " (type)"), c.get<uint64_t>(field + " (offset)")});
    g.tensors_.push_back(std::move(t));
  }
  const uint64_t start = (c.pos() + g.alignment_ - 1) / g.alignment_ * g.alignment_;
  if (start > size)
    c.fail("tensor data", str_cat("starts at ", start, ", past the end of the ", size, "-byte file"));
  const uint64_t data_size = size - start;
  for (size_t k = 0; k < g.tensors_.size(); ++k) {
    GgufTensor& t = g.tensors_[k];
    const std::string field = str_cat("tensor '", t.name, "'");
    t.type = ggml_type(infos[k].type);
    if (!t.type) {
      const char* name = ggml_type_name(infos[k].type);
      c.fail(field, *name ? str_cat("has type ", name, ", which alibi does not compute on; expected ",
                                     supported_ggml_names())
                          : str_cat("has unknown type id ", infos[k].type));
    }
    if (uint64_t(t.dims[0]) / uint64_t(t.type->block) > data_size / uint64_t(t.type->bytes))
      c.fail(field, str_cat("has rows of ", t.dims[0], " elements, more than the file's ",
                            data_size, " bytes of data hold"));
    const int64_t row = ggml_row_bytes(*t.type, t.dims[0]);
    if (row < 0)
      c.fail(field, str_cat("has rows of ", t.dims[0], " elements, not a multiple of ", t.type->name,
                            "'s block of ", t.type->block));
    uint64_t bytes = uint64_t(row);
    for (size_t d = 1; d < t.dims.size(); ++d) {
      if (uint64_t(t.dims[d]) > data_size / std::max<uint64_t>(bytes, 1))
        c.fail(field, str_cat("has more bytes than the file's ", data_size, " bytes of data"));
      bytes *= uint64_t(t.dims[d]);
    }
    const uint64_t off = infos[k].offset;
    if (off % g.alignment_ != 0)
      c.fail(field, str_cat("has offset ", off, ", not a multiple of the alignment ", g.alignment_));
    if (off > data_size || bytes > data_size - off)
      c.fail(field, str_cat("runs past the end of the file (offset ", off, ", ", bytes,
                            " bytes, data section of ", data_size, " bytes): truncated?"));
    t.data = data + start + off;
    t.bytes = size_t(bytes);
  }
  return g;
}

const GgufTensor* Gguf::find(const std::string& name) const {
  for (const GgufTensor& t : tensors_)
    if (t.name == name) return &t;
  return nullptr;
}

void Gguf::refuse(const std::string& key, const std::string& why) const {
  usage_error("GGUF file '", path_, "': field '", key, "' ", why);
}

const GgufValue& Gguf::at(const std::string& key) const {
  auto it = kv_.find(key);
  if (it == kv_.end()) refuse(key, "is missing");
  return it->second;
}

std::string Gguf::get_string(const std::string& key) const {
  const GgufValue& v = at(key);
  if (v.type != GgufValue::string)
    refuse(key, str_cat("is a ", GgufValue::type_name(v.type), "; expected a string"));
  return v.s;
}

int64_t Gguf::get_int(const std::string& key) const {
  const GgufValue& v = at(key);
  if (!v.is_integer())
    refuse(key, str_cat("is a ", GgufValue::type_name(v.type), "; expected an integer"));
  const bool is_unsigned = v.type == GgufValue::u8 || v.type == GgufValue::u16 ||
                           v.type == GgufValue::u32 || v.type == GgufValue::u64;
  if (is_unsigned && v.u > uint64_t(INT64_MAX)) refuse(key, str_cat("= ", v.u, " is too large"));
  return is_unsigned ? int64_t(v.u) : v.i;
}

double Gguf::get_float(const std::string& key) const {
  const GgufValue& v = at(key);
  if (v.type != GgufValue::f32 && v.type != GgufValue::f64)
    refuse(key, str_cat("is a ", GgufValue::type_name(v.type), "; expected a float"));
  return v.f;
}

bool Gguf::get_bool(const std::string& key) const {
  const GgufValue& v = at(key);
  if (v.type != GgufValue::boolean)
    refuse(key, str_cat("is a ", GgufValue::type_name(v.type), "; expected a bool"));
  return v.u != 0;
}

std::vector<std::string> Gguf::get_strings(const std::string& key) const {
  const GgufValue& v = at(key);
  if (v.type != GgufValue::array || v.elem != GgufValue::string)
    refuse(key, "is not an array of strings");
  return v.strings;
}

std::vector<int64_t> Gguf::get_ints(const std::string& key) const {
  const GgufValue& v = at(key);
  if (v.type != GgufValue::array || !GgufValue::is_integer(v.elem))
    refuse(key, "is not an array of integers");
  std::vector<int64_t> out(size_t(v.count));
  Cursor c(v.raw, v.count * GgufValue::fixed_size(v.elem), path_);
  for (uint64_t k = 0; k < v.count; ++k) {
    GgufValue e;
    e.type = v.elem;
    read_scalar(c, e, key);
    if (e.type == GgufValue::u64 && e.u > uint64_t(INT64_MAX)) refuse(key, "has an element over 2^63");
    out[size_t(k)] = e.type == GgufValue::u8 || e.type == GgufValue::u16 ||
                             e.type == GgufValue::u32 || e.type == GgufValue::u64
                         ? int64_t(e.u)
                         : e.i;
  }
  return out;
}

}  // namespace alibi
