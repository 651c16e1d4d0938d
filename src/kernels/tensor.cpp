#include "kernels/tensor.h"

#include "core/error.h"

namespace alibi {

Shape::Shape(std::initializer_list<int64_t> dims) {
  ALIBI_CHECK(dims.size() <= d.size(), "a shape of ", dims.size(), " dimensions");
  for (int64_t x : dims) d[size_t(rank++)] = x;
}

Shape Shape::of(const std::vector<int64_t>& dims) {
  ALIBI_CHECK(dims.size() <= 4, "a shape of ", dims.size(), " dimensions");
  Shape s;
  for (int64_t x : dims) s.d[size_t(s.rank++)] = x;
  return s;
}

int64_t Shape::numel() const {
  int64_t n = 1;
  for (int i = 0; i < rank; ++i) n *= d[size_t(i)];
  return n;
}

std::string Shape::str() const {
  std::string s = "(";
  for (int i = 0; i < rank; ++i) s += (i ? ", " : "") + std::to_string(d[size_t(i)]);
  return s + ")";
}

}  // namespace alibi
