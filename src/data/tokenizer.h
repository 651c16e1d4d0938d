#pragma once
// Tokenizers: raw bytes (V = 256) or a SentencePiece BPE model. A tokenizer serialises to a
// kind plus bytes so that a checkpoint can carry its own and be used without the data folder.
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace sentencepiece {
class SentencePieceProcessor;
}

namespace alibi {

enum class TokenizerKind { bytes, bpe };

// "bytes" | "bpe": the one spelling used by --tokenizer, tokenizer.json and checkpoint metadata.
const char* tokenizer_kind_name(TokenizerKind kind);
// Throws UsageError "unknown <flag> '<name>'; expected bytes or bpe"; `flag` says where the name
// came from (a flag, or a file's field).
TokenizerKind parse_tokenizer_kind(const std::string& name, const std::string& flag);

class Tokenizer {
 public:
  static Tokenizer bytes();
  // Loads a SentencePiece model from its serialised bytes (the content of a .model file).
  static Tokenizer bpe_from_model(std::string model_bytes);
  // Trains a SentencePiece BPE model on a text file; throws UsageError naming the file / --vocab.
  static Tokenizer train_bpe(const std::string& text_path, int vocab, int threads);
  // Reads DIR/tokenizer.json (+ DIR/tokenizer.model for bpe); throws UsageError naming DIR.
  static Tokenizer load_dir(const std::string& dir);
  void save_dir(const std::string& dir) const;

  TokenizerKind kind() const { return kind_; }
  int vocab() const;
  std::vector<int32_t> encode(std::string_view text) const;
  std::string decode(const std::vector<int32_t>& ids) const;
  // Text of one token, for streaming output (bytes: the byte; bpe: the piece, '▁' as space).
  std::string decode_one(int32_t id) const;
  const std::string& model_bytes() const { return model_bytes_; }  // empty for bytes
  std::string fingerprint() const;  // equal iff the tokenizers are the same

  Tokenizer();
  ~Tokenizer();
  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;
  Tokenizer(const Tokenizer& o);
  Tokenizer& operator=(const Tokenizer& o);

 private:
  TokenizerKind kind_ = TokenizerKind::bytes;
  std::string model_bytes_;
  std::shared_ptr<sentencepiece::SentencePieceProcessor> sp_;
};

}  // namespace alibi
