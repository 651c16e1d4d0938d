#pragma once
// Shared by the libFuzzer targets (tests/fuzz/*.cpp, docs/reliability.md). A loader that takes a
// path gets the fuzz input as a file in a private folder; a UsageError is its documented answer to
// a bad file and is swallowed. Anything else that escapes (std::logic_error from ALIBI_CHECK,
// nlohmann or std exceptions, std::bad_alloc) reaches std::terminate, which libFuzzer reports as
// a crash, as it does for ASan/UBSan reports and allocations above -malloc_limit_mb.
#include <stdlib.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "core/error.h"

namespace alibi::fuzz {

// This process's scratch folder, made on first use and removed at exit: parallel fuzzers (and a
// campaign next to a smoke run) never share input files.
inline const std::string& scratch_dir() {
  // Never destroyed: the atexit hook below runs after the destructors of function statics.
  static const std::string& dir = *new std::string([] {
    // tmpfs where there is one: a file per execution on disk would make fuzzing disk-bound.
    std::error_code ec;
    std::filesystem::path base = std::filesystem::temp_directory_path();
    if (std::getenv("TMPDIR") == nullptr && std::filesystem::is_directory("/dev/shm", ec))
      base = "/dev/shm";
    std::string tmpl = (base / "alibi-fuzz-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr) {
      std::perror("alibi fuzz: mkdtemp");
      std::abort();
    }
    std::atexit([] {
      std::error_code ec;
      std::filesystem::remove_all(scratch_dir(), ec);
    });
    return tmpl;
  }());
  return dir;
}

// Writes the input to scratch_dir()/NAME (NAME may name a subfolder) and returns the path. Plain
// stdio, not write_file_atomic: its fsync per execution would make fuzzing disk-bound.
inline std::string write_input(const std::string& name, const uint8_t* data, size_t size) {
  const std::filesystem::path path = std::filesystem::path(scratch_dir()) / name;
  std::filesystem::create_directories(path.parent_path());
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr || std::fwrite(data, 1, size, f) != size || std::fclose(f) != 0) {
    std::perror("alibi fuzz: writing the input");
    std::abort();
  }
  return path.string();
}

// Runs the loader; only its documented error type is an acceptable way to refuse the input.
template <typename F>
int swallow_usage_errors(F&& f) {
  try {
    f();
  } catch (const UsageError&) {
  }
  return 0;
}

}  // namespace alibi::fuzz
