#pragma once
// A typed array in a backend's memory (kernels/backend.h): zero-filled when made, freed with the
// array, move-only. It keeps its backend alive.
#include <cstddef>
#include <memory>
#include <utility>

#include "kernels/backend.h"

namespace alibi {

template <class T>
class DeviceArray {
 public:
  DeviceArray() = default;
  DeviceArray(std::shared_ptr<Backend> be, size_t n)
      : be_(std::move(be)), n_(n), p_(n ? static_cast<T*>(be_->alloc(n * sizeof(T))) : nullptr) {}
  ~DeviceArray() {
    if (p_) be_->free(p_);
  }
  DeviceArray(DeviceArray&& o) noexcept { swap(o); }
  DeviceArray& operator=(DeviceArray&& o) noexcept {
    DeviceArray(std::move(o)).swap(*this);
    return *this;
  }
  DeviceArray(const DeviceArray&) = delete;
  DeviceArray& operator=(const DeviceArray&) = delete;

  T* data() { return p_; }
  const T* data() const { return p_; }
  size_t size() const { return n_; }
  Backend& backend() const { return *be_; }
  const std::shared_ptr<Backend>& backend_ptr() const { return be_; }

 private:
  void swap(DeviceArray& o) noexcept {
    std::swap(be_, o.be_);
    std::swap(n_, o.n_);
    std::swap(p_, o.p_);
  }
  std::shared_ptr<Backend> be_;
  size_t n_ = 0;
  T* p_ = nullptr;
};

}  // namespace alibi
