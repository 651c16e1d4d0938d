// BLOOM and MPT folders from Hugging Face into alibi's model (model/hf_import.h, docs/hf.md).
#include "model/hf_import.h"

#include <bit>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "core/error.h"
#include "core/half.h"
#include "core/io.h"
#include "core/json_int.h"
#include "core/safetensors.h"
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

// config.json fields, with errors naming the file and the field.
class Config {
 public:
  explicit Config(const fs::path& dir) : path_((dir / "config.json").string()) {
    if (!fs::exists(path_))
      usage_error("'", dir.string(), "' has no config.json; expected a Hugging Face model folder");
    try {
      j_ = json::parse(read_file(path_, "model config"));
    } catch (const UsageError&) {
      throw;
    } catch (const std::exception& e) {
      usage_error(path_, ": not JSON (", e.what(), ")");
    }
  }
  template <class T>
  T get(const std::string& key) const {
    if (!j_.contains(key)) usage_error(path_, ": field '", key, "' is missing");
    return as<T>(j_.at(key), key);
  }
  template <class T>
  T get_or(const std::string& key, T fallback) const {
    return j_.contains(key) && !j_.at(key).is_null() ? as<T>(j_.at(key), key) : fallback;
  }
  const json& raw() const { return j_; }
  const std::string& path() const { return path_; }
  [[noreturn]] void refuse(const std::string& key, const std::string& why) const {
    usage_error(path_, ": field '", key, "' = ", field_text(key), " ", why);
  }
  std::string field_text(const std::string& key) const {
    const json* v = &j_;
    size_t start = 0;
    while (true) {  // dotted keys reach into objects (attn_config.qk_ln)
      const size_t dot = key.find('.', start);
      const std::string part = key.substr(start, dot == std::string::npos ? dot : dot - start);
      if (!v->is_object() || !v->contains(part)) return "(absent)";
      v = &v->at(part);
      if (dot == std::string::npos) return v->dump();
      start = dot + 1;
    }
  }

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

// K's layout, once the folder's tensors can fill it: a config.json asking for more layers or
// parameters than the weights hold is refused before anything that large is planned.
// `layers_key` names the config field.
ParamLayout plan_params(const ModelConfig& k, const Weights& w, const Config& c,
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
    int qkv_heads = 0;  // BLOOM's fused qkv: its rows are reordered (bloom_qkv_rows), else 0
  };
  explicit HfSources(const fs::path& dir) : w(dir) {}
  Weights w;
  std::map<std::string, Source> of;  // by our tensor name
};

namespace {

// Our tensor `name` is read from `t` (checked by Weights::take).
void put(HfSources& s, const ParamLayout& l, const std::string& name, const StTensor* t,
         int qkv_heads = 0) {
  ALIBI_CHECK(size_t(t->numel()) == l.at(name).numel, name);
  s.of[name] = {t, qkv_heads};
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

void import_bloom(const Config& c, HfSources& s, HfImport& m) {
  Weights& w = s.w;
  if (c.get_or("apply_residual_connection_post_layernorm", false))
    c.refuse("apply_residual_connection_post_layernorm", "is not supported; expected false");
  ModelConfig& k = m.config;
  k.layers = c.get<int>("n_layer");
  k.heads = c.get<int>("n_head");
  k.d_model = c.raw().contains("hidden_size") ? c.get<int>("hidden_size") : c.get<int>("n_embed");
  if (k.heads < 1 || k.d_model % k.heads) c.refuse("n_head", "does not divide hidden_size");
  const int64_t C = k.d_model;
  k.vocab = int(w.shape("word_embeddings.weight").at(0));
  if (c.get_or("vocab_size", k.vocab) != k.vocab)
    c.refuse("vocab_size",
             "differs from the " + std::to_string(k.vocab) + " rows of word_embeddings.weight");
  k.ffn = int(4 * C);
  k.ln_eps = c.get_or("layer_norm_epsilon", 1e-5f);
  k.gelu = Gelu::tanh;
  k.embed_scale = false;
  k.embed_ln = true;
  k.tied_head = c.get_or("tie_word_embeddings", true);
  k.dropout_resid = c.get_or("hidden_dropout", 0.0f);
  k.dropout_attn = c.get_or("attention_dropout", 0.0f);
  k.validate();
  const ParamLayout l = plan_params(k, w, c, "n_layer");
  const int64_t V = k.vocab, F = k.ffn;
  put(s, l, "wte", w.take("word_embeddings.weight", {V, C}));
  put(s, l, "emb_ln.w", w.take("word_embeddings_layernorm.weight", {C}));
  put(s, l, "emb_ln.b", w.take("word_embeddings_layernorm.bias", {C}));
  for (int i = 0; i < k.layers; ++i) {
    const std::string h = "h." + std::to_string(i) + ".";
    put(s, l, h + "ln1.w", w.take(h + "input_layernorm.weight", {C}));
    put(s, l, h + "ln1.b", w.take(h + "input_layernorm.bias", {C}));
    put(s, l, h + "attn.qkv.w", w.take(h + "self_attention.query_key_value.weight", {3 * C, C}),
        k.heads);
    put(s, l, h + "attn.qkv.b", w.take(h + "self_attention.query_key_value.bias", {3 * C}),
        k.heads);
    put(s, l, h + "attn.proj.w", w.take(h + "self_attention.dense.weight", {C, C}));
    put(s, l, h + "attn.proj.b", w.take(h + "self_attention.dense.bias", {C}));
    put(s, l, h + "ln2.w", w.take(h + "post_attention_layernorm.weight", {C}));
    put(s, l, h + "ln2.b", w.take(h + "post_attention_layernorm.bias", {C}));
    put(s, l, h + "mlp.fc.w", w.take(h + "mlp.dense_h_to_4h.weight", {F, C}));
    put(s, l, h + "mlp.fc.b", w.take(h + "mlp.dense_h_to_4h.bias", {F}));
    put(s, l, h + "mlp.proj.w", w.take(h + "mlp.dense_4h_to_h.weight", {C, F}));
    put(s, l, h + "mlp.proj.b", w.take(h + "mlp.dense_4h_to_h.bias", {C}));
  }
  put(s, l, "lnf.w", w.take("ln_f.weight", {C}));
  put(s, l, "lnf.b", w.take("ln_f.bias", {C}));
}

void import_mpt(const Config& c, HfSources& s, HfImport& m) {
  Weights& w = s.w;
  ModelConfig& k = m.config;
  const json attn = c.get_or("attn_config", json::object());
  auto attn_field = [&](const std::string& f, const json& fallback) {
    if (!attn.contains(f) || attn.at(f).is_null()) return fallback;
    // Of the fallback's type (any, for a null one): get<bool>() and get<float>() below would
    // throw nlohmann's type_error, not an error naming the field.
    const json& v = attn.at(f);
    const bool same = v.is_number() ? fallback.is_number() : v.type() == fallback.type();
    if (!fallback.is_null() && !same)
      c.refuse("attn_config." + f, str_cat("has the wrong type; expected ", fallback.type_name()));
    return v;
  };
  if (!attn_field("alibi", false).get<bool>())
    c.refuse("attn_config.alibi", "is not true; alibi imports ALiBi models only");
  if (attn_field("qk_ln", false).get<bool>())
    c.refuse("attn_config.qk_ln", "(LayerNorm on q and k) is not supported; expected false");
  if (!attn_field("clip_qkv", nullptr).is_null())
    c.refuse("attn_config.clip_qkv", "is not supported; expected null");
  if (attn_field("prefix_lm", false).get<bool>())
    c.refuse("attn_config.prefix_lm", "is not supported; expected false");
  if (attn_field("attn_uses_sequence_id", false).get<bool>())
    c.refuse("attn_config.attn_uses_sequence_id", "is not supported; expected false");
  if (attn_field("attn_type", "multihead_attention") != "multihead_attention")
    c.refuse("attn_config.attn_type", "is not supported; expected \"multihead_attention\"");
  if (!c.get_or("no_bias", true))
    c.refuse("no_bias", "is not supported; expected true (transformers' MPT has no biases)");
  if (c.raw().contains("logit_scale") && !c.raw().at("logit_scale").is_null())
    c.refuse("logit_scale", "is not supported; expected null");
  k.layers = c.get<int>("n_layers");
  k.heads = c.get<int>("n_heads");
  k.d_model = c.get<int>("d_model");
  if (k.heads < 1 || k.d_model % k.heads) c.refuse("n_heads", "does not divide d_model");
  const double ffn = c.get_or("expansion_ratio", 4.0) * k.d_model;
  if (!(ffn == std::floor(ffn) && ffn >= 1 && ffn <= double(INT32_MAX)))
    c.refuse("expansion_ratio", "times d_model is not a whole number in 1..2^31-1");
  k.ffn = int(ffn);
  const int HS = k.head_size();
  const json scale = attn_field("softmax_scale", nullptr);
  if (!scale.is_null() &&
      (!scale.is_number() || std::fabs(scale.get<double>() * std::sqrt(double(HS)) - 1.0) > 1e-6))
    c.refuse("attn_config.softmax_scale", "is not 1/sqrt(head size), which alibi's attention uses");
  k.vocab = int(w.shape("wte.weight").at(0));
  if (c.get_or("vocab_size", k.vocab) != k.vocab)
    c.refuse("vocab_size", "differs from the " + std::to_string(k.vocab) + " rows of wte.weight");
  k.alibi_bias_max = attn_field("alibi_bias_max", 8.0).get<float>();
  k.linear_bias = false;
  k.ln_bias = false;
  k.ln_eps = c.get_or("layer_norm_epsilon", 1e-5f);
  k.gelu = Gelu::erf;
  k.embed_scale = false;
  k.tied_head = c.get_or("tie_word_embeddings", true);
  k.dropout_resid = c.get_or("resid_pdrop", 0.0f);
  k.dropout_attn = attn_field("attn_pdrop", 0.0).get<float>();
  k.validate();
  m.trained_len = c.get_or("max_seq_len", 0);
  const ParamLayout l = plan_params(k, w, c, "n_layers");
  const int64_t V = k.vocab, C = k.d_model, F = k.ffn;
  put(s, l, "wte", w.take("wte.weight", {V, C}));
  for (int i = 0; i < k.layers; ++i) {
    const std::string b = "blocks." + std::to_string(i) + ".", h = "h." + std::to_string(i) + ".";
    put(s, l, h + "ln1.w", w.take(b + "norm_1.weight", {C}));
    put(s, l, h + "attn.qkv.w", w.take(b + "attn.Wqkv.weight", {3 * C, C}));
    put(s, l, h + "attn.proj.w", w.take(b + "attn.out_proj.weight", {C, C}));
    put(s, l, h + "ln2.w", w.take(b + "norm_2.weight", {C}));
    put(s, l, h + "mlp.fc.w", w.take(b + "ffn.up_proj.weight", {F, C}));
    put(s, l, h + "mlp.proj.w", w.take(b + "ffn.down_proj.weight", {C, F}));
  }
  put(s, l, "lnf.w", w.take("norm_f.weight", {C}));
}

}  // namespace

std::vector<float> bloom_qkv_rows(const std::vector<float>& src, int NH, int HS, int64_t cols,
                                  bool to_bloom) {
  std::vector<float> out(src.size());
  const int64_t C = int64_t(NH) * HS;
  for (int h = 0; h < NH; ++h)
    for (int j = 0; j < 3; ++j)
      for (int d = 0; d < HS; ++d) {
        const int64_t ours = j * C + h * HS + d, bloom = (int64_t(h) * 3 + j) * HS + d;
        std::memcpy(out.data() + (to_bloom ? bloom : ours) * cols,
                    src.data() + (to_bloom ? ours : bloom) * cols, size_t(cols) * 4);
      }
  return out;
}

void HfImport::read_rows(const TensorInfo& t, int64_t r0, int64_t n, float* dst) const {
  const int64_t rows = t.shape.empty() ? 1 : t.shape[0], cols = int64_t(t.numel) / rows;
  ALIBI_CHECK(r0 >= 0 && n >= 0 && r0 + n <= rows, t.name, " rows ", r0, "+", n);
  auto it = sources->of.find(t.name);
  if (it == sources->of.end()) {  // not in the family: zeros, as make_param_layout starts
    std::fill(dst, dst + n * cols, 0.0f);
    return;
  }
  const HfSources::Source& src = it->second;
  if (src.qkv_heads == 0) {
    widen_range(*src.t, r0 * cols, n * cols, dst);
  } else {  // our row j*C + h*HS + d is BLOOM's row (h*3 + j)*HS + d
    const int64_t NH = src.qkv_heads, C = rows / 3, HS = C / NH;
    for (int64_t r = r0; r < r0 + n; ++r) {
      const int64_t j = r / C, h = r % C / HS, d = r % HS;
      widen_range(*src.t, ((h * 3 + j) * HS + d) * cols, cols, dst + (r - r0) * cols);
    }
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
  const Config c(dir);
  HfImport m;
  const json archs = c.get_or("architectures", json::array());
  std::string arch = archs.is_array() && !archs.empty() && archs.at(0).is_string()
                         ? archs.at(0).get<std::string>()
                         : "";
  if (arch.empty()) {
    const std::string type = c.get_or("model_type", std::string());
    arch = type == "bloom" ? "BloomForCausalLM" : type == "mpt" ? "MptForCausalLM" : type;
  }
  if (arch != "BloomForCausalLM" && arch != "MptForCausalLM")
    c.refuse(c.raw().contains("architectures") ? "architectures" : "model_type",
             "is not supported; expected BloomForCausalLM or MptForCausalLM");
  m.architecture = arch;
  auto sources = std::make_shared<HfSources>(dir);
  Weights& w = sources->w;
  m.config.pos = PosKind::alibi;
  if (arch == "BloomForCausalLM")
    import_bloom(c, *sources, m);
  else
    import_mpt(c, *sources, m);
  const ParamLayout l = make_param_layout(m.config);
  const int64_t V = m.config.vocab, C = m.config.d_model;
  if (!m.config.tied_head) {
    put(*sources, l, "lm_head.w", w.take("lm_head.weight", {V, C}));
  } else if (w.has("lm_head.weight")) {  // saved although tied: it must be the embedding table
    const StTensor* head = w.take("lm_head.weight", {V, C});
    const bool same = same_values(*head, *sources->of.at("wte").t);
    w.release(head);
    w.release(sources->of.at("wte").t);
    if (!same)
      c.refuse("tie_word_embeddings", "is true but lm_head.weight differs from the embeddings");
  }
  w.expect_all_used(arch);
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
