#pragma once
// Slices of a parameter set, read onto the host in one buffer and added back to from sums: how a
// method whose tables are made on the host (KERPLE's, FIRE's) reads its parameters and returns
// their gradients. The slices are listed when the method is bound; gather and add_to then use
// buffers the caller planned, so a step loop allocates nothing.
#include <cstddef>
#include <vector>

#include "model/params.h"

namespace alibi {

class ParamSlices {
 public:
  // n floats at `offset` of a set; the slices follow one another in the host buffer.
  void add(size_t offset, size_t n) {
    parts_.push_back({offset, n});
    size_ += n;
  }
  size_t size() const { return size_; }

  // out (size()) = the slices of `set`, in order.
  void gather(const ParamSet& set, float* out) const {
    for (const Part& p : parts_) {
      set.backend().download(out, set.data.data() + p.offset, p.n * sizeof(float));
      out += p.n;
    }
  }
  // The slices of `set` += v (size()), rounded to float after the sum; scratch: size() floats.
  void add_to(ParamSet& set, const double* v, float* scratch) const {
    gather(set, scratch);
    for (size_t i = 0; i < size_; ++i) scratch[i] += float(v[i]);
    for (const Part& p : parts_) {
      set.backend().upload(set.data.data() + p.offset, scratch, p.n * sizeof(float));
      scratch += p.n;
    }
  }

 private:
  struct Part {
    size_t offset, n;
  };
  std::vector<Part> parts_;
  size_t size_ = 0;
};

}  // namespace alibi
