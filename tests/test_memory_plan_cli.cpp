// The memory plan through the CLI (issue 35): each command prints its plan in one line before it
// allocates, --dry-run prints it and stops, and flags whose plan cannot fit are refused in one
// line naming them and what would fit (exit 2, no run folder, no output), never std::bad_alloc;
// a --window longer than the generation reaches is cut to it, and said; a valid split shorter
// than a window is validated on the window it fills (no NaN).
#include <gtest/gtest.h>

#include <filesystem>
#include <regex>

#include "cli.h"
#include "data/tokenizer.h"
#include "model/checkpoint.h"
#include "model/model.h"
#include "model_util.h"

namespace alibi {
namespace {

namespace fs = std::filesystem;
using test::TempDir;

class MemoryPlanCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir("memplan_cli");
    test::prepare_bundled(*dir_, 20000);  // valid: about 1,000 byte tokens
    ModelConfig c = test::small_model(PosKind::alibi, 2, 256);
    Model m(c, 1, 1, false);
    m.init_weights(5);
    write_checkpoint(*dir_ / "run", c, nlohmann::json{{"seq_len", 16}}, 1, Tokenizer::bytes(),
                     m.params, nullptr, nullptr, 1);
  }
  static void TearDownTestSuite() { delete dir_; }
  static std::string path(const std::string& s) { return *dir_ / s; }
  static test::CliResult alibi(const std::string& args) {
    return test::run_cli("--threads 1 " + args, path("err"));
  }
  static std::string train(const std::string& out, const std::string& more) {
    return "train --data " + path("data") + " --out " + path(out) +
           " --layers 1 --d-model 16 --heads 2 --ffn 32 --steps 2 " + more;
  }
  static TempDir* dir_;
};
TempDir* MemoryPlanCli::dir_ = nullptr;

// "memory: process .., weights .., ... = T of B available (source)" with sizes in kB/MB/GB.
const std::regex kPlanLine("memory: process [0-9.]+ [kMG]B, weights [0-9.]+ [kMG]B.* = [0-9.]+ "
                           "[kMG]B of [0-9.]+ [kMGT]B available \\((MemAvailable|cgroup limit|"
                           "--max-memory)\\)\n");

TEST_F(MemoryPlanCli, TrainPrintsItsPlanAndRefusesABatchThatCannotFit) {
  auto r = alibi(train("dry", "--seq-len 32 --batch 2 --dry-run"));
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(std::regex_match(r.out, kPlanLine)) << r.out;
  EXPECT_NE(r.out.find("optimizer"), std::string::npos) << r.out;
  EXPECT_FALSE(fs::exists(path("dry"))) << "--dry-run takes no run folder";

  r = alibi(train("huge", "--seq-len 128 --batch 1000000"));
  test::expect_cli_error(r, "--batch 1000000 x --seq-len 128 needs ");
  EXPECT_TRUE(std::regex_search(r.err, std::regex("available \\([^)]+\\); --batch [0-9]+ would "
                                                  "fit \\(with --grad-accum [0-9]+")))
      << r.err;
  EXPECT_FALSE(fs::exists(path("huge"))) << "refused before the run folder is taken";

  r = alibi("--max-memory 1k " + train("tiny", "--seq-len 32 --batch 2"));
  test::expect_cli_error(r, "1.00 kB is available (--max-memory); alibi holds ");
  r = alibi("--max-memory lots " + train("tiny", "--seq-len 32 --batch 2"));
  test::expect_cli_error(r, "--max-memory 'lots' is not a size");
  r = alibi("--dry-run tokenize --tokenizer bytes --text " + path("corpus.txt"));
  test::expect_cli_error(
      r, "--dry-run applies to train, eval, generate, serve and bench, not tokenize");
}

// --seq-len 2048 where valid has about 1,000 tokens: validation scores the window it fills and
// says so once, and its loss is a number.
TEST_F(MemoryPlanCli, ValidationShorterThanAWindowIsSaidAndFinite) {
  const auto r = alibi(train("shortvalid", "--seq-len 2048 --batch 1 --eval-every 1"));
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(std::regex_search(r.err, std::regex("note: valid split '[^']+' has [0-9]+ tokens, "
                                                  "fewer than --seq-len \\+ 1 = 2049")))
      << r.err;
  EXPECT_EQ(r.err.find("nan"), std::string::npos) << r.err;
  EXPECT_TRUE(std::regex_search(r.err, std::regex("val loss [0-9]+\\.[0-9]+"))) << r.err;
}

TEST_F(MemoryPlanCli, GenerateRefusesOrCutsWhatCannotBeAllocated) {
  const std::string run = path("run");
  auto r = alibi("generate " + run + " --prompt x --max-new-tokens 2000000000");
  test::expect_cli_error(r, "a prompt of 1 token and --max-new-tokens 2000000000 needs ");
  EXPECT_TRUE(std::regex_search(r.err, std::regex("--max-new-tokens [0-9]+ would fit, or "
                                                  "--window [0-9]+ bounds the cache")))
      << r.err;
  EXPECT_TRUE(r.out.empty());

  r = alibi("generate " + run + " --prompt The --window 100000000 --interactive");
  test::expect_cli_error(r, "--window 100000000 needs ");
  EXPECT_TRUE(std::regex_search(r.err, std::regex("--window [0-9]+ would fit"))) << r.err;

  // One shot: a window past what the generation reaches is that length, the same tokens.
  r = alibi("generate " + run + " --prompt The --window 100000000 --max-new-tokens 5 --seed 1");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("note: --window 100000000 is more than the 7 tokens"), std::string::npos)
      << r.err;
  const auto plain = alibi("generate " + run + " --prompt The --max-new-tokens 5 --seed 1");
  ASSERT_EQ(plain.code, 0) << plain.err;
  EXPECT_EQ(r.out, plain.out);

  r = alibi("--dry-run generate " + run + " --prompt The --max-new-tokens 20");
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(std::regex_match(r.out, kPlanLine)) << r.out;
  EXPECT_NE(r.out.find("KV cache"), std::string::npos) << r.out;
}

TEST_F(MemoryPlanCli, EvalPrintsItsPlanAndRefusesWhatCannotFit) {
  auto r = alibi("--dry-run eval " + path("run") + " --data " + path("data") + " --lengths 16,64");
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(std::regex_search(r.out, std::regex("^memory at length (16|64): process"))) << r.out;
  // A budget between what alibi holds and the plan (read from --dry-run, so the test holds
  // under a sanitizer's larger process too): a smaller --batch fits.
  const std::string args = "eval " + path("run") + " --data " + path("data") + " --split train" +
                           " --lengths 64 --batch 100000";
  r = alibi("--dry-run " + args);
  std::smatch m;
  ASSERT_TRUE(std::regex_search(r.out, m, std::regex("process ([0-9.]+) MB.* = ([0-9.]+) MB")))
      << r.out;
  const double held = std::stod(m[1]), total = std::stod(m[2]);
  const int budget_kb = int((total - 0.4 * (total - held)) * 1000);
  r = alibi("--max-memory " + std::to_string(budget_kb) + "k " + args);
  test::expect_cli_error(r, "--lengths 64 x --batch 100000 needs ");
  EXPECT_TRUE(std::regex_search(r.err, std::regex("--batch [0-9]+ would fit"))) << r.err;
}

// serve plans the model and every slot's KV cache before it listens: --dry-run prints the plan
// and stops; slots past the budget are refused with the --max-batch that fits; an f16 cache plans
// about half the bytes.
TEST_F(MemoryPlanCli, ServePlansItsSlotsAndRefusesWhatCannotFit) {
  const std::string run = path("run");
  auto r = alibi("--dry-run serve " + run + " --max-context 4096 --max-batch 8");
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(std::regex_match(r.out, kPlanLine)) << r.out;
  EXPECT_EQ(r.err.find("listening"), std::string::npos) << r.err;
  auto kv_mb = [&](const std::string& type) {
    return test::planned_mb(
        "--threads 1 serve " + run + " --max-context 4096 --max-batch 8 --kv-cache " + type,
        "KV cache", path("d.err"));
  };
  const double f32 = kv_mb("f32"), f16 = kv_mb("f16");
  EXPECT_GT(f16, 0.45 * f32);
  EXPECT_LT(f16, 0.55 * f32);
  // A budget between what alibi holds and the plan: fewer slots fit.
  std::smatch m;
  ASSERT_TRUE(std::regex_search(r.out, m, std::regex("process ([0-9.]+) MB.* = ([0-9.]+) MB")))
      << r.out;
  const double held = std::stod(m[1]), total = std::stod(m[2]);
  const int budget_kb = int((total - 0.4 * (total - held)) * 1000);
  r = alibi("--max-memory " + std::to_string(budget_kb) + "k serve " + run +
            " --max-context 4096 --max-batch 8");
  test::expect_cli_error(r, "--max-batch 8 slots of --max-context 4096 needs ");
  EXPECT_TRUE(std::regex_search(r.err, std::regex("--max-batch [1-7] would fit"))) << r.err;
}

// bench plans the cell that needs the most before any cell runs.
TEST_F(MemoryPlanCli, BenchPlansItsLargestCell) {
  auto r = alibi("--dry-run bench --configs tiny,small --lengths 64,128 --tokens 256");
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(r.out.starts_with("memory of the largest cell, small at T 128: process")) << r.out;
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << "no cell runs: " << r.out;
  r = alibi("--max-memory 10M bench --configs tiny --lengths 64 --tokens 256");
  test::expect_cli_error(r, "--configs tiny at --lengths 64 with --tokens 256 needs ");
}

}  // namespace
}  // namespace alibi
