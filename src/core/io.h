#pragma once
// Whole-file I/O. Every file alibi writes in one go goes through write_file_atomic, so a crash,
// a kill or a full disk leaves either the old file or the complete new one, never half of one;
// every file it reads in one go goes through read_file. Both throw UsageError naming the path
// and the OS reason.
#include <functional>
#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

namespace alibi {

// Writes PARTS one after another to a fresh temporary file in PATH's folder, fsyncs it, renames
// it over PATH and fsyncs the folder. A new file gets 0666 minus the umask, as open() gives. On
// failure the temporary is removed and PATH is untouched.
void write_file_atomic(const std::string& path, std::initializer_list<std::string_view> parts);
void write_file_atomic(const std::string& path, const std::vector<std::string_view>& parts);
// The same with the N parts made one at a time, as they are written: part(i) stays valid until
// the next call; TOTAL is the sum of their sizes.
void write_file_atomic(const std::string& path, size_t n, size_t total,
                       const std::function<std::string_view(size_t)>& part);

// A process killed inside write_file_atomic leaves its temporary (NAME.tmp-PID-N) behind.
// Removes those in DIR whose process no longer runs on this host; returns how many. Only for
// folders with one writer at a time (a run folder): the PID is not checked on other hosts.
int remove_dead_temporaries(const std::string& dir);

// TEST ONLY (scripts/crash_campaign.py): with ENV=SECONDS in the environment, stops here for
// SECONDS after the marker line "alibi: test: paused in WHAT" on stderr, so a test can signal
// the process at this point instead of hoping to hit it (as ALIBI_TEST_PAUSE_IN_WRITE does
// inside every atomic write). Never set in real use.
void test_pause_point(const char* env, const std::string& what);

// The whole content of PATH: a regular file in one allocation, a pipe or a device until its end.
// Throws UsageError "<what> '<path>' cannot be read; <reason>".
std::string read_file(const std::string& path, const std::string& what);

}  // namespace alibi
