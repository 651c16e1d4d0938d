#pragma once
// Runs the alibi CLI from tests: exit code, stderr and stdout of one invocation.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>
#include <string>

namespace alibi::test {

struct CliResult {
  int code = -1;
  std::string err;  // stderr
  std::string out;  // stdout
};

// A fresh folder under the system temp dir, removed on destruction.
struct TempDir {
  std::filesystem::path path;
  explicit TempDir(const std::string& tag) {
    path = std::filesystem::temp_directory_path() /
           ("alibi_" + tag + "_" + std::to_string(::getpid()));
    std::filesystem::remove_all(path);
    std::filesystem::create_directories(path);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
  std::string operator/(const std::string& s) const { return (path / s).string(); }
};

inline std::string read_text(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// With ALIBI_BAD_INPUT_LOG set, every CLI run that ends with an error line is appended there
// as one JSON line (test, command, message, exit code): scripts/bad_input_table.py makes the
// bad-input table of docs/reliability.md from it, so the table is what the tests try.
inline void log_refusal(const std::string& args, const CliResult& r) {
  const char* log = std::getenv("ALIBI_BAD_INPUT_LOG");
  const size_t at = r.err.rfind("alibi: error: ");
  if (!log || r.code == 0 || at == std::string::npos) return;
  const ::testing::TestInfo* t = ::testing::UnitTest::GetInstance()->current_test_info();
  const std::string message = r.err.substr(at, r.err.find('\n', at) - at);
  const nlohmann::json j = {{"test", t ? std::string(t->test_suite_name()) + "." + t->name() : ""},
                            {"command", args},
                            {"message", message},
                            {"code", r.code}};
  if (std::FILE* f = std::fopen(log, "a")) {  // one line per write: parallel tests interleave
    std::fputs((j.dump() + "\n").c_str(), f);  // whole lines
    std::fclose(f);
  }
}

// stderr goes to err_file, stdout to err_file + ".out".
inline CliResult run_cli(const std::string& args, const std::string& err_file) {
  const std::string cmd =
      std::string(ALIBI_CLI) + " " + args + " >" + err_file + ".out 2>" + err_file;
  const int st = std::system(cmd.c_str());
  CliResult r;
  r.code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  r.err = read_text(err_file);
  r.out = read_text(err_file + ".out");
  log_refusal(args, r);
  return r;
}

// `alibi ARGS` started in the background, stderr to err_file and stdout to err_file + ".out",
// with ENV ("NAME=value ...") in its environment.
struct BackgroundCli {
  pid_t pid = -1;
  std::string err_file;

  // True once stderr holds `needle`; false if the process ended or timeout_s passed first.
  bool wait_for(const std::string& needle, double timeout_s = 120) const {
    for (double waited = 0; waited < timeout_s; waited += 0.01) {
      if (read_text(err_file).find(needle) != std::string::npos) return true;
      siginfo_t info{};
      if (::waitid(P_PID, id_t(pid), &info, WEXITED | WNOHANG | WNOWAIT) != 0 || info.si_pid)
        return false;  // it ended (or is not ours)
      ::usleep(10000);
    }
    return false;
  }
  // Sends sig (0: none) and waits for the exit: code 128 + n where signal n ended it.
  CliResult finish(int sig = 0) {
    if (sig) ::kill(pid, sig);
    int st = 0;
    ::waitpid(pid, &st, 0);
    CliResult r;
    r.code = WIFEXITED(st) ? WEXITSTATUS(st) : WIFSIGNALED(st) ? 128 + WTERMSIG(st) : -1;
    r.err = read_text(err_file);
    r.out = read_text(err_file + ".out");
    return r;
  }
};

inline BackgroundCli start_cli(const std::string& args, const std::string& err_file,
                               const std::string& env = "") {
  const std::string cmd = "exec env " + env + " " + std::string(ALIBI_CLI) + " " + args + " >" +
                          err_file + ".out 2>" + err_file;
  BackgroundCli b;
  b.err_file = err_file;
  b.pid = ::fork();
  if (b.pid == 0) {
    ::execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  return b;
}

inline void write_text(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

// Exit code 2 and one error line, the last on stderr, naming `needle` (progress lines may come
// before it when the failure happens mid-run).
inline void expect_cli_error(const CliResult& r, const std::string& needle) {
  EXPECT_EQ(r.code, 2) << r.err;
  const size_t at = r.err.find("alibi: error: ");
  ASSERT_NE(at, std::string::npos) << r.err;
  const std::string line = r.err.substr(at);
  EXPECT_NE(line.find(needle), std::string::npos) << "expected '" << needle << "' in: " << line;
  EXPECT_EQ(std::count(line.begin(), line.end(), '\n'), 1) << r.err;
  EXPECT_TRUE(line.ends_with("\n")) << r.err;
}

// The megabytes of one part ("KV cache") of the plan `alibi --dry-run ARGS` prints; 0, and a
// failed expectation, where the line has no such part in MB.
inline double planned_mb(const std::string& args, const std::string& part,
                         const std::string& err_file) {
  const CliResult r = run_cli("--dry-run " + args, err_file);
  std::smatch m;
  EXPECT_TRUE(std::regex_search(r.out, m, std::regex(part + " ([0-9.]+) MB"))) << r.out << r.err;
  return m.empty() ? 0.0 : std::stod(m[1]);
}

// The text of an xz file in the repository (REL, a path under its root), or its first `bytes`:
// the suite reads only what the clone holds (xz-utils comes with scripts/setup.sh).
inline std::string repo_xz_text(const std::string& rel, size_t bytes = std::string::npos) {
  std::string cmd = "xz -dc " + std::string(ALIBI_SOURCE_DIR) + "/" + rel;
  if (bytes != std::string::npos) cmd += " | head -c " + std::to_string(bytes);
  std::string text;
  std::FILE* p = ::popen(cmd.c_str(), "r");
  if (p) {
    char buf[65536];
    for (size_t n; (n = std::fread(buf, 1, sizeof buf, p)) > 0;) text.append(buf, n);
  }
  const int status = p ? ::pclose(p) : -1;
  EXPECT_TRUE(status == 0 && !text.empty()) << "could not read " << cmd;
  return text;
}

// The texts under tests/data (tests/data/README.md says where each comes from and why).
inline std::string test_data_text(const std::string& name) {
  return repo_xz_text("tests/data/" + name);
}

// The bundled corpus: Pride and Prejudice (data/README.md).
inline const std::string kBundledCorpus = "data/default-corpus.txt.xz";

inline std::string bundled_text() { return repo_xz_text(kBundledCorpus); }

// The first `bytes` of the bundled corpus, cut after a line.
inline std::string bundled_text(size_t bytes) {
  std::string text = repo_xz_text(kBundledCorpus, bytes);
  text.resize(text.rfind('\n') + 1);
  return text;
}

// bundled_text(bytes) as DIR/corpus.txt, prepared as bytes into DIR/data.
inline void prepare_bundled(const TempDir& dir, size_t bytes = 200000) {
  write_text(dir / "corpus.txt", bundled_text(bytes));
  const CliResult r = run_cli(
      "prepare --input " + dir / "corpus.txt" + " --out " + dir / "data" + " --tokenizer bytes",
      dir / "prep.err");
  ASSERT_EQ(r.code, 0) << r.err;
}

}  // namespace alibi::test
