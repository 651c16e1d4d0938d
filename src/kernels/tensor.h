#pragma once
// Views of a backend's memory: a pointer and a shape (row-major, dense). The ops of
// kernels/layer_ops.h take them instead of loose sizes, so every size travels with its tensor
// and each op checks its operands against each other in one place, whatever the backend.
#include <array>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <type_traits>
#include <vector>

#include "kernels/weights.h"

namespace alibi {

struct Shape {
  std::array<int64_t, 4> d{};
  int rank = 0;
  Shape() = default;
  Shape(std::initializer_list<int64_t> dims);
  int64_t operator[](int i) const { return d[size_t(i)]; }
  int64_t numel() const;
  bool operator==(const Shape& o) const { return rank == o.rank && d == o.d; }
  bool operator!=(const Shape& o) const { return !(*this == o); }
  static Shape of(const std::vector<int64_t>& dims);
  std::string str() const;  // "(512, 64)"
};

template <class P>
struct View {
  P data{};  // float*, const float*, or a WeightView (fp32, bf16 or f16)
  Shape shape;
  View() = default;
  View(P p, Shape s) : data(p), shape(s) {}
  // A float* view reads as a const float* view, and as an fp32 weight view. (C++17: the CUDA
  // backend's files include this too.)
  template <class Q, class = std::enable_if_t<!std::is_same_v<P, Q> && std::is_convertible_v<Q, P>>>
  View(const View<Q>& o) : data(o.data), shape(o.shape) {}
  int64_t operator[](int i) const { return shape[i]; }
  int64_t numel() const { return shape.numel(); }
};

using Tensor = View<float*>;
using CTensor = View<const float*>;
using WTensor = View<WeightView>;

// Whether an optional operand (a bias, an input gradient) is there.
inline bool given(const Tensor& t) { return t.data != nullptr; }
inline bool given(const CTensor& t) { return t.data != nullptr; }

// (rows, cols) and (n) views: mat(a.qkv, N, 3 * C), vec(b, OC).
template <class P>
View<P> mat(P p, int64_t rows, int64_t cols) {
  return {p, {rows, cols}};
}
template <class P>
View<P> vec(P p, int64_t n) {
  return {p, {n}};
}

// Rows [r0, r0 + n) of a (rows, cols) weight matrix.
inline WTensor rows(const WTensor& w, int64_t r0, int64_t n) {
  return {w.data.rows_from(r0, w[1]), {n, w[1]}};
}

}  // namespace alibi
