// Tokenizers: bytes (id = byte value), SentencePiece BPE, and Hugging Face tokenizer.json.
//
// BPE is set up so that decode(encode(text)) == text for any valid UTF-8: identity
// normalisation, no whitespace folding, no dummy prefix, byte fallback for characters outside
// the vocabulary, and "\n" as a user-defined piece. SentencePiece trains line by line, so no
// learned piece contains '\n'; with "\n" a piece of its own, encoding a text in chunks cut after
// '\n' gives exactly the ids of encoding it whole (prepare relies on this to tokenise in parallel).
#include "data/tokenizer.h"

#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <mutex>
#include <optional>
#include <nlohmann/json.hpp>
#include <unordered_map>

#include "core/error.h"
#include "core/io.h"
#include "core/json_int.h"
#include "core/rng.h"
#include "data/hf_tokenizer.h"

namespace alibi {

namespace fs = std::filesystem;

namespace {

constexpr int kBytesVocab = 256;
// byte_fallback needs 256 byte pieces plus <unk> and the "\n" piece; below ~300 there is no
// room left for merges and the model degenerates to a slower bytes tokenizer.
constexpr int kMinBpeVocab = 300;
constexpr int kMaxBpeVocab = 1 << 20;
// Caps SentencePiece's training memory and time: at most this many lines are sampled.
constexpr int kMaxTrainSentences = 2'000'000;
// Longer lines are dropped from training by SentencePiece (default 4192); a novel with one
// paragraph per line has lines well beyond that.
constexpr int kMaxTrainLineBytes = 1 << 16;
// SentencePiece's BPE Encode slows down on long inputs (10.8 MB of wikitext: 10 s in 1 MB
// pieces, 3 s in 4 KB pieces), so it is called on pieces of about this size, cut after a '\n'.
constexpr size_t kEncodeChunkBytes = 4096;

// Protobuf wire format, just enough to edit one nested message.
bool read_varint(std::string_view s, size_t& pos, uint64_t& v) {
  v = 0;
  for (int shift = 0; pos < s.size() && shift < 64; shift += 7) {
    const uint8_t b = uint8_t(s[pos++]);
    v |= uint64_t(b & 0x7F) << shift;
    if (!(b & 0x80)) return true;
  }
  return false;
}

void write_varint(std::string& out, uint64_t v) {
  for (; v >= 0x80; v >>= 7) out += char(uint8_t(v) | 0x80);
  out += char(uint8_t(v));
}

// Copies the fields of a serialised message, dropping those whose number `drop` selects; nullopt
// if the bytes are not a well-formed message. `edit(field, bytes)` may rewrite length-delimited
// fields.
template <typename Drop, typename Edit>
std::optional<std::string> filter_fields(std::string_view s, Drop&& drop, Edit&& edit) {
  std::string out;
  size_t pos = 0;
  while (pos < s.size()) {
    const size_t start = pos;
    uint64_t key, len;
    if (!read_varint(s, pos, key)) return std::nullopt;
    const uint64_t field = key >> 3, wire = key & 7;
    std::optional<std::string> replaced;
    switch (wire) {
      case 0:
        if (!read_varint(s, pos, len)) return std::nullopt;
        break;
      case 1: pos += 8; break;
      case 5: pos += 4; break;
      case 2: {
        if (!read_varint(s, pos, len) || len > s.size() - pos) return std::nullopt;
        const size_t body = pos;
        pos += len;
        replaced = edit(field, s.substr(body, len));
        if (replaced) {
          write_varint(out, key);
          write_varint(out, replaced->size());
          out += *replaced;
        }
        break;
      }
      default: return std::nullopt;
    }
    if (pos > s.size()) return std::nullopt;
    if (!drop(field) && !replaced) out.append(s.substr(start, pos - start));
  }
  return out;
}

// A trained model records how it was trained (ModelProto.trainer_spec = 2): the input path
// (TrainerSpec.input = 1), model_prefix (2) and num_threads (16). None of them changes how text
// is tokenised, and keeping them would make the model bytes, and so the fingerprint, depend on a
// temp-folder name and the core count. Dropping them makes training reproducible byte for byte.
std::string canonical_model(const std::string& model) {
  auto none = [](uint64_t, std::string_view) -> std::optional<std::string> { return std::nullopt; };
  auto spec = [&](uint64_t field, std::string_view body) -> std::optional<std::string> {
    if (field != 2) return std::nullopt;
    return filter_fields(body, [](uint64_t f) { return f == 1 || f == 2 || f == 16; }, none);
  };
  auto out = filter_fields(model, [](uint64_t) { return false; }, spec);
  ALIBI_CHECK(out, "sentencepiece returned a malformed model proto");
  return *out;
}

std::shared_ptr<sentencepiece::SentencePieceProcessor> load_sp(const std::string& model_bytes,
                                                               const std::string& origin) {
  auto sp = std::make_shared<sentencepiece::SentencePieceProcessor>();
  auto st = sp->LoadFromSerializedProto(model_bytes);
  if (!st.ok())
    usage_error("tokenizer model ", origin, " is not a valid SentencePiece model: ", st.ToString());
  return sp;
}

// Splits `text` into pieces of about kEncodeChunkBytes, each ending just after a '\n' (or at
// the end of the text).
template <typename F>
void for_each_chunk(std::string_view text, F&& f) {
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.size();
    if (text.size() - pos > kEncodeChunkBytes) {
      size_t nl = text.find('\n', pos + kEncodeChunkBytes);
      if (nl != std::string_view::npos) end = nl + 1;
    }
    f(text.substr(pos, end - pos));
    pos = end;
  }
}

const char* model_file_name(TokenizerKind kind) {
  return kind == TokenizerKind::hf ? "hf-tokenizer.json" : "tokenizer.model";
}

}  // namespace

const char* tokenizer_kind_name(TokenizerKind kind) {
  return kind == TokenizerKind::bpe ? "bpe" : kind == TokenizerKind::hf ? "hf" : "bytes";
}

TokenizerKind parse_tokenizer_kind(const std::string& name, const std::string& flag) {
  if (name == "bytes") return TokenizerKind::bytes;
  if (name == "bpe") return TokenizerKind::bpe;
  if (name == "hf") return TokenizerKind::hf;
  usage_error("unknown ", flag, " '", name, "'; expected bytes, bpe or hf");
}

Tokenizer::Tokenizer() = default;
Tokenizer::~Tokenizer() = default;
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;
// The processor is immutable after loading and its Encode/Decode are const, so copies share it.
Tokenizer::Tokenizer(const Tokenizer& o) = default;
Tokenizer& Tokenizer::operator=(const Tokenizer& o) = default;

Tokenizer Tokenizer::bytes() { return Tokenizer(); }

Tokenizer Tokenizer::bpe_from_model(std::string model_bytes) {
  return from_model(TokenizerKind::bpe, std::move(model_bytes), "(from bytes)");
}

Tokenizer Tokenizer::hf_from_json(std::string json, const std::string& origin) {
  Tokenizer t;
  t.hf_ = HfTokenizer::load(json, origin);
  t.kind_ = TokenizerKind::hf;
  t.model_bytes_ = std::move(json);
  return t;
}

Tokenizer Tokenizer::from_model(TokenizerKind kind, std::string model_bytes,
                                const std::string& origin) {
  switch (kind) {
    case TokenizerKind::bpe: {
      Tokenizer t;
      t.sp_ = load_sp(model_bytes, origin);
      t.kind_ = TokenizerKind::bpe;
      t.model_bytes_ = std::move(model_bytes);
      return t;
    }
    case TokenizerKind::hf: return hf_from_json(std::move(model_bytes), origin);
    case TokenizerKind::bytes: break;
  }
  return bytes();
}

std::optional<Tokenizer> Tokenizer::from_path(const std::string& path) {
  if (path == "bytes") return bytes();
  std::error_code ec;
  const fs::path p(path);
  if (fs::is_directory(p, ec)) {
    const fs::path json = p / "tokenizer.json";
    if (!fs::is_regular_file(json, ec)) return std::nullopt;  // perhaps a run folder
    std::string text = read_file(json.string(), "tokenizer file");
    if (HfTokenizer::looks_like(text)) return hf_from_json(std::move(text), json.string());
    return load_dir(path);  // a data folder (alibi prepare)
  }
  if (!fs::is_regular_file(p, ec))
    usage_error("tokenizer '", path, "' does not exist; expected a tokenizer.json, a SentencePiece "
                ".model, a Hugging Face model folder, a data folder, a checkpoint or 'bytes'");
  if (p.extension() == ".safetensors") return std::nullopt;  // a checkpoint
  std::string content = read_file(path, "tokenizer file");
  if (p.extension() == ".json" || HfTokenizer::looks_like(content))
    return hf_from_json(std::move(content), path);
  return from_model(TokenizerKind::bpe, std::move(content), str_cat("'", path, "'"));
}

Tokenizer Tokenizer::train_bpe(const std::string& text_path, int vocab, int threads) {
  if (vocab < kMinBpeVocab || vocab > kMaxBpeVocab)
    usage_error("--vocab ", vocab, " is out of range for the bpe tokenizer; expected ",
                kMinBpeVocab, "..", kMaxBpeVocab, " (256 ids go to byte fallback)");
  std::error_code ec;
  if (!fs::is_regular_file(text_path, ec))
    usage_error("tokenizer training text '", text_path, "' is not a readable file");
  if (threads <= 0) threads = 1;

  const std::unordered_map<std::string, std::string> args = {
      {"input", text_path},
      {"model_prefix", ""},  // the model comes back in memory; nothing is written
      {"model_type", "bpe"},
      {"vocab_size", std::to_string(vocab)},
      {"character_coverage", "1.0"},
      {"byte_fallback", "true"},
      {"num_threads", std::to_string(threads)},
      {"input_sentence_size", std::to_string(kMaxTrainSentences)},
      {"shuffle_input_sentence", "true"},
      {"max_sentence_length", std::to_string(kMaxTrainLineBytes)},
      // Whitespace faithful: text comes back byte for byte.
      {"normalization_rule_name", "identity"},
      {"remove_extra_whitespaces", "false"},
      {"add_dummy_prefix", "false"},
      {"split_by_whitespace", "true"},
      {"split_digits", "false"},
      {"user_defined_symbols", "\n"},
      // Only <unk> is reserved; alibi has no use for <s> and </s>.
      {"unk_id", "0"},
      {"bos_id", "-1"},
      {"eos_id", "-1"},
      {"pad_id", "-1"},
      {"minloglevel", "2"},
  };
  std::string model;
  {
    // SentencePiece keeps the shuffle seed and log level in globals.
    static std::mutex mu;
    std::lock_guard<std::mutex> lock(mu);
    sentencepiece::SetRandomGeneratorSeed(20240521u);
    auto st = sentencepiece::SentencePieceTrainer::Train(args, nullptr, &model);
    if (!st.ok()) {
      std::string why(st.message());
      if (size_t cut = why.find("] "); cut != std::string::npos) why = why.substr(cut + 2);
      std::replace(why.begin(), why.end(), '\n', ' ');
      while (!why.empty() && (why.back() == '.' || why.back() == ' ')) why.pop_back();
      usage_error("training a bpe tokenizer with --vocab ", vocab, " on '", text_path,
                  "' failed: ", why, "; try a smaller --vocab or a larger corpus");
    }
  }
  Tokenizer t = bpe_from_model(canonical_model(model));
  if (t.vocab() != vocab)
    usage_error("training a bpe tokenizer on '", text_path, "' gave ", t.vocab(),
                " pieces instead of --vocab ", vocab, "; try a smaller --vocab or a larger corpus");
  return t;
}

Tokenizer Tokenizer::load_dir(const std::string& dir) {
  const fs::path json_path = fs::path(dir) / "tokenizer.json";
  std::error_code ec;
  if (!fs::is_regular_file(json_path, ec))
    usage_error("tokenizer folder '", dir, "' has no tokenizer.json; expected the output of "
                "'alibi prepare'");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(read_file(json_path.string(), "tokenizer file"));
  } catch (const nlohmann::json::exception& e) {
    usage_error("tokenizer file '", json_path.string(), "' is not valid JSON: ", e.what());
  }
  std::string kind;
  int vocab = 0;
  try {
    kind = j.at("kind").get<std::string>();
    vocab = json_int(j.at("vocab"),
                     str_cat("tokenizer file '", json_path.string(), "': \"vocab\""));
  } catch (const nlohmann::json::exception&) {
    usage_error(
        "tokenizer file '", json_path.string(),
        "' lacks \"kind\" or \"vocab\"; expected {\"kind\": \"bytes\"|\"bpe\", \"vocab\": N}");
  }
  Tokenizer t;
  const std::string where = str_cat("\"kind\" in tokenizer file '", json_path.string(), "':");
  const TokenizerKind k = parse_tokenizer_kind(kind, where);
  if (k != TokenizerKind::bytes) {
    const fs::path model_path = fs::path(dir) / model_file_name(k);
    if (!fs::is_regular_file(model_path, ec))
      usage_error("tokenizer folder '", dir, "' has kind ", kind, " but no ", model_file_name(k));
    const std::string name =
        k == TokenizerKind::hf ? model_path.string() : str_cat("'", model_path.string(), "'");
    t = from_model(k, read_file(model_path.string(), "tokenizer model"), name);
  }
  if (t.vocab() != vocab)
    usage_error("tokenizer file '", json_path.string(), "' says vocab ", vocab,
                " but the tokenizer has ", t.vocab());
  return t;
}

void Tokenizer::save_dir(const std::string& dir) const {
  nlohmann::json j;
  j["kind"] = tokenizer_kind_name(kind_);
  j["vocab"] = vocab();
  j["fingerprint"] = fingerprint();
  if (kind_ != TokenizerKind::bytes)
    write_file_atomic((fs::path(dir) / model_file_name(kind_)).string(), {model_bytes_});
  write_file_atomic((fs::path(dir) / "tokenizer.json").string(), {j.dump(2), "\n"});
}

int Tokenizer::vocab() const {
  switch (kind_) {
    case TokenizerKind::bpe: return sp_->GetPieceSize();
    case TokenizerKind::hf: return hf_->vocab();
    case TokenizerKind::bytes: break;
  }
  return kBytesVocab;
}

std::optional<int32_t> Tokenizer::leading_special() const {
  return kind_ == TokenizerKind::hf ? hf_->leading_special() : std::nullopt;
}

std::optional<int32_t> Tokenizer::trailing_special() const {
  return kind_ == TokenizerKind::hf ? hf_->trailing_special() : std::nullopt;
}

std::vector<int32_t> Tokenizer::encode_prompt(std::string_view text) const {
  std::vector<int32_t> ids = encode(text);
  if (const std::optional<int32_t> bos = leading_special()) ids.insert(ids.begin(), *bos);
  return ids;
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_special) const {
  if (kind_ == TokenizerKind::hf) return hf_->encode(text, add_special);
  std::vector<int32_t> ids;
  if (kind_ == TokenizerKind::bytes) {
    ids.reserve(text.size());
    for (unsigned char c : text) ids.push_back(int32_t(c));
    return ids;
  }
  std::vector<int> part;
  for_each_chunk(text, [&](std::string_view chunk) {
    auto st = sp_->Encode(chunk, &part);
    ALIBI_CHECK(st.ok(), "sentencepiece encode: ", st.ToString());
    ids.insert(ids.end(), part.begin(), part.end());
  });
  return ids;
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids, bool keep_special) const {
  if (kind_ == TokenizerKind::hf) return hf_->decode(ids, !keep_special);
  const int V = vocab();
  for (int32_t id : ids)
    if (id < 0 || id >= V)
      usage_error("token id ", id, " is outside the tokenizer's vocab (", V, " ids)");
  if (kind_ == TokenizerKind::bytes) {
    std::string s(ids.size(), '\0');
    for (size_t i = 0; i < ids.size(); ++i) s[i] = char(uint8_t(ids[i]));
    return s;
  }
  // SentencePiece decodes control symbols to nothing: kept, each is its piece, and the runs of
  // other ids between them are decoded as runs.
  std::string out;
  auto run = [&](size_t a, size_t b) {
    std::string s;
    auto st = sp_->Decode(std::vector<int>(ids.begin() + a, ids.begin() + b), &s);
    ALIBI_CHECK(st.ok(), "sentencepiece decode: ", st.ToString());
    out += s;
  };
  size_t from = 0;
  for (size_t i = 0; keep_special && i < ids.size(); ++i) {
    if (!sp_->IsControl(ids[i])) continue;
    run(from, i);
    out += sp_->IdToPiece(ids[i]);
    from = i + 1;
  }
  run(from, ids.size());
  return out;
}

std::string Tokenizer::decode_one(int32_t id) const {
  if (kind_ == TokenizerKind::hf) return hf_->is_special(id) ? "" : hf_->decode({&id, 1}, true);
  ALIBI_CHECK(id >= 0 && id < vocab(), "token id ", id, " outside vocab ", vocab());
  if (kind_ == TokenizerKind::bytes) return std::string(1, char(uint8_t(id)));
  const std::string& piece = sp_->IdToPiece(id);
  if (sp_->IsByte(id)) {  // "<0xAB>"
    return std::string(1, char(std::stoi(piece.substr(3, 2), nullptr, 16)));
  }
  if (sp_->IsUnknown(id) || sp_->IsControl(id)) return "";
  std::string out;
  static const std::string kSpace = "\xE2\x96\x81";  // U+2581 '▁'
  for (size_t i = 0; i < piece.size();) {
    if (piece.compare(i, kSpace.size(), kSpace) == 0) {
      out += ' ';
      i += kSpace.size();
    } else {
      out += piece[i++];
    }
  }
  return out;
}

std::string Tokenizer::piece(int32_t id) const {
  if (id < 0 || id >= vocab())
    usage_error("token id ", id, " is outside the tokenizer's vocab (", vocab(), " ids)");
  if (kind_ == TokenizerKind::hf) return hf_->token(id);
  if (kind_ == TokenizerKind::bpe) return sp_->IdToPiece(id);
  if (id >= 0x21 && id <= 0x7E) return std::string(1, char(id));
  char hex[16];
  std::snprintf(hex, sizeof hex, "<0x%02X>", unsigned(id));
  return hex;
}

std::vector<int32_t> Tokenizer::encode_parallel(std::string_view text, int threads,
                                                bool add_special) const {
  constexpr size_t kPartBytes = size_t(256) << 10;
  std::vector<size_t> cuts = {0};
  while (cuts.back() < text.size()) {
    const size_t next = cut_at_or_after(text, cuts.back() + kPartBytes);
    cuts.push_back(next > cuts.back() ? next : text.size());
  }
  const int n = int(cuts.size()) - 1;
  std::vector<std::vector<int32_t>> parts(size_t(std::max(n, 0)));
#pragma omp parallel for schedule(dynamic, 1) num_threads(std::max(1, threads))
  for (int i = 0; i < n; ++i)
    parts[size_t(i)] = encode(text.substr(cuts[size_t(i)], cuts[size_t(i) + 1] - cuts[size_t(i)]));
  size_t total = 0;
  for (const auto& p : parts) total += p.size();
  std::vector<int32_t> ids;
  ids.reserve(total);
  for (const auto& p : parts) ids.insert(ids.end(), p.begin(), p.end());
  return add_special && kind_ == TokenizerKind::hf ? hf_->add_special_tokens(std::move(ids)) : ids;
}

size_t Tokenizer::cut_at_or_after(std::string_view text, size_t from) const {
  if (from >= text.size()) return text.size();
  if (kind_ == TokenizerKind::hf) return hf_->cut_at_or_after(text, from);
  if (kind_ == TokenizerKind::bytes) return from;
  const size_t nl = text.find('\n', from == 0 ? 0 : from - 1);  // bpe: "\n" is a token of its own
  return nl == std::string_view::npos ? text.size() : nl + 1;
}

std::string Tokenizer::fingerprint() const {
  char hash[17];
  std::snprintf(hash, sizeof hash, "%016llx", (unsigned long long)hash_bytes(model_bytes_));
  return str_cat(tokenizer_kind_name(kind_), "-", vocab(), "-", hash);
}

}  // namespace alibi
