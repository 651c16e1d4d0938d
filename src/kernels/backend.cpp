// The one place a device is chosen: each backend this build has is one line of kDevices.
#include "kernels/backend.h"

#include "core/error.h"
#include "kernels/cpu/cpu_backend.h"
#ifdef ALIBI_HAVE_CUDA
#include <dlfcn.h>
#include <unistd.h>

#include <climits>
#endif

namespace alibi {
namespace {

#ifdef ALIBI_HAVE_CUDA
// The CUDA backend lives in the module libalibi_cuda.so (kernels/cuda/cuda_backend.h), loaded
// here on first use, so that only --device cuda pays for the CUDA runtime and cuBLAS. It is
// looked for where the build wrote it, then beside the running program. It stays loaded.
using MakeCuda = void (*)(MatmulPrecision, std::shared_ptr<Backend>*);

MakeCuda cuda_module() {
  static const MakeCuda make = [] {
    std::string tried = ALIBI_CUDA_MODULE;
    void* h = dlopen(ALIBI_CUDA_MODULE, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
      char exe[PATH_MAX];
      const ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
      std::string dir = n > 0 ? std::string(exe, size_t(n)) : std::string();
      dir = dir.substr(0, dir.find_last_of('/') + 1);
      const std::string beside = dir + "libalibi_cuda.so";
      h = dlopen(beside.c_str(), RTLD_NOW | RTLD_LOCAL);
      tried += " or " + beside;
    }
    if (!h) usage_error("--device cuda: the CUDA backend (", tried, ") does not load: ", dlerror());
    void* f = dlsym(h, "alibi_make_cuda_backend");
    if (!f) usage_error("--device cuda: ", tried, " has no alibi_make_cuda_backend");
    return reinterpret_cast<MakeCuda>(f);
  }();
  return make;
}

std::shared_ptr<Backend> make_cuda_backend(MatmulPrecision p) {
  std::shared_ptr<Backend> b;
  cuda_module()(p, &b);
  return b;
}
#endif

struct DeviceEntry {
  const char* name;
  std::shared_ptr<Backend> (*make)(MatmulPrecision);
};

constexpr DeviceEntry kDevices[] = {
    {"cpu", cpu::make_cpu_backend},
#ifdef ALIBI_HAVE_CUDA
    {"cuda", make_cuda_backend},
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
