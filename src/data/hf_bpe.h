#pragma once
// The BPE model of Hugging Face `tokenizers` (models/bpe): vocabulary, ranked merges, unknown
// token, byte fallback, subword prefix/suffix, ignore_merges; merges applied as HF does (a
// min-heap on (rank, position): the lowest rank first, the leftmost on ties).
#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace alibi {

// GPT-2's byte-to-character table (HF pre_tokenizers::byte_level::bytes_char): the UTF-8 of the
// printable character that stands for each byte.
const std::array<std::string, 256>& byte_level_chars();
// The inverse: a string of such characters back to bytes; false if some character is not one.
bool byte_level_to_bytes(std::string_view chars, std::string* bytes);

class BpeModel {
 public:
  // Reads the "model" object of a tokenizer.json. With `byte_level` (a ByteLevel
  // pre-tokenizer), words arrive as raw bytes and each byte is one initial symbol, as each
  // byte's character is in HF. `field` and `origin` name the JSON object and file in errors.
  BpeModel(const nlohmann::json& model, bool byte_level, const std::string& origin);

  using Cache = std::unordered_map<std::string, std::vector<int32_t>>;
  // Appends the ids of one pre-tokenized word. `cache` (per thread) remembers short words.
  void tokenize(std::string_view word, std::vector<int32_t>& out, Cache& cache) const;

  int32_t size() const { return int32_t(offset_.size()) - 1; }  // the largest id + 1
  // The token string of an id, as in the file ("" where the vocab has no such id).
  std::string_view token(int32_t id) const {
    return {arena_.data() + offset_[size_t(id)], offset_[size_t(id) + 1] - offset_[size_t(id)]};
  }
  int32_t find(std::string_view token) const;  // -1 if absent (the file's spelling)

 private:
  struct MergeSlot {
    uint64_t pair = ~uint64_t(0);  // (a, b); all ones: empty
    int32_t rank = 0, new_id = 0;
  };
  void merge_word(std::string_view word, std::vector<int32_t>& out) const;
  // The constructor's steps; `origin` names the file in errors.
  void read_vocab(const nlohmann::json& vocab, const std::string& origin);
  void read_merges(const nlohmann::json& merges, const std::string& origin);
  int32_t lookup(std::string_view key) const;  // a symbol (raw bytes if byte_level)
  const MergeSlot* find_merge(int32_t a, int32_t b) const;

  // Flat tables: the loaded model takes about 50 bytes per token, less than twice its JSON.
  std::string arena_;              // every token string, in id order
  std::vector<uint32_t> offset_;   // token id -> [offset_[id], offset_[id + 1]) in arena_
  std::vector<int32_t> slots_;     // open addressing on the token string; -1: empty
  std::vector<MergeSlot> merges_;  // open addressing on the pair
  bool byte_level_ = false;
  int32_t unk_ = -1;
  bool fuse_unk_ = false, byte_fallback_ = false, ignore_merges_ = false;
  std::string prefix_, suffix_;    // as written in the file
  std::array<int32_t, 256> byte_token_{};  // id of "<0xAB>", -1 if absent
  std::array<int32_t, 256> byte_id_{};     // byte_level: id of each byte's character, -1 if absent
};

}  // namespace alibi
