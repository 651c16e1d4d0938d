#pragma once
// The CUDA backend (kernels/cuda/*.cu): device memory, one stream, cuBLAS for the products and
// kernels of our own for the rest, the fused attention included. Built when CMake finds the CUDA
// toolkit (ALIBI_HAVE_CUDA), as the module libalibi_cuda.so, which kernels/backend.cpp loads on
// first use through alibi_make_cuda_backend; docs/cuda.md says what has been run on a GPU and
// what has not.
#include <memory>

#include "kernels/backend.h"

namespace alibi::cuda {

// A UsageError naming --device when no CUDA device is visible (a build machine without a GPU).
std::shared_ptr<Backend> make_cuda_backend(MatmulPrecision p);

}  // namespace alibi::cuda
