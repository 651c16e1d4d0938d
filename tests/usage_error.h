#pragma once
// Checks a library call's user error: a one-line UsageError that names what was wrong.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "core/error.h"

namespace alibi::test {

// Runs f, expects a UsageError whose message contains every string in `needles`.
template <typename F>
void expect_usage_error(F&& f, const std::vector<std::string>& needles) {
  try {
    f();
    ADD_FAILURE() << "no UsageError thrown";
  } catch (const UsageError& e) {
    const std::string msg = e.what();
    EXPECT_EQ(msg.find('\n'), std::string::npos) << "message is not one line: " << msg;
    for (const auto& n : needles)
      EXPECT_NE(msg.find(n), std::string::npos) << n << " not in: " << msg;
  }
}

}  // namespace alibi::test
