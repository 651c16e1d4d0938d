#pragma once
// Runs the alibi CLI from tests: exit code, stderr and stdout of one invocation.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
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

// stderr goes to err_file, stdout to err_file + ".out".
inline CliResult run_cli(const std::string& args, const std::string& err_file) {
  const std::string cmd =
      std::string(ALIBI_CLI) + " " + args + " >" + err_file + ".out 2>" + err_file;
  const int st = std::system(cmd.c_str());
  CliResult r;
  r.code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  r.err = read_text(err_file);
  r.out = read_text(err_file + ".out");
  return r;
}

inline void write_text(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

// Public-domain text from ../shared for tests that need a corpus.
inline std::string shakespeare_path() {
  return std::string(ALIBI_SOURCE_DIR) + "/../shared/data/tinyshakespeare.txt";
}

}  // namespace alibi::test
