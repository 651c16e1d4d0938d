// The paper's Table 1 for this system: training and evaluation throughput and peak memory of
// every position method, relative to `none` measured in the same run.
//
//   build/bench/bench_positions [--configs tiny,small] [--lengths 128,512,2048]
//                               [--tokens 4096] [--steps 3] [--rounds 3] [--threads N]
//
// Each cell runs in its own forked process so that its peak RSS (getrusage of the child) is its
// own. Every step has the same number of tokens (--tokens): batch = tokens / length.
#include <omp.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <string>
#include <vector>

#include "core/rng.h"
#include "core/threads.h"
#include "model/model.h"
#include "train/optim.h"

using namespace alibi;
using clk = std::chrono::steady_clock;

namespace {

struct Cell {
  double train_tps = 0, eval_tps = 0, train_rss_mb = 0, eval_rss_mb = 0;
};

std::vector<int> parse_ints(const std::string& s) {
  std::vector<int> v;
  std::stringstream ss(s);
  for (std::string x; std::getline(ss, x, ',');) v.push_back(std::atoi(x.c_str()));
  return v;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Tokens/s of `steps` training steps (or forwards when !train) after one warm-up.
double measure(const ModelConfig& c, int B, int T, int steps, bool train) {
  Model m(c, B, T, train);
  m.init_weights(1);
  std::vector<int32_t> tok(size_t(B) * T), tgt(tok.size());
  Rng r(3);
  for (size_t i = 0; i < tok.size(); ++i) {
    tok[i] = int32_t(r.below(c.vocab));
    tgt[i] = int32_t(r.below(c.vocab));
  }
  ParamSet mo, ve;
  if (train) {
    mo = ParamSet(m.layout);
    ve = ParamSet(m.layout);
  }
  std::vector<double> t;
  for (int s = 0; s <= steps; ++s) {
    const auto t0 = clk::now();
    if (train) {
      m.grads.zero();
      m.forward(tok.data(), tgt.data(), B, T, true, uint64_t(s));
      m.backward();
      clip_grad_norm(m.grads, 1.0f);
      adamw_step(m.params, m.grads, mo, ve, 1e-4f, s + 1, AdamWConfig{});
    } else {
      m.forward(tok.data(), tgt.data(), B, T);
    }
    if (s > 0) t.push_back(std::chrono::duration<double>(clk::now() - t0).count());
  }
  return double(B) * T / median(t);
}

// Runs measure() in a child process; returns tokens/s and the child's peak RSS in MB.
std::pair<double, double> in_child(const ModelConfig& c, int B, int T, int steps, bool train) {
  int fd[2];
  if (pipe(fd) != 0) std::exit(1);
  const pid_t pid = fork();
  if (pid == 0) {
    close(fd[0]);
    const double tps = measure(c, B, T, steps, train);
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
  return {tps, double(ru.ru_maxrss) / 1024.0};
}

}  // namespace

int main(int argc, char** argv) {
  ensure_passive_omp_wait(argv);
  std::string configs = "tiny", lengths = "128,512,2048";
  int tokens = 4096, steps = 3, threads = 0, rounds = 3;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    if (a == "--configs") configs = next();
    else if (a == "--lengths") lengths = next();
    else if (a == "--tokens") tokens = std::atoi(next().c_str());
    else if (a == "--steps") steps = std::atoi(next().c_str());
    else if (a == "--threads") threads = std::atoi(next().c_str());
    else if (a == "--rounds") rounds = std::atoi(next().c_str());
    else {
      std::fprintf(stderr,
                   "usage: bench_positions [--configs tiny,small (tiny)] [--lengths 128,512,2048]"
                   " [--tokens 4096] [--steps 3] [--rounds 3] [--threads N (0: all cores)]\n");
      return 2;
    }
  }
  if (threads > 0) omp_set_num_threads(threads);
  const PosKind methods[] = {PosKind::none, PosKind::alibi, PosKind::sinusoidal,
                             PosKind::rotary, PosKind::t5, PosKind::learned};
  std::printf("threads %d, %d tokens per step, median of %d steps after a warm-up, best of %d "
              "interleaved rounds\n", omp_get_max_threads(), tokens, steps, rounds);
  for (const std::string& name : {std::string("tiny"), std::string("small")}) {
    if (configs.find(name) == std::string::npos) continue;
    ModelConfig c;
    if (name == "tiny") {
      c.vocab = 256; c.layers = 4; c.d_model = 256; c.heads = 8; c.ffn = 1024;
    } else {
      c.vocab = 8192; c.layers = 8; c.d_model = 512; c.heads = 8; c.ffn = 2048;
    }
    std::printf("\n### %s: V %d, L %d, C %d, NH %d, F %d\n\n", name.c_str(), c.vocab, c.layers,
                c.d_model, c.heads, c.ffn);
    std::printf("| method | T | train tok/s | vs none | eval tok/s | vs none | train RSS MB |"
                " vs none | eval RSS MB |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for (int T : parse_ints(lengths)) {
      const int B = std::max(1, tokens / T);
      // Rounds interleave the methods, and each cell keeps its best round: other work on the
      // machine only ever slows a measurement down, so the best is the least disturbed.
      std::vector<Cell> best(std::size(methods));
      for (int round = 0; round < rounds; ++round)
        for (size_t i = 0; i < std::size(methods); ++i) {
          c.pos = methods[i];
          c.max_positions = T;
          Cell cell;
          std::tie(cell.train_tps, cell.train_rss_mb) = in_child(c, B, T, steps, true);
          std::tie(cell.eval_tps, cell.eval_rss_mb) = in_child(c, B, T, steps, false);
          Cell& b = best[i];
          b.train_tps = std::max(b.train_tps, cell.train_tps);
          b.eval_tps = std::max(b.eval_tps, cell.eval_tps);
          b.train_rss_mb = std::max(b.train_rss_mb, cell.train_rss_mb);
          b.eval_rss_mb = std::max(b.eval_rss_mb, cell.eval_rss_mb);
        }
      const Cell& base = best[0];  // none
      for (size_t i = 0; i < std::size(methods); ++i) {
        const Cell& cell = best[i];
        std::printf("| %s | %d | %.0f | %.3f | %.0f | %.3f | %.0f | %.3f | %.0f |\n",
                    pos_name(methods[i]), T, cell.train_tps, cell.train_tps / base.train_tps,
                    cell.eval_tps, cell.eval_tps / base.eval_tps, cell.train_rss_mb,
                    cell.train_rss_mb / base.train_rss_mb, cell.eval_rss_mb);
      }
      std::fflush(stdout);
    }
  }
  return 0;
}
