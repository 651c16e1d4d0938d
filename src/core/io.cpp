#include "core/io.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <thread>

#include "core/error.h"

namespace alibi {
namespace {

// A pipe or a device has no size to read ahead; its content grows by doubling from this.
constexpr size_t kStreamChunkBytes = size_t(64) << 10;
// Attempts at a fresh temporary name before giving up; a clash needs a stale temporary left by
// a killed process that had our pid.
constexpr int kTempNameTries = 100;
// Temporaries are named PATH + kTempMark + PID-N.
constexpr const char* kTempMark = ".tmp-";

[[noreturn]] void write_failed(const std::string& path, int err) {
  usage_error("writing '", path, "' failed: ", std::strerror(err),
              "; check the folder exists, is writable and has space");
}

// Creates PATH.tmp-PID-N with O_EXCL, so concurrent writers never share a temporary. open()'s
// own mode applies the umask (mkstemp would make the file 0600).
int create_temp(const std::string& path, std::string& tmp) {
  static std::atomic<unsigned> counter{0};
  for (int i = 0; i < kTempNameTries; ++i) {
    tmp = str_cat(path, kTempMark, ::getpid(), "-", counter++);
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd >= 0 || errno != EEXIST) return fd;
  }
  errno = EEXIST;
  return -1;
}

// 0 or the errno of the first failure.
int write_all(int fd, std::string_view s) {
  const char* p = s.data();
  size_t left = s.size();
  while (left > 0) {
    const ssize_t w = ::write(fd, p, left);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return w < 0 ? errno : EIO;
    p += w;
    left -= size_t(w);
  }
  return 0;
}

// TEST ONLY (scripts/crash_campaign.py): with ALIBI_TEST_PAUSE_IN_WRITE=SECONDS in the
// environment, every write stops for SECONDS when half its bytes are in the temporary (before
// fsync and rename), after a marker line on stderr, so a test can SIGKILL the process inside
// a write instead of hoping to hit one. Never set it in real use.
double test_pause_seconds() {
  const char* v = std::getenv("ALIBI_TEST_PAUSE_IN_WRITE");
  return v ? std::atof(v) : 0.0;
}

void write_parts(const std::string& path, size_t n, size_t total,
                 const std::function<std::string_view(size_t)>& part) {
  std::string tmp;
  const int fd = create_temp(path, tmp);
  if (fd < 0) write_failed(path, errno);
  const double pause_s = test_pause_seconds();
  size_t until_pause = pause_s > 0 ? total / 2 : SIZE_MAX;  // bytes still to write before it
  int err = 0;
  for (size_t i = 0; i < n && err == 0; ++i) {
    std::string_view s;
    try {
      s = part(i);
    } catch (...) {  // a part that cannot be made: nothing is left behind
      ::close(fd);
      ::unlink(tmp.c_str());
      throw;
    }
    if (until_pause != SIZE_MAX && s.size() >= until_pause) {  // the pause falls in this part
      err = write_all(fd, s.substr(0, until_pause));
      s.remove_prefix(until_pause);
      until_pause = SIZE_MAX;
      std::fprintf(stderr, "alibi: test: paused in write of '%s' (temporary '%s') for %g s\n",
                   path.c_str(), tmp.c_str(), pause_s);
      std::fflush(stderr);
      std::this_thread::sleep_for(std::chrono::duration<double>(pause_s));
    } else if (until_pause != SIZE_MAX) {
      until_pause -= s.size();
    }
    if (err == 0) err = write_all(fd, s);
  }
  if (err == 0 && ::fsync(fd) != 0) err = errno;
  if (::close(fd) != 0 && err == 0) err = errno;
  if (err == 0 && std::rename(tmp.c_str(), path.c_str()) != 0) err = errno;
  if (err != 0) {
    ::unlink(tmp.c_str());
    write_failed(path, err);
  }
  // The rename is durable only once the folder is synced. Some file systems cannot sync a
  // folder (EINVAL); the file itself is complete then, which is all they promise.
  const std::filesystem::path parent = std::filesystem::path(path).parent_path();
  const std::string dir = parent.empty() ? std::string(".") : parent.string();
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) write_failed(path, errno);
  err = ::fsync(dfd) != 0 && errno != EINVAL ? errno : 0;
  ::close(dfd);
  if (err != 0) write_failed(path, err);
}

}  // namespace

void test_pause_point(const char* env, const std::string& what) {
  const char* v = std::getenv(env);
  const double s = v ? std::atof(v) : 0.0;
  if (s <= 0) return;
  std::fprintf(stderr, "alibi: test: paused in %s for %g s\n", what.c_str(), s);
  std::fflush(stderr);
  std::this_thread::sleep_for(std::chrono::duration<double>(s));
}

void write_file_atomic(const std::string& path, std::initializer_list<std::string_view> parts) {
  write_file_atomic(path, std::vector<std::string_view>(parts));
}

void write_file_atomic(const std::string& path, const std::vector<std::string_view>& parts) {
  size_t total = 0;
  for (std::string_view s : parts) total += s.size();
  write_parts(path, parts.size(), total, [&](size_t i) { return parts[i]; });
}

void write_file_atomic(const std::string& path, size_t n, size_t total,
                       const std::function<std::string_view(size_t)>& part) {
  write_parts(path, n, total, part);
}

int remove_dead_temporaries(const std::string& dir) {
  int removed = 0;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    const size_t at = name.rfind(kTempMark);
    if (at == std::string::npos || !e.is_regular_file(ec)) continue;
    char* end = nullptr;
    const long pid = std::strtol(name.c_str() + at + std::strlen(kTempMark), &end, 10);
    if (pid <= 0 || *end != '-') continue;  // not one of ours
    // ESRCH: no such process. A live one (ours included) may still be writing it.
    if (::kill(pid_t(pid), 0) != 0 && errno == ESRCH && std::filesystem::remove(e.path(), ec))
      ++removed;
  }
  return removed;
}

std::string read_file(const std::string& path, const std::string& what) {
  auto fail = [&](int err) {
    usage_error(what, " '", path, "' cannot be read; ", std::strerror(err),
                " (check the path and permissions)");
  };
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail(errno);
  struct stat st {};
  const bool regular = ::fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
  // A regular file is read into one buffer of its size: a corpus may be gigabytes.
  std::string s(regular ? size_t(st.st_size) : kStreamChunkBytes, '\0');
  size_t n = 0;
  int err = 0;
  for (;;) {
    if (n == s.size()) {
      if (regular) break;
      s.resize(2 * s.size());
    }
    const ssize_t r = ::read(fd, s.data() + n, s.size() - n);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) err = errno;
    if (r <= 0) break;
    n += size_t(r);
  }
  ::close(fd);
  if (err != 0) fail(err);
  if (regular && n != s.size())
    usage_error(what, " '", path, "' cannot be read; it ended after ", n, " of its ", s.size(),
                " bytes (did it change while being read?)");
  s.resize(n);
  return s;
}

}  // namespace alibi
