// Disk full and read-only folders, through the CLI: a write that fails ends the command with
// exit 2 and one line naming the file, the previous checkpoint or data folder survives whole,
// and no temporary is left behind (docs/reliability.md). "Full" is the file-size limit
// (RLIMIT_FSIZE, `ulimit -f`): a real full disk needs a mount, which tests cannot count on.
#include <grp.h>
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <filesystem>
#include <string>
#include <vector>

#include "cli.h"
#include "model/checkpoint.h"

namespace alibi {
namespace {

namespace fs = std::filesystem;
using test::CliResult;
using test::expect_cli_error;
using test::TempDir;

// A model whose checkpoint (weights and both AdamW moments) is about 0.3 MB.
const std::string kTiny =
    " --threads 1 --layers 2 --d-model 32 --heads 4 --ffn 64 --seq-len 32 --batch 4 --warmup 2"
    " --lr 3e-3 --eval-every 0 --eval-windows 4 --log-every 10 --seed 5 --save-every 5";
// Below that checkpoint and below a prepared split of the 200 KB corpus (4 bytes a token);
// above log.jsonl and stderr, which must still be written.
constexpr rlim_t kFileLimit = rlim_t(64) << 10;
// As root, permission bits do not stop writes: the command then runs as this user (nobody).
constexpr uid_t kNobody = 65534;

struct Limits {
  rlim_t file_size = RLIM_INFINITY;
  bool unprivileged = false;  // drop root to kNobody
};
// Exit codes of the child when it cannot set up LIMITS.
constexpr int kNoLimit = 125, kNoDrop = 126;

// `sh -c CMD` in a child under LIMITS: its exit code, or -1 when a signal ended it (SIGXFSZ).
int run_limited(const std::string& cmd, const Limits& lim) {
  const pid_t pid = ::fork();
  if (pid == 0) {  // only async-signal-safe calls: the test process may have threads
    ::signal(SIGXFSZ, SIG_DFL);  // as a shell leaves it: alibi has to ignore it itself
    const rlimit rl{lim.file_size, lim.file_size};
    if (::setrlimit(RLIMIT_FSIZE, &rl) != 0) ::_exit(kNoLimit);
    if (lim.unprivileged && ::geteuid() == 0 &&
        (::setgroups(0, nullptr) != 0 || ::setgid(kNobody) != 0 || ::setuid(kNobody) != 0))
      ::_exit(kNoDrop);
    ::execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  int st = 0;
  if (pid < 0 || ::waitpid(pid, &st, 0) != pid) return -1;
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

class DiskFull : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir("diskfull");
    test::prepare_bundled(*dir_);
    // stderr files an unprivileged child can create.
    fs::create_directories(dir_->path / "logs");
    fs::permissions(dir_->path / "logs", fs::perms::all);
  }
  static void TearDownTestSuite() { delete dir_; }
  static std::string path(const std::string& s) { return *dir_ / s; }
  static std::string data() { return path("data"); }

  // The CLI (ALIBI_CLI ARGS) under LIMITS, stderr and stdout as test::run_cli collects them.
  static CliResult cli(const std::string& args, const std::string& tag, const Limits& lim) {
    const std::string err = path("logs/" + tag);
    CliResult r;
    r.code = run_limited(std::string(ALIBI_CLI) + " " + args + " >" + err + ".out 2>" + err, lim);
    r.err = test::read_text(err);
    r.out = test::read_text(err + ".out");
    return r;
  }

  // A run folder trained for 5 steps without limits: ckpt-000000005.safetensors.
  static std::string trained_run(const std::string& name) {
    const std::string run = path(name);
    const CliResult r = cli("train --data " + data() + " --out " + run + kTiny + " --steps 5",
                            name + "-0", {});
    EXPECT_EQ(r.code, 0) << r.err;
    return run;
  }

  static TempDir* dir_;
};
TempDir* DiskFull::dir_ = nullptr;

// Names in DIR (or beside it, for prepare's OUT.tmp-XXXXXX) that look like temporaries.
std::vector<std::string> temporaries(const fs::path& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec))
    if (e.path().filename().string().find(".tmp-") != std::string::npos)
      out.push_back(e.path().filename().string());
  return out;
}

std::vector<std::string> names(const fs::path& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

TEST_F(DiskFull, CheckpointPastTheFileSizeLimitKeepsThePreviousOne) {
  // Every checkpoint of a run has the same size, so the limit applies to the resumed run only.
  const std::string run = trained_run("limit");
  const std::string next = run + "/ckpt-000000010.safetensors";
  const CliResult r =
      cli("train --resume " + run + " --steps 10" + kTiny, "limit-1", {kFileLimit});
  ASSERT_NE(r.code, -1) << "killed by a signal (SIGXFSZ not ignored?): " << r.err;
  expect_cli_error(r, "writing '" + next + "' failed: File too large");
  EXPECT_FALSE(fs::exists(next));
  EXPECT_EQ(read_checkpoint(run).step, 5);
  EXPECT_EQ(temporaries(run), std::vector<std::string>{});
}

TEST_F(DiskFull, FirstCheckpointPastTheFileSizeLimitLeavesNone) {
  const std::string run = path("limit-first");
  const CliResult r = cli("train --data " + data() + " --out " + run + kTiny + " --steps 5",
                          "limit-first", {kFileLimit});
  expect_cli_error(r, "writing '" + run + "/ckpt-000000005.safetensors' failed");
  ASSERT_TRUE(fs::is_directory(run));  // with its log.jsonl
  EXPECT_EQ(temporaries(run), std::vector<std::string>{});
  for (const std::string& n : names(run)) EXPECT_FALSE(n.starts_with("ckpt-")) << n;
}

// Whether a command run with LIM can still create a file in DIR (root keeping its rights, or a
// child that cannot drop them). "" when writes are stopped, else why the test cannot run.
std::string writes_not_stopped(const std::string& dir, const Limits& lim) {
  const int code = run_limited("touch '" + dir + "/probe' 2>/dev/null", lim);
  if (code == kNoDrop) return "running as root and cannot switch to user nobody (65534)";
  if (code == 0) return "a file was created in a 0555 folder (root's rights not dropped)";
  return "";
}

TEST_F(DiskFull, ReadOnlyRunFolderIsRefusedWithOneLine) {
  const std::string run = trained_run("readonly");
  const std::vector<std::string> before = names(run);
  // Read-only as a whole: the folder 0555, its files 0444.
  for (const auto& e : fs::directory_iterator(run))
    fs::permissions(e.path(), fs::perms::owner_read | fs::perms::group_read |
                                  fs::perms::others_read);
  fs::permissions(run, fs::perms::all & ~(fs::perms::owner_write | fs::perms::group_write |
                                          fs::perms::others_write));
  const Limits ro{RLIM_INFINITY, /*unprivileged=*/true};
  if (const std::string why = writes_not_stopped(run, ro); !why.empty()) {
    fs::permissions(run, fs::perms::owner_all, fs::perm_options::add);
    GTEST_SKIP() << why;
  }
  const CliResult r = cli("train --resume " + run + " --steps 10" + kTiny, "readonly-1", ro);
  expect_cli_error(r, run);
  fs::permissions(run, fs::perms::owner_all, fs::perm_options::add);  // TempDir removes it
  EXPECT_EQ(names(run), before);
  EXPECT_EQ(read_checkpoint(run).step, 5);
}

TEST_F(DiskFull, RunFolderInAReadOnlyParentIsRefusedWithOneLine) {
  const fs::path parent = path("ro-parent");
  fs::create_directories(parent);
  fs::permissions(parent, fs::perms::owner_read | fs::perms::owner_exec |
                              fs::perms::group_read | fs::perms::group_exec |
                              fs::perms::others_read | fs::perms::others_exec);
  const Limits ro{RLIM_INFINITY, /*unprivileged=*/true};
  if (const std::string why = writes_not_stopped(parent.string(), ro); !why.empty()) {
    fs::permissions(parent, fs::perms::owner_all, fs::perm_options::add);
    GTEST_SKIP() << why;
  }
  const std::string run = (parent / "run").string();
  const CliResult t = cli("train --data " + data() + " --out " + run + kTiny + " --steps 5",
                          "ro-parent-1", ro);
  expect_cli_error(t, run);
  const std::string out = (parent / "prepared").string();
  const CliResult p = cli("prepare --input " + path("corpus.txt") + " --out " + out +
                              " --tokenizer bytes", "ro-parent-2", ro);
  expect_cli_error(p, out);
  fs::permissions(parent, fs::perms::owner_all, fs::perm_options::add);
  EXPECT_EQ(names(parent), std::vector<std::string>{});
}

TEST_F(DiskFull, PrepareHittingTheLimitLeavesNoFolder) {
  const std::string out = path("prep-limit");
  const std::string args = "prepare --input " + path("corpus.txt") + " --tokenizer bytes --out ";
  const CliResult r = cli(args + out, "prep-limit-1", {kFileLimit});
  ASSERT_NE(r.code, -1) << "killed by a signal (SIGXFSZ not ignored?): " << r.err;
  // The message names the file in OUT, not the temporary folder that is gone.
  expect_cli_error(r, "writing '" + out + "/");
  EXPECT_NE(r.err.find("File too large"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(out));
  EXPECT_EQ(temporaries(dir_->path), std::vector<std::string>{});

  // Over an earlier output: the earlier one stays, untouched.
  ASSERT_EQ(cli(args + out, "prep-limit-2", {}).code, 0);
  const std::string info = test::read_text(out + "/prepare.json");
  const std::vector<std::string> before = names(out);
  expect_cli_error(cli(args + out + " --replace", "prep-limit-3", {kFileLimit}), "File too large");
  EXPECT_EQ(names(out), before);
  EXPECT_EQ(test::read_text(out + "/prepare.json"), info);
  EXPECT_EQ(temporaries(dir_->path), std::vector<std::string>{});
}

}  // namespace
}  // namespace alibi
