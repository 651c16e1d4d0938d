// Hugging Face folders into alibi's model (model/hf_import.h, docs/hf.md): the machinery, which
// walks a family's description (model/hf/family.h) and names no family.
#include "model/hf_import.h"

#include <cstring>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "core/error.h"
#include "core/half.h"
#include "core/io.h"
#include "core/safetensors.h"
#include "model/hf/family.h"
#include "model/params.h"

namespace fs = std::filesystem;

namespace alibi {
namespace {

using json = nlohmann::json;

// The tensors of a folder's safetensors files, by name without the "transformer." prefix.
class Weights {
 public:
  explicit Weights(const fs::path& dir) {
    const fs::path single = dir / "model.safetensors", index = dir / "model.safetensors.index.json";
    std::map<std::string, std::string> weight_map;  // tensor -> shard file name
    std::vector<std::string> shards;
    if (fs::exists(single)) {
      shards.push_back(single.string());
      where_ = single.string();
    } else if (fs::exists(index)) {
      where_ = index.string();
      const std::string where = index.string();
      json j;
      try {
        j = json::parse(read_file(where, "shard index"));
        weight_map = j.at("weight_map").get<std::map<std::string, std::string>>();
      } catch (const UsageError&) {
        throw;
      } catch (const std::exception& e) {
        usage_error(where, ": no readable weight_map (", e.what(), ")");
      }
      std::set<std::string> names;
      for (const auto& [t, shard] : weight_map) names.insert(shard);
      for (const std::string& shard : names) {
        if (!fs::exists(dir / shard))
          usage_error(where, ": weight_map names shard '", shard, "', which does not exist");
        shards.push_back((dir / shard).string());
      }
    } else {
      usage_error("'", dir.string(), "' has no model.safetensors or model.safetensors.index.json ",
                  "(alibi import reads safetensors weights only)");
    }
    files_.reserve(shards.size());
    for (const std::string& path : shards) files_.push_back({path, Safetensors::read(path)});
    for (const auto& [path, st] : files_) {
      for (const auto& [name, t] : st.tensors) {
        const std::string key = name.starts_with("transformer.") ? name.substr(12) : name;
        const std::string shard = fs::path(path).filename().string();
        if (!weight_map.empty() && weight_map.count(name) && weight_map.at(name) != shard)
          usage_error(path, ": tensor '", name, "' is here but the index puts it in '",
                      weight_map.at(name), "'");
        if (!tensors_.emplace(key, Entry{path, name, &t}).second)
          usage_error(path, ": tensor '", name, "' appears twice in the folder");
        if (dtype_.empty()) dtype_ = t.dtype;
        if (dtype_ != t.dtype) dtype_ = "mixed";
      }
    }
    for (const auto& [name, shard] : weight_map) {
      const std::string key = name.starts_with("transformer.") ? name.substr(12) : name;
      if (!tensors_.count(key))
        usage_error((dir / shard).string(), ": lacks tensor '", name,
                    "', which model.safetensors.index.json puts there");
    }
  }

  bool has(const std::string& key) const { return tensors_.count(key) != 0; }
  size_t count() const { return tensors_.size(); }
  uint64_t elements() const {  // of all tensors; each is within its file (Safetensors::read)
    uint64_t n = 0;
    for (const auto& [key, e] : tensors_) n += uint64_t(e.t->numel());
    return n;
  }
  const std::vector<int64_t>& shape(const std::string& key) const { return entry(key).t->shape; }

  // The tensor, checked against `shape` and for a dtype alibi reads; it counts as used.
  const StTensor* take(const std::string& key, const std::vector<int64_t>& want) {
    const Entry& e = entry(key);
    if (e.t->shape != want)
      usage_error(e.path, ": tensor '", e.name, "' has shape ", json(e.t->shape).dump(),
                  ", expected ", json(want).dump());
    if (e.t->dtype != "F32" && e.t->dtype != "BF16" && e.t->dtype != "F16")
      usage_error(e.path, ": tensor '", e.name, "' has dtype ", e.t->dtype,
                  "; expected F32, F16 or BF16");
    used_.insert(key);
    return e.t;
  }
  // Lets a tensor's pages go from memory (they are read from the file again if touched).
  void release(const StTensor* t) const {
    for (const auto& [path, st] : files_)
      for (const auto& [name, x] : st.tensors)
        if (&x == t) return st.release(x);
  }
  void mark_used(const std::string& key) { used_.insert(key); }

  // Every tensor of the folder was taken: anything else is a model alibi would misread.
  void expect_all_used(const std::string& architecture) const {
    for (const auto& [key, e] : tensors_)
      if (!used_.count(key))
        usage_error(e.path, ": extra tensor '", e.name, "', not part of a ", architecture,
                    " as alibi reads it");
  }
  const std::string& dtype() const { return dtype_; }

 private:
  struct Entry {
    std::string path, name;
    const StTensor* t;
  };
  const Entry& entry(const std::string& key) const {
    auto it = tensors_.find(key);
    if (it == tensors_.end())
      usage_error(where_, ": lacks tensor '", key, "' (or 'transformer.", key, "')");
    return it->second;
  }
  std::vector<std::pair<std::string, Safetensors>> files_;
  std::map<std::string, Entry> tensors_;
  std::set<std::string> used_;
  std::string dtype_;
  std::string where_;  // model.safetensors, or the shard index
};

// K's layout, once the folder's tensors can fill it: a config.json asking for more layers or
// parameters than the weights hold is refused before anything that large is planned.
// `layers_key` names the config field.
ParamLayout plan_params(const ModelConfig& k, const Weights& w, const hf::ConfigJson& c,
                        const std::string& layers_key) {
  if (uint64_t(k.layers) > w.count())
    c.refuse(layers_key, str_cat("is more than the ", w.count(), " tensors of the weights"));
  ParamLayout l = make_param_layout(k);
  // Twice the weights bounds the allocation by the files' size, and leaves a folder that is
  // short of a few tensors to the error that names the missing one.
  if (l.total > 2 * w.elements())
    usage_error(c.path(), ": asks for ", l.total, " parameters (", k.layers, " layers of width ",
                k.d_model, "); the weights hold only ", w.elements());
  return l;
}

}  // namespace

// Which file tensor each of ours is read from.
struct HfSources {
  struct Source {
    const StTensor* t = nullptr;
    hf::Rows rows = hf::Rows::same;
  };
  explicit HfSources(const fs::path& dir) : w(dir) {}
  Weights w;
  std::map<std::string, Source> of;  // by our tensor name
};

namespace {

// Our tensor `name` is read from `t` (checked by Weights::take).
void put(HfSources& s, const ParamLayout& l, const std::string& name, const StTensor* t,
         hf::Rows rows) {
  ALIBI_CHECK(size_t(t->numel()) == l.at(name).numel, name);
  s.of[name] = {t, rows};
}

// Elements [i0, i0 + n) of a file tensor (F32, BF16 or F16) as fp32.
void widen_range(const StTensor& t, int64_t i0, int64_t n, float* dst) {
  const uint8_t* src = t.bytes();
  if (t.dtype == "F32") {
    std::memcpy(dst, src + 4 * i0, size_t(n) * 4);
    return;
  }
  widen_stored(dst, src + 2 * i0, size_t(n), t.dtype == "BF16");
}

// Whether two file tensors of the same shape hold the same values, compared in blocks.
bool same_values(const StTensor& a, const StTensor& b) {
  constexpr int64_t kBlock = int64_t(1) << 16;
  std::vector<float> x(kBlock), y(kBlock);
  for (int64_t i = 0; i < a.numel(); i += kBlock) {
    const int64_t n = std::min(kBlock, a.numel() - i);
    widen_range(a, i, n, x.data());
    widen_range(b, i, n, y.data());
    if (std::memcmp(x.data(), y.data(), size_t(n) * 4) != 0) return false;
  }
  return true;
}

}  // namespace

void HfImport::read_rows(const TensorInfo& t, int64_t r0, int64_t n, float* dst) const {
  const int64_t rows = t.shape.empty() ? 1 : t.shape[0], cols = int64_t(t.numel) / rows;
  ALIBI_CHECK(r0 >= 0 && n >= 0 && r0 + n <= rows, t.name, " rows ", r0, "+", n);
  auto it = sources->of.find(t.name);
  ALIBI_CHECK(it != sources->of.end(), t.name, " has no source");
  const HfSources::Source& src = it->second;
  if (src.rows == hf::Rows::same) {
    widen_range(*src.t, r0 * cols, n * cols, dst);
  } else {
    for (int64_t r = r0; r < r0 + n; ++r)
      widen_range(*src.t, hf::their_row(src.rows, r, rows, config.head_size()) * cols, cols,
                  dst + (r - r0) * cols);
  }
  if (r0 + n == rows) sources->w.release(src.t);
}

std::vector<float> HfImport::params() const {
  const ParamLayout l = make_param_layout(config);
  std::vector<float> p(l.total);
  for (const TensorInfo& t : l.tensors)
    read_rows(t, 0, t.shape.empty() ? 1 : t.shape[0], p.data() + t.offset);
  return p;
}

HfImport import_hf(const std::string& dir_arg) {
  const fs::path dir(dir_arg);
  if (!fs::is_directory(dir))
    usage_error("'", dir_arg, "' is not a folder; expected a Hugging Face model folder");
  const hf::ConfigJson c = hf::ConfigJson::read(dir_arg);
  const hf::Family& family = hf::family_of(c);
  HfImport m;
  m.architecture = family.architecture;
  auto sources = std::make_shared<HfSources>(dir);
  Weights& w = sources->w;
  const std::string wte = hf::their_name(family, "wte");
  const int vocab = int(w.shape(wte).at(0));
  if (c.get_or("vocab_size", vocab) != vocab)
    c.refuse("vocab_size", str_cat("differs from the ", vocab, " rows of ", wte));
  const hf::Read read = hf::read_config(family, c, vocab);
  m.config = read.config;
  m.trained_len = read.trained_len;
  const ParamLayout l = plan_params(m.config, w, c, family.layers_key);
  for (const hf::Mapped& t : hf::map_tensors(family, l, m.config.layers))
    put(*sources, l, t.ours->name, w.take(t.theirs, t.ours->shape), t.rows);
  const int64_t V = m.config.vocab, C = m.config.d_model;
  if (m.config.tied_head && w.has("lm_head.weight")) {  // saved although tied: it must be wte
    const StTensor* head = w.take("lm_head.weight", {V, C});
    const bool same = same_values(*head, *sources->of.at("wte").t);
    w.release(head);
    w.release(sources->of.at("wte").t);
    if (!same)
      c.refuse("tie_word_embeddings", "is true but lm_head.weight differs from the embeddings");
  }
  w.expect_all_used(m.architecture);
  m.dtype = w.dtype();
  m.sources = sources;

  const fs::path tok = dir / "tokenizer.json";
  if (!fs::exists(tok))
    usage_error("'", dir_arg, "' has no tokenizer.json; alibi import needs the model's tokenizer");
  m.tokenizer = Tokenizer::hf_from_json(read_file(tok.string(), "tokenizer"), tok.string());
  if (m.tokenizer.vocab() > V)
    usage_error(tok.string(), ": ", m.tokenizer.vocab(), " tokens, more than the ", V,
                " rows of the embedding table");
  return m;
}

}  // namespace alibi
