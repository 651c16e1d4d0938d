// Data layer: tokenizers, prepare, token files, batches.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli.h"
#include "data/dataset.h"
#include "data/tokenizer.h"
#include <sentencepiece_trainer.h>
#include "usage_error.h"

namespace fs = std::filesystem;
using namespace alibi;
using alibi::test::expect_usage_error;
using alibi::test::read_text;
using alibi::test::write_text;

namespace {

// Text with the whitespace that tokenizers like to lose.
const std::string kTricky =
    "  Leading spaces\n\n\ttab, then two blank lines\n\n\nunicode: wörld 日本語 😀\r\n"
    "trailing spaces   \n no final newline";

// A fresh folder per test, removed afterwards.
class DataTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() /
           ("alibi_test_data_" + std::to_string(::getpid()) + "_" + info->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  // No OUT and no OUT.tmp-* left next to it.
  void expect_nothing_at(const fs::path& out) {
    EXPECT_FALSE(fs::exists(out)) << out;
    for (const auto& e : fs::directory_iterator(out.parent_path()))
      EXPECT_EQ(e.path().filename().string().rfind(out.filename().string() + ".", 0),
                std::string::npos)
          << "left behind: " << e.path();
  }

  fs::path dir_;
};

PrepareOptions options(const fs::path& in, const fs::path& out, const std::string& tok = "bytes") {
  PrepareOptions o;
  o.input = in.string();
  o.out = out.string();
  o.tokenizer = tok;
  o.vocab = 500;
  o.threads = 2;
  return o;
}

}  // namespace

TEST_F(DataTest, BytesRoundTrip) {
  Tokenizer t = Tokenizer::bytes();
  EXPECT_EQ(t.kind(), TokenizerKind::bytes);
  EXPECT_EQ(t.vocab(), 256);
  std::string all(256, '\0');
  for (int i = 0; i < 256; ++i) all[i] = char(i);
  const std::string text = kTricky + all;
  const auto ids = t.encode(text);
  ASSERT_EQ(ids.size(), text.size());
  for (size_t i = 0; i < ids.size(); ++i) EXPECT_EQ(ids[i], int32_t(uint8_t(text[i])));
  EXPECT_EQ(t.decode(ids), text);
  EXPECT_EQ(t.decode_one(int32_t('A')), "A");

  t.save_dir(dir_.string());
  Tokenizer u = Tokenizer::load_dir(dir_.string());
  EXPECT_EQ(u.kind(), TokenizerKind::bytes);
  EXPECT_EQ(u.fingerprint(), t.fingerprint());
}

TEST_F(DataTest, BpeTrainRoundTrip) {
  const fs::path corpus = dir_ / "corpus.txt";
  write_text(corpus, test::bundled_text(200'000));
  Tokenizer t = Tokenizer::train_bpe(corpus.string(), 500, 2);
  EXPECT_EQ(t.kind(), TokenizerKind::bpe);
  EXPECT_EQ(t.vocab(), 500);

  const std::string text = read_text(corpus);
  const auto ids = t.encode(text);
  EXPECT_LT(ids.size(), text.size() * 2 / 3) << "bpe should compress";
  EXPECT_EQ(t.decode(ids), text);
  EXPECT_EQ(t.decode(t.encode(kTricky)), kTricky);
  for (int32_t id : ids) ASSERT_TRUE(id >= 0 && id < 500);

  // "\n" is one token of its own, so encoding line by line gives the same ids.
  const auto nl = t.encode("\n");
  ASSERT_EQ(nl.size(), 1u);
  std::vector<int32_t> by_line;
  for (size_t pos = 0; pos < kTricky.size();) {
    size_t end = std::min(kTricky.find('\n', pos), kTricky.size() - 1) + 1;
    auto part = t.encode(std::string_view(kTricky).substr(pos, end - pos));
    by_line.insert(by_line.end(), part.begin(), part.end());
    pos = end;
  }
  EXPECT_EQ(by_line, t.encode(kTricky));

  // Streaming pieces concatenate back to the text.
  const std::string head = text.substr(0, 2000);
  std::string streamed;
  for (int32_t id : t.encode(head)) streamed += t.decode_one(id);
  EXPECT_EQ(streamed, head);

  // Serialisation keeps the tokenizer exactly.
  t.save_dir(dir_.string());
  Tokenizer u = Tokenizer::load_dir(dir_.string());
  EXPECT_EQ(u.fingerprint(), t.fingerprint());
  EXPECT_EQ(u.encode(text), ids);
  EXPECT_EQ(Tokenizer::bpe_from_model(t.model_bytes()).fingerprint(), t.fingerprint());
  EXPECT_NE(t.fingerprint(), Tokenizer::bytes().fingerprint());

  // Training is deterministic.
  EXPECT_EQ(Tokenizer::train_bpe(corpus.string(), 500, 1).fingerprint(), t.fingerprint());

  expect_usage_error([&] { Tokenizer::train_bpe(corpus.string(), 100, 2); }, {"--vocab", "100"});
}

// A SentencePiece model with <s> and </s> (as imported ones have; alibi's own reserve only
// <unk>): decode drops the control symbols, as SentencePiece and HF's skip_special_tokens=True
// do; keep_special writes each as its piece between the decoded runs around it.
TEST_F(DataTest, BpeKeepSpecialWritesControlSymbols) {
  const fs::path corpus = dir_ / "corpus.txt";
  write_text(corpus, test::bundled_text(50'000));
  std::string model;
  ASSERT_TRUE(sentencepiece::SentencePieceTrainer::Train(
                  {{"input", corpus.string()}, {"model_type", "bpe"}, {"vocab_size", "300"},
                   {"add_dummy_prefix", "false"}, {"unk_id", "0"}, {"bos_id", "1"}, {"eos_id", "2"},
                   {"minloglevel", "2"}},
                  nullptr, &model)
                  .ok());
  const Tokenizer t = Tokenizer::bpe_from_model(model);
  const std::vector<int32_t> a = t.encode("It is a truth"), b = t.encode("universally");
  ASSERT_FALSE(a.empty() || b.empty());
  std::vector<int32_t> ids = {1};
  ids.insert(ids.end(), a.begin(), a.end());
  ids.push_back(2);
  ids.insert(ids.end(), b.begin(), b.end());
  ids.push_back(2);
  std::vector<int32_t> ab = a;
  ab.insert(ab.end(), b.begin(), b.end());
  EXPECT_EQ(t.decode(ids), t.decode(ab));
  EXPECT_EQ(t.decode(ids, /*keep_special=*/true), "<s>" + t.decode(a) + "</s>" + t.decode(b) +
                                                      "</s>");
  EXPECT_EQ(t.decode(a, true), t.decode(a)) << "no control symbol: nothing changes";
}

TEST_F(DataTest, PrepareSingleFile) {
  const std::string text = test::bundled_text(200'000);
  const fs::path corpus = dir_ / "corpus.txt", out = dir_ / "out";
  write_text(corpus, text);
  prepare(options(corpus, out));

  const auto info = nlohmann::json::parse(read_text(out / "prepare.json"));
  uint64_t tokens = 0, bytes = 0;
  std::string joined;
  for (const char* name : {"train", "valid", "test"}) {
    TokenSplit s = load_split(out.string(), name);
    EXPECT_GT(s.tokens.size(), 0u) << name;
    EXPECT_EQ(s.vocab, 256);
    EXPECT_EQ(s.tokens.size(), s.source_bytes) << "bytes: one token per byte";
    EXPECT_EQ(info["splits"][name]["tokens"].get<uint64_t>(), s.tokens.size());
    tokens += s.tokens.size();
    bytes += s.source_bytes;
    joined += Tokenizer::bytes().decode(s.tokens);
  }
  EXPECT_EQ(tokens, text.size());
  EXPECT_EQ(bytes, text.size());
  EXPECT_EQ(joined, text) << "train, valid, test in order, nothing lost";
  EXPECT_EQ(Tokenizer::load_dir(out.string()).kind(), TokenizerKind::bytes);

  // A second prepare into the folder is refused, and leaves it as it was; with replace it
  // replaces the first.
  const std::string before = read_text(out / "prepare.json");
  expect_usage_error([&] { prepare(options(corpus, out, "bpe")); },
                     {"--out", out.string(), "holds prepared data already", "--replace"});
  EXPECT_EQ(read_text(out / "prepare.json"), before);
  EXPECT_EQ(Tokenizer::load_dir(out.string()).kind(), TokenizerKind::bytes);
  PrepareOptions again = options(corpus, out, "bpe");
  again.replace = true;
  prepare(again);
  EXPECT_EQ(Tokenizer::load_dir(out.string()).vocab(), 500);
  EXPECT_EQ(load_split(out.string(), "train").vocab, 500);
  expect_nothing_at(dir_ / "out-does-not-exist");
}

TEST_F(DataTest, PrepareBpeParallelMatchesSequential) {
  // The whole bundled corpus: the train split is several parallel chunks.
  const std::string text = test::bundled_text();
  const fs::path corpus = dir_ / "corpus.txt", out = dir_ / "out";
  write_text(corpus, text);
  prepare(options(corpus, out, "bpe"));
  const Tokenizer tok = Tokenizer::load_dir(out.string());
  EXPECT_EQ(tok.vocab(), 500);
  size_t pos = 0;
  for (const char* name : {"train", "valid", "test"}) {
    TokenSplit s = load_split(out.string(), name);
    ASSERT_GT(s.tokens.size(), 0u);
    const std::string part = text.substr(pos, s.source_bytes);
    pos += s.source_bytes;
    EXPECT_EQ(s.tokens, tok.encode(part)) << name;
    EXPECT_EQ(tok.decode(s.tokens), part) << name;
  }
  EXPECT_EQ(pos, text.size());
}

TEST_F(DataTest, PrepareFolder) {
  const std::string text = test::bundled_text(120'000);
  const fs::path in = dir_ / "in", out = dir_ / "out";
  fs::create_directories(in);
  const size_t a = text.rfind('\n', 80'000) + 1, b = text.rfind('\n', 100'000) + 1;
  write_text(in / "wiki.train.tokens", text.substr(0, a));
  write_text(in / "validation.txt", text.substr(a, b - a));
  write_text(in / "test", text.substr(b));
  write_text(in / "notes.md", "not a split");
  prepare(options(in, out));
  EXPECT_EQ(load_split(out.string(), "train").tokens.size(), a);
  EXPECT_EQ(load_split(out.string(), "valid").tokens.size(), b - a);
  EXPECT_EQ(load_split(out.string(), "test").tokens.size(), text.size() - b);

  // bpe is trained on the train file only, and every split round-trips.
  PrepareOptions bpe = options(in, out, "bpe");
  bpe.replace = true;
  prepare(bpe);
  const Tokenizer tok = Tokenizer::load_dir(out.string());
  EXPECT_EQ(tok.decode(load_split(out.string(), "valid").tokens), text.substr(a, b - a));
  EXPECT_GT(load_split(out.string(), "test").tokens.size(), 0u);
}

TEST_F(DataTest, PrepareBadInputLeavesNothing) {
  const fs::path out = dir_ / "out";
  const fs::path missing = dir_ / "missing.txt";
  expect_usage_error([&] { prepare(options(missing, out)); }, {missing.string()});
  expect_nothing_at(out);

  const fs::path empty = dir_ / "empty.txt";
  write_text(empty, "");
  expect_usage_error([&] { prepare(options(empty, out)); }, {empty.string(), "empty"});
  expect_nothing_at(out);

  const fs::path spaces = dir_ / "spaces.txt";
  write_text(spaces, " \n\n\t \n");
  expect_usage_error([&] { prepare(options(spaces, out)); }, {spaces.string(), "empty"});
  expect_nothing_at(out);

  const fs::path nul = dir_ / "nul.bin";
  write_text(nul, std::string("hello\nworld\n") + '\0' + "more\n");
  expect_usage_error([&] { prepare(options(nul, out, "bpe")); }, {nul.string(), "offset 12"});
  expect_nothing_at(out);

  const fs::path latin1 = dir_ / "latin1.txt";
  write_text(latin1, "caf\xE9 au lait\n");
  expect_usage_error([&] { prepare(options(latin1, out)); },
                     {latin1.string(), "UTF-8", "offset 3"});
  expect_nothing_at(out);

  const fs::path one_line = dir_ / "one_line.txt";
  write_text(one_line, "a single line without a break, so valid and test come out empty");
  expect_usage_error([&] { prepare(options(one_line, out)); }, {one_line.string(), "split empty"});
  expect_nothing_at(out);

  const fs::path folder = dir_ / "folder";
  fs::create_directories(folder);
  write_text(folder / "valid.txt", "some text\n");
  write_text(folder / "test.txt", "some text\n");
  expect_usage_error([&] { prepare(options(folder, out)); }, {folder.string(), "train"});
  expect_nothing_at(out);

  const fs::path good = dir_ / "good.txt";
  write_text(good, test::bundled_text(50'000));
  expect_usage_error([&] { prepare(options(good, out, "wordpiece")); },
                     {"--tokenizer", "wordpiece"});
  auto o = options(good, out, "bpe");
  o.vocab = 10;
  expect_usage_error([&] { prepare(o); }, {"--vocab", "10"});
  o.vocab = 100'000;  // more pieces than 50 KB of text can give
  expect_usage_error([&] { prepare(o); }, {"--vocab", "100000", good.string()});
  expect_nothing_at(out);

  // An existing folder that is not a prepare output is refused and left alone.
  fs::create_directories(out);
  write_text(out / "precious.txt", "keep me");
  expect_usage_error([&] { prepare(options(good, out)); }, {out.string(), "not a prepare output"});
  EXPECT_EQ(read_text(out / "precious.txt"), "keep me");
}

TEST_F(DataTest, LoadSplitRejectsDamagedFiles) {
  const std::vector<int32_t> tokens = {1, 2, 3, 4, 5, 255};
  save_split((dir_ / "train.tok").string(), tokens, 256, 6);
  TokenSplit s = load_split(dir_.string(), "train");
  EXPECT_EQ(s.tokens, tokens);
  EXPECT_EQ(s.vocab, 256);
  EXPECT_EQ(s.source_bytes, 6u);

  const fs::path path = dir_ / "train.tok";
  fs::resize_file(path, fs::file_size(path) - 2);
  expect_usage_error([&] { load_split(dir_.string(), "train"); }, {path.string(), "truncated"});
  fs::resize_file(path, 10);
  expect_usage_error([&] { load_split(dir_.string(), "train"); }, {path.string(), "header"});
  write_text(path, std::string(100, 'x'));
  expect_usage_error([&] { load_split(dir_.string(), "train"); }, {path.string(), "ALIBITOK"});
  expect_usage_error([&] { load_split(dir_.string(), "valid"); }, {(dir_ / "valid.tok").string()});
}

// One spelling of each kind, read back by the parser; a foreign kind in tokenizer.json is refused
// naming the file and the value.
TEST_F(DataTest, TokenizerKindNames) {
  for (TokenizerKind k : {TokenizerKind::bytes, TokenizerKind::bpe})
    EXPECT_EQ(parse_tokenizer_kind(tokenizer_kind_name(k), "--tokenizer"), k);
  EXPECT_STREQ(tokenizer_kind_name(TokenizerKind::bytes), "bytes");
  EXPECT_STREQ(tokenizer_kind_name(TokenizerKind::bpe), "bpe");
  expect_usage_error([] { parse_tokenizer_kind("BPE", "--tokenizer"); }, {"--tokenizer", "'BPE'"});

  Tokenizer::bytes().save_dir(dir_.string());
  const fs::path json = dir_ / "tokenizer.json";
  std::string text = read_text(json);
  text.replace(text.find("\"bytes\""), 7, "\"wordpiece\"");
  write_text(json, text);
  expect_usage_error([&] { Tokenizer::load_dir(dir_.string()); }, {json.string(), "wordpiece"});
}

TEST_F(DataTest, SampleBatch) {
  TokenSplit s;
  s.path = "mem/train.tok";
  s.vocab = 1000;
  for (int i = 0; i < 1000; ++i) s.tokens.push_back(i);  // token = position, so windows are visible
  const int B = 4, T = 16;
  std::vector<int32_t> x(B * T), y(B * T), x2(B * T), y2(B * T);
  sample_batch(s, B, T, 42, 7, 1, x.data(), y.data());
  sample_batch(s, B, T, 42, 7, 1, x2.data(), y2.data());
  EXPECT_EQ(x, x2);
  EXPECT_EQ(y, y2);
  for (int b = 0; b < B; ++b)
    for (int t = 0; t < T; ++t) {
      const int32_t v = x[b * T + t];
      EXPECT_TRUE(v >= 0 && v + 1 < 1000);
      EXPECT_EQ(v, x[b * T] + t) << "a window is contiguous";
      EXPECT_EQ(y[b * T + t], v + 1) << "targets are tokens shifted by one";
    }
  sample_batch(s, B, T, 42, 8, 1, x2.data(), y2.data());
  EXPECT_NE(x, x2) << "another step draws other windows";
  sample_batch(s, B, T, 43, 7, 1, x2.data(), y2.data());
  EXPECT_NE(x, x2) << "another seed draws other windows";

  // Every start in [0, n-T) is reachable, and the last window ends at the last token.
  TokenSplit tiny = s;
  tiny.tokens.resize(T + 3);
  std::vector<bool> seen(3, false);
  for (int step = 0; step < 200; ++step) {
    sample_batch(tiny, 1, T, 1, step, 0, x.data(), y.data());
    ASSERT_LT(x[0], 3);
    seen[x[0]] = true;
  }
  EXPECT_EQ(seen, std::vector<bool>(3, true));

  tiny.tokens.resize(T);
  expect_usage_error([&] { sample_batch(tiny, 1, T, 1, 0, 0, x.data(), y.data()); },
                     {"mem/train.tok", "16 tokens", "T+1 = 17", "--seq-len 16"});
}
