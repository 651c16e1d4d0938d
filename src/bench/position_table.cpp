#include "bench/position_table.h"

#include <omp.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>

#include "bench/bench_util.h"
#include "core/error.h"
#include "position/position.h"
#include "core/format.h"
#include "kernels/backend.h"
#include "model/model.h"

namespace alibi {
namespace {

using clk = std::chrono::steady_clock;

struct Cell {
  double train_tps = 0, eval_tps = 0, train_rss_mb = 0, eval_rss_mb = 0;
};

// Tokens/s of median_step_seconds() in a child process, and the child's peak RSS in MB.
std::pair<double, double> in_child(const ModelConfig& c, int B, int T, int steps, bool train,
                                   const PositionTableOptions& o) {
  int fd[2];
  if (pipe(fd) != 0) throw std::runtime_error("bench: pipe() failed");
  std::fflush(nullptr);  // the child must not flush the parent's buffered output again
  const pid_t pid = fork();
  if (pid < 0) throw std::runtime_error("bench: fork() failed");
  if (pid == 0) {
    close(fd[0]);
    double tps = 0;
    try {
      const auto backend = make_backend(o.device, o.precision);
      tps = double(B) * T / median_step_seconds(c, B, T, steps, train, 3, backend);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "alibi: bench cell failed: %s\n", e.what());
      _exit(1);
    }
    if (write(fd[1], &tps, sizeof(tps)) != sizeof(tps)) _exit(1);
    _exit(0);
  }
  close(fd[1]);
  double tps = 0;
  if (read(fd[0], &tps, sizeof(tps)) != sizeof(tps)) tps = 0;
  close(fd[0]);
  int status = 0;
  struct rusage ru {};
  wait4(pid, &status, 0, &ru);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || !(tps > 0))
    throw std::runtime_error(str_cat("bench: the cell ", pos_name(c.pos), " T ", T,
                                     train ? " train" : " eval", " failed"));
  return {tps, double(ru.ru_maxrss) / 1024.0};
}

// The plan of the cell that needs the most: a cell's child holds what this process holds and
// its model, and every method's model has the same arrays but its position tables; each cell is
// planned for its own method.
struct WorstCell {
  MemoryPlan plan;
  std::string name;
  int T = 0;
};

WorstCell worst_cell(const PositionTableOptions& o, const std::vector<PosKind>& methods,
                     int tokens) {
  const auto backend = make_backend(o.device, o.precision);
  const MemoryPlan in_use = plan_in_use();
  WorstCell w;
  for (const std::string& name : o.configs)
    for (int T : o.lengths)
      for (PosKind pos : methods)
        for (const bool train : {true, false}) {
          ModelConfig c = bench_config(name, "--configs");
          c.pos = pos;
          c.max_positions = T;
          MemoryPlan p = in_use;
          p.add(step_memory(c, std::max(1, tokens / T), T, train, *backend));
          if (w.name.empty() || p.total() > w.plan.total()) w = {p, name, T};
        }
  return w;
}

// Prints the plan of the cell that needs the most, and refuses it where it does not fit, before
// any cell runs. Returns false for --dry-run.
bool check_memory_plan(const PositionTableOptions& o, const std::vector<PosKind>& methods) {
  const WorstCell w = worst_cell(o, methods, o.tokens);
  const MemoryBudget budget = memory_budget(o.memory);
  const std::string at = str_cat("of the largest cell, ", w.name, " at T ", w.T);
  std::printf("%s\n", memory_line(w.plan, budget, at).c_str());
  std::fflush(stdout);
  check_memory(w.plan, budget, str_cat("--configs ", w.name, " at --lengths ", w.T,
                                       " with --tokens ", o.tokens),
               [&] {
                 const int64_t t = largest_fitting(1, o.tokens - 1, [&](int64_t v) {
                   return worst_cell(o, methods, int(v)).plan.total() <= budget.bytes;
                 });
                 return t >= 1 ? str_cat("--tokens ", t, " would fit")
                               : std::string("shorter --lengths or --configs tiny might fit");
               });
  return !o.memory.dry_run;
}

}  // namespace

void print_position_table(const PositionTableOptions& o) {
  std::vector<PosKind> methods = {PosKind::none};
  for (PosKind p : all_positions())
    if (p != PosKind::none) methods.push_back(p);
  const size_t kMethods = methods.size();
  if (!check_memory_plan(o, methods)) return;
  std::printf("%s, threads %d, %s operands, %d tokens per step, median of %d steps after a "
              "warm-up, best of %d interleaved rounds\n",
              o.device.c_str(), omp_get_max_threads(), precision_name(o.precision), o.tokens,
              o.steps, o.rounds);
  const size_t total = o.configs.size() * o.lengths.size() * size_t(o.rounds) * kMethods * 2;
  size_t done = 0;
  const auto start = clk::now();
  const bool tty = isatty(STDERR_FILENO);
  for (const std::string& name : o.configs) {
    ModelConfig c = bench_config(name, "--configs");
    std::printf("\n### %s: V %d, L %d, C %d, NH %d, F %d\n\n", name.c_str(), c.vocab, c.layers,
                c.d_model, c.heads, c.ffn);
    std::printf("| method | T | train tok/s | vs none | eval tok/s | vs none | train RSS MB |"
                " vs none | eval RSS MB |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    std::fflush(stdout);
    for (int T : o.lengths) {
      const int B = std::max(1, o.tokens / T);
      // Rounds interleave the methods, and each cell keeps its fastest round (other work on the
      // machine only ever slows a measurement down, so the best is the least disturbed) and its
      // largest peak RSS.
      std::vector<Cell> best(kMethods);
      for (int round = 0; round < o.rounds; ++round)
        for (size_t i = 0; i < kMethods; ++i) {
          c.pos = methods[i];
          c.max_positions = c.fire_length = 0;
          position_method(c.pos).fill_defaults(c, T);  // as a run trained at T has them
          Cell cell;
          for (const bool train : {true, false}) {
            const double el = std::chrono::duration<double>(clk::now() - start).count();
            std::fprintf(stderr, "%sbench: %s T %d round %d/%d %s %s [%zu/%zu] elapsed %s%s%s",
                         tty ? "\r\033[K" : "", name.c_str(), T, round + 1, o.rounds,
                         pos_name(methods[i]), train ? "train" : "eval", done + 1, total,
                         fmt_duration(el).c_str(), done ? " ETA " : "",
                         done ? fmt_duration(el / double(done) * double(total - done)).c_str()
                              : "");
            std::fprintf(stderr, tty ? "" : "\n");
            std::fflush(stderr);
            const auto [tps, rss] = in_child(c, B, T, o.steps, train, o);
            (train ? cell.train_tps : cell.eval_tps) = tps;
            (train ? cell.train_rss_mb : cell.eval_rss_mb) = rss;
            ++done;
          }
          Cell& b = best[i];
          b.train_tps = std::max(b.train_tps, cell.train_tps);
          b.eval_tps = std::max(b.eval_tps, cell.eval_tps);
          b.train_rss_mb = std::max(b.train_rss_mb, cell.train_rss_mb);
          b.eval_rss_mb = std::max(b.eval_rss_mb, cell.eval_rss_mb);
        }
      if (tty) std::fprintf(stderr, "\r\033[K");
      const Cell& base = best[0];  // none
      for (size_t i = 0; i < kMethods; ++i) {
        const Cell& cell = best[i];
        std::printf("| %s | %d | %.0f | %.3f | %.0f | %.3f | %.0f | %.3f | %.0f |\n",
                    pos_name(methods[i]), T, cell.train_tps, cell.train_tps / base.train_tps,
                    cell.eval_tps, cell.eval_tps / base.eval_tps, cell.train_rss_mb,
                    cell.train_rss_mb / base.train_rss_mb, cell.eval_rss_mb);
      }
      std::fflush(stdout);
    }
  }
}

}  // namespace alibi
