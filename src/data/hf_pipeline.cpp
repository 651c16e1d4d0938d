#include "data/hf_pipeline.h"

#include <utf8proc.h>

#include <algorithm>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <tuple>

#include "core/error.h"

namespace alibi {

using json = nlohmann::json;

namespace {

// Code point at s[i] (well-formed UTF-8) and its length.
int32_t code_point(std::string_view s, size_t i, size_t* len) {
  utf8proc_int32_t cp = 0;
  const auto n = utf8proc_iterate(reinterpret_cast<const utf8proc_uint8_t*>(s.data() + i),
                                  utf8proc_ssize_t(s.size() - i), &cp);
  *len = n > 0 ? size_t(n) : 1;
  return cp;
}

size_t last_char_start(std::string_view s) {
  size_t i = s.size() - 1;
  while (i > 0 && (uint8_t(s[i]) & 0xC0) == 0x80) --i;
  return i;
}

// Unicode White_Space (Rust regex \s).
bool is_space(int32_t c) {
  return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
         c == 0x205F || c == 0x3000;
}

// Rust regex \w: letters, marks, decimal digits, connector punctuation (and letter numbers).
bool is_word(int32_t c) {
  switch (utf8proc_category(c)) {
    case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LL: case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM: case UTF8PROC_CATEGORY_LO: case UTF8PROC_CATEGORY_MN:
    case UTF8PROC_CATEGORY_MC: case UTF8PROC_CATEGORY_ME: case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_NL: case UTF8PROC_CATEGORY_PC:
      return true;
    default:
      return c == 0x200C || c == 0x200D;  // Join_Control
  }
}

std::string short_dump(const json& v) {
  std::string s = v.dump();
  return s.size() > 80 ? s.substr(0, 77) + "..." : s;
}

bool flag(const json& o, const char* key, bool fallback, const std::string& field,
          const FieldError& err) {
  if (!o.contains(key) || o[key].is_null()) return fallback;
  if (!o[key].is_boolean()) err.fail(field + "." + key, o[key], "true or false");
  return o[key].get<bool>();
}

std::string type_of(const json& o, const std::string& field, const FieldError& err) {
  if (!o.is_object() || !o.contains("type") || !o["type"].is_string())
    err.fail(field, o, "an object with a \"type\"");
  return o["type"].get<std::string>();
}

// A Split/Replace "pattern": {"String": s} (literal) or {"Regex": r}.
std::shared_ptr<Regex> parse_pattern(const json& o, const std::string& field,
                                     const FieldError& err) {
  if (o.is_object() && o.size() == 1 && o.begin().value().is_string()) {
    const std::string v = o.begin().value().get<std::string>();
    if (o.begin().key() == "String") return std::make_shared<Regex>(Regex::escape(v), field);
    if (o.begin().key() == "Regex")
      return std::make_shared<Regex>(v, str_cat("tokenizer file '", err.origin, "': ", field));
  }
  err.fail(field, o, "{\"String\": ...} or {\"Regex\": ...}");
}

}  // namespace

void FieldError::fail(const std::string& field, const json& value,
                      const std::string& expected) const {
  usage_error("tokenizer file '", origin, "': ", field, " is ", short_dump(value), "; expected ",
              expected);
}

std::vector<AddedToken> parse_added_tokens(const json& j, const FieldError& err) {
  if (!j.is_array()) err.fail("added_tokens", j, "an array");
  std::vector<AddedToken> out;
  for (size_t i = 0; i < j.size(); ++i) {
    const json& o = j[i];
    const std::string field = str_cat("added_tokens[", i, "]");
    if (!o.is_object() || !o.contains("content") || !o["content"].is_string())
      err.fail(field, o, "an object with \"id\" and \"content\"");
    if (!o.contains("id") || !o["id"].is_number_unsigned() || o["id"].get<uint64_t>() >= (1u << 30))
      err.fail(field + ".id", o.value("id", json()), "an id in 0..2^30");
    AddedToken a;
    a.content = o["content"].get<std::string>();
    if (a.content.empty()) err.fail(field + ".content", o["content"], "a non-empty string");
    a.id = o["id"].get<int32_t>();
    a.single_word = flag(o, "single_word", false, field, err);
    a.lstrip = flag(o, "lstrip", false, field, err);
    a.rstrip = flag(o, "rstrip", false, field, err);
    a.normalized = flag(o, "normalized", true, field, err);
    a.special = flag(o, "special", false, field, err);
    out.push_back(std::move(a));
  }
  return out;
}

void AddedMatcher::add(const AddedToken* t) {
  auto& list = by_first_[uint8_t(t->content[0])];
  list.push_back(t);
  std::stable_sort(list.begin(), list.end(), [](const AddedToken* a, const AddedToken* b) {
    return a->content.size() > b->content.size();
  });
  empty_ = false;
}

void AddedMatcher::split(std::string_view s,
                         const std::function<void(std::string_view, const AddedToken*)>& f) const {
  size_t start_offset = 0;
  for (size_t i = 0; !empty_ && i < s.size();) {
    const AddedToken* t = nullptr;
    for (const AddedToken* c : by_first_[uint8_t(s[i])])
      if (s.compare(i, c->content.size(), c->content) == 0) {
        t = c;
        break;
      }
    if (!t) {
      ++i;
      continue;
    }
    size_t start = i, stop = i + t->content.size();
    i = stop;  // the next match starts after this one, whatever becomes of it
    size_t len = 0;
    if (t->single_word) {
      const bool word_before =
          start > 0 && is_word(code_point(s, last_char_start(s.substr(0, start)), &len));
      const bool word_after = stop < s.size() && is_word(code_point(s, stop, &len));
      if (word_before || word_after) continue;
    }
    if (t->lstrip) {
      size_t b = start;
      while (b > 0) {
        const size_t c = last_char_start(s.substr(0, b));
        if (!is_space(code_point(s, c, &len))) break;
        b = c;
      }
      start = std::max(b, start_offset);
    }
    if (t->rstrip)
      while (stop < s.size() && is_space(code_point(s, stop, &len))) stop += len;
    if (start_offset < start) f(s.substr(start_offset, start - start_offset), nullptr);
    f(s.substr(start, stop - start), t);
    start_offset = stop;
  }
  if (start_offset < s.size()) f(s.substr(start_offset), nullptr);
}

std::string Normalizer::apply(const std::string& s) const {
  if (s.empty()) return s;
  switch (kind) {
    case prepend: return text + s;
    case replace: {
      std::string out;
      size_t last = 0;
      pattern->find_all(s, [&](size_t b, size_t e) {
        out.append(s, last, b - last);
        out += text;
        last = e;
      });
      return out.append(s, last, std::string::npos);
    }
    default: {
      const int opts = UTF8PROC_STABLE |
                       (kind == nfc || kind == nfkc ? UTF8PROC_COMPOSE : UTF8PROC_DECOMPOSE) |
                       (kind == nfkc || kind == nfkd ? UTF8PROC_COMPAT : 0);
      utf8proc_uint8_t* dst = nullptr;
      const auto n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(s.data()),
                                  utf8proc_ssize_t(s.size()), &dst, utf8proc_option_t(opts));
      ALIBI_CHECK(n >= 0, "utf8proc_map: ", utf8proc_errmsg(n));
      std::string out(reinterpret_cast<char*>(dst), size_t(n));
      std::free(dst);
      return out;
    }
  }
}

std::vector<Normalizer> parse_normalizers(const json& j, const std::string& field,
                                          const FieldError& err) {
  std::vector<Normalizer> out;
  if (j.is_null()) return out;
  const std::string type = type_of(j, field, err);
  static const std::pair<const char*, Normalizer::Kind> forms[] = {{"NFC", Normalizer::nfc},
                                                                   {"NFD", Normalizer::nfd},
                                                                   {"NFKC", Normalizer::nfkc},
                                                                   {"NFKD", Normalizer::nfkd}};
  for (const auto& [name, kind] : forms)
    if (type == name) return {Normalizer{kind, "", nullptr}};
  if (type == "Sequence") {
    const json& list = j.value("normalizers", json());
    if (!list.is_array()) err.fail(field + ".normalizers", list, "an array");
    for (size_t i = 0; i < list.size(); ++i)
      for (auto& n : parse_normalizers(list[i], str_cat(field, ".normalizers[", i, "]"), err))
        out.push_back(std::move(n));
    return out;
  }
  if (type == "Prepend" && j.contains("prepend") && j["prepend"].is_string())
    return {Normalizer{Normalizer::prepend, j["prepend"].get<std::string>(), nullptr}};
  if (type == "Replace" && j.contains("content") && j["content"].is_string())
    return {Normalizer{Normalizer::replace, j["content"].get<std::string>(),
                       parse_pattern(j.value("pattern", json()), field + ".pattern", err)}};
  err.fail(field + ".type", j["type"], "one of NFC, NFD, NFKC, NFKD, Sequence, Prepend, Replace "
           "(with their fields), or a null normalizer");
}

void PreTokenizer::split(std::string_view s, const std::function<void(std::string_view)>& f) const {
  std::string prefixed;
  if (byte_level) {
    if (add_prefix_space && s[0] != ' ') {
      prefixed.reserve(s.size() + 1);
      prefixed.push_back(' ');
      prefixed.append(s);
      s = prefixed;
    }
    if (!pattern) return f(s);
  }
  std::vector<std::tuple<size_t, size_t, bool>> m;  // (start, end, is_match), covering s
  size_t prev = 0;
  pattern->find_all(s, [&](size_t b, size_t e) {
    if (prev != b) m.emplace_back(prev, b, false);
    m.emplace_back(b, e, true);
    prev = e;
  });
  if (prev != s.size() || s.empty()) m.emplace_back(prev, s.size(), false);
  if (invert)
    for (auto& x : m) std::get<2>(x) = !std::get<2>(x);
  std::vector<std::pair<size_t, size_t>> pieces;  // HF NormalizedString::split, behaviours
  bool previous = false;
  auto fold = [&](size_t b, size_t e, bool match) {
    const bool join = behavior == contiguous ? match == previous
                      : behavior == merged_with_previous ? match && !previous
                                                         : false;
    if (join && !pieces.empty()) pieces.back().second = e;
    else pieces.emplace_back(b, e);
    previous = match;
  };
  if (behavior == merged_with_next) {
    for (auto it = m.rbegin(); it != m.rend(); ++it) {
      const auto [b, e, match] = *it;
      if (match && !previous && !pieces.empty()) pieces.back().first = b;
      else pieces.emplace_back(b, e);
      previous = match;
    }
    std::reverse(pieces.begin(), pieces.end());
  } else {
    for (const auto& [b, e, match] : m) {
      if (behavior == removed && match) continue;
      if (behavior == removed || behavior == isolated) pieces.emplace_back(b, e);
      else fold(b, e, match);
    }
  }
  for (const auto& [b, e] : pieces)
    if (e > b) f(s.substr(b, e - b));
}

std::vector<PreTokenizer> parse_pre_tokenizers(const json& j, const std::string& field,
                                               const FieldError& err) {
  std::vector<PreTokenizer> out;
  if (j.is_null()) return out;
  const std::string type = type_of(j, field, err);
  if (type == "Sequence") {
    const json& list = j.value("pretokenizers", json());
    if (!list.is_array()) err.fail(field + ".pretokenizers", list, "an array");
    for (size_t i = 0; i < list.size(); ++i) {
      const std::string f = str_cat(field, ".pretokenizers[", i, "]");
      if (!out.empty() && out.back().byte_level)
        err.fail(f + ".type", list[i].value("type", json()),
                 "nothing after a ByteLevel pre-tokenizer (alibi supports ByteLevel last)");
      for (auto& p : parse_pre_tokenizers(list[i], f, err)) out.push_back(std::move(p));
    }
    return out;
  }
  PreTokenizer p;
  if (type == "ByteLevel") {
    p.byte_level = true;
    p.add_prefix_space = flag(j, "add_prefix_space", true, field, err);
    if (flag(j, "use_regex", true, field, err))
      p.pattern = std::make_shared<Regex>(kByteLevelPattern, "ByteLevel");
    return {p};
  }
  if (type == "Split") {
    p.pattern = parse_pattern(j.value("pattern", json()), field + ".pattern", err);
    static const std::pair<const char*, PreTokenizer::Behavior> names[] = {
        {"Removed", PreTokenizer::removed},
        {"Isolated", PreTokenizer::isolated},
        {"MergedWithPrevious", PreTokenizer::merged_with_previous},
        {"MergedWithNext", PreTokenizer::merged_with_next},
        {"Contiguous", PreTokenizer::contiguous}};
    const json& b = j.value("behavior", json());
    auto it = std::find_if(std::begin(names), std::end(names),
                           [&](const auto& n) { return b.is_string() && b == n.first; });
    if (it == std::end(names))
      err.fail(field + ".behavior", b,
               "Removed, Isolated, MergedWithPrevious, MergedWithNext or Contiguous");
    p.behavior = it->second;
    p.invert = flag(j, "invert", false, field, err);
    return {p};
  }
  err.fail(field + ".type", j["type"],
           "one of ByteLevel, Split, Sequence, or a null pre_tokenizer");
}

std::vector<TemplateItem> parse_post_processor(const json& j, const std::string& field,
                                               const FieldError& err, int vocab) {
  std::vector<TemplateItem> out;
  if (j.is_null()) return out;
  const std::string type = type_of(j, field, err);
  auto id_in_vocab = [&](const json& v, const std::string& f) {
    if (!v.is_number_unsigned() || v.get<uint64_t>() >= uint64_t(vocab))
      err.fail(f, v, str_cat("an id below the vocab size ", vocab));
    return v.get<int32_t>();
  };
  if (type == "ByteLevel") return out;  // offsets only
  if (type == "Sequence") {
    const json& list = j.value("processors", json());
    if (!list.is_array()) err.fail(field + ".processors", list, "an array");
    for (size_t i = 0; i < list.size(); ++i) {
      const std::string f = str_cat(field, ".processors[", i, "]");
      auto items = parse_post_processor(list[i], f, err, vocab);
      if (!items.empty() && !out.empty())
        err.fail(f, list[i], "at most one processor that adds tokens");
      if (!items.empty()) out = std::move(items);
    }
    return out;
  }
  if (type == "BertProcessing" || type == "RobertaProcessing") {  // [cls] A [sep]
    for (const char* key : {"cls", "sep"}) {
      const json& v = j.value(key, json());
      if (!v.is_array() || v.size() != 2) err.fail(field + "." + key, v, "[token, id]");
      out.push_back({false, {id_in_vocab(v[1], field + "." + key + "[1]")}});
      if (out.size() == 1) out.push_back({true, {}});
    }
    return out;
  }
  if (type == "TemplateProcessing") {
    const json& single = j.value("single", json());
    const json& specials = j.value("special_tokens", json::object());
    if (!single.is_array()) err.fail(field + ".single", single, "an array");
    for (size_t i = 0; i < single.size(); ++i) {
      const json& item = single[i];
      const std::string f = str_cat(field, ".single[", i, "]");
      if (item.is_object() && item.contains("Sequence")) {
        if (item["Sequence"].value("id", "") != "A")
          err.fail(f + ".Sequence.id", item["Sequence"].value("id", json()), "\"A\"");
        out.push_back({true, {}});
      } else if (item.is_object() && item.contains("SpecialToken") &&
                 item["SpecialToken"].contains("id")) {
        const json& name = item["SpecialToken"]["id"];
        if (!name.is_string() || !specials.contains(name.get<std::string>()))
          err.fail(f + ".SpecialToken.id", name, "a name listed in special_tokens");
        const json& ids = specials[name.get<std::string>()].value("ids", json());
        if (!ids.is_array())
          err.fail(field + ".special_tokens." + name.get<std::string>() + ".ids", ids,
                   "an array of ids");
        TemplateItem t;
        for (const auto& id : ids) t.ids.push_back(id_in_vocab(id, field + ".special_tokens ids"));
        out.push_back(std::move(t));
      } else {
        err.fail(f, item, "{\"SpecialToken\": ...} or {\"Sequence\": ...}");
      }
    }
    return out;
  }
  err.fail(field + ".type", j["type"], "one of ByteLevel, TemplateProcessing, BertProcessing, "
           "RobertaProcessing, Sequence, or a null post_processor");
}

}  // namespace alibi
