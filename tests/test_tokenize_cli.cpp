// The hf tokenizer kind through the CLI: `alibi tokenize` (encode, decode, pieces, JSON, bad
// input), `prepare --tokenizer-from tokenizer.json`, training, `eval --text` and `generate` on
// it, and `prepare --tokenizer bytebpe`, whose file must be the committed one that Python's
// `tokenizers` encodes as alibi does (tests/ref/make_tokenizer_goldens.py, test_hf_tokenizer.cpp).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "cli.h"
#include "core/utf8.h"
#include "data/hf_tokenizer.h"

namespace alibi {
namespace {

using test::read_text;
using test::run_cli;
using test::write_text;

const std::string kGolden = ALIBI_SOURCE_DIR "/tests/golden/tokenizer/";

TEST(TokenizeCli, EncodesAndDecodesAsTheGoldens) {
  test::TempDir dir("tokenize_cli");
  const std::string tok = kGolden + "neox.tokenizer.json";
  const auto expected = nlohmann::json::parse(read_text(kGolden + "neox.expected.json"));
  for (const char* name : {"unicode", "whitespace", "specials"}) {
    SCOPED_TRACE(name);
    const std::string text = kGolden + "texts/" + name + ".txt";
    auto r = run_cli("tokenize --tokenizer " + tok + " --text " + text, dir / "enc");
    ASSERT_EQ(r.code, 0) << r.err;
    std::string want;
    for (const auto& id : expected[name]["ids_special"])
      want += (want.empty() ? "" : " ") + id.dump();
    EXPECT_EQ(r.out, want + "\n");
    write_text(dir / "ids.txt", r.out);
    r = run_cli("tokenize --tokenizer " + tok + " --decode --text " + dir / "ids.txt", dir / "dec");
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_EQ(r.out, expected[name]["decoded"].get<std::string>());
  }
  auto r = run_cli("tokenize --tokenizer " + tok + " --json --pieces --text " + kGolden +
                   "texts/code.txt", dir / "json");
  ASSERT_EQ(r.code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["ids"], expected["code"]["ids_special"]);
  ASSERT_EQ(j["pieces"].size(), j["ids"].size());
  const auto hf = HfTokenizer::load(read_text(tok), tok);
  for (size_t i = 0; i < j["ids"].size(); ++i) EXPECT_EQ(j["pieces"][i], hf->token(j["ids"][i]));
  r = run_cli("tokenize --tokenizer bytes --pieces --text " + kGolden + "texts/digits.txt",
              dir / "p");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out.substr(0, 4), "49\t1");
}

// --decode --keep-special writes the special tokens as Hugging Face's decode does with
// skip_special_tokens=False, and without it drops them as skip_special_tokens=True does
// (tests/ref/make_decode_special_goldens.py); --keep-special without --decode is refused.
TEST(TokenizeCli, KeepSpecialDecodesAsHuggingFaceKeepsThem) {
  test::TempDir dir("tokenize_keep");
  const auto golden = nlohmann::json::parse(read_text(kGolden + "decode_special.json"));
  for (const auto& [name, texts] : golden.items())
    for (const auto& [text, g] : texts.items()) {
      SCOPED_TRACE(name + " " + text);
      std::string ids;
      for (const auto& id : g["ids"]) ids += (ids.empty() ? "" : " ") + id.dump();
      write_text(dir / "ids.txt", ids);
      const std::string cmd = "tokenize --tokenizer " + kGolden + name + ".tokenizer.json" +
                              " --decode --text " + dir / "ids.txt";
      auto r = run_cli(cmd + " --keep-special", dir / "kept");
      ASSERT_EQ(r.code, 0) << r.err;
      EXPECT_EQ(r.out, g["kept"].get<std::string>());
      r = run_cli(cmd, dir / "skipped");
      ASSERT_EQ(r.code, 0) << r.err;
      EXPECT_EQ(r.out, g["skipped"].get<std::string>());
    }
  const auto r = run_cli("tokenize --tokenizer bytes --keep-special --text " + kGolden +
                         "texts/digits.txt", dir / "enc");
  test::expect_cli_error(r, "--keep-special applies to --decode");
}

TEST(TokenizeCli, BadInputIsOneLineExitTwo) {
  test::TempDir dir("tokenize_bad");
  write_text(dir / "trunc.json", read_text(kGolden + "bloom.tokenizer.json").substr(0, 5000));
  write_text(dir / "ids.txt", "12 7 x9");
  write_text(dir / "big.txt", "12 999999");
  const std::string bloom = kGolden + "bloom.tokenizer.json";
  const std::pair<std::string, std::vector<std::string>> cases[] = {
      {"tokenize --tokenizer " + dir / "missing.json", {"missing.json", "does not exist"}},
      {"tokenize --tokenizer " + dir / "trunc.json", {"trunc.json", "not valid JSON"}},
      {"tokenize --tokenizer " + bloom + " --text " + dir / "nope.txt", {"nope.txt"}},
      {"tokenize --tokenizer " + bloom + " --decode --text " + dir / "ids.txt",
       {"'x9'", "not a token id"}},
      {"tokenize --tokenizer " + bloom + " --decode --text " + dir / "big.txt",
       {"token id 999999", "bloom.tokenizer.json", "3000 ids"}},
      {"prepare --input " + kGolden + "texts/code.txt --out " + dir / "d" +
           " --tokenizer wordpiece",
       {"--tokenizer 'wordpiece'", "bytebpe"}},
      {"prepare --input " + kGolden + "texts/code.txt --out " + dir / "d" +
           " --tokenizer bytebpe --vocab 100",
       {"--vocab 100", "258"}},
  };
  for (const auto& [args, needles] : cases) {
    SCOPED_TRACE(args);
    const auto r = run_cli(args, dir / "e");
    EXPECT_EQ(r.code, 2) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    for (const auto& n : needles)
      EXPECT_NE(r.err.find(n), std::string::npos) << n << " in " << r.err;
  }
  EXPECT_FALSE(std::filesystem::exists(dir / "d"));
}

// prepare with a tokenizer.json, train, then eval --text and generate with the checkpoint's
// own copy of it.
TEST(TokenizeCli, HfTokenizerThroughPrepareTrainEvalGenerate) {
  test::TempDir dir("hf_pipeline");
  const std::string text = test::bundled_text(200000);
  write_text(dir / "corpus.txt", text);
  const std::string tok = kGolden + "bloom.tokenizer.json";
  auto r = run_cli("--threads 2 prepare --input " + dir / "corpus.txt" + " --out " + dir / "data" +
                   " --tokenizer-from " + tok, dir / "p");
  ASSERT_EQ(r.code, 0) << r.err;
  const auto info = nlohmann::json::parse(read_text(dir / "data/prepare.json"));
  EXPECT_EQ(info["tokenizer"], "hf");
  // The prepared ids are the tokenizer's (whole-text encoding), whatever the thread count: of
  // each split, which prepare cuts after a line, so a split may start inside a piece of the
  // whole text (e.g. "\n\n") and the three need not add up to the whole text's count.
  const auto hf = HfTokenizer::load(read_text(tok), tok);
  size_t at = 0;
  for (const char* split : {"train", "valid", "test"}) {
    const size_t bytes = info["splits"][split]["bytes"].get<size_t>();
    EXPECT_EQ(info["splits"][split]["tokens"].get<size_t>(),
              hf->encode(std::string_view(text).substr(at, bytes), false).size())
        << split;
    at += bytes;
  }
  EXPECT_EQ(at, text.size());
  r = run_cli("--threads 1 train --data " + dir / "data" + " --out " + dir / "run" +
              " --layers 1 --d-model 32 --heads 2 --ffn 64 --seq-len 32 --batch 4 --steps 3"
              " --eval-every 0", dir / "t");
  ASSERT_EQ(r.code, 0) << r.err;
  write_text(dir / "eval.txt", text.substr(150000, 5000));
  r = run_cli("--threads 1 eval " + dir / "run" + " --text " + dir / "eval.txt" +
              " --lengths 32,64 --json " + dir / "e.json", dir / "e");
  ASSERT_EQ(r.code, 0) << r.err;
  const auto ej = nlohmann::json::parse(read_text(dir / "e.json"));
  EXPECT_EQ(ej["results"][0]["tokens_scored"].get<size_t>(),
            hf->encode(text.substr(150000, 5000), false).size() - 1);
  r = run_cli("--threads 1 generate " + dir / "run" + " --prompt 'Mr. Darcy' --max-new-tokens 12 "
              "--temperature 0", dir / "g");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_FALSE(r.out.empty());  // the continuation, decoded by the checkpoint's tokenizer.json
}

// alibi trains the same byte-level BPE every time, and it is the committed file whose ids
// Python's tokenizers gave (bytebpe.expected.json, checked in test_hf_tokenizer.cpp). The file
// was trained on the whole of tiny Shakespeare, which tests/data keeps for this test.
TEST(TokenizeCli, BytebpeTrainsTheCommittedTokenizer) {
  test::TempDir dir("bytebpe");
  write_text(dir / "shakespeare.txt", test::test_data_text("tinyshakespeare.txt.xz"));
  const auto r = run_cli("--threads 2 prepare --input " + dir / "shakespeare.txt" + " --out " +
                             dir / "data" + " --tokenizer bytebpe --vocab 1000",
                         dir / "p");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(read_text(dir / "data/hf-tokenizer.json"),
            read_text(kGolden + "bytebpe.tokenizer.json"));
}

}  // namespace
}  // namespace alibi
