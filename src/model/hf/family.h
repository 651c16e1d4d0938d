#pragma once
// A Hugging Face family as alibi reads and writes it (docs/hf.md): one description per family,
// each in its own file (bloom.cpp, mpt.cpp, ...) and one line in registry.cpp. import_hf
// (model/hf_import.h) and export_hf (model/hf_export.h) walk the description and name no family:
// the tensor names are written once, and an export's family is the one whose config.json, read
// back, gives the model's options (export_mismatch).
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/json_int.h"
#include "model/config.h"
#include "model/params.h"

namespace alibi::hf {

using json = nlohmann::json;

// A family's config.json (a folder's, or the one an export would write), with errors naming
// the file and the field.
class ConfigJson {
 public:
  // path: named in errors; j: the parsed file.
  ConfigJson(std::string path, json j) : path_(std::move(path)), j_(std::move(j)) {}
  // DIR/config.json; UsageError where it is missing or not JSON.
  static ConfigJson read(const std::string& dir);

  template <class T>
  T get(const std::string& key) const {
    if (!j_.contains(key)) usage_error(path_, ": field '", key, "' is missing");
    return as<T>(j_.at(key), key);
  }
  // The field, or `fallback` where it is absent or null.
  template <class T>
  T get_or(const std::string& key, T fallback) const {
    return has(key) ? as<T>(j_.at(key), key) : fallback;
  }
  bool has(const std::string& key) const { return j_.contains(key) && !j_.at(key).is_null(); }
  const json& raw() const { return j_; }
  const std::string& path() const { return path_; }
  // UsageError: "PATH: field 'KEY' = VALUE WHY"; dotted keys reach into objects
  // (attn_config.qk_ln).
  [[noreturn]] void refuse(const std::string& key, const std::string& why) const;

 private:
  template <class T>
  T as(const json& v, const std::string& key) const {
    if constexpr (std::is_same_v<T, int>) return json_int(v, str_cat(path_, ": field '", key, "'"));
    try {
      return v.get<T>();
    } catch (const std::exception&) {
      usage_error(path_, ": field '", key, "' = ", v.dump(), " has the wrong type");
    }
  }
  std::string path_;
  json j_;
};

// How the rows of a folder tensor become ours.
enum class Rows {
  same,
  // q, k and v fused per head (BLOOM, Falcon-RW): their row (h*3 + j)*HS + d is our row
  // j*C + h*HS + d, part j (q, k, v) of head h, channel d. Weight (3C, C) and bias (3C).
  qkv_per_head,
};

// The folder's row that holds our row r of a tensor with `rows` rows (C = rows / 3 for the
// fused qkv, HS the head size). An import reads ours from theirs, an export writes theirs from
// ours: the one permutation serves both.
int64_t their_row(Rows how, int64_t r, int64_t rows, int HS);

// One of our tensors (make_param_layout's names) and the folder's, without the "transformer."
// prefix; "{i}" in both stands for the layer. A family lists every tensor it may have: those
// the config's layout lacks (biases a config turns off) are not expected.
struct TensorName {
  const char* ours;
  const char* theirs;
  Rows rows = Rows::same;
};

// What config.json says, in our terms.
struct Read {
  // Every architecture option set (the ModelConfig defaults are this repository's model, not a
  // family's); vocab and tied_head are read by the machinery (the embedding's rows,
  // tie_word_embeddings).
  ModelConfig config;
  int trained_len = 0;  // the family's training length where config.json gives one, else 0
};

struct Family {
  const char* name;          // --family: "bloom"
  const char* title;         // in messages: "BLOOM"
  const char* architecture;  // config.json's architectures[0]: "BloomForCausalLM"
  const char* model_type;    // config.json's model_type: "bloom"
  const char* layers_key;    // the field of the layer count
  std::vector<TensorName> tensors;
  // config.json -> ours: fills r.config (but vocab and tied_head) and r.trained_len, refusing
  // what alibi cannot run (c.refuse: one line naming the file and the field).
  void (*read)(const ConfigJson& c, Read& r);
  // ours -> config.json: the family's own fields (the machinery adds architectures,
  // model_type, vocab_size, tie_word_embeddings and torch_dtype). max_seq_len: export's
  // --max-seq-len, for the family's training-length field.
  json (*write)(const ModelConfig& c, int max_seq_len);
};

// Every family, in registry.cpp's order (export tries them in it).
const std::vector<const Family*>& families();
// The family --family NAME names; UsageError naming `flag` and the families where none does.
const Family& family_named(const std::string& name, const std::string& flag);
// The family of a folder's config.json (architectures[0], else model_type); UsageError naming
// the file and the field where alibi has none.
const Family& family_of(const ConfigJson& c);
// "mpt|bloom|...": the names, for help texts.
std::string family_names();

// A folder tensor standing for one of ours, in our layout's order.
struct Mapped {
  const TensorInfo* ours;
  std::string theirs;  // without the "transformer." prefix
  Rows rows;
};
// Every tensor of `layout` (make_param_layout of a family's config) with the folder's name; the
// untied head is every family's lm_head.weight.
std::vector<Mapped> map_tensors(const Family& f, const ParamLayout& layout, int layers);
// The folder's name for our tensor `ours` (a tensor outside the layers: "wte").
std::string their_name(const Family& f, const std::string& ours);

// config.json -> ours with `vocab` rows: f.read, tie_word_embeddings, then ModelConfig::validate.
Read read_config(const Family& f, const ConfigJson& c, int vocab);
// ours -> config.json: f.write and the fields every family has.
json write_config(const Family& f, const ModelConfig& c, int max_seq_len);
// Why `f` cannot hold the model `c`: "its gelu is \"tanh\" where MPT needs \"erf\", ..." for every
// option in which f's config.json for c, read back, differs from c (or the reading's error where
// it refuses). Empty: f holds c, and transformers runs the export as alibi runs c.
std::string export_mismatch(const Family& f, const ModelConfig& c);

// The shortest decimal that reads back as x: config.json then says 1e-05, not the double
// nearest the float (9.999999747378752e-06).
double decimal(float x);

}  // namespace alibi::hf
