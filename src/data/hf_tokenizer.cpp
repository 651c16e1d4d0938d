// tokenizer.json, applied as Hugging Face `tokenizers` applies it (tokenizer/mod.rs encode):
//  1. added tokens that are not `normalized` are cut out of the raw text (leftmost-longest);
//  2. each other piece is normalized, then the `normalized` added tokens are cut out of it;
//  3. the pre-tokenizers split each remaining piece into words (empty words are dropped);
//  4. the BPE model turns each word into ids; 5. the post-processor adds BOS/EOS if asked.
// A ByteLevel pre-tokenizer (which must come last) maps each byte to a printable character
// before BPE; here the BPE model works on the raw bytes with a vocabulary mapped back to bytes,
// which gives the same ids without building the mapped strings.
#include "data/hf_tokenizer.h"

#include <malloc.h>
#include <utf8proc.h>

#include <algorithm>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <unordered_map>

#include "core/error.h"
#include "core/utf8.h"
#include "data/hf_bpe.h"
#include "data/hf_pipeline.h"

namespace alibi {

struct HfTokenizer::Impl {
  std::string origin;
  std::vector<AddedToken> added;
  AddedMatcher raw_matcher, normalized_matcher;
  std::vector<Normalizer> normalizers;
  std::vector<PreTokenizer> pretokenizers;
  std::unique_ptr<BpeModel> model;
  std::vector<TemplateItem> single;  // the post-processor's template; empty: add nothing
  bool byte_level_decoder = false;
  std::unordered_map<int32_t, std::string> added_text;  // id -> content, as written
  std::vector<uint8_t> special;  // by id; its size is the vocab size
  std::string_view token_of(int32_t id) const {
    if (auto it = added_text.find(id); it != added_text.end()) return it->second;
    return id < model->size() ? model->token(id) : std::string_view();
  }
  bool cuttable = false;

  std::string normalize(std::string_view s) const {
    std::string out(s);
    for (const auto& n : normalizers) out = n.apply(out);
    return out;
  }
  void pre_tokenize(size_t stage, std::string_view piece, std::vector<int32_t>& out,
                    BpeModel::Cache& cache) const {
    if (piece.empty()) return;
    if (stage == pretokenizers.size()) return model->tokenize(piece, out, cache);
    pretokenizers[stage].split(piece, [&](std::string_view word) {
      pre_tokenize(stage + 1, word, out, cache);
    });
  }
  std::vector<int32_t> encode(std::string_view text, bool add_special) const {
    const std::string s = utf8_lossy(text);
    std::vector<int32_t> ids;
    BpeModel::Cache cache;
    raw_matcher.split(s, [&](std::string_view piece, const AddedToken* tok) {
      if (tok) return ids.push_back(tok->id);
      const std::string n = normalize(piece);
      normalized_matcher.split(n, [&](std::string_view part, const AddedToken* t) {
        if (t) return ids.push_back(t->id);
        pre_tokenize(0, part, ids, cache);
      });
    });
    return add_special ? with_template(std::move(ids)) : ids;
  }
  std::vector<int32_t> with_template(std::vector<int32_t> ids) const {
    if (single.empty()) return ids;
    std::vector<int32_t> out;
    for (const auto& item : single) {
      if (item.sequence) out.insert(out.end(), ids.begin(), ids.end());
      else out.insert(out.end(), item.ids.begin(), item.ids.end());
    }
    return out;
  }
  // Whether cutting where cut_ok allows keeps the ids on texts that exercise the rule (and
  // the cases next to it); checked once per file.
  bool cuts_keep_ids() const {
    static const char* probes[] = {
        "Hello world.\nThe end, said she.\nA b\n\nC",
        "x,\nYes  \n\nNo!\nok 12\nZebra 3.5\nq",
        "a\"\nB)\nc;\nD:\nE]\nf\nG--\nh'\ns\nt'll\nre",
        "caf\xC3\xA9\ne\xCC\x81\nLa\xE2\x80\xA6\nM  \nN\t\nO",
        " = Title = \n \n Word one , two . \n x  \n Next\t\n Tab\n\n Blank \n  Two\n 3 x\n @-@ y",
    };
    for (const char* probe : probes) {
      const std::string_view s(probe);
      const auto whole = encode(s, false);
      for (size_t p = 0; p < s.size(); ++p) {
        if (!cut_ok(s, p)) continue;
        auto parts = encode(s.substr(0, p), false);
        const auto rest = encode(s.substr(p), false);
        parts.insert(parts.end(), rest.begin(), rest.end());
        if (parts != whole) return false;
      }
    }
    return true;
  }
  // After a "\n" and before an ASCII letter that follows a printable ASCII character ("x\nA"),
  // or before a space and a letter ("\n A", as WikiText's lines start).
  bool cut_ok(std::string_view text, size_t p) const {
    auto letter = [&](size_t i) {
      return i < text.size() &&
             ((text[i] >= 'A' && text[i] <= 'Z') || (text[i] >= 'a' && text[i] <= 'z'));
    };
    if (p < 2 || p >= text.size() || text[p - 1] != '\n') return false;
    return (letter(p) && text[p - 2] > ' ' && text[p - 2] <= '~') ||
           (text[p] == ' ' && letter(p + 1));
  }
};

using json = nlohmann::json;

HfTokenizer::HfTokenizer() : impl_(std::make_unique<Impl>()) {}
HfTokenizer::~HfTokenizer() = default;

bool HfTokenizer::looks_like(std::string_view text) {
  const json j = json::parse(text, nullptr, false);
  return j.is_object() && j.contains("model") && j["model"].is_object();
}

std::shared_ptr<const HfTokenizer> HfTokenizer::load(std::string_view text,
                                                     const std::string& origin) {
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded())
    usage_error("tokenizer file '", origin, "' is not valid JSON (", text.size(),
                " bytes); expected a Hugging Face tokenizer.json");
  if (!j.is_object() || !j.contains("model") || !j["model"].is_object())
    usage_error("tokenizer file '", origin, "' has no \"model\" object; expected a Hugging Face "
                "tokenizer.json");
  std::shared_ptr<HfTokenizer> tok(new HfTokenizer());
  Impl& t = *tok->impl_;
  t.origin = origin;
  const FieldError err{origin};

  for (const char* key : {"truncation", "padding"})
    if (j.contains(key) && !j[key].is_null())
      err.fail(key, j[key], "null (alibi encodes whole texts: no truncation or padding)");

  if (j.contains("normalizer"))
    t.normalizers = parse_normalizers(j["normalizer"], "normalizer", err);
  if (j.contains("pre_tokenizer"))
    t.pretokenizers = parse_pre_tokenizers(j["pre_tokenizer"], "pre_tokenizer", err);
  const bool byte_level = !t.pretokenizers.empty() && t.pretokenizers.back().byte_level;

  const json& m = j["model"];
  if (m.contains("type") && m["type"] != "BPE") err.fail("model.type", m["type"], "\"BPE\"");
  t.model = std::make_unique<BpeModel>(m, byte_level, origin);
  int32_t vocab = t.model->size();

  if (j.contains("added_tokens") && !j["added_tokens"].is_null()) {
    t.added = parse_added_tokens(j["added_tokens"], err);
    for (auto& a : t.added) {
      const int32_t in_model = t.model->find(a.content);
      if (in_model >= 0 && in_model != a.id)
        err.fail(str_cat("added_tokens (content '", a.content, "').id"), a.id,
                 str_cat(in_model, ", the id the model gives it"));
      vocab = std::max(vocab, a.id + 1);
      t.added_text[a.id] = a.content;
    }
  }
  t.special.assign(size_t(vocab), 0);
  for (auto& a : t.added) {
    if (a.special) t.special[size_t(a.id)] = 1;
    if (a.normalized) a.content = t.normalize(a.content);
    (a.normalized ? t.normalized_matcher : t.raw_matcher).add(&a);
  }

  if (j.contains("post_processor"))
    t.single = parse_post_processor(j["post_processor"], "post_processor", err, vocab);
  if (j.contains("decoder") && !j["decoder"].is_null()) {
    const json& d = j["decoder"];
    if (!d.is_object() || d.value("type", "") != "ByteLevel")
      err.fail("decoder.type", d.is_object() ? d.value("type", json()) : d,
               "\"ByteLevel\" or null");
    t.byte_level_decoder = true;
  }

  bool cuttable = true;
  for (const auto& a : t.added) cuttable = cuttable && a.content.find('\n') == std::string::npos;
  for (const auto& n : t.normalizers) cuttable = cuttable && n.is_unicode_form();
  for (const auto& p : t.pretokenizers) cuttable = cuttable && !p.add_prefix_space;
  t.cuttable = cuttable && t.cuts_keep_ids();
  j = json();
  ::malloc_trim(0);  // give back what the JSON document took while parsing
  return tok;
}

std::vector<int32_t> HfTokenizer::add_special_tokens(std::vector<int32_t> ids) const {
  return impl_->with_template(std::move(ids));
}

int HfTokenizer::vocab() const { return int(impl_->special.size()); }

std::optional<int32_t> HfTokenizer::leading_special() const {
  const auto& t = impl_->single;
  if (t.empty() || t[0].sequence || t[0].ids.size() != 1) return std::nullopt;
  return t[0].ids[0];
}

std::optional<int32_t> HfTokenizer::trailing_special() const {
  const auto& t = impl_->single;
  if (t.empty() || t.back().sequence || t.back().ids.size() != 1) return std::nullopt;
  return t.back().ids[0];
}

std::vector<int32_t> HfTokenizer::encode(std::string_view text, bool add_special_tokens) const {
  return impl_->encode(text, add_special_tokens);
}

std::string HfTokenizer::decode(std::span<const int32_t> ids, bool skip_special) const {
  const Impl& t = *impl_;
  std::string out, bytes;
  bool first = true;
  for (int32_t id : ids) {
    if (id < 0 || id >= vocab() || t.token_of(id).empty())
      usage_error("token id ", id, " is not in tokenizer '", t.origin, "' (", vocab(), " ids)");
    if (skip_special && t.special[size_t(id)]) continue;
    const std::string_view tok = t.token_of(id);
    if (!t.byte_level_decoder) {  // no decoder: HF joins the tokens with spaces
      if (!first) out += ' ';
      out += tok;
    } else {
      out += byte_level_to_bytes(tok, &bytes) ? bytes : tok;
    }
    first = false;
  }
  return out;
}

std::string HfTokenizer::token(int32_t id) const {
  return id >= 0 && id < vocab() ? std::string(impl_->token_of(id)) : std::string();
}

bool HfTokenizer::is_special(int32_t id) const {
  return id >= 0 && id < vocab() && impl_->special[size_t(id)];
}

size_t HfTokenizer::cut_at_or_after(std::string_view text, size_t from) const {
  if (!impl_->cuttable) return text.size();
  for (size_t pos = std::max<size_t>(from, 2) - 1;;) {
    const size_t nl = text.find('\n', pos);
    if (nl == std::string_view::npos) return text.size();
    if (impl_->cut_ok(text, nl + 1)) return nl + 1;
    pos = nl + 1;
  }
}

}  // namespace alibi
