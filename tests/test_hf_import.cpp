// alibi import against transformers: tiny random models of every registered family
// (model/hf/registry.cpp) saved by save_pretrained, with the logits, loss and greedy continuation
// transformers computed from them (tests/golden/hf, made by tests/ref/make_hf_models.py).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli.h"
#include "core/error.h"
#include "core/safetensors.h"
#include "generate/generate.h"
#include "model/checkpoint.h"
#include "model/hf/family.h"
#include "model/hf_export.h"
#include "model/hf_import.h"
#include "model/model.h"
#include "model/params.h"
#include "usage_error.h"

namespace alibi {
namespace {

namespace fs = std::filesystem;
using test::run_cli;
using test::TempDir;

std::string golden_dir(const std::string& name) {
  return std::string(ALIBI_SOURCE_DIR) + "/tests/golden/hf/" + name;
}

// The golden folders of every registered family: NAME and NAME-* (bloom, bloom-bf16, ...).
std::vector<std::string> golden_models() {
  std::vector<std::string> names;
  for (const hf::Family* f : hf::families()) {
    std::vector<std::string> of;
    for (const auto& e : fs::directory_iterator(golden_dir(""))) {
      const std::string n = e.path().filename().string();
      if (n == f->name || n.starts_with(std::string(f->name) + "-")) of.push_back(n);
    }
    std::sort(of.begin(), of.end());
    names.insert(names.end(), of.begin(), of.end());
  }
  return names;
}

// Both sides compute in fp32 with different summation orders (oneDNN against torch's BLAS, a
// fused attention against eager softmax): logits agree to 3.5e-6 of their scale at most
// (measured over every row, window and model here). 1e-5 relative
// (max |difference| over the row's max |logit|) leaves room and still catches a wrong slope,
// head order or GELU form, which move logits by 1e-2 or more.
constexpr double kLogitTol = 1e-5;

double row_err(const float* got, const std::vector<double>& want) {
  double diff = 0, scale = 0;
  for (size_t v = 0; v < want.size(); ++v) {
    diff = std::max(diff, std::fabs(double(got[v]) - want[v]));
    scale = std::max(scale, std::fabs(want[v]));
  }
  return diff / scale;
}

class HfImportGolden : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    std::ifstream f(golden_dir(GetParam()) + "/outputs.json");
    ASSERT_TRUE(f) << "missing golden; run tests/ref/make_hf_models.py";
    out_ = nlohmann::json::parse(f);
    m_ = import_hf(golden_dir(GetParam()));
    ids_ = out_.at("ids").get<std::vector<int32_t>>();
  }
  nlohmann::json out_;
  HfImport m_;
  std::vector<int32_t> ids_;
};

TEST_P(HfImportGolden, TokenizerGivesTheReferenceIds) {
  EXPECT_EQ(m_.tokenizer.encode(out_.at("text").get<std::string>()), ids_);
}

// The logits of every recorded row of the 512-token window, from windows of 1 to 512 tokens
// (row r of a window of n > r tokens: causal attention makes it the same).
TEST_P(HfImportGolden, LogitsEqualTransformersAtEveryLength) {
  const int T = int(ids_.size());
  Model model(m_.config, 1, T, /*training=*/false);
  model.params.from_host(m_.params());
  const auto rows = out_.at("rows").get<std::vector<int>>();
  for (int n : {1, 3, 64, 257, T}) {
    model.forward(ids_.data(), nullptr, 1, n);
    for (size_t i = 0; i < rows.size(); ++i) {
      if (rows[i] >= n) continue;
      const auto want = out_.at("logits").at(i).get<std::vector<double>>();
      EXPECT_LE(row_err(model.logits_row(rows[i]), want), kLogitTol)
          << GetParam() << ": window " << n << ", row " << rows[i];
    }
  }
}

TEST_P(HfImportGolden, LossEqualsTransformers) {
  const int T = int(ids_.size()) - 1;
  Model model(m_.config, 1, T, /*training=*/false);
  model.params.from_host(m_.params());
  const float loss = model.forward(ids_.data(), ids_.data() + 1, 1, T);
  EXPECT_NEAR(loss, out_.at("loss").get<double>(), 1e-5 * out_.at("loss").get<double>());
}

// Greedy decoding with the KV cache, token for token against transformers' generate(). Random
// weights leave few near-ties; a tie within fp32 noise would show as a differing token.
TEST_P(HfImportGolden, GreedyContinuationEqualsTransformers) {
  const int prompt = out_.at("prompt").get<int>();
  const auto want = out_.at("greedy").get<std::vector<int32_t>>();
  Model model(m_.config, 1, 64, /*training=*/false);
  model.params.from_host(m_.params());
  GenerateOptions o;
  o.sampling.temperature = 0.0f;
  Generator g(model, o);
  std::vector<int32_t> got;
  g.generate(std::vector<int32_t>(ids_.begin(), ids_.begin() + prompt), int(want.size()),
             [&](int32_t t, const float*) { got.push_back(t); });
  EXPECT_EQ(got, want);
}

// Imported with the folder's matrices kept as they are (bf16, f16 or fp32) and run on the
// checkpoint file in place: widening is exact, so the same tolerances hold, and the streaming
// product of decoding gives the same greedy tokens.
TEST_P(HfImportGolden, StoredCheckpointEqualsTransformers) {
  TempDir dir("hf_stored");
  const WeightType wt = m_.dtype == "BF16"  ? WeightType::bf16
                        : m_.dtype == "F16" ? WeightType::f16
                                            : WeightType::fp32;
  const ParamLayout layout = make_param_layout(m_.config);
  ParamSet set(layout);
  set.from_host(m_.params());
  const Checkpoint ck = read_checkpoint(
      write_checkpoint(dir / "run", m_.config, {}, 0, m_.tokenizer, set, nullptr, nullptr, 1, wt));
  EXPECT_EQ(ck.weights, wt);
  const int T = int(ids_.size()) - 1;
  Model model(m_.config, 1, T, ck.st);
  const double loss = out_.at("loss").get<double>();
  EXPECT_NEAR(model.forward(ids_.data(), ids_.data() + 1, 1, T), loss, 1e-5 * loss);
  model.forward(ids_.data(), nullptr, 1, T);
  const auto rows = out_.at("rows").get<std::vector<int>>();
  for (size_t i = 0; i < rows.size(); ++i)
    if (rows[i] < T)
      EXPECT_LE(row_err(model.logits_row(rows[i]),
                        out_.at("logits").at(i).get<std::vector<double>>()),
                kLogitTol)
          << GetParam() << ": row " << rows[i];
  const int prompt = out_.at("prompt").get<int>();
  const auto want = out_.at("greedy").get<std::vector<int32_t>>();
  Model dec(m_.config, 1, 64, ck.st);
  GenerateOptions o;
  o.sampling.temperature = 0.0f;
  Generator g(dec, o);
  std::vector<int32_t> got;
  g.generate(std::vector<int32_t>(ids_.begin(), ids_.begin() + prompt), int(want.size()),
             [&](int32_t t, const float*) { got.push_back(t); });
  EXPECT_EQ(got, want);
}

INSTANTIATE_TEST_SUITE_P(Models, HfImportGolden, ::testing::ValuesIn(golden_models()),
                         [](const auto& info) {
                           std::string s = info.param;
                           std::replace(s.begin(), s.end(), '-', '_');
                           return s;
                         });

// Every family has a reference model of its own name, which imports as that family.
TEST(HfImport, EveryFamilyHasAGoldenModel) {
  for (const hf::Family* f : hf::families()) {
    ASSERT_TRUE(fs::exists(golden_dir(f->name) + "/outputs.json")) << f->name;
    EXPECT_EQ(import_hf(golden_dir(f->name)).architecture, f->architecture);
  }
}

// The options each family brings, as the checkpoint records them.
TEST(HfImport, FamiliesSetTheirArchitectureOptions) {
  const HfImport bloom = import_hf(golden_dir("bloom"));
  EXPECT_EQ(bloom.config.heads, 6);
  EXPECT_TRUE(bloom.config.embed_ln && bloom.config.linear_bias && bloom.config.ln_bias);
  EXPECT_FALSE(bloom.config.embed_scale);
  EXPECT_EQ(bloom.config.gelu, Gelu::tanh);
  EXPECT_EQ(bloom.dtype, "F32");
  EXPECT_EQ(import_hf(golden_dir("bloom-bf16")).dtype, "BF16");
  EXPECT_EQ(import_hf(golden_dir("mpt-f16")).dtype, "F16");
  const HfImport mpt = import_hf(golden_dir("mpt-untied-max16"));
  EXPECT_EQ(mpt.config.heads, 12);
  EXPECT_FALSE(mpt.config.linear_bias || mpt.config.ln_bias || mpt.config.embed_ln ||
               mpt.config.tied_head);
  EXPECT_EQ(mpt.config.gelu, Gelu::erf);
  EXPECT_EQ(mpt.config.alibi_bias_max, 16.0f);
  EXPECT_EQ(mpt.trained_len, 512);
}

// Falcon's options: linear biases as `bias` says, LayerNorm biases always, exact GELU, no
// embedding scale or LayerNorm, the slopes over sqrt(head size), config.json's FFN and epsilon.
TEST(HfImport, FalconSetsItsOptions) {
  const HfImport f = import_hf(golden_dir("falcon"));
  EXPECT_EQ(f.architecture, "FalconForCausalLM");
  EXPECT_TRUE(f.config.linear_bias && f.config.ln_bias && f.config.tied_head &&
              f.config.alibi_scaled);
  EXPECT_FALSE(f.config.embed_scale || f.config.embed_ln);
  EXPECT_EQ(f.config.gelu, Gelu::erf);
  EXPECT_EQ(f.config.ffn, 192);
  EXPECT_EQ(f.trained_len, 2048);  // max_position_embeddings
  const HfImport u = import_hf(golden_dir("falcon-untied-nobias"));
  EXPECT_FALSE(u.config.linear_bias || u.config.tied_head);
  EXPECT_TRUE(u.config.ln_bias);
  EXPECT_EQ(u.config.heads, 12);
  EXPECT_EQ(u.config.ffn, 96);
  EXPECT_EQ(u.config.ln_eps, 1e-6f);
}

// transformers' Falcon divides its bias by sqrt(head size) before adding it to q.k/sqrt(head
// size): the model with the paper's slopes unscaled misses transformers' logits by far more
// than the tolerance (head sizes 8 and 4).
TEST(HfImport, FalconSlopesAreScaledAsTransformersScalesThem) {
  for (const std::string name : {"falcon", "falcon-untied-nobias"}) {
    std::ifstream f(golden_dir(name) + "/outputs.json");
    const nlohmann::json out = nlohmann::json::parse(f);
    const auto ids = out.at("ids").get<std::vector<int32_t>>();
    const auto rows = out.at("rows").get<std::vector<int>>();
    HfImport m = import_hf(golden_dir(name));
    m.config.alibi_scaled = false;
    Model model(m.config, 1, int(ids.size()), /*training=*/false);
    model.params.from_host(m.params());
    model.forward(ids.data(), nullptr, 1, int(ids.size()));
    double worst = 0;
    for (size_t i = 0; i < rows.size(); ++i)
      worst = std::max(worst, row_err(model.logits_row(rows[i]),
                                      out.at("logits").at(i).get<std::vector<double>>()));
    EXPECT_GT(worst, 100 * kLogitTol) << name;
  }
}

// A copy of a golden folder to break one thing in.
class HfImportCli : public ::testing::Test {
 protected:
  TempDir dir_{"hf_import"};
  std::string copy(const std::string& name) {
    const std::string to = dir_ / name;
    fs::copy(golden_dir(name), to, fs::copy_options::recursive);
    return to;
  }
  // Runs alibi import on `folder`; expects exit 2, one line naming every needle, no output.
  void expect_refused(const std::string& folder, const std::vector<std::string>& needles) {
    const std::string out = dir_ / "out";
    const test::CliResult r = run_cli("import " + folder + " --out " + out, dir_ / "err");
    for (const std::string& n : needles) test::expect_cli_error(r, n);
    EXPECT_FALSE(fs::exists(out)) << "refused import left " << out;
  }
  static void edit_tensors(const std::string& file, const std::function<void(Safetensors&)>& f) {
    Safetensors st = Safetensors::read(file);
    f(st);
    st.write_atomic(file);
  }
  static void edit_config(const std::string& folder,
                          const std::function<void(nlohmann::json&)>& f) {
    const std::string p = folder + "/config.json";
    nlohmann::json j = nlohmann::json::parse(test::read_text(p));
    f(j);
    test::write_text(p, j.dump());
  }
};

TEST_F(HfImportCli, ImportedCheckpointEvaluatesLikeTheFolder) {
  const std::string out = dir_ / "bloom-run";
  const test::CliResult r = run_cli("import " + golden_dir("bloom") + " --out " + out, dir_ / "e");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("BloomForCausalLM (F32 weights, stored as fp32)"), std::string::npos)
      << r.out;
  const Checkpoint ck = read_checkpoint(out);
  const HfImport m = import_hf(golden_dir("bloom"));
  ParamLayout layout = make_param_layout(ck.config);
  ParamSet set(layout);
  ck.load_params(set);
  EXPECT_EQ(set.to_host(), m.params());
  EXPECT_EQ(ck.tokenizer.fingerprint(), m.tokenizer.fingerprint());
  // The checkpoint runs through the CLI. Its tokenizer has 300 tokens for 320 embedding rows:
  // sampling hot (temperature 3) from random weights would often draw a padding row, which has
  // no text, if generate did not keep to the tokenizer's ids.
  const test::CliResult g = run_cli("generate " + out +
                                        " --prompt 'ROMEO:' --max-new-tokens 200"
                                        " --temperature 3 --seed 1",
                                    dir_ / "g");
  EXPECT_EQ(g.code, 0) << g.err;
  test::write_text(dir_ / "text.txt", "First Citizen:\nBefore we proceed any further, hear me.\n");
  const test::CliResult e =
      run_cli("eval " + out + " --text " + (dir_ / "text.txt") + " --lengths 4,16", dir_ / "ev");
  EXPECT_EQ(e.code, 0) << e.err;
  // --out must be new: a second import into it is refused and changes nothing.
  test::expect_cli_error(run_cli("import " + golden_dir("mpt") + " --out " + out, dir_ / "e2"),
                         "--out");
  EXPECT_EQ(read_checkpoint(out).config.heads, 6);
}

TEST_F(HfImportCli, ShardedFolderImportsAsTheSingleFile) {
  const std::string f = copy("bloom");
  Safetensors whole = Safetensors::read(f + "/model.safetensors");
  Safetensors a, b;
  nlohmann::json map;
  int i = 0;
  for (auto& [name, t] : whole.tensors) {
    Safetensors& part = i++ % 2 ? b : a;
    part.add(name, t.dtype, t.shape, t.bytes(), t.nbytes());
    map[name] =
        &part == &a ? "model-00001-of-00002.safetensors" : "model-00002-of-00002.safetensors";
  }
  a.write_atomic(f + "/model-00001-of-00002.safetensors");
  b.write_atomic(f + "/model-00002-of-00002.safetensors");
  fs::remove(f + "/model.safetensors");
  test::write_text(f + "/model.safetensors.index.json", nlohmann::json{{"weight_map", map}}.dump());
  EXPECT_EQ(import_hf(f).params(), import_hf(golden_dir("bloom")).params());
  fs::remove(f + "/model-00002-of-00002.safetensors");
  expect_refused(
      f, {"model.safetensors.index.json", "model-00002-of-00002.safetensors", "does not exist"});
}

TEST_F(HfImportCli, BadFoldersAreRefusedByFileAndField) {
  expect_refused(dir_ / "nowhere", {"nowhere", "not a folder"});
  std::string f = copy("bloom");
  fs::remove(f + "/config.json");
  expect_refused(f, {"config.json"});
  fs::remove_all(f);
  f = copy("bloom");
  edit_config(f, [](nlohmann::json& j) { j["architectures"] = {"LlamaForCausalLM"}; });
  expect_refused(f, {"config.json", "architectures", "LlamaForCausalLM", "BloomForCausalLM"});
  fs::remove_all(f);
  f = copy("bloom");
  edit_config(f, [](nlohmann::json& j) { j["apply_residual_connection_post_layernorm"] = true; });
  expect_refused(f, {"config.json", "apply_residual_connection_post_layernorm"});
  fs::remove_all(f);
  const std::string st = "/model.safetensors";
  f = copy("bloom");
  edit_tensors(f + st,
               [](Safetensors& s) { s.tensors.erase("transformer.h.1.mlp.dense_4h_to_h.bias"); });
  expect_refused(f, {"model.safetensors", "lacks tensor", "h.1.mlp.dense_4h_to_h.bias"});
  fs::remove_all(f);
  f = copy("bloom");
  edit_tensors(f + st, [](Safetensors& s) {
    const float x[2] = {1, 2};
    s.add_f32("transformer.h.0.rotary.inv_freq", {2}, x);
  });
  expect_refused(f, {"model.safetensors", "extra tensor", "h.0.rotary.inv_freq"});
  fs::remove_all(f);
  f = copy("bloom");
  edit_tensors(f + st, [](Safetensors& s) {
    s.tensors.at("transformer.ln_f.weight").shape = {6, 8};
  });
  expect_refused(f, {"model.safetensors", "ln_f.weight", "shape [6,8]", "[48]"});
  fs::remove_all(f);
  f = copy("bloom");
  edit_tensors(f + st,
               [](Safetensors& s) { s.tensors.at("transformer.ln_f.weight").dtype = "I32"; });
  expect_refused(f, {"model.safetensors", "ln_f.weight", "dtype I32"});
  fs::remove_all(f);
  f = copy("bloom");
  fs::resize_file(f + st, fs::file_size(f + st) - 100);
  expect_refused(f, {"model.safetensors"});
  fs::remove_all(f);
  f = copy("mpt");  // 100 embedding rows: fewer than the tokenizer's 300 tokens
  edit_config(f, [](nlohmann::json& j) { j["vocab_size"] = 100; });
  edit_tensors(f + st, [](Safetensors& s) {
    const StTensor t = s.tensors.at("transformer.wte.weight");
    s.add("transformer.wte.weight", t.dtype, {100, 48}, t.bytes(), 100 * 48 * 4);
  });
  expect_refused(f, {"tokenizer.json", "300 tokens", "100 rows"});
  fs::remove_all(f);
  f = copy("mpt");
  edit_config(f, [](nlohmann::json& j) { j["attn_config"]["qk_ln"] = true; });
  expect_refused(f, {"config.json", "attn_config.qk_ln"});
  fs::remove_all(f);
  f = copy("mpt");
  edit_config(f, [](nlohmann::json& j) { j["attn_config"]["clip_qkv"] = 6.0; });
  expect_refused(f, {"config.json", "attn_config.clip_qkv"});
}

// Falcons alibi cannot run, each refused in one line naming config.json and the field: rotary
// positions, Falcon-40B's decoder, multi-query attention (transformers' default where the field is
// absent), parallel attention and MLP, fewer key/value heads, another activation; and a config
// whose `bias` or FFN the tensors contradict, by the tensor.
TEST_F(HfImportCli, FalconOptionsAlibiCannotRunAreRefused) {
  using Edit = std::function<void(nlohmann::json&)>;
  const std::vector<std::pair<Edit, std::vector<std::string>>> cases = {
      {[](auto& j) { j["alibi"] = false; }, {"'alibi' = false", "ALiBi models only"}},
      {[](auto& j) { j["new_decoder_architecture"] = true; }, {"'new_decoder_architecture'"}},
      {[](auto& j) { j.erase("multi_query"); }, {"'multi_query' = (absent)"}},
      {[](auto& j) { j["parallel_attn"] = true; }, {"'parallel_attn' = true"}},
      {[](auto& j) { j["num_kv_heads"] = 1; }, {"'num_kv_heads' = 1"}},
      {[](auto& j) { j["activation"] = "gelu_new"; }, {"'activation' = \"gelu_new\""}},
      {[](auto& j) { j["num_attention_heads"] = 5; }, {"'num_attention_heads' = 5"}},
      {[](auto& j) { j["vocab_size"] = 300; }, {"'vocab_size' = 300", "320 rows"}}};
  for (const auto& [edit, needles] : cases) {
    const std::string f = copy("falcon");
    edit_config(f, edit);
    std::vector<std::string> want = needles;
    want.push_back(f + "/config.json");
    expect_refused(f, want);
    fs::remove_all(f);
  }
  std::string f = copy("falcon-untied-nobias");
  edit_config(f, [](nlohmann::json& j) { j["bias"] = true; });
  expect_refused(f,
                 {"model.safetensors", "lacks tensor", "h.0.self_attention.query_key_value.bias"});
  fs::remove_all(f);
  f = copy("falcon");
  edit_config(f, [](nlohmann::json& j) { j["ffn_hidden_size"] = 96; });
  expect_refused(f, {"model.safetensors", "dense_h_to_4h.weight", "[192,48]", "[96,48]"});
}

// An import fine-tunes: a new run starts from its weights (step 0, new AdamW moments) on data
// prepared with its tokenizer. At lr 1e-9 one step leaves the weights within 1e-6.
TEST_F(HfImportCli, TrainInitFromAnImportStartsFromItsWeights) {
  const std::string run = dir_ / "bloom-run", data = dir_ / "data", tuned = dir_ / "tuned";
  ASSERT_EQ(run_cli("import " + golden_dir("bloom") + " --out " + run, dir_ / "i").code, 0);
  test::write_text(dir_ / "corpus.txt", test::bundled_text(60000));
  ASSERT_EQ(run_cli("prepare --input " + (dir_ / "corpus.txt") + " --out " + data +
                        " --tokenizer-from " + run,
                    dir_ / "p")
                .code,
            0);
  const std::string args = " --seq-len 32 --batch 2 --steps 1 --warmup 1 --eval-every 0";
  test::expect_cli_error(run_cli("train --data " + data + " --out " + tuned + args +
                                     " --init-from " + run + " --layers 3",
                                 dir_ / "t0"),
                         "--layers contradicts --init-from");
  const test::CliResult r =
      run_cli("train --data " + data + " --out " + tuned + args + " --lr 1e-9 --init-from " + run,
              dir_ / "t1");
  ASSERT_EQ(r.code, 0) << r.err;
  const Checkpoint a = read_checkpoint(run), b = read_checkpoint(tuned);
  EXPECT_EQ(b.config.vocab, 320);  // BLOOM's padded rows kept, though the tokenizer has 300
  EXPECT_TRUE(b.config.embed_ln);
  ParamLayout la = make_param_layout(a.config), lb = make_param_layout(b.config);
  ParamSet pa(la), pb(lb);
  a.load_params(pa);
  b.load_params(pb);
  const std::vector<float> wa = pa.to_host(), wb = pb.to_host();
  ASSERT_EQ(wa.size(), wb.size());
  for (size_t i = 0; i < wa.size(); ++i) ASSERT_NEAR(wb[i], wa[i], 1e-6) << i;
  // Data with another tokenizer is refused by name.
  ASSERT_EQ(run_cli("prepare --input " + (dir_ / "corpus.txt") + " --out " + (dir_ / "bytes") +
                        " --tokenizer bytes",
                    dir_ / "p2")
                .code,
            0);
  test::expect_cli_error(run_cli("train --data " + (dir_ / "bytes") + " --out " + (dir_ / "t2") +
                                     args + " --init-from " + run,
                                 dir_ / "t3"),
                         "another tokenizer");
}

// Export is import's inverse: a folder saved by transformers, imported and exported again, has
// the same tensors under the same names, byte for byte, and the same model config.
TEST_F(HfImportCli, ExportGivesBackTheFolderTransformersSaved) {
  for (const hf::Family* f : hf::families()) {
    const std::string name = f->name;
    const std::string run = dir_ / (name + "-run"), back = dir_ / (name + "-back");
    ASSERT_EQ(run_cli("import " + golden_dir(name) + " --out " + run, dir_ / "i").code, 0);
    const test::CliResult r = run_cli("export " + run + " --to-hf " + back, dir_ / "x");
    ASSERT_EQ(r.code, 0) << r.err;
    const Safetensors a = Safetensors::read(golden_dir(name) + "/model.safetensors");
    const Safetensors b = Safetensors::read(back + "/model.safetensors");
    ASSERT_EQ(a.tensors.size(), b.tensors.size()) << name;
    for (const auto& [n, t] : a.tensors) {
      ASSERT_TRUE(b.has(n)) << name << ": " << n;
      EXPECT_EQ(b.at(n).shape, t.shape) << n;
      EXPECT_TRUE(b.at(n).same_bytes(t)) << name << ": " << n << " differs";
    }
    const auto ca = nlohmann::json::parse(test::read_text(golden_dir(name) + "/config.json"));
    const auto cb = nlohmann::json::parse(test::read_text(back + "/config.json"));
    for (const char* k :
         {"architectures", "n_heads", "n_layers", "d_model", "expansion_ratio", "n_head", "n_layer",
          "hidden_size", "vocab_size", "layer_norm_epsilon", "no_bias", "tie_word_embeddings"})
      EXPECT_EQ(cb.value(k, nlohmann::json()), ca.value(k, nlohmann::json())) << name << ": " << k;
    EXPECT_EQ(test::read_text(back + "/tokenizer.json"),
              test::read_text(golden_dir(name) + "/tokenizer.json"));
    EXPECT_EQ(import_hf(back).config.to_json(), import_hf(golden_dir(name)).config.to_json());
    EXPECT_EQ(import_hf(back).params(), import_hf(golden_dir(name)).params());
  }
}

TEST_F(HfImportCli, ExportRefusesWhatTransformersWouldRunDifferently) {
  // A model trained here with the defaults (biases, sqrt(C) embedding scale) is neither family.
  ModelConfig ours;
  ours.vocab = 300;
  test::expect_usage_error([&] { hf_family(ours, ""); },
                           {"neither MPT nor BLOOM", "linear_bias", "embed_scale"});
  // transformers' MPT ignores alibi_bias_max (docs/hf.md): an export would change the model.
  const std::string run = dir_ / "max16";
  ASSERT_EQ(run_cli("import " + golden_dir("mpt-untied-max16") + " --out " + run, dir_ / "i").code,
            0);
  test::expect_cli_error(run_cli("export " + run + " --to-hf " + (dir_ / "x16"), dir_ / "e1"),
                         "alibi_bias_max");
  EXPECT_FALSE(fs::exists(dir_ / "x16"));
  const std::string mpt = dir_ / "mpt-run";
  ASSERT_EQ(run_cli("import " + golden_dir("mpt") + " --out " + mpt, dir_ / "i2").code, 0);
  test::expect_cli_error(
      run_cli("export " + mpt + " --to-hf " + (dir_ / "xb") + " --family bloom", dir_ / "e2"),
      "--family bloom");
  test::expect_cli_error(
      run_cli("export " + mpt + " --to-hf " + (dir_ / "xb") + " --family gpt", dir_ / "e3"),
      "--family 'gpt'");
  fs::create_directories(dir_ / "taken");
  test::expect_cli_error(run_cli("export " + mpt + " --to-hf " + (dir_ / "taken"), dir_ / "e4"),
                         "--to-hf");
  EXPECT_FALSE(fs::exists(dir_ / "xb"));
}

// Falcon's slopes are scaled and no other family's are: a BLOOM is no Falcon, nor the reverse,
// though their tensors are named alike.
TEST_F(HfImportCli, ExportKeepsFalconAndBloomApart) {
  const std::pair<std::string, std::string> cases[] = {
      {"bloom", "its alibi_scaled is false where Falcon needs true"},
      {"falcon", "its alibi_scaled is true where BLOOM needs false"}};
  for (const auto& [from, needle] : cases) {
    const std::string run = dir_ / from, out = dir_ / (from + "-hf");
    ASSERT_EQ(run_cli("import " + golden_dir(from) + " --out " + run, dir_ / "i").code, 0);
    const std::string other = from == "bloom" ? "falcon" : "bloom";
    test::expect_cli_error(
        run_cli("export " + run + " --to-hf " + out + " --family " + other, dir_ / "e"), needle);
    EXPECT_FALSE(fs::exists(out));
  }
}

}  // namespace
}  // namespace alibi
