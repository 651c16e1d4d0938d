// Byte-level BPE training: count the words the GPT-2 regex finds, then merge the most frequent
// pair of adjacent symbols until the vocabulary is full, updating pair counts only in the words
// that hold the merged pair (a lazy max-heap of counts finds the next pair).
#include "data/bytebpe_train.h"

#include <omp.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <queue>
#include <unordered_map>
#include <unordered_set>

#include "core/error.h"
#include "data/hf_bpe.h"
#include "data/hf_pipeline.h"
#include "data/regex.h"

namespace alibi {

namespace {

constexpr int kFirstByteId = 1;  // id 0 is <|endoftext|>

uint64_t pair_key(int32_t a, int32_t b) { return (uint64_t(uint32_t(a)) << 32) | uint32_t(b); }

struct Word {
  std::vector<int32_t> sym;
  int64_t count = 0;
};

// Word counts of `text`, in parallel over line-aligned chunks (a word never spans a cut made
// after "\n" before a non-space; the counts do not depend on where the cuts fall anyway, for
// words are counted, not ordered).
std::vector<Word> count_words(std::string_view text, int threads) {
  const Regex re(kByteLevelPattern, "byte-level BPE pre-tokenizer");
  std::vector<size_t> cuts = {0};
  constexpr size_t kChunk = size_t(1) << 20;
  while (cuts.back() < text.size()) {
    size_t p = std::min(text.size(), cuts.back() + kChunk);
    while (p < text.size() && !(text[p - 1] == '\n' && text[p] > ' ')) ++p;
    cuts.push_back(p);
  }
  const int n = int(cuts.size()) - 1;
  std::vector<std::unordered_map<std::string, int64_t>> part(size_t(std::max(n, 0)));
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
  for (int i = 0; i < n; ++i) {
    const std::string_view chunk =
        text.substr(cuts[size_t(i)], cuts[size_t(i) + 1] - cuts[size_t(i)]);
    re.find_all(
        chunk, [&](size_t b, size_t e) { ++part[size_t(i)][std::string(chunk.substr(b, e - b))]; });
  }
  std::unordered_map<std::string, int64_t> all;
  for (auto& p : part)
    for (auto& [w, c] : p) all[w] += c;
  std::vector<std::pair<std::string, int64_t>> sorted(all.begin(), all.end());
  std::sort(sorted.begin(), sorted.end());  // a fixed order, whatever the hash map's
  std::vector<Word> words;
  words.reserve(sorted.size());
  for (auto& [w, c] : sorted) {
    Word word;
    word.count = c;
    for (unsigned char ch : w) word.sym.push_back(kFirstByteId + ch);
    words.push_back(std::move(word));
  }
  return words;
}

// Tokens by id (as raw bytes; ids below kFirstByteId are special) and the merges, in the order
// they were learned.
struct Learned {
  std::vector<std::string> token;
  std::vector<std::pair<int32_t, int32_t>> merges;
};

// Merges the most frequent pair (ties: the smaller pair) until the vocabulary is full or no
// pair occurs twice.
Learned learn_merges(std::vector<Word>& words, int vocab) {
  Learned l;
  l.token.resize(size_t(kFirstByteId + 256));
  for (int b = 0; b < 256; ++b) l.token[size_t(kFirstByteId + b)] = std::string(1, char(b));
  std::unordered_map<uint64_t, int64_t> count;                // pair -> occurrences
  std::unordered_map<uint64_t, std::unordered_set<int32_t>> where;  // pair -> words holding it
  for (int32_t w = 0; w < int32_t(words.size()); ++w) {
    const auto& s = words[size_t(w)].sym;
    for (size_t i = 0; i + 1 < s.size(); ++i) {
      count[pair_key(s[i], s[i + 1])] += words[size_t(w)].count;
      where[pair_key(s[i], s[i + 1])].insert(w);
    }
  }
  // Max-heap on (count, then the smaller pair); entries whose count changed are stale.
  using Entry = std::pair<int64_t, uint64_t>;
  auto cmp = [](const Entry& a, const Entry& b) {
    return a.first != b.first ? a.first < b.first : a.second > b.second;
  };
  std::priority_queue<Entry, std::vector<Entry>, decltype(cmp)> heap(cmp);
  for (const auto& [p, c] : count) heap.push({c, p});

  while (int(l.token.size()) < vocab && !heap.empty()) {
    const auto [c, p] = heap.top();
    heap.pop();
    auto it = count.find(p);
    if (it == count.end() || it->second != c) continue;  // stale
    if (c < 2) break;
    const auto a = int32_t(p >> 32), b = int32_t(p & 0xFFFFFFFFu);
    const auto id = int32_t(l.token.size());
    l.token.push_back(l.token[size_t(a)] + l.token[size_t(b)]);
    l.merges.emplace_back(a, b);
    std::unordered_set<uint64_t> touched;
    std::vector<int32_t> holders(where[p].begin(), where[p].end());
    std::sort(holders.begin(), holders.end());
    for (int32_t w : holders) {
      Word& word = words[size_t(w)];
      auto& s = word.sym;
      for (size_t i = 0; i + 1 < s.size(); ++i) {  // every pair leaves this word...
        const uint64_t q = pair_key(s[i], s[i + 1]);
        count[q] -= word.count;
        touched.insert(q);
      }
      std::vector<int32_t> merged;
      merged.reserve(s.size());
      for (size_t i = 0; i < s.size(); ++i) {
        if (i + 1 < s.size() && s[i] == a && s[i + 1] == b) {
          merged.push_back(id);
          ++i;
        } else {
          merged.push_back(s[i]);
        }
      }
      s = std::move(merged);
      for (size_t i = 0; i + 1 < s.size(); ++i) {  // ... and the merged word's pairs come back
        const uint64_t q = pair_key(s[i], s[i + 1]);
        count[q] += word.count;
        where[q].insert(w);
        touched.insert(q);
      }
    }
    count.erase(p);
    where.erase(p);
    for (uint64_t q : touched)
      if (auto jt = count.find(q); jt != count.end() && jt->second > 0) heap.push({jt->second, q});
  }
  return l;
}

// tokenizer.json, token strings in ByteLevel characters.
std::string tokenizer_json(const Learned& l) {
  auto chars = [](const std::string& bytes) {
    std::string s;
    for (unsigned char ch : bytes) s += byte_level_chars()[ch];
    return s;
  };
  nlohmann::ordered_json vocab_json = nlohmann::ordered_json::object();
  vocab_json["<|endoftext|>"] = 0;
  for (size_t i = kFirstByteId; i < l.token.size(); ++i) vocab_json[chars(l.token[i])] = i;
  nlohmann::ordered_json merges_json = nlohmann::ordered_json::array();
  for (const auto& [a, b] : l.merges)
    merges_json.push_back({chars(l.token[size_t(a)]), chars(l.token[size_t(b)])});
  const nlohmann::ordered_json byte_level = {{"type", "ByteLevel"},
                                             {"add_prefix_space", false},
                                             {"trim_offsets", true},
                                             {"use_regex", true}};
  nlohmann::ordered_json j;
  j["version"] = "1.0";
  j["truncation"] = nullptr;
  j["padding"] = nullptr;
  j["added_tokens"] = {{{"id", 0},
                        {"content", "<|endoftext|>"},
                        {"single_word", false},
                        {"lstrip", false},
                        {"rstrip", false},
                        {"normalized", false},
                        {"special", true}}};
  j["normalizer"] = nullptr;
  j["pre_tokenizer"] = byte_level;
  j["post_processor"] = byte_level;
  j["post_processor"]["trim_offsets"] = false;
  j["decoder"] = byte_level;
  j["model"] = {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr},
                {"continuing_subword_prefix", nullptr}, {"end_of_word_suffix", nullptr},
                {"fuse_unk", false}, {"byte_fallback", false}, {"ignore_merges", false},
                {"vocab", std::move(vocab_json)}, {"merges", std::move(merges_json)}};
  return j.dump();
}

}  // namespace

std::string train_byte_level_bpe(std::string_view text, int vocab, int threads) {
  constexpr int kMinVocab = kFirstByteId + 256 + 1;
  if (vocab < kMinVocab || vocab > (1 << 20))
    usage_error("--vocab ", vocab, " is out of range for the bytebpe tokenizer; expected ",
                kMinVocab, "..", 1 << 20, " (257 ids go to <|endoftext|> and the bytes)");
  std::vector<Word> words = count_words(text, std::max(1, threads));
  return tokenizer_json(learn_merges(words, vocab));
}

}  // namespace alibi
