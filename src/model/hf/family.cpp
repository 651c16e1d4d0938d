// What every family description shares (model/hf/family.h): config.json access, the tensor
// walk and the round trip that decides whether a family holds a model.
#include "model/hf/family.h"

#include <charconv>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <set>

#include "core/io.h"

namespace fs = std::filesystem;

namespace alibi::hf {

ConfigJson ConfigJson::read(const std::string& dir) {
  const std::string path = (fs::path(dir) / "config.json").string();
  if (!fs::exists(path))
    usage_error("'", dir, "' has no config.json; expected a Hugging Face model folder");
  try {
    return ConfigJson(path, json::parse(read_file(path, "model config")));
  } catch (const UsageError&) {
    throw;
  } catch (const std::exception& e) {
    usage_error(path, ": not JSON (", e.what(), ")");
  }
}

void ConfigJson::refuse(const std::string& key, const std::string& why) const {
  const json* v = &j_;
  std::string text = "(absent)";
  for (size_t start = 0;;) {  // dotted keys reach into objects (attn_config.qk_ln)
    const size_t dot = key.find('.', start);
    const std::string part = key.substr(start, dot == std::string::npos ? dot : dot - start);
    if (!v->is_object() || !v->contains(part)) break;
    v = &v->at(part);
    if (dot == std::string::npos) {
      text = v->dump();
      break;
    }
    start = dot + 1;
  }
  usage_error(path_, ": field '", key, "' = ", text, " ", why);
}

int64_t their_row(Rows how, int64_t r, int64_t rows, int HS) {
  if (how == Rows::same) return r;
  const int64_t C = rows / 3, j = r / C, h = r % C / HS, d = r % HS;
  return (h * 3 + j) * HS + d;
}

namespace {

std::string with_layer(const std::string& pattern, int i) {
  const size_t at = pattern.find("{i}");
  return at == std::string::npos
             ? pattern
             : pattern.substr(0, at) + std::to_string(i) + pattern.substr(at + 3);
}

}  // namespace

std::vector<Mapped> map_tensors(const Family& f, const ParamLayout& layout, int layers) {
  std::map<std::string, std::pair<std::string, Rows>> of;  // by our name
  for (const TensorName& t : f.tensors) {
    const bool per_layer = std::string(t.ours).find("{i}") != std::string::npos;
    for (int i = 0; i < (per_layer ? layers : 1); ++i)
      of[with_layer(t.ours, i)] = {with_layer(t.theirs, i), t.rows};
  }
  of["lm_head.w"] = {"lm_head.weight", Rows::same};
  std::vector<Mapped> out;
  for (const TensorInfo& t : layout.tensors) {
    auto it = of.find(t.name);
    ALIBI_CHECK(it != of.end(), f.name, " names no tensor for our ", t.name);
    out.push_back({&t, it->second.first, it->second.second});
  }
  return out;
}

std::string their_name(const Family& f, const std::string& ours) {
  for (const TensorName& t : f.tensors)
    if (ours == t.ours) return t.theirs;
  ALIBI_CHECK(false, f.name, " names no tensor for our ", ours);
  return "";
}

Read read_config(const Family& f, const ConfigJson& c, int vocab) {
  Read r;
  r.config.pos = PosKind::alibi;
  r.config.tied_head = c.get_or("tie_word_embeddings", true);
  f.read(c, r);
  r.config.vocab = vocab;
  r.config.validate();
  return r;
}

json write_config(const Family& f, const ModelConfig& c, int max_seq_len) {
  json j = f.write(c, max_seq_len);
  j["architectures"] = json::array({f.architecture});
  j["model_type"] = f.model_type;
  j["vocab_size"] = c.vocab;
  j["tie_word_embeddings"] = c.tied_head;
  j["torch_dtype"] = "float32";
  return j;
}

std::string export_mismatch(const Family& f, const ModelConfig& c) {
  // Fields of the other position methods and of training only: an ALiBi model runs the same
  // whatever they hold. The training length does not change the model either.
  static const std::set<std::string> kIgnored = {"init", "t5_lr_scale", "t5_buckets",
                                                 "t5_max_distance", "max_positions"};
  constexpr int kAnyLength = 1;
  ModelConfig back;
  try {
    const ConfigJson j(str_cat(f.title, "'s config.json"), write_config(f, c, kAnyLength));
    back = read_config(f, j, c.vocab).config;
  } catch (const UsageError& e) {
    return str_cat(f.title, " cannot hold it (", e.what(), ")");
  }
  const json ours = c.to_json(), theirs = back.to_json();
  std::string why;
  for (const auto& [key, v] : ours.items())
    if (!kIgnored.count(key) && theirs.at(key) != v)
      why += str_cat(why.empty() ? "its " : ", ", key, " is ", v.dump(), " where ",
                     why.empty() ? f.title : "it", " needs ", theirs.at(key).dump());
  return why;
}

double decimal(float x) {
  char buf[32];
  const auto r = std::to_chars(buf, buf + sizeof(buf), x);
  return std::strtod(std::string(buf, r.ptr).c_str(), nullptr);
}

}  // namespace alibi::hf
