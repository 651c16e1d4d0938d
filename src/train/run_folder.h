#pragma once
// A run folder belongs to one run, and to one process at a time.
//
// A new run (`train --out R`) starts in a folder that holds no run: one that does not exist, or
// holds none of a run's files (checkpoints, their temporaries, a non-empty log.jsonl). Files a
// run did not write (a wrapper's own log) are left alone. --replace deletes a run's files first,
// and says what it deleted. A resumed run (`--resume R`) continues the run in R.
//
// Either way the process holds R/train.lock with flock(2) for as long as it trains there, so a
// second `train` or `--resume` on R is refused naming the holder's pid; the kernel drops the lock
// when the process ends, however it ends (SIGKILL included), so a killed run resumes at once.
// eval and generate read without it: checkpoints are replaced whole (core/io.h).
#include <string>

namespace alibi {

class RunFolder {
 public:
  enum class Start { fresh, fresh_replacing, resume };

  // Takes the folder (creating it for a fresh run) or throws UsageError in one line naming it,
  // with nothing in it changed.
  RunFolder(const std::string& dir, Start start);
  // Releases the lock. If it ends by an exception and this made the folder, only the lock file
  // and an empty log are in it: both, and the folder, are removed.
  ~RunFolder();
  RunFolder(const RunFolder&) = delete;
  RunFolder& operator=(const RunFolder&) = delete;

  const std::string& dir() const { return dir_; }
  static constexpr const char* kLockFile = "train.lock";

 private:
  std::string dir_;
  int fd_ = -1;
  bool made_ = false;  // the folder did not exist before
};

}  // namespace alibi
