// alibi import of GGUF files (model/gguf_import.h) and export --to-gguf (model/gguf_export.h)
// against files made by llama.cpp's own tools: a tiny BLOOM and a tiny MPT converted by
// convert_hf_to_gguf.py and quantized by llama-quantize (BLOOM to Q8_0, Q4_0 and Q4_K_M, MPT to
// Q8_0: tests/golden/gguf/{bloom,mpt}-*.gguf, bloom.json, mpt.json;
// tests/ref/make_gguf_models.py), with the logits of a double-precision transformers reference on
// gguf-py's dequantisation of each file and those of llama.cpp itself.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>

#include "cli.h"
#include "core/gguf.h"
#include "core/io.h"
#include "gguf_golden.h"
#include "model/checkpoint.h"
#include "model/gguf_import.h"
#include "model/model.h"
#include "usage_error.h"

namespace alibi {
namespace {

namespace fs = std::filesystem;
using test::GgufVariant;
using test::golden;
using test::golden_splits;
using test::kDir;
using test::run_cli;
using test::TempDir;

// Every golden file: "bloom-f16.gguf", ..., "mpt-q8_0.gguf".
std::vector<std::string> files() {
  std::vector<std::string> names;
  for (const char* family : {"bloom", "mpt"})
    for (const auto& [name, v] : golden(family).at("files").items()) names.push_back(name);
  return names;
}

std::string family_of(const std::string& file) { return file.substr(0, file.find('-')); }

double max_diff(const float* got, const std::vector<double>& want) {
  double diff = 0;
  for (size_t v = 0; v < want.size(); ++v) diff = std::max(diff, std::fabs(double(got[v]) - want[v]));
  return diff;
}

double range(const std::vector<double>& x) {
  return *std::max_element(x.begin(), x.end()) - *std::min_element(x.begin(), x.end());
}

// max |got - want| over the row's range of `want` (max - min).
double row_err(const float* got, const std::vector<double>& want) {
  return max_diff(got, want) / range(want);
}

// Ours runs the file's weights in fp32 (products of exactly dequantized weights and unrounded
// activations); the reference runs the same weights in double. Measured at most 1.9e-7 (BLOOM)
// and 3.4e-7 (MPT) of the row's range over these files (the test records it as max_ref_err);
// 2e-6 leaves room and still catches a wrong block layout, scale or qkv order (1e-2 and more).
constexpr double kRefTol = 2e-6;

class GgufImportGolden : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    const nlohmann::json& g = golden(family_of(GetParam()));
    file_ = g.at("files").at(GetParam());
    ids_ = g.at("ids").get<std::vector<int32_t>>();
    rows_ = g.at("rows").get<std::vector<int64_t>>();
    m_ = import_gguf(kDir + GetParam());
    ck_path_ = write_gguf_checkpoint(m_, dir_.path.string(), {{"imported_from", GetParam()}});
  }
  TempDir dir_{"gguf_import"};
  nlohmann::json file_;
  std::vector<int32_t> ids_;
  std::vector<int64_t> rows_;
  GgufImport m_;
  std::string ck_path_;
};

TEST_P(GgufImportGolden, CheckpointKeepsTheFilesBlocksByteForByte) {
  const Checkpoint ck = read_checkpoint(ck_path_);
  int matrices = 0;
  for (const TensorInfo& t : make_param_layout(ck.config).tensors) {
    const GgufTensor& g = *m_.of.at(t.name);
    const StTensor& s = ck.st.at(t.name);
    if (!t.matrix) continue;
    EXPECT_EQ(s.dtype, g.type->name) << t.name;
    ASSERT_EQ(s.nbytes(), g.bytes) << t.name;
    EXPECT_EQ(std::memcmp(s.bytes(), g.data, g.bytes), 0) << t.name;
    ++matrices;
  }
  EXPECT_EQ(matrices, 1 + 4 * ck.config.layers);  // tied head
  EXPECT_EQ(ck.config.gelu, family_of(GetParam()) == "mpt" ? Gelu::erf : Gelu::tanh);
}

// Logits of the model on the checkpoint (matrices used in place, in their GGUF types) at every
// recorded row: within kRefTol of the double reference, and so within llama.cpp's own distance
// from it (recorded per row: at most 1.2e-2 of the row's range, MPT's Q8_0; llama.cpp rounds
// activations to 8 bits per block, keeps its KV cache in f16 and its GELU is a table of f16
// values) plus kRefTol of llama.cpp's logits.
TEST_P(GgufImportGolden, LogitsEqualTheReferenceAndLlamaCpp) {
  const Checkpoint ck = read_checkpoint(ck_path_);
  const int T = int(ids_.size());
  Model model(ck.config, 1, T, ck.st);
  model.forward(ids_.data(), nullptr, 1, T);
  const std::vector<int64_t>& rows = rows_;
  double worst = 0;
  for (size_t i = 0; i < rows.size(); ++i) {
    const float* got = model.logits_row(rows[i]);
    const auto want = file_.at("reference").at(i).get<std::vector<double>>();
    const double ref = row_err(got, want);
    worst = std::max(worst, ref);
    EXPECT_LE(ref, kRefTol) << GetParam() << " row " << rows[i];
    const double llama_err = file_.at("llama_err").at(i).get<double>();  // over want's range
    EXPECT_LE(llama_err, 2e-2) << GetParam() << " row " << rows[i];
    EXPECT_LE(max_diff(got, file_.at("llama").at(i).get<std::vector<double>>()) / range(want),
              llama_err + kRefTol)
        << GetParam() << " row " << rows[i];
  }
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.3g", worst);
  RecordProperty("max_ref_err", buf);
}

// Decoding one token at a time (1-row products, the streamed kernels) gives the prompt's logits.
TEST_P(GgufImportGolden, DecodingEqualsThePrompt) {
  const Checkpoint ck = read_checkpoint(ck_path_);
  const int T = 8;
  Model full(ck.config, 1, T, ck.st);
  full.forward(ids_.data(), nullptr, 1, T);
  const std::vector<float> want(full.logits_row(T - 1), full.logits_row(T - 1) + ck.config.vocab);
  Model dec(ck.config, 1, T, ck.st);
  KVCache cache = dec.make_cache(T, false);
  const float* got = nullptr;
  for (int t = 0; t < T; ++t) got = dec.forward_cached(&ids_[size_t(t)], 1, cache);
  const std::vector<double> w(want.begin(), want.end());
  EXPECT_LE(row_err(got, w), kRefTol) << GetParam();
}

// The .gguf read in place (eval, generate and serve on the file itself) is the same model as its
// import: the same config and tokenizer, logits identical to the bit. The model outlives the
// Checkpoint it came from, so it keeps the file's mapping alive itself.
TEST_P(GgufImportGolden, TheFileReadInPlaceIsItsImport) {
  const Checkpoint imported = read_checkpoint(ck_path_);
  const int T = int(ids_.size());
  std::unique_ptr<Model> in_place;
  {
    const Checkpoint ck = read_checkpoint(kDir + GetParam());
    EXPECT_EQ(ck.config.to_json(), imported.config.to_json());
    EXPECT_EQ(ck.tokenizer.encode("And many a"), imported.tokenizer.encode("And many a"));
    EXPECT_EQ(ck.train.at("seq_len"), m_.trained_len);
    EXPECT_EQ(ck.weights, imported.weights);
    for (const TensorInfo& t : make_param_layout(ck.config).tensors) {  // views, not copies
      const StTensor& s = ck.st.at(t.name);
      if (!t.matrix) continue;
      EXPECT_TRUE(s.owned.empty()) << t.name;
      ASSERT_EQ(s.nbytes(), m_.of.at(t.name)->bytes) << t.name;
      EXPECT_EQ(std::memcmp(s.bytes(), m_.of.at(t.name)->data, s.nbytes()), 0) << t.name;
    }
    in_place = std::make_unique<Model>(ck.config, 1, T, ck.st);
  }
  Model model(imported.config, 1, T, imported.st);
  model.forward(ids_.data(), nullptr, 1, T);
  in_place->forward(ids_.data(), nullptr, 1, T);
  const size_t V = size_t(imported.config.vocab);
  for (const int64_t r : rows_)
    EXPECT_EQ(std::memcmp(in_place->logits_row(r), model.logits_row(r), V * sizeof(float)), 0)
        << "row " << r;
}

INSTANTIATE_TEST_SUITE_P(Files, GgufImportGolden, ::testing::ValuesIn(files()),
                         [](const auto& info) {
                           std::string n = info.param.substr(0, info.param.find('.'));
                           for (char& c : n)
                             if (c == '-') c = '_';
                           return n;
                         });

// The tokenizer rebuilt from tokenizer.ggml.* gives the ids of the model's tokenizer.json and of
// llama.cpp's tokenizer on the same file.
TEST(GgufImport, TokenizerGivesTheIdsOfHfAndLlamaCpp) {
  const GgufImport m = import_gguf(kDir + "bloom-f16.gguf");
  const std::string text = golden().at("text");
  const auto ids = golden().at("ids").get<std::vector<int32_t>>();
  EXPECT_EQ(m.tokenizer.encode(text), ids);
  EXPECT_EQ(golden().at("llama_ids").get<std::vector<int32_t>>(), ids);
  EXPECT_EQ(m.tokenizer.decode(ids), text);
}

TEST(GgufImport, ReadsTheArchitecturesOptions) {
  const GgufImport m = import_gguf(kDir + "bloom-q4_k_m.gguf");
  EXPECT_EQ(m.architecture, "bloom");
  EXPECT_EQ(m.config.layers, 2);
  EXPECT_EQ(m.config.d_model, 64);
  EXPECT_EQ(m.config.heads, 4);
  EXPECT_EQ(m.config.ffn, 256);
  EXPECT_EQ(m.config.vocab, 320);
  EXPECT_TRUE(m.config.tied_head);
  EXPECT_TRUE(m.config.embed_ln);
  EXPECT_EQ(m.trained_len, 128);
  EXPECT_EQ(m.matrix_types(), "Q4_K, Q5_0, Q6_K, Q8_0");
  const GgufImport mpt = import_gguf(kDir + "mpt-q8_0.gguf");
  EXPECT_EQ(mpt.architecture, "mpt");
  EXPECT_EQ(mpt.config.heads, 4);
  EXPECT_FALSE(mpt.config.linear_bias);
  EXPECT_FALSE(mpt.config.embed_ln);
  EXPECT_EQ(mpt.config.alibi_bias_max, 8.0f);
  EXPECT_EQ(mpt.trained_len, 128);
  EXPECT_EQ(mpt.matrix_types(), "Q8_0");
  EXPECT_EQ(mpt.tokenizer.encode(golden("mpt").at("text").get<std::string>()),
            golden("mpt").at("llama_ids").get<std::vector<int32_t>>());
}

// ---- bad files: one line naming the file and the field, exit 2, nothing written ----------------

class GgufImportBad : public GgufVariant {
 protected:
  void refused(const std::string& file, const std::vector<std::string>& needles) {
    test::expect_usage_error([&] { import_gguf(file); }, needles);
    const std::string out = dir_ / "out";
    const test::CliResult r = run_cli("import " + file + " --out " + out, dir_ / "err");
    test::expect_cli_error(r, needles.back());
    EXPECT_FALSE(fs::exists(out)) << "refused import left " << out;
  }
};

TEST_F(GgufImportBad, EachIsRefusedByName) {
  refused(variant([](GgufWriter& w, const Gguf&, std::vector<std::string>& skip) {
            skip.push_back("general.architecture");
            w.add_string("general.architecture", "llama");
          }),
          {"general.architecture", "\"llama\"", "bloom, mpt"});
  refused(variant([](GgufWriter&, const Gguf&, std::vector<std::string>& skip) {
            skip.push_back("blk.1.ffn_down.weight");
          }),
          {"blk.1.ffn_down.weight", "is missing"});
  refused(variant([](GgufWriter& w, const Gguf& g, std::vector<std::string>&) {
            const GgufTensor& t = *g.find("blk.0.attn_output.weight");
            w.add_tensor("blk.0.attn_q_norm.weight", t.shape(), *t.type, t.data);
          }),
          {"blk.0.attn_q_norm.weight", "is not part of bloom"});
  refused(variant([](GgufWriter& w, const Gguf& g, std::vector<std::string>& skip) {
            skip.push_back("blk.0.attn_qkv.weight");
            const GgufTensor& t = *g.find("blk.0.ffn_up.weight");  // (256, 64), not (192, 64)
            w.add_tensor("blk.0.attn_qkv.weight", t.shape(), *t.type, t.data);
          }),
          {"blk.0.attn_qkv.weight", "wrong shape"});
  refused(variant([](GgufWriter& w, const Gguf&, std::vector<std::string>& skip) {
            skip.push_back("tokenizer.ggml.pre");
            w.add_string("tokenizer.ggml.pre", "qwen2");
          }),
          {"tokenizer.ggml.pre", "\"qwen2\""});
  refused(variant([](GgufWriter& w, const Gguf&, std::vector<std::string>& skip) {
            skip.push_back("bloom.block_count");
            w.add_u32("bloom.block_count", 1000000);
          }),
          {"bloom.block_count", "more than the file's"});
  refused(variant([](GgufWriter& w, const Gguf&, std::vector<std::string>& skip) {
            skip.push_back("bloom.feed_forward_length");
            w.add_u32("bloom.feed_forward_length", 100);
          }),
          {"bloom.feed_forward_length"});
  const std::vector<uint8_t> q8(2 * 34, 0);
  refused(variant([&q8](GgufWriter& w, const Gguf&, std::vector<std::string>& skip) {
            skip.push_back("blk.0.attn_norm.weight");  // a vector quantized
            w.add_tensor("blk.0.attn_norm.weight", {64}, *ggml_type(std::string_view("Q8_0")),
                         q8.data());
          }),
          {"blk.0.attn_norm.weight", "type Q8_0", "expected F32, F16 or BF16"});
  for (const std::string which : {"bos", "eos"})
    for (const int64_t id : {int64_t(-1), int64_t(100000)}) {
      const std::string key = "tokenizer.ggml." + which + "_token_id";
      refused(variant([&](GgufWriter& w, const Gguf&, std::vector<std::string>& skip) {
                w.add_bool("tokenizer.ggml.add_" + which + "_token", true);
                skip.push_back(key);
                if (id >= 0) w.add_u32(key, uint32_t(id));
              }),
              {key, id < 0 ? "is missing" : "is 100000", "add_" + which + "_token true"});
    }
  // A truncated file: the reader's error, through the CLI.
  const std::string cut = dir_ / "cut.gguf";
  const std::string whole = read_file(kDir + "bloom-q8_0.gguf", "golden");
  test::write_text(cut, whole.substr(0, whole.size() - 100));
  refused(cut, {"cut.gguf", "runs past the end"});
}

TEST(GgufImportCli, ImportThenGenerateAndEval) {
  TempDir dir("gguf_cli");
  const std::string out = dir / "run";
  const test::CliResult r =
      run_cli("import " + kDir + "bloom-q4_k_m.gguf --out " + out, dir / "e");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("GGUF bloom (matrices Q4_K, Q5_0, Q6_K, Q8_0"), std::string::npos) << r.out;
  const std::string gen = " --prompt 'And many' --max-new-tokens 8 --temperature 0";
  const test::CliResult g = run_cli("generate " + out + gen, dir / "g");
  EXPECT_EQ(g.code, 0) << g.err;
  test::write_text(dir / "text.txt", golden().at("text").get<std::string>());
  const std::string ev = " --text " + (dir / "text.txt") + " --lengths 16,32 --json ";
  const test::CliResult e = run_cli("eval " + out + ev + (dir / "a.json"), dir / "ev");
  EXPECT_EQ(e.code, 0) << e.err;
  // The same on the file itself, not imported: the same text and the same perplexities.
  const test::CliResult g2 = run_cli("generate " + kDir + "bloom-q4_k_m.gguf" + gen, dir / "g2");
  EXPECT_EQ(g2.code, 0) << g2.err;
  EXPECT_EQ(g2.out, g.out);
  const test::CliResult e2 =
      run_cli("eval " + kDir + "bloom-q4_k_m.gguf" + ev + (dir / "b.json"), dir / "ev2");
  EXPECT_EQ(e2.code, 0) << e2.err;
  const auto a = nlohmann::json::parse(test::read_text(dir / "a.json"));
  const auto b = nlohmann::json::parse(test::read_text(dir / "b.json"));
  ASSERT_EQ(a.at("results").size(), 2u);
  for (size_t i = 0; i < 2; ++i)
    EXPECT_EQ(a.at("results")[i].at("loss"), b.at("results")[i].at("loss")) << i;
  // prepare --tokenizer-from the file: the ids of the import's tokenizer.
  const std::string splits = golden_splits(dir);
  for (const std::string& from : {kDir + "bloom-q4_k_m.gguf", out}) {
    const std::string data = dir / (from == out ? "data_run" : "data_file");
    const test::CliResult p = run_cli(
        "prepare --input " + splits + " --out " + data + " --tokenizer-from " + from, dir / "p");
    ASSERT_EQ(p.code, 0) << p.err;
  }
  EXPECT_EQ(test::read_text(dir / "data_file/test.tok"),
            test::read_text(dir / "data_run/test.tok"));
  test::expect_cli_error(
      run_cli("import " + kDir + "bloom-q4_k_m.gguf --dtype q8_0 --out " + (dir / "x"), dir / "d"),
      "--dtype 'q8_0'");
  // Neither the import nor the file is a run of train: nothing to resume.
  for (const std::string& what : {out, kDir + "bloom-q4_k_m.gguf"})
    test::expect_cli_error(run_cli("train --resume " + what, dir / "r"),
                           "is an import of '");
}


// ---- export --to-gguf ------------------------------------------------------------------------

class GgufExport : public ::testing::Test {
 protected:
  // RUN folder of `alibi import SRC`.
  std::string imported(const std::string& src, const std::string& name) {
    const std::string run = dir_ / name;
    const test::CliResult r = run_cli("import " + src + " --out " + run, dir_ / "e");
    EXPECT_EQ(r.code, 0) << r.err;
    return run;
  }
  // Every tensor of `ours` has the name, type, shape and bytes of `theirs`'s, and no other.
  static void expect_same_tensors(const std::string& ours, const std::string& theirs) {
    const Gguf a = Gguf::read(ours), b = Gguf::read(theirs);
    ASSERT_EQ(a.tensors().size(), b.tensors().size());
    for (const GgufTensor& t : b.tensors()) {
      const GgufTensor* o = a.find(t.name);
      ASSERT_TRUE(o) << t.name;
      EXPECT_EQ(o->type, t.type) << t.name;
      EXPECT_EQ(o->dims, t.dims) << t.name;
      ASSERT_EQ(o->bytes, t.bytes) << t.name;
      EXPECT_EQ(std::memcmp(o->data, t.data, t.bytes), 0) << t.name;
    }
  }
  TempDir dir_{"gguf_export"};
};

// An import written back out holds the file's blocks; the metadata reads back as the same model
// and tokenizer (llama.cpp's logits on such a file equal those on the original: docs/gguf.md).
TEST_F(GgufExport, AnImportWrittenBackHoldsTheFilesTensors) {
  for (const char* name : {"bloom-q4_k_m.gguf", "mpt-q8_0.gguf"}) {
    const std::string run = imported(kDir + name, std::string("run-") + name);
    const std::string out = dir_ / (std::string("again-") + name);
    const test::CliResult r =
        run_cli("export " + run + " --to-gguf " + out + " --max-seq-len 128", dir_ / "x");
    ASSERT_EQ(r.code, 0) << r.err;
    expect_same_tensors(out, kDir + name);
    const GgufImport a = import_gguf(out), b = import_gguf(kDir + name);
    EXPECT_EQ(a.config.to_json(), b.config.to_json()) << name;
    EXPECT_EQ(a.trained_len, b.trained_len) << name;
    const std::string text = golden(family_of(name)).at("text");
    EXPECT_EQ(a.tokenizer.encode(text), b.tokenizer.encode(text)) << name;
    EXPECT_EQ(Gguf::read(out).get_strings("tokenizer.ggml.tokens"),
              Gguf::read(kDir + name).get_strings("tokenizer.ggml.tokens"));
  }
}

// Quantized to Q8_0 from the F16 file's values, the export equals llama-quantize's Q8_0 file
// tensor for tensor, byte for byte.
TEST_F(GgufExport, Q8_0FromF16EqualsLlamaQuantize) {
  const std::string run = imported(kDir + "bloom-f16.gguf", "run");
  const std::string out = dir_ / "q8.gguf";
  const test::CliResult r = run_cli(
      "export " + run + " --to-gguf " + out + " --dtype q8_0 --max-seq-len 128", dir_ / "x");
  ASSERT_EQ(r.code, 0) << r.err;
  expect_same_tensors(out, kDir + "bloom-q8_0.gguf");
}

TEST_F(GgufExport, RefusalsNameTheReasonAndWriteNothing) {
  const std::string hf = std::string(ALIBI_SOURCE_DIR) + "/tests/golden/hf/";
  const std::string out = dir_ / "x.gguf";
  const std::string falcon = imported(hf + "falcon", "falcon");
  test::expect_cli_error(run_cli("export " + falcon + " --to-gguf " + out, dir_ / "e"),
                         "llama.cpp runs no Falcon with ALiBi");
  const std::string bloom48 = imported(hf + "bloom", "bloom48");  // rows of 48
  test::expect_cli_error(
      run_cli("export " + bloom48 + " --to-gguf " + out + " --dtype q4_0", dir_ / "e"),
      "rows of 48 elements; Q4_0 stores rows of a multiple of 32");
  test::expect_cli_error(
      run_cli("export " + bloom48 + " --to-gguf " + out + " --dtype q4_k", dir_ / "e"),
      "rows of 48 elements; Q4_K stores rows of a multiple of 256");
  test::expect_cli_error(
      run_cli("export " + bloom48 + " --to-gguf " + out + " --dtype q3_k", dir_ / "e"),
      "--dtype 'q3_k'");
  test::expect_cli_error(run_cli("export " + bloom48, dir_ / "e"), "one of --to-hf");
  EXPECT_FALSE(fs::exists(out));
  test::expect_cli_error(
      run_cli("import " + hf + "bloom --dtype q8_0 --out " + (dir_ / "q8"), dir_ / "e"),
      "rows of 48 elements; q8_0 stores rows of a multiple of 32");
  EXPECT_FALSE(fs::exists(dir_ / "q8"));
}

}  // namespace
}  // namespace alibi
