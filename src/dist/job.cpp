#include "dist/job.h"

#include <omp.h>
#include <sched.h>

#include <cstdint>
#include <cstdio>
#include <fstream>
#include <thread>
#include <vector>

#include "core/error.h"
#include "core/rng.h"

namespace alibi {
namespace {

uint64_t hash_bytes(uint64_t h, const char* p, size_t n) {
  for (size_t i = 0; i < n; ++i) h = hash64(h, uint64_t(uint8_t(p[i])));
  return h;
}

uint64_t executable_hash() {
  std::ifstream f("/proc/self/exe", std::ios::binary);
  std::vector<char> buf(1 << 16);
  uint64_t h = 0x5eed;
  while (f) {
    f.read(buf.data(), std::streamsize(buf.size()));
    h = hash_bytes(h, buf.data(), size_t(f.gcount()));
  }
  return h;
}

}  // namespace

void check_same_job(Comm& comm, const std::string& options) {
  if (comm.size() == 1) return;
  const uint64_t mine[2] = {hash_bytes(0x0b7, options.data(), options.size()), executable_hash()};
  std::vector<uint64_t> all(2 * size_t(comm.size()));
  comm.allgather(mine, all.data(), sizeof(mine));
  for (int r = 1; r < comm.size(); ++r)
    for (int k = 0; k < 2; ++k)
      if (all[2 * size_t(r) + size_t(k)] != all[size_t(k)])
        usage_error("rank ", r, " was started with ", k == 0 ? "other flags" : "another binary",
                    " than rank 0; every rank of a job must run the same alibi with the same "
                    "flags");
}

int default_threads_per_rank(int cores, int local_ranks) {
  return std::max(1, cores / std::max(1, local_ranks));
}

void check_threads(Comm& comm, bool oversubscribe) {
  if (comm.size() == 1) return;
  const int cores = int(std::thread::hardware_concurrency());
  const int threads = omp_get_max_threads(), local = comm.local_size();
  if (!oversubscribe && cores > 0 && local * threads > cores)
    usage_error("--threads ", threads, " x ", local, " ranks on this host = ", local * threads,
                " threads for its ", cores, " cores; use fewer threads or ranks, or pass "
                "--oversubscribe");
  cpu_set_t set;
  CPU_ZERO(&set);
  if (comm.root() && sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) < threads)
    std::fprintf(stderr,
                 "warning: rank 0 is bound to %d core(s) but runs %d threads; start mpirun with "
                 "--bind-to none (or --map-by slot:PE=%d)\n",
                 CPU_COUNT(&set), threads, threads);
}

}  // namespace alibi
