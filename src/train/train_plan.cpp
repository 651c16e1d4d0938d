// The memory plan of a training run (train/train_plan.h).
#include "train/train_plan.h"

#include <algorithm>
#include <cstdio>

#include "core/error.h"
#include "model/checkpoint.h"
#include "model/model.h"
#include "model/params.h"
#include "train/sharded_adamw.h"

namespace alibi {

MemoryPlan training_memory(const TrainOptions& o, const ModelConfig& cfg, const Backend& be,
                           int rank, int ranks) {
  const uint64_t floats = param_floats(cfg);
  const uint64_t set = sat_mul(floats, sizeof(float));  // one ParamSet
  const ShardedAdamW::Sizes opt = ShardedAdamW::sizes(floats, ranks, rank, o.grad_accum);
  // For a moment: the copies a checkpoint is written from (params and both moments, off a
  // device), the moments rank 0 gathers, the whole moment a resume reads on each rank.
  const uint64_t moment = std::max({checkpoint_copy_bytes(floats, be, 3), opt.gathered,
                                    o.resume.empty() ? 0 : opt.loaded});
  MemoryPlan p = plan_in_use();
  p.add("weights", set).add("gradients", set).add("optimizer", opt.bytes());
  add_activations(p, Model::plan(cfg, o.batch, o.seq_len, /*training=*/true, be));
  // The loop's batch on the host (TrainLoop's tokens_ and targets_).
  p.add("activations", sat_mul(sat_mul(2 * sizeof(int32_t), uint64_t(o.batch)), o.seq_len));
  p.add("checkpoint", moment);
  return p;
}

namespace {

// What would fit where o does not: a smaller --batch (and the --grad-accum that keeps the tokens
// per step), else a shorter --seq-len at batch 1, else nothing but a smaller model.
std::string training_advice(const TrainOptions& o, const ModelConfig& cfg, const Backend& be,
                            int rank, int ranks, const MemoryBudget& budget) {
  auto fits = [&](int64_t batch, int64_t seq_len) {
    TrainOptions x = o;
    x.batch = int(batch);
    x.seq_len = int(seq_len);
    return training_memory(x, cfg, be, rank, ranks).total() <= budget.bytes;
  };
  const int64_t b = largest_fitting(1, o.batch - 1, [&](int64_t v) { return fits(v, o.seq_len); });
  if (b >= 1) {
    const int64_t accum = (int64_t(o.batch) * o.grad_accum + b - 1) / b;
    return str_cat("--batch ", b, " would fit (with --grad-accum ", accum,
                   " for about the same tokens per step)");
  }
  const int64_t t = largest_fitting(1, o.seq_len - 1, [&](int64_t v) { return fits(1, v); });
  if (t >= 1) return str_cat("--batch 1 --seq-len ", t, " would fit");
  TrainOptions one = o;
  one.batch = one.seq_len = 1;
  const MemoryPlan least = training_memory(one, cfg, be, rank, ranks);
  if (least.of(kInUse) >= budget.bytes)
    return str_cat("alibi holds ", format_bytes(least.of(kInUse)), " before planning");
  return str_cat("the model alone (weights, gradients, optimizer) needs ",
                 format_bytes(least.of("weights") + least.of("gradients") +
                              least.of("optimizer")),
                 ": train a smaller one");
}

}  // namespace

bool check_training_memory(const TrainOptions& o, const ModelConfig& cfg, const Backend& be,
                           Comm& comm, const MemoryOptions& mem) {
  const MemoryPlan plan = training_memory(o, cfg, be, comm.rank(), comm.size());
  const MemoryBudget budget = memory_budget(mem);
  // --dry-run shows the plan even where it is refused; otherwise the plan shows once it fits.
  if (comm.root() && mem.dry_run) std::printf("%s\n", memory_line(plan, budget).c_str());
  std::fflush(stdout);
  std::string refused;
  try {
    check_memory(plan, budget, str_cat("--batch ", o.batch, " x --seq-len ", o.seq_len), [&] {
      return training_advice(o, cfg, be, comm.rank(), comm.size(), budget);
    });
  } catch (const UsageError& e) {
    refused = e.what();
  }
  if (comm.allreduce_max(int(!refused.empty())))
    usage_error(refused.empty() ? "another rank's memory plan does not fit its host" : refused);
  if (comm.root() && !mem.dry_run) std::fprintf(stderr, "%s\n", memory_line(plan, budget).c_str());
  return !mem.dry_run;
}

int validation_length(const TokenSplit& valid, int T) {
  return int(std::clamp<int64_t>(int64_t(valid.tokens.size()) - 1, 0, T));
}

}  // namespace alibi
