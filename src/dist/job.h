#pragma once
// Start-up checks of a job of several ranks: every rank runs the same build with the same
// options, and the ranks' threads fit this host's cores.
#include <string>

#include "dist/comm.h"

namespace alibi {

// A UsageError on every rank (rank 0 prints it) unless every rank has the same `options` text
// and the same executable (hashed).
void check_same_job(Comm& comm, const std::string& options);

// A UsageError unless local ranks x OpenMP threads <= this host's cores (or oversubscribe).
// Prints one warning (rank 0) where a rank is bound to fewer cores than its threads.
void check_threads(Comm& comm, bool oversubscribe);

// OpenMP threads per rank when --threads is not given: the host's cores shared among its ranks.
int default_threads_per_rank(int cores, int local_ranks);

}  // namespace alibi
