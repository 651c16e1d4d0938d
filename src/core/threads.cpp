#include "core/threads.h"

#include <unistd.h>

#include <cstdlib>

namespace alibi {

void ensure_passive_omp_wait(char** argv) {
  if (std::getenv("OMP_WAIT_POLICY") != nullptr) return;
  setenv("OMP_WAIT_POLICY", "passive", 1);
  execv("/proc/self/exe", argv);  // only returns on failure: carry on with the default policy
}

}  // namespace alibi
