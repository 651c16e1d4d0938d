// Masked-LM training and evaluation: BERT's corruption, the accuracy of the scored tokens, the
// encoder through the CLI (train, resume, eval at several lengths) and its bad input.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli.h"
#include "core/error.h"
#include "data/dataset.h"
#include "data/masking.h"
#include "kernels/backend.h"
#include "model/checkpoint.h"
#include "model_util.h"
#include "usage_error.h"

namespace alibi {
namespace {

namespace fs = std::filesystem;
using test::expect_cli_error;
using test::run_cli;
using test::TempDir;

// 400,000 positions: a share p is within 5 standard deviations, sqrt(p (1 - p) / n), of its
// expectation unless the draws are biased (a wrong rate or split moves it by 10 or more).
TEST(Masking, ChoosesTheRateAndSplitsItEightyTenTen) {
  const int64_t n = 400000;
  const MaskSpec spec{0.15f, 100};
  const std::vector<int32_t> text = test::random_tokens(int(n), 100, 3);
  std::vector<int32_t> in = text, tg(static_cast<size_t>(n));
  mask_tokens(in.data(), tg.data(), n, spec, 42, 0);
  int64_t chosen = 0, masked = 0, random = 0, kept = 0;
  for (int64_t i = 0; i < n; ++i) {
    const size_t k = size_t(i);
    if (tg[k] == kIgnoreTarget) {
      ASSERT_EQ(in[k], text[k]) << "a position not chosen keeps its token";
      continue;
    }
    ASSERT_EQ(tg[k], text[k]) << "a chosen position predicts its own token";
    ++chosen;
    ASSERT_GE(in[k], 0);
    ASSERT_LE(in[k], spec.mask_token);
    if (in[k] == spec.mask_token) ++masked;
    else if (in[k] == text[k]) ++kept;
    else ++random;
  }
  auto near = [](double got, double p, double count) {
    EXPECT_NEAR(got, p, 5 * std::sqrt(p * (1 - p) / count)) << "share " << got << " of " << count;
  };
  near(double(chosen) / double(n), 0.15, double(n));
  near(double(masked) / double(chosen), 0.8, double(chosen));
  // A random token equal to the original one (1 in 100) counts as kept.
  near(double(random) / double(chosen), 0.1 * 0.99, double(chosen));
  near(double(kept) / double(chosen), 0.1 + 0.1 * 0.01, double(chosen));
}

// Keyed by position: masking a text in windows of any size is masking it whole.
TEST(Masking, IsTheSameInWindowsOfAnySize) {
  const int64_t n = 5000;
  const MaskSpec spec{0.3f, 50};
  const std::vector<int32_t> text = test::random_tokens(int(n), 50, 9);
  std::vector<int32_t> whole = text, whole_tg(static_cast<size_t>(n));
  mask_tokens(whole.data(), whole_tg.data(), n, spec, 7, 0);
  for (int64_t L : {1, 64, 333, 4096}) {
    std::vector<int32_t> parts = text, parts_tg(static_cast<size_t>(n));
    for (int64_t s = 0; s < n; s += L)
      mask_tokens(parts.data() + s, parts_tg.data() + s, std::min(L, n - s), spec, 7, s);
    EXPECT_EQ(parts, whole) << L;
    EXPECT_EQ(parts_tg, whole_tg) << L;
  }
  std::vector<int32_t> other = text, other_tg(static_cast<size_t>(n));
  mask_tokens(other.data(), other_tg.data(), n, spec, 8, 0);
  EXPECT_NE(other_tg, whole_tg) << "another seed masks other positions";
}

TEST(Masking, RateOutsideZeroOneIsRefused) {
  for (float r : {0.0f, 1.0f, -0.1f, 1.5f, NAN})
    test::expect_usage_error([&] { check_mask_rate(r); }, {"--mask-rate", "(0, 1)"});
  check_mask_rate(0.15f);
}

TEST(MlmConfig, OldConfigsAreCausalLmsAndMlmNeedsItsMaskToken) {
  ModelConfig c = test::small_model(PosKind::alibi);
  nlohmann::json old = c.to_json();
  old.erase("objective");
  old.erase("mask_token");
  old.erase("causal");
  const ModelConfig back = ModelConfig::from_json(old);
  EXPECT_EQ(back.objective, Objective::clm);
  EXPECT_EQ(back.mask_token, -1);
  EXPECT_TRUE(back.causal);
  c.objective = Objective::mlm;
  c.causal = false;
  c.mask_token = c.vocab - 1;
  c.validate();
  EXPECT_EQ(c.text_vocab(), c.vocab - 1);
  EXPECT_TRUE(ModelConfig::from_json(c.to_json()).same_shape(c));
  ModelConfig causal = c;
  causal.causal = true;
  test::expect_usage_error([&] { causal.validate(); }, {"--objective mlm", "bidirectional"});
  ModelConfig no_mask = c;
  no_mask.mask_token = 3;
  test::expect_usage_error([&] { no_mask.validate(); }, {"mask_token 3"});
  test::expect_usage_error([&] { parse_objective("bert"); }, {"--objective", "bert", "clm"});
}

// A hit is a target whose logit is the row's largest: the whole head against a naive argmax
// of its logits, and the head over blocks of columns (its running maxima) against the same.
// Half the targets are the argmax, a quarter random, a quarter ignored.
TEST(MlmAccuracy, HitsAreTheArgmaxOfTheLogitsWholeOrBlocked) {
  ModelConfig c = test::small_model(PosKind::alibi, 2, 61);
  c.causal = false;
  const int B = 2, T = 17, N = B * T;
  Model whole(c, B, T, false);
  test::randomise(whole, 11);
  const std::vector<int32_t> tok = test::random_tokens(N, c.vocab, 4);
  whole.forward(tok.data(), nullptr, B, T);
  const std::vector<float> logits(whole.logits(), whole.logits() + size_t(N) * c.vocab);
  std::vector<int32_t> tgt(static_cast<size_t>(N));
  std::vector<float> want(static_cast<size_t>(N));
  Rng r(6);
  for (int n = 0; n < N; ++n) {
    const float* row = logits.data() + size_t(n) * c.vocab;
    const int32_t best = int32_t(std::max_element(row, row + c.vocab) - row);
    tgt[size_t(n)] = n % 4 < 2 ? best : n % 4 == 2 ? int32_t(r.below(c.vocab)) : kIgnoreTarget;
    want[size_t(n)] = tgt[size_t(n)] >= 0 && row[tgt[size_t(n)]] == row[best] ? 1.0f : 0.0f;
  }
  std::vector<float> got(static_cast<size_t>(N));
  whole.forward(tok.data(), tgt.data(), B, T);
  whole.token_hits(got.data());
  EXPECT_EQ(got, want) << "whole head";
  Model blocked(c, B, T, false, default_backend(), {.cols = 16});
  blocked.params.copy_from(whole.params);
  blocked.forward(tok.data(), tgt.data(), B, T);
  blocked.token_hits(got.data());
  EXPECT_EQ(got, want) << "blocks of 16 columns";
}

// A tiny encoder trained through the CLI on 200 KB of the bundled corpus.
const std::string kTinyMlm =
    " --objective mlm --layers 2 --d-model 32 --heads 4 --ffn 64 --seq-len 32 --batch 4"
    " --warmup 5 --lr 3e-3 --eval-every 10 --eval-windows 8 --log-every 10 --seed 5";

class MlmCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir("mlm");
    test::prepare_bundled(*dir_);
    auto r = run_cli("train --data " + *dir_ / "data" + " --out " + *dir_ / "run" + kTinyMlm +
                    " --steps 40",
                *dir_ / "train.err");
    ASSERT_EQ(r.code, 0) << r.err;
  }
  static void TearDownTestSuite() { delete dir_; }
  static std::string data() { return *dir_ / "data"; }
  static std::string run() { return *dir_ / "run"; }
  static std::string path(const std::string& s) { return *dir_ / s; }
  static TempDir* dir_;
};
TempDir* MlmCli::dir_ = nullptr;

TEST_F(MlmCli, CheckpointIsAnEncoderWithAMaskToken) {
  const Checkpoint ck = read_checkpoint(run());
  EXPECT_EQ(ck.config.objective, Objective::mlm);
  EXPECT_FALSE(ck.config.causal);
  EXPECT_EQ(ck.config.mask_token, 256);
  EXPECT_EQ(ck.config.vocab, 257);
  EXPECT_FLOAT_EQ(ck.train.at("mask_rate").get<float>(), 0.15f);
}

// The masking of a step is keyed by seed, step and micro-batch: a resumed run is bit-identical.
TEST_F(MlmCli, ResumeIsBitIdentical) {
  const std::string split = path("split");
  auto r = run_cli("train --data " + data() + " --out " + split + kTinyMlm +
                       " --steps 40 --save-every 20 --keep 3",
                   path("split.err"));
  ASSERT_EQ(r.code, 0) << r.err;
  fs::remove(split + "/ckpt-000000040.safetensors");
  r = run_cli("train --resume " + split + " --steps 40", path("resume.err"));
  ASSERT_EQ(r.code, 0) << r.err;
  const Safetensors a = Safetensors::read(split + "/ckpt-000000040.safetensors");
  const Safetensors b = Safetensors::read(run() + "/ckpt-000000040.safetensors");
  ASSERT_EQ(a.tensors.size(), b.tensors.size());
  for (const auto& [name, t] : a.tensors) EXPECT_TRUE(t.same_bytes(b.at(name))) << name;
}

// Every length scores the same masked tokens: as many as a masking of the whole split with the
// default seed chooses; accuracy is a share; another seed scores other tokens.
TEST_F(MlmCli, EvalScoresTheSameMaskedTokensAtEveryLength) {
  auto r = run_cli("eval " + run() + " --data " + data() + " --lengths 32,64,256 --json " +
                       path("e.json"),
                   path("eval.err"));
  ASSERT_EQ(r.code, 0) << r.err;
  const nlohmann::json j = nlohmann::json::parse(test::read_text(path("e.json")));
  EXPECT_EQ(j.at("objective"), "mlm");
  TokenSplit valid = load_split(data(), "valid");
  std::vector<int32_t> tg(valid.tokens.size());
  mask_tokens(valid.tokens.data(), tg.data(), int64_t(tg.size()), MaskSpec{0.15f, 256},
              kEvalMaskSeed, 0);
  const int64_t chosen = std::count_if(tg.begin(), tg.end(), [](int32_t t) { return t >= 0; });
  ASSERT_EQ(j.at("results").size(), 3u);
  for (const auto& res : j.at("results")) {
    EXPECT_EQ(res.at("tokens_scored").get<int64_t>(), chosen) << res.dump();
    const double acc = res.at("accuracy");
    EXPECT_EQ(acc, double(res.at("correct").get<int64_t>()) / double(chosen));
    EXPECT_GT(acc, 0.0);
    EXPECT_LT(acc, 1.0);
    EXPECT_TRUE(res.at("bits_per_byte").is_null()) << "a sample of tokens is no code length";
    // 40 steps learn something: below the uniform guess over the 256 bytes.
    EXPECT_LT(res.at("loss").get<double>(), std::log(256.0));
  }
  r = run_cli("eval " + run() + " --data " + data() + " --mask-seed 99 --json -",
              path("seed.err"));
  ASSERT_EQ(r.code, 0) << r.err;
  const nlohmann::json k = nlohmann::json::parse(r.out);
  EXPECT_NE(k.at("results")[0].at("tokens_scored").get<int64_t>(), chosen);
}

TEST_F(MlmCli, BadInputIsOneLineAndExitTwo) {
  const std::string d = " --data " + data();
  const std::string model = " --layers 1 --d-model 16 --heads 2 --ffn 16 --seq-len 16 --steps 1";
  expect_cli_error(run_cli("train" + d + " --out " + path("x1") + model +
                               " --objective mlm --causal true", path("e1")),
                   "--objective mlm trains an encoder and needs bidirectional attention; drop "
                   "--causal true");
  expect_cli_error(run_cli("train" + d + " --out " + path("x2") + model + " --causal false",
                           path("e2")),
                   "--causal false with --objective clm");
  expect_cli_error(run_cli("train" + d + " --out " + path("x3") + model +
                               " --objective mlm --mask-rate 1", path("e3")),
                   "--mask-rate 1 must be in (0, 1)");
  expect_cli_error(run_cli("train" + d + " --out " + path("x4") + model + " --mask-rate 0.2",
                           path("e4")),
                   "--mask-rate 0.2 applies to --objective mlm");
  expect_cli_error(run_cli("train" + d + " --out " + path("x5") + model + " --objective bert",
                           path("e5")),
                   "--objective 'bert'");
  for (const char* x : {"x1", "x2", "x3", "x4", "x5"}) EXPECT_FALSE(fs::exists(path(x))) << x;
  expect_cli_error(run_cli("train --resume " + run() + " --objective clm --steps 50",
                           path("e6")),
                   "--objective \"clm\" contradicts --resume");
  expect_cli_error(run_cli("eval " + run() + d + " --mode sliding --stride 8 --lengths 32",
                           path("e7")),
                   "is a masked LM");
  expect_cli_error(run_cli("eval " + run() + d + " --mask-rate 0", path("e8")),
                   "--mask-rate 0 must be in (0, 1)");
  // Refused before anything is printed: the error is the only line.
  const auto gen = run_cli("generate " + run() + " --prompt hi", path("e9"));
  expect_cli_error(gen, "is an encoder");
  EXPECT_EQ(std::count(gen.err.begin(), gen.err.end(), '\n'), 1) << gen.err;
  expect_cli_error(run_cli("export " + run() + " --to-hf " + path("hf"), path("e10")),
                   "causal is false");
  EXPECT_FALSE(fs::exists(path("hf")));
  // A causal LM takes no masking flags.
  auto r = run_cli("train" + d + " --out " + path("clm") + model, path("clm.err"));
  ASSERT_EQ(r.code, 0) << r.err;
  expect_cli_error(run_cli("eval " + path("clm") + d + " --mask-seed 3", path("e11")),
                   "--mask-seed applies to masked LMs");
}

}  // namespace
}  // namespace alibi
