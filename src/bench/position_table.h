#pragma once
// The paper's Table 1 for this machine (`alibi bench`): training and evaluation tokens/s and
// peak RSS of every position method, each as a ratio to `none` measured in the same run.
#include <string>
#include <vector>

#include "core/memory_plan.h"
#include "kernels/precision.h"

namespace alibi {

struct PositionTableOptions {
  std::vector<std::string> configs = {"tiny", "small"};  // bench_config names
  std::vector<int> lengths = {128, 512, 2048};
  int tokens = 4096;  // per step: batch = max(1, tokens / T)
  int steps = 3;      // timed steps per cell (median), after one warm-up step
  int rounds = 3;     // rounds interleave the methods; each cell keeps its best round
  std::string device = "cpu";  // each cell makes its own backend (make_backend)
  MatmulPrecision precision = MatmulPrecision::fp32;
  MemoryOptions memory;  // the largest cell's plan is checked (and, dry_run, only printed)
};

// Prints the memory plan of the cell that needs the most (refused, before any cell runs, where
// it does not fit: UsageError naming --tokens and the length), then one Markdown table per
// config to stdout, progress (cell, ETA) to stderr. Every cell
// (method, T, train or eval) runs in its own forked process, so its peak RSS is its own.
// Must be called before this process runs any OpenMP parallel region (fork and a live OpenMP
// thread pool do not mix). The method order: none first (the baseline of the ratios), then the
// registry's (src/position/registry.cpp).
void print_position_table(const PositionTableOptions& o);

}  // namespace alibi
