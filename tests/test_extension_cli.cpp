// Context extension through the CLI (docs/rope-family.md): eval records it in its JSON and it
// changes the loss only past the training length; generate runs with it; a fine-tune at the long
// length keeps the length it extends from, and a resume keeps the extension; bad input is one
// line naming the flag, exit 2.
#include <gtest/gtest.h>

#include <cmath>

#include "cli.h"
#include "model/checkpoint.h"
#include "model_util.h"

namespace alibi {
namespace {

using test::run_cli;
using test::TempDir;

constexpr int kTrainLen = 16;  // the checkpoints' recorded training length

class ExtensionCli : public ::testing::Test {
 protected:
  // Bytes data and a random byte-level checkpoint per method, "trained" at kTrainLen.
  static void SetUpTestSuite() {
    dir_ = new TempDir("extension");
    test::prepare_bundled(*dir_, 20000);
    for (PosKind p : {PosKind::rotary, PosKind::xpos, PosKind::alibi}) {
      ModelConfig c = test::small_model(p, 2, 256);
      Model m(c, 1, 1, false);
      test::randomise(m, 12);
      write_checkpoint(ck(p), c, nlohmann::json{{"seq_len", kTrainLen}}, 1, Tokenizer::bytes(),
                       m.params, nullptr, nullptr, 1);
    }
  }
  static void TearDownTestSuite() { delete dir_; }
  static std::string path(const std::string& s) { return *dir_ / s; }
  static std::string ck(PosKind p) { return path(std::string("run_") + pos_name(p)); }

  // `alibi eval CK --lengths L ARGS --json`: the JSON of its one length.
  static nlohmann::json eval(PosKind p, int L, const std::string& args) {
    const std::string json = path("eval.json");
    const auto r = run_cli("--threads 1 eval " + ck(p) + " --data " + path("data") +
                               " --max-tokens 400 --lengths " + std::to_string(L) + " " + args +
                               " --json " + json,
                           path("eval.err"));
    EXPECT_EQ(r.code, 0) << args << "\n" << r.err;
    return r.code == 0 ? nlohmann::json::parse(test::read_text(json)) : nlohmann::json::object();
  }

  static TempDir* dir_;
};
TempDir* ExtensionCli::dir_ = nullptr;

double loss_of(const nlohmann::json& j) { return j.at("results").at(0).at("loss"); }

// The JSON says what ran; at the training length alibi's interpolation is the identity, past it
// both extensions change the loss.
TEST_F(ExtensionCli, EvalRecordsTheExtensionAndAppliesItPastTheTrainingLength) {
  const nlohmann::json plain = eval(PosKind::rotary, 64, "");
  EXPECT_EQ(plain.at("extension"), nlohmann::json::object());
  const nlohmann::json yarn = eval(PosKind::rotary, 64, "--rope-scaling yarn --rope-factor 4");
  EXPECT_EQ(yarn.at("extension"),
            (nlohmann::json{{"rope_scaling", "yarn"}, {"rope_factor", 4.0}, {"train_len", 16}}));
  EXPECT_GT(std::abs(loss_of(yarn) - loss_of(plain)), 1e-4);

  const nlohmann::json at_l = eval(PosKind::alibi, kTrainLen, "--alibi-interpolate");
  EXPECT_EQ(at_l.at("extension"),
            (nlohmann::json{{"alibi_interpolate", true}, {"train_len", kTrainLen}}));
  EXPECT_EQ(loss_of(at_l), loss_of(eval(PosKind::alibi, kTrainLen, "")));
  EXPECT_GT(std::abs(loss_of(eval(PosKind::alibi, 64, "--alibi-interpolate")) -
                     loss_of(eval(PosKind::alibi, 64, ""))),
            1e-4);
}

TEST_F(ExtensionCli, GenerateRunsAndSaysSo) {
  for (const auto& [p, args] : {std::pair{PosKind::rotary, "--rope-scaling ntk --rope-factor 2"},
                                {PosKind::alibi, "--alibi-interpolate --window 24"}}) {
    const auto r = run_cli("--threads 1 generate " + ck(p) +
                               " --prompt 'It is a truth' "
                               "--max-new-tokens 40 --seed 1 " +
                               args,
                           path("gen.err"));
    EXPECT_EQ(r.code, 0) << args << "\n" << r.err;
    EXPECT_NE(r.err.find("context extension {"), std::string::npos) << r.err;
  }
}

// A fine-tune at the long length from a checkpoint takes the extension from its flags and the
// length it extends from from the checkpoint; a resume keeps the extension.
TEST_F(ExtensionCli, FineTuneKeepsTheLengthItExtendsFrom) {
  const std::string run = path("finetune");
  auto r = run_cli("--threads 1 train --data " + path("data") + " --out " + run + " --init-from " +
                       ck(PosKind::rotary) +
                       " --seq-len 48 --batch 2 --steps 1 --eval-every 0 --rope-scaling yarn "
                       "--rope-factor 3",
                   path("ft.err"));
  ASSERT_EQ(r.code, 0) << r.err;
  const ModelConfig c = read_checkpoint(run).config;
  EXPECT_EQ(c.rope_scaling, RopeScaling::yarn);
  EXPECT_EQ(c.rope_factor, 3.0f);
  EXPECT_EQ(c.train_len, kTrainLen);
  test::expect_cli_error(run_cli("--threads 1 train --resume " + run +
                                     " --steps 2 "
                                     "--rope-factor 4",
                                 path("resume.err")),
                         "--rope-factor 4.0 contradicts --resume");
}

TEST_F(ExtensionCli, BadInputIsOneLineNamingTheFlag) {
  struct Case {
    PosKind pos;
    std::string args, needle;
  };
  const std::vector<Case> cases = {
      {PosKind::rotary, "--rope-scaling linear", "--rope-scaling 'linear' is not a rotary"},
      {PosKind::rotary, "--rope-scaling pi --rope-factor 0", "--rope-factor 0 must be a positive"},
      {PosKind::rotary, "--rope-scaling ntk --rope-factor -2",
       "--rope-factor -2 must be a positive"},
      {PosKind::rotary, "--rope-factor 2", "--rope-factor 2 needs --rope-scaling"},
      {PosKind::alibi, "--rope-scaling pi --rope-factor 2",
       "--rope-scaling pi does not apply to this --pos alibi model; it applies to --pos rotary"},
      {PosKind::xpos, "--rope-scaling yarn --rope-factor 2",
       "--rope-scaling yarn does not apply to this --pos xpos model"},
      {PosKind::rotary, "--alibi-interpolate",
       "--alibi-interpolate true does not apply to this --pos rotary model; it applies to --pos "
       "alibi"},
  };
  for (const Case& k : cases) {
    SCOPED_TRACE(k.args);
    test::expect_cli_error(
        run_cli("--threads 1 eval " + ck(k.pos) + " --data " + path("data") + " " + k.args,
                path("bad.err")),
        k.needle);
    test::expect_cli_error(
        run_cli("--threads 1 generate " + ck(k.pos) + " --prompt x " + k.args, path("bad.err")),
        k.needle);
  }
  test::expect_cli_error(run_cli("--threads 1 train --data " + path("data") + " --out " +
                                     path("bad_run") + " --pos alibi --rope-scaling pi",
                                 path("bad.err")),
                         "--rope-scaling pi does not apply to this --pos alibi model");
}

}  // namespace
}  // namespace alibi
