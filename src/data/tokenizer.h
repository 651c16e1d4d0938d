#pragma once
// Tokenizers: raw bytes (V = 256), a SentencePiece BPE model, or a Hugging Face tokenizer.json
// (data/hf_tokenizer.h). A tokenizer serialises to a kind plus bytes (the .model file, the
// tokenizer.json) so that a checkpoint can carry its own and be used without the data folder.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sentencepiece {
class SentencePieceProcessor;
}

namespace alibi {

class HfTokenizer;

enum class TokenizerKind { bytes, bpe, hf };

// "bytes" | "bpe" | "hf": the one spelling used by data folders and checkpoint metadata.
const char* tokenizer_kind_name(TokenizerKind kind);
// Throws UsageError "unknown <flag> '<name>'; expected bytes, bpe or hf"; `flag` says where the
// name came from (a file's field).
TokenizerKind parse_tokenizer_kind(const std::string& name, const std::string& flag);

class Tokenizer {
 public:
  static Tokenizer bytes();
  // Loads a SentencePiece model from its serialised bytes (the content of a .model file).
  static Tokenizer bpe_from_model(std::string model_bytes);
  // Loads a Hugging Face tokenizer.json from its content; `origin` names it in errors.
  static Tokenizer hf_from_json(std::string json, const std::string& origin);
  // The tokenizer of a kind and its serialised bytes (empty for bytes), as checkpoints keep it.
  static Tokenizer from_model(TokenizerKind kind, std::string model_bytes,
                              const std::string& origin);
  // A tokenizer named by a path: a tokenizer.json, a SentencePiece .model, a Hugging Face model
  // folder (with tokenizer.json), a data folder, or "bytes"; nullopt for what may be a run
  // folder or checkpoint (model/checkpoint.h, load_tokenizer, reads those too).
  static std::optional<Tokenizer> from_path(const std::string& path);
  // Trains a SentencePiece BPE model on a text file; throws UsageError naming the file / --vocab.
  static Tokenizer train_bpe(const std::string& text_path, int vocab, int threads);
  // Reads DIR/tokenizer.json (+ DIR/tokenizer.model for bpe, DIR/hf-tokenizer.json for hf);
  // throws UsageError naming DIR.
  static Tokenizer load_dir(const std::string& dir);
  void save_dir(const std::string& dir) const;

  TokenizerKind kind() const { return kind_; }
  int vocab() const;
  // The ids of `text`; `add_special` applies an hf tokenizer's post-processor (BOS/EOS).
  std::vector<int32_t> encode(std::string_view text, bool add_special = false) const;
  // The BOS that encode(text, true) puts first: an hf tokenizer's post-processor, where its
  // template starts with one special token; nullopt otherwise.
  std::optional<int32_t> leading_special() const;
  // The EOS that encode(text, true) puts last, likewise.
  std::optional<int32_t> trailing_special() const;
  // The ids a prompt is run with (generate, serve): leading_special() first where there is one,
  // then the text's, as llama.cpp's completion and server tokenize a prompt. Never a trailing
  // special token: a prompt is continued, not ended.
  std::vector<int32_t> encode_prompt(std::string_view text) const;
  // Throws UsageError for an id outside the vocab. Special tokens (hf: the added special ones;
  // bpe: SentencePiece's control symbols, <s> and </s>) are skipped, as HF's decode does, or
  // with keep_special written as they are spelt (HF's skip_special_tokens=False).
  std::string decode(const std::vector<int32_t>& ids, bool keep_special = false) const;
  // Text of one token, for streaming output (bytes: the byte; bpe: the piece, '▁' as space;
  // hf: the decoder's bytes, "" for a special token).
  std::string decode_one(int32_t id) const;
  // The token as the tokenizer spells it (bpe and hf: the piece; bytes: the byte, escaped).
  std::string piece(int32_t id) const;
  // encode(text, add_special), on `threads` threads over parts cut where cut_at_or_after
  // allows: the same ids whatever the thread count.
  std::vector<int32_t> encode_parallel(std::string_view text, int threads,
                                       bool add_special = false) const;
  // A position at or after `from` where `text` can be cut so that encoding the parts gives the
  // ids of encoding it whole (text.size() if there is none).
  size_t cut_at_or_after(std::string_view text, size_t from) const;
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
  std::shared_ptr<const HfTokenizer> hf_;
};

}  // namespace alibi
