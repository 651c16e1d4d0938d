// The one place a device is chosen: each backend this build has is one line of kDevices.
#include "kernels/backend.h"

#include "core/error.h"
#include "kernels/cpu/cpu_backend.h"
#ifdef ALIBI_HAVE_CUDA
#include "kernels/cuda/cuda_backend.h"
#endif

namespace alibi {
namespace {

struct DeviceEntry {
  const char* name;
  std::shared_ptr<Backend> (*make)(MatmulPrecision);
};

constexpr DeviceEntry kDevices[] = {
    {"cpu", cpu::make_cpu_backend},
#ifdef ALIBI_HAVE_CUDA
    {"cuda", cuda::make_cuda_backend},
#endif
};

}  // namespace

std::string device_names() {
  std::string s;
  for (const DeviceEntry& d : kDevices) s += std::string(s.empty() ? "" : "|") + d.name;
  return s;
}

std::shared_ptr<Backend> make_backend(const std::string& device, MatmulPrecision p,
                                      const std::string& flag) {
  for (const DeviceEntry& d : kDevices)
    if (device == d.name) return d.make(p);
  usage_error(flag, " '", device, "' is not a device of this build; it has ", device_names());
}

std::shared_ptr<Backend> default_backend() {
  static const std::shared_ptr<Backend> cpu = cpu::make_cpu_backend(MatmulPrecision::fp32);
  return cpu;
}

}  // namespace alibi
