#include "core/threads.h"

#include <unistd.h>

#include <cstdlib>

namespace alibi {

void ensure_omp_wait_policy(char** argv, const char* spin_count) {
  if (std::getenv("OMP_WAIT_POLICY") != nullptr || std::getenv("GOMP_SPINCOUNT") != nullptr)
    return;
  setenv("GOMP_SPINCOUNT", spin_count, 1);
  execv("/proc/self/exe", argv);  // only returns on failure: carry on with the default policy
}

}  // namespace alibi
