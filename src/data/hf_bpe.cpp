#include "data/hf_bpe.h"

#include <nlohmann/json.hpp>
#include <algorithm>
#include <queue>

#include "core/error.h"
#include "core/rng.h"

namespace alibi {

namespace {

std::string utf8_of(uint32_t cp) {
  std::string s;
  if (cp < 0x80) {
    s += char(cp);
  } else if (cp < 0x800) {
    s += char(0xC0 | (cp >> 6));
    s += char(0x80 | (cp & 0x3F));
  } else {
    s += char(0xE0 | (cp >> 12));
    s += char(0x80 | ((cp >> 6) & 0x3F));
    s += char(0x80 | (cp & 0x3F));
  }
  return s;
}

size_t utf8_len(char lead) {
  const auto c = uint8_t(lead);
  return c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
}

uint64_t pair_key(int32_t a, int32_t b) { return (uint64_t(uint32_t(a)) << 32) | uint32_t(b); }

struct Symbol {
  int32_t id, prev, next, len;
};

struct Merge {
  int32_t rank, pos, new_id;
  bool operator>(const Merge& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
};

}  // namespace

const std::array<std::string, 256>& byte_level_chars() {
  static const std::array<std::string, 256> table = [] {
    std::array<std::string, 256> t;
    uint32_t n = 0;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
      t[b] = utf8_of(printable ? uint32_t(b) : 256 + n++);
    }
    return t;
  }();
  return table;
}

bool byte_level_to_bytes(std::string_view chars, std::string* bytes) {
  static const std::unordered_map<std::string, char> inverse = [] {
    std::unordered_map<std::string, char> m;
    for (int b = 0; b < 256; ++b) m.emplace(byte_level_chars()[b], char(b));
    return m;
  }();
  bytes->clear();
  for (size_t i = 0; i < chars.size();) {
    const size_t len = utf8_len(chars[i]);
    auto it = inverse.find(std::string(chars.substr(i, len)));
    if (it == inverse.end()) return false;
    *bytes += it->second;
    i += len;
  }
  return true;
}

namespace {

// "tokenizer file '<origin>': model.<field> <why...>"
template <typename... Why>
[[noreturn]] void bad_model(const std::string& origin, const std::string& field,
                            const Why&... why) {
  usage_error("tokenizer file '", origin, "': model.", field, " ", why...);
}

}  // namespace

BpeModel::BpeModel(const nlohmann::json& m, bool byte_level, const std::string& origin)
    : byte_level_(byte_level) {
  auto opt_string = [&](const char* key) -> std::string {
    if (!m.contains(key) || m[key].is_null()) return "";
    if (!m[key].is_string())
      bad_model(origin, key, "is ", m[key].dump(), "; expected a string or null");
    return m[key].get<std::string>();
  };
  auto opt_bool = [&](const char* key) {
    if (!m.contains(key) || m[key].is_null()) return false;
    if (!m[key].is_boolean())
      bad_model(origin, key, "is ", m[key].dump(), "; expected true or false");
    return m[key].get<bool>();
  };
  if (m.contains("dropout") && !m["dropout"].is_null() && m["dropout"] != 0.0)
    bad_model(origin, "dropout", "is ", m["dropout"].dump(),
              "; expected null (dropout is for training only)");
  fuse_unk_ = opt_bool("fuse_unk");
  byte_fallback_ = opt_bool("byte_fallback");
  ignore_merges_ = opt_bool("ignore_merges");
  prefix_ = opt_string("continuing_subword_prefix");
  suffix_ = opt_string("end_of_word_suffix");
  const std::string unk = opt_string("unk_token");

  if (!m.contains("vocab") || !m["vocab"].is_object())
    bad_model(origin, "vocab", "is missing or not an object; expected {\"token\": id, ...}");
  read_vocab(m["vocab"], origin);
  for (int b = 0; b < 256; ++b) byte_id_[size_t(b)] = find(byte_level_chars()[size_t(b)]);
  if (byte_level_)
    for (const std::string* affix : {&prefix_, &suffix_})
      if (std::string bytes; !byte_level_to_bytes(*affix, &bytes))
        bad_model(origin, affix == &prefix_ ? "continuing_subword_prefix" : "end_of_word_suffix",
                  "'", *affix,
                  "' is not made of ByteLevel characters; expected one a ByteLevel word can hold");
  if (!unk.empty()) {
    unk_ = find(unk);
    if (unk_ < 0) bad_model(origin, "unk_token", "'", unk, "' is not in the vocab");
  }
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof name, "<0x%02X>", b);
    byte_token_[size_t(b)] = find(name);
  }
  if (!m.contains("merges") || !m["merges"].is_array())
    bad_model(origin, "merges",
              "is missing or not an array; expected [\"a b\", ...] or [[\"a\", \"b\"], ...]");
  read_merges(m["merges"], origin);
}

// The tokens in id order in one arena, with their offsets and a hash table by text.
void BpeModel::read_vocab(const nlohmann::json& vocab, const std::string& origin) {
  std::vector<std::pair<int32_t, const std::string*>> by_id;
  by_id.reserve(vocab.size());
  for (const auto& [token, id_json] : vocab.items()) {
    if (!id_json.is_number_unsigned() || id_json.get<uint64_t>() >= (1u << 30))
      bad_model(origin, "vocab", "gives token '", token, "' the id ", id_json.dump(),
                "; expected 0..2^30");
    by_id.emplace_back(id_json.get<int32_t>(), &token);
  }
  // Ties (a duplicated id, refused below) by text, not by address: the error names the same two.
  std::sort(by_id.begin(), by_id.end(), [](const auto& a, const auto& b) {
    return a.first != b.first ? a.first < b.first : *a.second < *b.second;
  });
  const size_t V = by_id.empty() ? 0 : size_t(by_id.back().first) + 1;
  offset_.assign(V + 1, 0);
  for (size_t i = 0, id = 0; id < V; ++id) {  // offsets, then the arena in id order
    offset_[id] = uint32_t(arena_.size());
    for (; i < by_id.size() && size_t(by_id[i].first) == id; ++i) {
      if (offset_[id] != arena_.size())
        // token(id) would read offset_[id + 1], not set yet: the first holder is the arena's tail.
        bad_model(origin, "vocab", "gives the id ", id, " to both '",
                  std::string_view(arena_).substr(offset_[id]), "' and '", *by_id[i].second, "'");
      arena_ += *by_id[i].second;
    }
    if (arena_.size() >= (uint64_t(1) << 32))
      bad_model(origin, "vocab", "holds more than 4 GiB of token text");
  }
  offset_[V] = uint32_t(arena_.size());
  size_t cap = 16;
  while (cap < 2 * by_id.size()) cap *= 2;
  slots_.assign(cap, -1);
  for (const auto& [id, tok] : by_id) {
    size_t h = hash_bytes(*tok) & (cap - 1);
    while (slots_[h] >= 0) h = (h + 1) & (cap - 1);
    slots_[h] = id;
  }
}

// Each merge "a b" (or ["a", "b"]) by its pair of ids, with its rank and the id it makes.
void BpeModel::read_merges(const nlohmann::json& merges, const std::string& origin) {
  size_t mcap = 16;
  while (mcap * 7 < merges.size() * 10) mcap *= 2;  // load factor at most 0.7
  merges_.assign(mcap, MergeSlot{});
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const auto& e = merges[rank];
    const std::string field = str_cat("merges[", rank, "]");
    std::string a, b;
    if (e.is_string()) {
      const std::string s = e.get<std::string>();
      const size_t sp = s.find(' ');
      if (sp == std::string::npos || s.find(' ', sp + 1) != std::string::npos)
        bad_model(origin, field, "is '", s, "'; expected two tokens separated by one space");
      a = s.substr(0, sp);
      b = s.substr(sp + 1);
    } else if (e.is_array() && e.size() == 2 && e[0].is_string() && e[1].is_string()) {
      a = e[0].get<std::string>();
      b = e[1].get<std::string>();
    } else {
      bad_model(origin, field, "is ", e.dump(), "; expected \"a b\" or [\"a\", \"b\"]");
    }
    const int32_t ia = find(a), ib = find(b);
    if (ia < 0 || ib < 0)
      bad_model(origin, field, "names '", ia < 0 ? a : b, "', which is not in the vocab");
    if (b.size() < prefix_.size())
      bad_model(origin, field, "has '", b, "', shorter than continuing_subword_prefix");
    const std::string merged = a + b.substr(prefix_.size());
    const int32_t id = find(merged);
    if (id < 0) bad_model(origin, field, "makes '", merged, "', which is not in the vocab");
    const uint64_t key = pair_key(ia, ib);
    size_t h = mix64(key) & (merges_.size() - 1);
    while (merges_[h].pair != key && merges_[h].pair != ~uint64_t(0))
      h = (h + 1) & (merges_.size() - 1);
    merges_[h] = {key, int32_t(rank), id};  // a repeated pair: the later rank, as HF
  }
}

int32_t BpeModel::find(std::string_view tok) const {
  for (size_t h = hash_bytes(tok) & (slots_.size() - 1);; h = (h + 1) & (slots_.size() - 1)) {
    if (slots_[h] < 0) return -1;
    if (token(slots_[h]) == tok) return slots_[h];
  }
}

int32_t BpeModel::lookup(std::string_view key) const {
  if (!byte_level_) return find(key);
  if (key.size() == 1) return byte_id_[uint8_t(key[0])];
  std::string chars;
  for (char c : key) chars += byte_level_chars()[uint8_t(c)];
  return find(chars);
}

const BpeModel::MergeSlot* BpeModel::find_merge(int32_t a, int32_t b) const {
  const uint64_t key = pair_key(a, b);
  for (size_t h = mix64(key) & (merges_.size() - 1);; h = (h + 1) & (merges_.size() - 1)) {
    if (merges_[h].pair == key) return &merges_[h];
    if (merges_[h].pair == ~uint64_t(0)) return nullptr;
  }
}

void BpeModel::tokenize(std::string_view word, std::vector<int32_t>& out, Cache& cache) const {
  if (word.empty()) return;
  if (ignore_merges_) {
    if (int32_t id = lookup(word); id >= 0) {
      out.push_back(id);
      return;
    }
  }
  constexpr size_t kMaxCachedWord = 256;  // HF's MAX_LENGTH
  if (word.size() >= kMaxCachedWord) return merge_word(word, out);
  auto [it, fresh] = cache.try_emplace(std::string(word));
  if (fresh) merge_word(word, it->second);
  out.insert(out.end(), it->second.begin(), it->second.end());
}

void BpeModel::merge_word(std::string_view w, std::vector<int32_t>& out) const {
  std::vector<Symbol> sym;
  sym.reserve(w.size());
  int32_t unk = -1, unk_len = 0;  // a pending (possibly fused) unknown symbol
  auto add = [&](int32_t id, int32_t len) {
    const auto n = int32_t(sym.size());
    sym.push_back({id, n - 1, -1, len});
    if (n > 0) sym[size_t(n - 1)].next = n;
  };
  std::string key;  // the symbol as the file spells it: prefix, character, suffix
  for (size_t i = 0; i < w.size();) {
    const size_t len = byte_level_ ? 1 : utf8_len(w[i]);
    const std::string_view c = w.substr(i, len);
    const bool first = i == 0, last = i + len >= w.size();
    i += len;
    int32_t id;
    if (byte_level_ && (first || prefix_.empty()) && (!last || suffix_.empty())) {
      id = byte_id_[uint8_t(c[0])];
      key = byte_level_chars()[uint8_t(c[0])];
    } else {
      key.assign(first ? "" : prefix_);
      key.append(byte_level_ ? std::string_view(byte_level_chars()[uint8_t(c[0])]) : c);
      key.append(last ? suffix_ : "");
      id = find(key);
    }
    if (id >= 0) {
      if (unk >= 0) add(unk, unk_len);
      unk = -1;
      add(id, int32_t(len));
      continue;
    }
    if (byte_fallback_) {  // the bytes of the symbol as the file spells it
      bool all = true;
      for (char ch : key) all = all && byte_token_[uint8_t(ch)] >= 0;
      if (all) {
        for (char ch : key) add(byte_token_[uint8_t(ch)], 1);
        continue;
      }
    }
    if (unk_ >= 0) {
      if (unk >= 0 && fuse_unk_) {
        unk_len += int32_t(len);
      } else {
        if (unk >= 0) add(unk, unk_len);
        unk = unk_;
        unk_len = int32_t(len);
      }
    }  // no unk_token: the symbol is dropped, as in HF
  }
  if (unk >= 0) add(unk, unk_len);

  std::priority_queue<Merge, std::vector<Merge>, std::greater<Merge>> queue;
  auto push = [&](int32_t pos) {
    const int32_t next = sym[size_t(pos)].next;
    if (next < 0) return;
    if (const MergeSlot* m = find_merge(sym[size_t(pos)].id, sym[size_t(next)].id))
      queue.push({m->rank, pos, m->new_id});
  };
  for (int32_t p = 0; p + 1 < int32_t(sym.size()); ++p) push(p);
  while (!queue.empty()) {
    const Merge top = queue.top();
    queue.pop();
    Symbol& cur = sym[size_t(top.pos)];
    if (cur.len == 0 || cur.next < 0) continue;
    const Symbol right = sym[size_t(cur.next)];
    const MergeSlot* m = find_merge(cur.id, right.id);
    if (!m || m->new_id != top.new_id) continue;  // a stale entry
    sym[size_t(cur.next)].len = 0;
    cur.id = top.new_id;
    cur.len += right.len;
    cur.next = right.next;
    if (right.next >= 0) sym[size_t(right.next)].prev = top.pos;
    if (cur.prev >= 0) push(cur.prev);
    push(top.pos);
  }
  for (const Symbol& s : sym)
    if (s.len != 0) out.push_back(s.id);
}

}  // namespace alibi
