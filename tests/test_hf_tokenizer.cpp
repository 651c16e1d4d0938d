// Hugging Face tokenizer.json against the real library: goldens written by
// tests/ref/make_tokenizer_goldens.py with Python `tokenizers` (BLOOM's and GPT-NeoX's
// pipelines, and two configurations that exercise the rest), compared id for id.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli.h"
#include "core/utf8.h"
#include "data/hf_tokenizer.h"
#include "data/tokenizer.h"
#include "usage_error.h"

namespace alibi {
namespace {

using test::read_text;

const std::string kDir = ALIBI_SOURCE_DIR "/tests/golden/tokenizer/";
// The novel the *.novel.u16 goldens were made from, and a slice of WikiText (tests/data).
const std::string kNovel = "sherlock-holmes.txt.xz";
const std::string kWikiText = "wikitext-2-test-head.txt.xz";

std::shared_ptr<const HfTokenizer> load(const std::string& name) {
  const std::string path = kDir + name + ".tokenizer.json";
  return HfTokenizer::load(read_text(path), path);
}

std::vector<int32_t> ids_of(const nlohmann::json& j) { return j.get<std::vector<int32_t>>(); }

class HfGolden : public ::testing::TestWithParam<const char*> {};

TEST_P(HfGolden, EveryStressTextIdForId) {
  const auto tok = load(GetParam());
  const auto expected = nlohmann::json::parse(read_text(kDir + GetParam() + ".expected.json"));
  ASSERT_GE(expected.size(), 13u);
  for (const auto& [name, want] : expected.items()) {
    SCOPED_TRACE(name);
    const std::string text = read_text(kDir + "texts/" + name + ".txt");
    const auto ids = tok->encode(text, false);
    EXPECT_EQ(ids, ids_of(want["ids"]));
    EXPECT_EQ(tok->encode(text, true), ids_of(want["ids_special"]));
    // HF's decode returns text (ill-formed bytes as U+FFFD); ours returns the bytes.
    EXPECT_EQ(utf8_lossy(tok->decode(ids, true)), want["decoded"].get<std::string>());
    // HF encodes (and round-trips) the text as Python read it: ill-formed bytes as U+FFFD.
    if (want["roundtrip"].get<bool>()) EXPECT_EQ(tok->decode(ids, false), utf8_lossy(text));
  }
}

INSTANTIATE_TEST_SUITE_P(Configs, HfGolden,
                         ::testing::Values("bloom", "neox", "kitchen", "chars", "bytebpe"),
                         [](const auto& info) { return std::string(info.param); });

// encode(text) in the parts cut_at_or_after allows (every ~4 KB), concatenated; `parts` counts
// them.
std::vector<int32_t> encode_in_parts(const HfTokenizer& tok, const std::string& text,
                                     size_t* parts) {
  std::vector<int32_t> ids;
  *parts = 0;
  for (size_t at = 0; at < text.size(); ++*parts) {
    const size_t cut = tok.cut_at_or_after(text, at + 4096);
    const auto p = tok.encode(std::string_view(text).substr(at, cut - at), false);
    ids.insert(ids.end(), p.begin(), p.end());
    at = cut;
  }
  return ids;
}

class HfNovel : public ::testing::TestWithParam<const char*> {};

// A whole novel, encoded whole and in the parts a parallel prepare cuts it into.
TEST_P(HfNovel, WholeNovelIdForIdAndInParts) {
  const std::string text = test::test_data_text(kNovel);
  ASSERT_GT(text.size(), 500000u) << kNovel;
  const std::string raw = read_text(kDir + GetParam() + ".novel.u16");
  std::vector<int32_t> want(raw.size() / 2);
  for (size_t i = 0; i < want.size(); ++i)
    want[i] = int32_t(uint8_t(raw[2 * i])) | int32_t(uint8_t(raw[2 * i + 1])) << 8;
  const auto tok = load(GetParam());
  const auto ids = tok->encode(text, false);
  ASSERT_EQ(ids.size(), want.size());
  EXPECT_EQ(ids, want);
  size_t n = 0;
  EXPECT_EQ(encode_in_parts(*tok, text, &n), want);
  EXPECT_GT(n, 100u) << "the tokenizer allowed no cuts";
  EXPECT_EQ(tok->decode(ids, false), text);
}

// WikiText's lines start with a space: the cuts before " word" keep the ids too.
TEST_P(HfNovel, WikiTextInPartsEqualsWhole) {
  const std::string text = test::test_data_text(kWikiText);
  ASSERT_GT(text.size(), 100000u);
  const auto tok = load(GetParam());
  const auto whole = tok->encode(text, false);
  size_t n = 0;
  EXPECT_EQ(encode_in_parts(*tok, text, &n), whole);
  EXPECT_GT(n, 100u) << "the tokenizer allowed no cuts";
}

INSTANTIATE_TEST_SUITE_P(Configs, HfNovel, ::testing::Values("bloom", "neox"),
                         [](const auto& info) { return std::string(info.param); });

// A minimal tokenizer.json, edited by each bad-input case below.
nlohmann::json tiny() {
  return nlohmann::json::parse(R"({
    "version": "1.0", "truncation": null, "padding": null, "added_tokens": [],
    "normalizer": null,
    "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true,
                      "use_regex": true},
    "post_processor": null, "decoder": {"type": "ByteLevel"},
    "model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2, "<0x41>": 3},
              "merges": ["a b"]}})");
}

TEST(HfTokenizer, BadFilesAreOneLineErrorsNamingFieldAndValue) {
  auto refused = [](const nlohmann::json& j, const std::vector<std::string>& needles) {
    test::expect_usage_error([&] { HfTokenizer::load(j.dump(), "t.json"); }, needles);
  };
  test::expect_usage_error([] { HfTokenizer::load("{\"model\": {", "t.json"); },
                           {"'t.json'", "not valid JSON"});
  auto j = tiny();
  j["model"]["type"] = "Unigram";
  refused(j, {"'t.json'", "model.type", "Unigram", "BPE"});
  j = tiny();
  j["pre_tokenizer"] = {{"type", "Metaspace"}};
  refused(j, {"pre_tokenizer.type", "Metaspace", "ByteLevel"});
  j = tiny();
  j["normalizer"] = {{"type", "Lowercase"}};
  refused(j, {"normalizer.type", "Lowercase", "NFC"});
  j = tiny();
  j["model"]["merges"] = {"a c"};
  refused(j, {"merges[0]", "'c'", "not in the vocab"});
  j = tiny();
  j["model"]["merges"] = {"b a"};
  refused(j, {"merges[0]", "'ba'", "not in the vocab"});
  j = tiny();
  j["pre_tokenizer"] = {
      {"type", "Sequence"},
      {"pretokenizers",
       {tiny()["pre_tokenizer"],
        {{"type", "Split"}, {"pattern", {{"Regex", "x"}}}, {"behavior", "Isolated"}}}}};
  refused(j, {"pretokenizers[1]", "ByteLevel"});
  j = tiny();
  j["pre_tokenizer"] = {
      {"type", "Split"}, {"pattern", {{"Regex", "(unclosed"}}}, {"behavior", "Isolated"}};
  refused(j, {"pattern '(unclosed'", "does not compile"});
  j = tiny();
  j["truncation"] = {{"max_length", 8}};
  refused(j, {"truncation", "null"});
  const auto tok = HfTokenizer::load(tiny().dump(), "t.json");
  test::expect_usage_error([&] { tok->decode(std::vector<int32_t>{1, 7}, false); },
                           {"token id 7", "'t.json'", "4 ids"});
}

TEST(HfTokenizer, ByteFallbackAndUnknownFollowTheModelFlags) {
  auto j = tiny();
  j["pre_tokenizer"] = nullptr;  // characters, not bytes
  j["decoder"] = nullptr;
  j["model"]["byte_fallback"] = true;
  auto tok = HfTokenizer::load(j.dump(), "t.json");
  EXPECT_EQ(tok->encode("abA", false), (std::vector<int32_t>{2, 3}));  // "A" -> <0x41>
  EXPECT_EQ(tok->encode("abz", false), (std::vector<int32_t>{2}));     // no unk: dropped, as HF
  j["model"]["vocab"]["<unk>"] = 4;
  j["model"]["unk_token"] = "<unk>";
  j["model"]["fuse_unk"] = true;
  tok = HfTokenizer::load(j.dump(), "t.json");
  EXPECT_EQ(tok->encode("zzab", false), (std::vector<int32_t>{4, 2}));
  j["model"]["fuse_unk"] = false;
  tok = HfTokenizer::load(j.dump(), "t.json");
  EXPECT_EQ(tok->encode("zzab", false), (std::vector<int32_t>{4, 4, 2}));
}

// Prepend (Llama-style "▁" prefixes) is in no golden configuration: its HF semantics are that
// a non-empty piece gets the prefix, an empty one does not.
TEST(HfTokenizer, PrependNormalizerPrefixesNonEmptyPieces) {
  auto j = tiny();
  j["pre_tokenizer"] = nullptr;
  j["decoder"] = nullptr;
  j["normalizer"] = {{"type", "Sequence"}, {"normalizers", {{{"type", "Prepend"}, {"prepend", "a"}},
                     {{"type", "Replace"}, {"pattern", {{"String", "c"}}}, {"content", "b"}}}}};
  const auto tok = HfTokenizer::load(j.dump(), "t.json");
  EXPECT_EQ(tok->encode("b", false), (std::vector<int32_t>{2}));     // "ab"
  EXPECT_EQ(tok->encode("cb", false), (std::vector<int32_t>{2, 1}));  // "abb"
  EXPECT_TRUE(tok->encode("", false).empty());
}

TEST(HfTokenizer, KindHfSurvivesTheDataFolderAndCheckpointRoundTrip) {
  test::TempDir dir("hf_kind");
  const Tokenizer t = *Tokenizer::from_path(kDir + "neox.tokenizer.json");
  ASSERT_EQ(t.kind(), TokenizerKind::hf);
  t.save_dir(dir.path.string());
  const Tokenizer back = Tokenizer::load_dir(dir.path.string());
  EXPECT_EQ(back.fingerprint(), t.fingerprint());
  EXPECT_EQ(back.encode("Hello  world"), t.encode("Hello  world"));
  EXPECT_EQ(Tokenizer::from_path(dir.path.string())->fingerprint(), t.fingerprint());
}

}  // namespace
}  // namespace alibi
