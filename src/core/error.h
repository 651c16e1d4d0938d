#pragma once
// Errors. A UsageError is the user's fault (bad flag, bad file): the CLI prints its one-line
// message and exits with code 2. Anything else is a bug or an environment failure (exit 1).
#include <sstream>
#include <stdexcept>
#include <string>

namespace alibi {

struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

template <typename... Args>
std::string str_cat(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}

template <typename... Args>
[[noreturn]] void usage_error(const Args&... args) {
  throw UsageError(str_cat(args...));
}

}  // namespace alibi

// Internal invariant; failing it is a bug in alibi, not in the input.
#define ALIBI_CHECK(cond, ...)                                                            \
  do {                                                                                    \
    if (!(cond))                                                                          \
      throw std::logic_error(::alibi::str_cat(__FILE__, ":", __LINE__, ": check failed: ", \
                                              #cond, " ", ##__VA_ARGS__));                \
  } while (0)
