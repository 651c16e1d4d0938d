// GGUF files into alibi's model (model/gguf_import.h, docs/gguf.md).
#include "model/gguf_import.h"

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>

#include "core/error.h"
#include "core/half.h"
#include "model/checkpoint.h"
#include "model/hf/family.h"
#include "model/params.h"

namespace alibi {
namespace {

using json = nlohmann::json;

// An architecture of llama.cpp's that alibi runs: the Hugging Face family whose config.json its
// metadata stands for, field by field (ARCH.KEY -> config.json's field; "=VALUE": a fixed one).
struct Arch {
  const char* name;    // general.architecture
  const char* family;  // hf::family_named
  std::vector<std::pair<const char*, const char*>> fields;
};

const std::vector<Arch>& archs() {
  static const std::vector<Arch> kArchs = {
      {"bloom",
       "bloom",
       {{"embedding_length", "hidden_size"},
        {"attention.head_count", "n_head"},
        {"block_count", "n_layer"},
        {"attention.layer_norm_epsilon", "layer_norm_epsilon"}}},
      {"mpt",
       "mpt",
       {{"embedding_length", "d_model"},
        {"attention.head_count", "n_heads"},
        {"block_count", "n_layers"},
        {"attention.layer_norm_epsilon", "layer_norm_epsilon"},
        {"attention.max_alibi_bias", "attn_config.alibi_bias_max"},
        {"attention.clamp_kqv", "attn_config.clip_qkv"},
        {"context_length", "max_seq_len"},
        {"=true", "attn_config.alibi"}}},
  };
  return kArchs;
}

// llama.cpp's tensor names (gguf-py's MODEL_TENSOR names, the same for every architecture) of
// ours; "{i}" is the layer. q, k and v are fused in our order (the converter reorders BLOOM's).
const std::vector<std::pair<const char*, const char*>>& tensor_names() {
  static const std::vector<std::pair<const char*, const char*>> kNames = {
      {"wte", "token_embd.weight"},
      {"emb_ln.w", "token_embd_norm.weight"},
      {"emb_ln.b", "token_embd_norm.bias"},
      {"lm_head.w", "output.weight"},
      {"lnf.w", "output_norm.weight"},
      {"lnf.b", "output_norm.bias"},
      {"h.{i}.ln1.w", "blk.{i}.attn_norm.weight"},
      {"h.{i}.ln1.b", "blk.{i}.attn_norm.bias"},
      {"h.{i}.attn.qkv.w", "blk.{i}.attn_qkv.weight"},
      {"h.{i}.attn.qkv.b", "blk.{i}.attn_qkv.bias"},
      {"h.{i}.attn.proj.w", "blk.{i}.attn_output.weight"},
      {"h.{i}.attn.proj.b", "blk.{i}.attn_output.bias"},
      {"h.{i}.ln2.w", "blk.{i}.ffn_norm.weight"},
      {"h.{i}.ln2.b", "blk.{i}.ffn_norm.bias"},
      {"h.{i}.mlp.fc.w", "blk.{i}.ffn_up.weight"},
      {"h.{i}.mlp.fc.b", "blk.{i}.ffn_up.bias"},
      {"h.{i}.mlp.proj.w", "blk.{i}.ffn_down.weight"},
      {"h.{i}.mlp.proj.b", "blk.{i}.ffn_down.bias"}};
  return kNames;
}

}  // namespace

std::string gguf_tensor_name(const std::string& ours) {
  std::string layer, pattern = ours;
  if (ours.starts_with("h.")) {
    const size_t dot = ours.find('.', 2);
    layer = ours.substr(2, dot - 2);
    pattern = "h.{i}" + ours.substr(dot);
  }
  for (const auto& [o, t] : tensor_names())
    if (pattern == o) {
      std::string s = t;
      if (const size_t at = s.find("{i}"); at != std::string::npos) s.replace(at, 3, layer);
      return s;
    }
  return "";
}

std::string gguf_architecture(const hf::Family& f) {
  for (const Arch& a : archs())
    if (f.name == std::string(a.family)) return a.name;
  return "";
}

void add_gguf_metadata(GgufWriter& w, const hf::Family& f, const ModelConfig& cfg,
                       int context_length) {
  const std::string arch = gguf_architecture(f);
  const Arch* a = nullptr;
  for (const Arch& x : archs())
    if (arch == x.name) a = &x;
  ALIBI_CHECK(a != nullptr, f.name);
  const json j = hf::write_config(f, cfg, context_length);
  const std::string A = arch + ".";
  w.add_u32(A + "context_length", uint32_t(context_length));
  w.add_u32(A + "feed_forward_length", uint32_t(cfg.ffn));
  w.add_u32(A + "attention.head_count_kv", uint32_t(cfg.heads));
  for (const auto& [key, field] : a->fields) {
    const std::string k = A + key, fd = field;
    if (key[0] == '=' || k == A + "context_length") continue;
    const size_t dot = fd.find('.');
    const json::json_pointer p(
        "/" + (dot == std::string::npos ? fd : fd.substr(0, dot) + "/" + fd.substr(dot + 1)));
    if (!j.contains(p) || !j.at(p).is_number()) continue;  // a field the family leaves out
    // llama.cpp reads these three as f32, every other as u32 (gguf-py's writer's types).
    const std::string kk = key;
    if (kk.ends_with("epsilon") || kk.ends_with("max_alibi_bias") || kk.ends_with("clamp_kqv"))
      w.add_f32(k, j.at(p).get<float>());
    else
      w.add_u32(k, j.at(p).get<uint32_t>());
  }
}

namespace {

// The metadata as the family's config.json: the fields Arch lists, where the file has them.
hf::ConfigJson config_json(const Gguf& g, const Arch& a) {
  json j;
  for (const auto& [key, field] : a.fields) {
    const std::string k = std::string(a.name) + "." + key;
    json v;
    if (key[0] == '=') {
      v = json::parse(key + 1);
    } else if (!g.has(k)) {
      continue;
    } else {
      const GgufValue& x = g.at(k);
      if (x.is_integer())
        v = g.get_int(k);
      else if (x.type == GgufValue::f32 || x.type == GgufValue::f64)
        v = g.get_float(k);
      else
        g.refuse(k, str_cat("is a ", GgufValue::type_name(x.type), "; expected a number"));
    }
    const std::string f = field;
    if (const size_t dot = f.find('.'); dot != std::string::npos)
      j[f.substr(0, dot)][f.substr(dot + 1)] = v;
    else
      j[f] = v;
  }
  return hf::ConfigJson(str_cat("GGUF file '", g.path(), "' (its ", a.name, ".* metadata)"), j);
}

// tokenizer.ggml.* as the tokenizer.json llama.cpp's converter read them from: a byte-level BPE
// (tokenizer.ggml.model "gpt2") with the split that tokenizer.ggml.pre names.
std::string tokenizer_json(const Gguf& g) {
  const std::string model = g.get_string("tokenizer.ggml.model");
  if (model != "gpt2")
    g.refuse("tokenizer.ggml.model", str_cat("is \"", model, "\"; alibi rebuilds \"gpt2\" (byte-level BPE) only"));
  const std::string pre = g.has("tokenizer.ggml.pre") ? g.get_string("tokenizer.ggml.pre") : "default";
  json byte_level = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true},
                     {"use_regex", true}};
  json pre_tokenizer;
  if (pre == "gpt-2" || pre == "mpt" || pre == "default") {
    pre_tokenizer = byte_level;  // GPT-2's split (llama-vocab.cpp: the same regex)
  } else if (pre == "bloom") {
    json split = {{"type", "Split"},
                  {"pattern", {{"Regex", " ?[^(\\s|[.,!?\u2026\u3002\uff0c\u3001\u0964\u06d4\u060c])]+"}}},
                  {"behavior", "Isolated"},
                  {"invert", false}};
    json bl = byte_level;
    bl["use_regex"] = false;
    pre_tokenizer = {{"type", "Sequence"}, {"pretokenizers", json::array({split, bl})}};
  } else {
    g.refuse("tokenizer.ggml.pre", str_cat("is \"", pre, "\"; expected gpt-2, mpt or bloom"));
  }
  const std::vector<std::string> tokens = g.get_strings("tokenizer.ggml.tokens");
  std::vector<int64_t> types(tokens.size(), 1);
  if (g.has("tokenizer.ggml.token_type")) {
    types = g.get_ints("tokenizer.ggml.token_type");
    if (types.size() != tokens.size())
      g.refuse("tokenizer.ggml.token_type",
               str_cat("has ", types.size(), " elements for ", tokens.size(), " tokens"));
  }
  json vocab = json::object(), added = json::array();
  for (size_t id = 0; id < tokens.size(); ++id) {
    if (types[id] == 5) continue;  // UNUSED: padding rows of the embedding
    if (!vocab.emplace(tokens[id], id).second)
      g.refuse("tokenizer.ggml.tokens", str_cat("has '", tokens[id], "' twice"));
    if (types[id] == 3 || types[id] == 4)  // CONTROL, USER_DEFINED
      added.push_back({{"id", id}, {"content", tokens[id]}, {"single_word", false},
                       {"lstrip", false}, {"rstrip", false}, {"normalized", false},
                       {"special", types[id] == 3}});
  }
  json merges = g.has("tokenizer.ggml.merges") ? json(g.get_strings("tokenizer.ggml.merges"))
                                                : json::array();
  json bpe = {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr},
              {"continuing_subword_prefix", nullptr}, {"end_of_word_suffix", nullptr},
              {"fuse_unk", false}, {"byte_fallback", false}, {"ignore_merges", false},
              {"vocab", vocab}, {"merges", merges}};
  json decoder = byte_level;
  decoder["add_prefix_space"] = true;
  // add_bos_token / add_eos_token: llama.cpp's tokenizer puts bos_token_id before a text's ids
  // and eos_token_id after them when asked for special tokens (and llama-perplexity puts the BOS
  // at each chunk's start); HF's template does that.
  json special_tokens = json::object(), before = json::array(), after = json::array();
  for (const char* which : {"bos", "eos"}) {
    const std::string flag = str_cat("tokenizer.ggml.add_", which, "_token");
    if (!g.has(flag) || !g.get_bool(flag)) continue;
    const std::string key = str_cat("tokenizer.ggml.", which, "_token_id");
    const bool have = g.has(key);
    const int64_t id = have ? g.get_int(key) : -1;
    if (id < 0 || id >= int64_t(tokens.size()))
      g.refuse(key,
               str_cat(have ? str_cat("is ", id) : std::string("is missing"), " with add_", which,
                       "_token true; expected an id below the ", tokens.size(), " tokens"));
    const std::string& name = tokens[size_t(id)];
    special_tokens[name] = {{"id", name}, {"ids", {id}}, {"tokens", {name}}};
    (which[0] == 'b' ? before : after)
        .push_back({{"SpecialToken", {{"id", name}, {"type_id", 0}}}});
  }
  const auto part = [&](const char* seq, int type_id) {  // [BOS] seq [EOS]
    json p = before;
    p.push_back({{"Sequence", {{"id", seq}, {"type_id", type_id}}}});
    for (const json& a : after) p.push_back(a);
    return p;
  };
  json post = nullptr;
  if (!before.empty() || !after.empty()) {
    json pair = part("A", 0);
    for (const json& x : part("B", 1)) pair.push_back(x);
    post = {{"type", "TemplateProcessing"},
            {"single", part("A", 0)},
            {"pair", pair},
            {"special_tokens", special_tokens}};
  }
  json t = {{"version", "1.0"},       {"truncation", nullptr}, {"padding", nullptr},
            {"added_tokens", added},  {"normalizer", nullptr}, {"pre_tokenizer", pre_tokenizer},
            {"post_processor", post}, {"decoder", decoder},    {"model", bpe}};
  try {
    return t.dump();
  } catch (const json::type_error& e) {  // a token or merge that is not UTF-8 (316)
    usage_error("GGUF file '", g.path(), "': tokenizer.ggml.tokens or .merges holds a string that "
                "is not UTF-8 (", e.what(), "); expected UTF-8 text");
  }
}

}  // namespace

std::string GgufImport::matrix_types() const {
  std::set<std::string> names;
  for (const auto& [ours, t] : of)
    if (t->dims.size() == 2) names.insert(t->type->name);
  std::string s;
  for (const std::string& n : names) s += (s.empty() ? "" : ", ") + n;
  return s;
}

GgufImport import_gguf(const std::string& path) {
  GgufImport m;
  m.file = std::make_shared<const Gguf>(Gguf::read(path));
  const Gguf& g = *m.file;
  m.architecture = g.get_string("general.architecture");
  const Arch* arch = nullptr;
  std::string names;
  for (const Arch& a : archs()) {
    names += std::string(names.empty() ? "" : ", ") + a.name;
    if (m.architecture == a.name) arch = &a;
  }
  if (!arch)
    g.refuse("general.architecture",
             str_cat("is \"", m.architecture, "\"; alibi imports the ALiBi architectures ", names));
  const std::string A = m.architecture + ".";
  const GgufTensor* wte = g.find("token_embd.weight");
  if (!wte || wte->dims.size() != 2)
    usage_error("GGUF file '", path, "': tensor 'token_embd.weight' is missing or not a matrix");
  const int64_t vocab = wte->shape()[0];
  if (vocab > INT32_MAX) usage_error("GGUF file '", path, "': token_embd.weight has ", vocab, " rows");
  const hf::ConfigJson c = config_json(g, *arch);
  if (g.has(A + "attention.max_alibi_bias") && g.get_float(A + "attention.max_alibi_bias") <= 0)
    g.refuse(A + "attention.max_alibi_bias", "is not positive: the model has no ALiBi");
  const hf::Family& family = hf::family_named(arch->family, "");
  // Before a layout of that many layers is planned: each layer has tensors in the file.
  if (c.get<int>(family.layers_key) > int64_t(g.tensors().size()))
    g.refuse(A + "block_count", str_cat("is more than the file's ", g.tensors().size(), " tensors"));
  json tied = c.raw();
  tied["tie_word_embeddings"] = g.find("output.weight") == nullptr;
  const hf::Read read = hf::read_config(family, hf::ConfigJson(c.path(), tied), int(vocab));
  m.config = read.config;
  m.trained_len = g.has(A + "context_length") ? int(g.get_int(A + "context_length")) : 0;
  if (g.has(A + "feed_forward_length") && g.get_int(A + "feed_forward_length") != m.config.ffn)
    g.refuse(A + "feed_forward_length", str_cat("is not the ", m.config.ffn, " that ", m.architecture, " has"));
  if (g.has(A + "attention.head_count_kv") &&
      g.get_int(A + "attention.head_count_kv") != m.config.heads)
    g.refuse(A + "attention.head_count_kv", "differs from head_count; alibi runs one k and v per head");

  const ParamLayout layout = make_param_layout(m.config);
  std::set<std::string> used;
  for (const TensorInfo& ti : layout.tensors) {
    const std::string theirs = gguf_tensor_name(ti.name);
    const GgufTensor* t = theirs.empty() ? nullptr : g.find(theirs);
    if (!t)
      usage_error("GGUF file '", path, "': tensor '", theirs.empty() ? ti.name : theirs,
                  "' is missing (", m.architecture, " with these options has it)");
    const std::vector<int64_t> want(ti.shape.begin(), ti.shape.end());
    if (t->shape() != want)
      usage_error("GGUF file '", path, "': tensor '", theirs, "' has the wrong shape for ",
                  m.architecture, "'s ", ti.name);
    const std::string type = t->type->name;
    if (!ti.matrix && type != "F32" && type != "F16" && type != "BF16")
      usage_error("GGUF file '", path, "': tensor '", theirs, "' has type ", type,
                  "; expected F32, F16 or BF16 for a vector");
    m.of[ti.name] = t;
    used.insert(theirs);
  }
  for (const GgufTensor& t : g.tensors())
    if (!used.count(t.name))
      usage_error("GGUF file '", path, "': tensor '", t.name, "' is not part of ", m.architecture,
                  " as alibi runs it");
  m.tokenizer = Tokenizer::hf_from_json(tokenizer_json(g), str_cat("GGUF file '", path, "' (tokenizer.ggml.*)"));
  if (m.tokenizer.vocab() > vocab)
    g.refuse("tokenizer.ggml.tokens", str_cat("has ", m.tokenizer.vocab(), " tokens, more than the ",
                                              vocab, " rows of token_embd.weight"));
  return m;
}

namespace {

// The file's tensors as a checkpoint stores them: matrices in their types and F32 vectors as
// views of the mapping, vectors stored F16/BF16 widened to fp32 (small) into `widened`.
StoredTensor stored_tensor(const GgufImport& m, const TensorInfo& ti,
                           std::map<std::string, std::vector<float>>& widened) {
  const GgufTensor& t = *m.of.at(ti.name);
  const std::string type = t.type->name;
  if (ti.matrix || type == "F32") return StoredTensor{type, t.data, t.bytes};
  std::vector<float>& w = widened[ti.name];
  w.resize(ti.numel);
  widen_stored(w.data(), t.data, ti.numel, type == "BF16");
  return StoredTensor{"F32", w.data(), w.size() * sizeof(float)};
}

}  // namespace

json gguf_train_record(const GgufImport& m, const std::string& path) {
  json train = {{"imported_from", path},
                {"architecture", m.architecture},
                {"dtype", "GGUF " + m.matrix_types()},
                {"weights", "gguf"}};
  if (m.trained_len > 0) train["seq_len"] = m.trained_len;
  return train;
}

std::string write_gguf_checkpoint(const GgufImport& m, const std::string& run_dir,
                                  const json& train) {
  const ParamLayout layout = make_param_layout(m.config);
  std::map<std::string, std::vector<float>> widened;
  return write_checkpoint_stored(
      run_dir, m.config, train, 0, m.tokenizer, layout,
      [&](const TensorInfo& ti) { return stored_tensor(m, ti, widened); }, 1);
}

bool is_gguf_file(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) return false;
  std::ifstream f(path, std::ios::binary);
  char magic[4] = {};
  return f.read(magic, 4) && std::memcmp(magic, "GGUF", 4) == 0;
}

Checkpoint read_gguf_checkpoint(const std::string& path) {
  struct Source {  // what the checkpoint's tensors point into
    GgufImport m;
    std::map<std::string, std::vector<float>> widened;
  };
  auto src = std::make_shared<Source>(Source{import_gguf(path), {}});
  const GgufImport& m = src->m;
  Checkpoint ck;
  ck.path = path;
  ck.config = m.config;
  ck.train = gguf_train_record(m, std::filesystem::absolute(path).string());
  ck.tokenizer = m.tokenizer;
  const ParamLayout layout = make_param_layout(m.config);
  for (const TensorInfo& ti : layout.tensors) {
    const StoredTensor t = stored_tensor(m, ti, src->widened);
    ck.st.add_view(ti.name, t.dtype, ti.shape, t.data, t.bytes);
    if (ti.name == "wte") weight_type_of_dtype(t.dtype, ck.weights);
  }
  ck.st.hold(std::move(src));
  return ck;
}

}  // namespace alibi
