// core/io.h: atomic whole-file writes and whole-file reads.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "cli.h"
#include "core/error.h"
#include "core/io.h"
#include "core/safetensors.h"
#include "usage_error.h"

namespace fs = std::filesystem;

namespace alibi {
namespace {

using test::expect_usage_error;
using test::read_text;
using test::TempDir;
using test::write_text;

std::vector<std::string> names_in(const fs::path& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) out.push_back(e.path().filename().string());
  return out;
}

TEST(Io, AtomicWriteReplacesAFileAndLeavesNoTemporary) {
  TempDir tmp("io_replace");
  const std::string path = tmp / "out.txt";
  write_text(path, "an older and longer content");
  write_file_atomic(path, {"new"});
  EXPECT_EQ(read_text(path), "new");
  EXPECT_EQ(names_in(tmp.path), std::vector<std::string>{"out.txt"});
}

TEST(Io, PartsAreWrittenInOrder) {
  TempDir tmp("io_parts");
  const std::string binary("\0\xff\n", 3);
  write_file_atomic(tmp / "a", {"ab", "", binary, "cd"});
  EXPECT_EQ(read_text(tmp / "a"), "ab" + binary + "cd");
  const std::string big(1 << 20, 'x');  // more than one write() may take
  write_file_atomic(tmp / "b", std::vector<std::string_view>{"head", big, "tail"});
  EXPECT_EQ(read_text(tmp / "b"), "head" + big + "tail");
}

// A tensor made only when written (add_lazy) gives the file an owned copy would, whatever the
// order tensors are laid out in; a fill that throws leaves no file and no temporary.
TEST(Io, LazySafetensorsTensorsWriteWhatOwnedOnesWould) {
  TempDir tmp("io_lazy");
  std::vector<float> a(37), c(1000);
  std::vector<uint16_t> b(64);
  for (size_t i = 0; i < a.size(); ++i) a[i] = float(i) * 0.5f - 3.0f;
  for (size_t i = 0; i < b.size(); ++i) b[i] = uint16_t(0x3f80 + 7 * i);
  for (size_t i = 0; i < c.size(); ++i) c[i] = 1.0f / float(i + 1);
  Safetensors owned, lazy;
  for (Safetensors* st : {&owned, &lazy}) {
    st->metadata["k"] = "v";
    st->add("a", "F32", {37}, a.data(), a.size() * 4);
  }
  owned.add("b", "BF16", {8, 8}, b.data(), b.size() * 2);
  owned.add("c", "F32", {10, 100}, c.data(), c.size() * 4);
  lazy.add_lazy("b", "BF16", {8, 8}, b.size() * 2,
                [&](uint8_t* dst) { std::memcpy(dst, b.data(), b.size() * 2); });
  lazy.add_lazy("c", "F32", {10, 100}, c.size() * 4,
                [&](uint8_t* dst) { std::memcpy(dst, c.data(), c.size() * 4); });
  owned.write_atomic(tmp / "owned.safetensors");
  lazy.write_atomic(tmp / "lazy.safetensors");
  EXPECT_EQ(read_text(tmp / "lazy.safetensors"), read_text(tmp / "owned.safetensors"));
  lazy.add_lazy("d", "F32", {2}, 8, [](uint8_t*) { throw UsageError("the source went away"); });
  EXPECT_THROW(lazy.write_atomic(tmp / "d.safetensors"), UsageError);
  EXPECT_EQ(names_in(tmp.path).size(), 2u);  // no d.safetensors, no temporary
}

// mkstemp would make the file 0600; a written file must look as if open() had made it.
TEST(Io, NewFileGetsTheUsualMode) {
  TempDir tmp("io_mode");
  const mode_t mask = ::umask(0);
  ::umask(mask);
  write_file_atomic(tmp / "f", {"x"});
  struct stat st {};
  ASSERT_EQ(::stat((tmp / "f").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0666 & ~mask);
}

TEST(Io, WriteIntoAMissingFolderIsAUsageErrorAndLeavesNothing) {
  TempDir tmp("io_missing_dir");
  const std::string path = tmp / "no_such_folder/out.txt";
  expect_usage_error([&] { write_file_atomic(path, {"x"}); }, {path, "No such file"});
  EXPECT_TRUE(names_in(tmp.path).empty());
}

TEST(Io, ReadMissingFileIsAUsageErrorNamingIt) {
  TempDir tmp("io_read_missing");
  const std::string path = tmp / "missing.txt";
  expect_usage_error([&] { read_file(path, "--text"); }, {"--text", path, "cannot be read"});
  expect_usage_error([&] { read_file(tmp.path.string(), "corpus"); },
                     {"corpus", tmp.path.string(), "cannot be read"});  // a folder
}

TEST(Io, ReadsRegularFilesAndPipes) {
  TempDir tmp("io_read");
  const std::string text("line\n\0binary\xff", 13);
  write_text(tmp / "f", text);
  EXPECT_EQ(read_file(tmp / "f", "file"), text);
  EXPECT_EQ(read_file("/dev/null", "device"), "");

  // A pipe has no size up front; send more than the first read buffer.
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  const std::string big(300 << 10, 'p');
  std::thread writer([&] {
    for (size_t at = 0; at < big.size();) {
      const ssize_t w = ::write(fds[1], big.data() + at, big.size() - at);
      if (w <= 0) break;
      at += size_t(w);
    }
    ::close(fds[1]);
  });
  const std::string got = read_file("/proc/self/fd/" + std::to_string(fds[0]), "pipe");
  writer.join();
  ::close(fds[0]);
  EXPECT_EQ(got, big);
}

}  // namespace
}  // namespace alibi
