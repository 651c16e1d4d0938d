// alibi bench: the paper's Table 1 for this machine (src/bench/position_table.h).
#include <sstream>
#include <string>

#include "bench/bench_util.h"
#include "bench/position_table.h"
#include "commands.h"
#include "core/error.h"
#include "kernels/backend.h"

namespace alibi::cli {
namespace {

struct BenchCliOptions {
  std::string configs = "tiny,small";
  std::string lengths = "128,512,2048";
  int tokens = 4096;
  int steps = 3;
  int rounds = 3;
  std::string dtype = "fp32";
};

}  // namespace

Command add_bench(CLI::App& app) {
  auto o = std::make_shared<BenchCliOptions>();
  CLI::App* sub = add_subcommand(
      app, "bench",
      "Table 1 of the paper for this machine: training and evaluation tokens/s and peak RSS of "
      "every position method at each length, as ratios to 'none' from the same run (Markdown "
      "on stdout)");
  sub->add_option("--configs", o->configs,
                  "models, comma-separated: tiny, small (tiny alone takes about 4 minutes on 2 "
                  "cores; small several times longer)");
  sub->add_option("--lengths", o->lengths, "sequence lengths T, comma-separated");
  sub->add_option("--tokens", o->tokens, "tokens per step (batch = tokens / T, at least 1)");
  sub->add_option("--steps", o->steps, "timed steps per cell (median), after one warm-up");
  sub->add_option("--rounds", o->rounds,
                  "rounds that interleave the methods; each cell keeps its best round");
  sub->add_option("--dtype", o->dtype, "matrix-product operands: fp32 | bf16 (AVX512-BF16) | int8 (AVX512-VNNI, "
                  "block-quantized weights only)");
  Command c{sub, [o] {
            PositionTableOptions t;
            t.configs.clear();
            std::stringstream ss(o->configs);
            for (std::string name; std::getline(ss, name, ',');) {
              bench_config(name, "--configs");  // checks the name
              t.configs.push_back(name);
            }
            if (t.configs.empty()) usage_error("--configs is empty; expected tiny, small or both");
            t.lengths = parse_lengths("--lengths", o->lengths);
            if (o->tokens < 1) usage_error("--tokens ", o->tokens, " must be at least 1");
            if (o->steps < 1) usage_error("--steps ", o->steps, " must be at least 1");
            if (o->rounds < 1) usage_error("--rounds ", o->rounds, " must be at least 1");
            t.precision = parse_precision(o->dtype);
            make_backend(globals().device, t.precision);  // checks both before any cell runs
            t.device = globals().device;
            t.tokens = o->tokens;
            t.steps = o->steps;
            t.rounds = o->rounds;
            t.memory = globals().memory;
            print_position_table(t);
          }};
  c.uses_device = true;
  return c;
}

}  // namespace alibi::cli
