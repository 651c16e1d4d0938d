#include "train/run_folder.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <exception>
#include <filesystem>
#include <string>
#include <vector>

#include "core/error.h"
#include "model/checkpoint.h"

namespace fs = std::filesystem;

namespace alibi {
namespace {

constexpr const char* kLog = "log.jsonl";

// The files of a run in DIR: its checkpoints (oldest first), their temporaries, and log.jsonl
// when it holds a record (a run stopped before its first step leaves it empty).
struct RunFiles {
  std::vector<fs::path> checkpoints, temporaries;
  bool log = false;
  bool any() const { return !checkpoints.empty() || !temporaries.empty() || log; }
};

RunFiles run_files(const std::string& dir) {
  RunFiles f;
  f.checkpoints = list_checkpoints(dir);
  for (const auto& e : fs::directory_iterator(dir))
    if (is_checkpoint_temporary(e.path().filename().string())) f.temporaries.push_back(e.path());
  std::error_code ec;
  f.log = fs::file_size(fs::path(dir) / kLog, ec) > 0 && !ec;
  return f;
}

std::string step_of(const fs::path& ckpt) {
  const std::string n = ckpt.filename().string();  // ckpt-STEP.safetensors, zero-padded
  const size_t a = n.find_first_not_of('0', n.find('-') + 1), b = n.find('.');
  return a < b ? n.substr(a, b - a) : "0";
}

// "pid 1234 on host h", as the holder wrote it in the lock file: a holder that took the lock a
// moment ago writes it within microseconds, so an empty file is read again for up to a second.
std::string holder_of(int fd) {
  for (int tries = 0; tries < 100; ++tries) {
    char buf[256] = {};
    const ssize_t n = ::pread(fd, buf, sizeof(buf) - 1, 0);
    std::string s(buf, n > 0 ? size_t(n) : 0);
    if (!s.empty() && s.back() == '\n') {
      s.pop_back();
      return s;
    }
    ::usleep(10000);
  }
  return "a process that has not written its pid";
}

std::string describe_removed(const RunFiles& f) {
  std::vector<std::string> parts;
  if (!f.checkpoints.empty())
    parts.push_back(str_cat(f.checkpoints.size(), " checkpoint", f.checkpoints.size() > 1 ? "s" : "",
                            " (step ", step_of(f.checkpoints.front()),
                            f.checkpoints.size() > 1 ? " to " + step_of(f.checkpoints.back()) : "",
                            ")"));
  if (!f.temporaries.empty()) parts.push_back(str_cat(f.temporaries.size(), " temporaries"));
  if (f.log) parts.push_back(kLog);
  std::string s;
  for (size_t i = 0; i < parts.size(); ++i)
    s += (i == 0 ? "" : i + 1 == parts.size() ? " and " : ", ") + parts[i];
  return s;
}

}  // namespace

RunFolder::RunFolder(const std::string& dir, Start start) : dir_(dir) {
  std::error_code ec;
  if (fs::exists(dir, ec) && !fs::is_directory(dir, ec))
    usage_error("--out '", dir, "' is a file; expected a run folder (new, or holding a run)");
  made_ = !fs::exists(dir, ec);
  fs::create_directories(dir);  // a read-only parent: filesystem_error, exit 2 naming it
  const std::string lock = (fs::path(dir) / kLockFile).string();
  bool created = false;
  // Open, lock, and check the path still names the file locked: a refusal below unlinks a lock
  // file it created, and a process that opened it just before must not hold a lock on nothing.
  for (;;) {
    created = !fs::exists(lock, ec);
    fd_ = ::open(lock.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0666);
    if (fd_ < 0)
      usage_error("cannot create the lock file '", lock, "': ", std::strerror(errno),
                  "; check that the folder is writable");
    if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
      const int err = errno;
      const std::string holder = holder_of(fd_);
      ::close(fd_);
      fd_ = -1;
      if (err == EWOULDBLOCK)
        usage_error("run folder '", dir, "' is in use by another alibi train (", holder, "); ",
                    start == Start::resume ? "wait for it to end"
                                           : "wait for it to end, or give another --out");
      usage_error("cannot lock '", lock, "': ", std::strerror(err));
    }
    struct stat mine {}, named {};
    if (::fstat(fd_, &mine) == 0 && ::stat(lock.c_str(), &named) == 0 &&
        mine.st_ino == named.st_ino && mine.st_dev == named.st_dev)
      break;
    ::close(fd_);  // unlinked under us by a refused process: take the file now at the path
  }
  const RunFiles f = run_files(dir);
  if (start == Start::fresh && f.any()) {
    if (created) ::unlink(lock.c_str());
    ::close(fd_);
    fd_ = -1;
    if (!f.checkpoints.empty())
      usage_error("--out '", dir, "' holds a run (last checkpoint '",
                  f.checkpoints.back().filename().string(), "', step ",
                  step_of(f.checkpoints.back()), "); continue it with --resume ", dir,
                  ", or give another --out (--replace deletes it and starts over)");
    usage_error("--out '", dir, "' holds the ", describe_removed(f),
                " of a run that saved no checkpoint; give another --out, or --replace to delete "
                "them and start over");
  }
  if (start == Start::fresh_replacing && f.any()) {
    for (const auto& p : f.checkpoints) fs::remove(p);
    for (const auto& p : f.temporaries) fs::remove(p);
    fs::remove(fs::path(dir) / kLog);
    std::fprintf(stderr, "--replace: deleted the %s of the run in '%s'\n",
                 describe_removed(f).c_str(), dir.c_str());
  }
  char host[128] = "?";
  ::gethostname(host, sizeof(host) - 1);
  const std::string me = str_cat("pid ", ::getpid(), " on host ", host, "\n");
  if (::ftruncate(fd_, 0) != 0 || ::pwrite(fd_, me.data(), me.size(), 0) != ssize_t(me.size()))
    usage_error("cannot write the lock file '", lock, "': ", std::strerror(errno));
}

RunFolder::~RunFolder() {
  if (fd_ < 0) return;
  if (made_ && std::uncaught_exceptions() > 0) {  // a run that failed before it wrote anything
    std::error_code ec;
    const fs::path log = fs::path(dir_) / kLog;
    if (fs::exists(log, ec) && fs::file_size(log, ec) == 0) fs::remove(log, ec);
    const fs::path lock = fs::path(dir_) / kLockFile;
    if (fs::is_empty(dir_, ec) || (std::distance(fs::directory_iterator(dir_, ec),
                                                 fs::directory_iterator()) == 1 &&
                                   fs::exists(lock, ec))) {
      fs::remove(lock, ec);
      fs::remove(dir_, ec);
    }
  }
  ::close(fd_);
}

}  // namespace alibi
