// A run folder belongs to one run and one process (src/train/run_folder.h), and a data folder
// to one prepare: every refusal through the CLI is one line, exit 2, and changes nothing.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <filesystem>
#include <map>
#include <string>
#include <tuple>
#include <vector>

#include "cli.h"
#include "model/checkpoint.h"

namespace alibi {
namespace {

namespace fs = std::filesystem;
using test::expect_cli_error;
using test::run_cli;
using test::TempDir;

const std::string kTiny =
    " --layers 1 --d-model 16 --heads 2 --ffn 32 --seq-len 16 --batch 2 --warmup 2 --lr 3e-3"
    " --eval-every 0 --log-every 1 --seed 3";

// Every entry of a folder with its size and modification time: what "unchanged" compares.
using Snapshot = std::map<std::string, std::tuple<uintmax_t, fs::file_time_type>>;
Snapshot snapshot(const std::string& dir) {
  Snapshot s;
  for (const auto& e : fs::directory_iterator(dir))
    s[e.path().filename().string()] = {e.is_regular_file() ? e.file_size() : 0,
                                       e.last_write_time()};
  return s;
}

int log_lines(const std::string& run) {
  const std::string log = test::read_text(run + "/log.jsonl");
  return int(std::count(log.begin(), log.end(), '\n'));
}

class RunFolderCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir("run_folder");
    test::prepare_bundled(*dir_);
  }
  static void TearDownTestSuite() { delete dir_; }
  static std::string data() { return *dir_ / "data"; }
  static std::string path(const std::string& s) { return *dir_ / s; }
  static std::string train(const std::string& run, int steps, const std::string& more = "") {
    return "--threads 1 train --data " + data() + " --out " + run + kTiny + " --steps " +
           std::to_string(steps) + more;
  }
  static TempDir* dir_;
};
TempDir* RunFolderCli::dir_ = nullptr;

TEST_F(RunFolderCli, ANewRunIntoARunIsRefusedAndChangesNothing) {
  const std::string run = path("taken");
  ASSERT_EQ(run_cli(train(run, 3, " --save-every 1 --keep 2"), path("a.err")).code, 0);
  const Snapshot before = snapshot(run);
  const test::CliResult r = run_cli(train(run, 2), path("b.err"));
  expect_cli_error(r, "--out '" + run + "' holds a run (last checkpoint "
                      "'ckpt-000000003.safetensors', step 3); continue it with --resume " + run +
                      ", or give another --out");
  EXPECT_EQ(snapshot(run), before);
  EXPECT_EQ(read_checkpoint(run).step, 3);

  // A run that saved no checkpoint yet left its log: refused too, naming it.
  const std::string early = path("early");
  fs::create_directories(early);
  test::write_text(early + "/log.jsonl", "{\"step\":1}\n");
  const Snapshot early_before = snapshot(early);
  expect_cli_error(run_cli(train(early, 2), path("c.err")),
                   "holds the log.jsonl of a run that saved no checkpoint");
  EXPECT_EQ(snapshot(early), early_before);

  // A file where the folder should be.
  test::write_text(path("a_file"), "x");
  expect_cli_error(run_cli(train(path("a_file"), 2), path("d.err")), "is a file");
}

TEST_F(RunFolderCli, ReplaceDeletesTheOldRunAndSaysWhat) {
  const std::string run = path("replaced");
  ASSERT_EQ(run_cli(train(run, 4, " --save-every 1 --keep 2"), path("a.err")).code, 0);
  test::write_text(run + "/notes.txt", "mine");  // not the run's: left alone
  const test::CliResult r = run_cli(train(run, 2, " --replace"), path("b.err"));
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("--replace: deleted the 2 checkpoints (step 3 to 4) and log.jsonl of the "
                       "run in '" + run + "'"),
            std::string::npos)
      << r.err;
  EXPECT_EQ(read_checkpoint(run).step, 2);
  EXPECT_FALSE(fs::exists(run + "/ckpt-000000004.safetensors"));
  EXPECT_EQ(log_lines(run), 2);  // the new run's two steps only
  EXPECT_EQ(test::read_text(run + "/notes.txt"), "mine");
  expect_cli_error(run_cli("train --resume " + run + " --replace", path("c.err")),
                   "--replace starts a new run");
}

// While a run trains, its folder is refused to a second train and to a --resume, naming the
// holder's pid; once it ends (by SIGKILL here) the resume starts at once.
TEST_F(RunFolderCli, AFolderInUseIsRefusedNamingItsHolder) {
  const std::string run = path("busy");
  test::BackgroundCli b = test::start_cli(train(run, 1000000, " --save-every 1"), path("bg.err"));
  ASSERT_TRUE(b.wait_for("step      2/")) << test::read_text(path("bg.err"));
  const std::string holder = "in use by another alibi train (pid " + std::to_string(b.pid);
  expect_cli_error(run_cli("--threads 1 train --resume " + run, path("r.err")), holder);
  expect_cli_error(run_cli(train(run, 2), path("n.err")), holder);
  expect_cli_error(run_cli(train(run, 2, " --replace"), path("p.err")), holder);
  const test::CliResult killed = b.finish(SIGKILL);
  ASSERT_EQ(killed.code, 128 + SIGKILL);
  const int64_t saved = read_checkpoint(run).step;
  const test::CliResult r = run_cli("--threads 1 train --resume " + run + " --steps " +
                                        std::to_string(saved + 1),
                                    path("after.err"));
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.err.find("in use"), std::string::npos) << r.err;
  EXPECT_EQ(read_checkpoint(run).step, saved + 1);
}

// Two runs started on one folder within milliseconds, 20 times: exactly one trains, the other
// is refused in one line (the folder is in use, or, if the first has already finished, holds
// its run), and the log holds one run.
TEST_F(RunFolderCli, TwoRunsStartedAtOnceExactlyOneRuns) {
  for (int i = 0; i < 20; ++i) {
    SCOPED_TRACE(i);
    const std::string run = path("race" + std::to_string(i));
    test::BackgroundCli a = test::start_cli(train(run, 3), path("ra.err"));
    test::BackgroundCli b = test::start_cli(train(run, 3), path("rb.err"));
    const test::CliResult x = a.finish(), y = b.finish();
    ASSERT_EQ((x.code == 0) + (y.code == 0), 1) << x.err << "\n---\n" << y.err;
    const test::CliResult& refused = x.code == 0 ? y : x;
    EXPECT_EQ(refused.code, 2) << refused.err;
    EXPECT_TRUE(refused.err.find("in use by another alibi train (pid ") != std::string::npos ||
                refused.err.find("holds a run") != std::string::npos)
        << refused.err;
    EXPECT_EQ(log_lines(run), 3);
    EXPECT_EQ(read_checkpoint(run).step, 3);
  }
}

TEST_F(RunFolderCli, PrepareIntoPreparedDataIsRefusedUnlessReplaced) {
  const std::string out = path("data2");
  const std::string prep = "prepare --input " + path("corpus.txt") + " --out " + out;
  ASSERT_EQ(run_cli(prep + " --tokenizer bytes", path("p1.err")).code, 0);
  const Snapshot before = snapshot(out);
  expect_cli_error(run_cli(prep + " --tokenizer bytebpe --vocab 300", path("p2.err")),
                   "--out '" + out + "' holds prepared data already; give a new or empty "
                   "folder, or --replace");
  EXPECT_EQ(snapshot(out), before);
  const test::CliResult r =
      run_cli(prep + " --tokenizer bytebpe --vocab 300 --replace", path("p3.err"));
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("(replaced the data prepared there before)"), std::string::npos) << r.err;
  EXPECT_TRUE(fs::exists(out + "/tokenizer.json"));
}

}  // namespace
}  // namespace alibi
