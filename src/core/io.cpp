#include "core/io.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "core/error.h"

namespace alibi {
namespace {

// A pipe or a device has no size to read ahead; its content grows by doubling from this.
constexpr size_t kStreamChunkBytes = size_t(64) << 10;
// Attempts at a fresh temporary name before giving up; a clash needs a stale temporary left by
// a killed process that had our pid.
constexpr int kTempNameTries = 100;

[[noreturn]] void write_failed(const std::string& path, int err) {
  usage_error("writing '", path, "' failed: ", std::strerror(err),
              "; check the folder exists, is writable and has space");
}

// Creates PATH.tmp-PID-N with O_EXCL, so concurrent writers never share a temporary. open()'s
// own mode applies the umask (mkstemp would make the file 0600).
int create_temp(const std::string& path, std::string& tmp) {
  static std::atomic<unsigned> counter{0};
  for (int i = 0; i < kTempNameTries; ++i) {
    tmp = str_cat(path, ".tmp-", ::getpid(), "-", counter++);
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

void write_parts(const std::string& path, const std::string_view* parts, size_t n) {
  std::string tmp;
  const int fd = create_temp(path, tmp);
  if (fd < 0) write_failed(path, errno);
  int err = 0;
  for (size_t i = 0; i < n && err == 0; ++i) err = write_all(fd, parts[i]);
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

void write_file_atomic(const std::string& path, std::initializer_list<std::string_view> parts) {
  write_parts(path, parts.begin(), parts.size());
}

void write_file_atomic(const std::string& path, const std::vector<std::string_view>& parts) {
  write_parts(path, parts.data(), parts.size());
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
