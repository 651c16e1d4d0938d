#pragma once
// Integer fields of JSON read from files. nlohmann's get<int>() converts a float such as 1e30
// with undefined behaviour and wraps an unsigned above INT_MAX into a negative number; a file
// must not be able to do either, so every integer a loader reads goes through json_int.
#include <cmath>
#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>

#include "core/error.h"

namespace alibi {

// V as an int; a UsageError "<what> is <V>; expected an integer in <int's range>" for anything
// else. A float with an integral value (3.0) is taken, as get<int>() took it.
inline int json_int(const nlohmann::json& v, const std::string& what) {
  constexpr int64_t lo = std::numeric_limits<int>::min(), hi = std::numeric_limits<int>::max();
  if (v.is_number_unsigned()) {
    if (v.get<uint64_t>() <= uint64_t(hi)) return int(v.get<uint64_t>());
  } else if (v.is_number_integer()) {
    if (v.get<int64_t>() >= lo && v.get<int64_t>() <= hi) return int(v.get<int64_t>());
  } else if (v.is_number_float()) {
    const double d = v.get<double>();
    if (d >= double(lo) && d <= double(hi) && d == std::trunc(d)) return int(d);
  }
  usage_error(what, " is ", v.dump(), "; expected an integer in ", lo, "..", hi);
}

}  // namespace alibi
