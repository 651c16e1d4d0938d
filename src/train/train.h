#pragma once
// The training job: random windows of the train split -> forward -> backward -> clip -> AdamW,
// validation every eval_every steps, checkpoints every save_every steps and on SIGINT/SIGTERM.
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "core/fields.h"
#include "core/memory_plan.h"
#include "dist/comm.h"
#include "model/config.h"
#include "train/optim.h"

namespace alibi {

// Each member is declared once more as a row of train_fields() (options.cpp): its key in the
// checkpoint's "train" metadata (if stored), its flag, help, role and range.
struct TrainOptions {
  std::string data;    // prepared data folder
  std::string out;     // run folder
  std::string resume;  // run folder or checkpoint to continue from ("" for a fresh run)
  // A fresh run that starts from this checkpoint's weights and model (an import, or a run to
  // fine-tune): step 0, new AdamW moments, the data's tokenizer must be the checkpoint's.
  std::string init_from;
  ModelConfig model;
  int seq_len = 128;
  int batch = 16;
  int grad_accum = 1;
  int64_t steps = 1000;   // total, counting the steps of a resumed checkpoint
  int64_t warmup = 100;
  float lr = 1e-3f;
  float min_lr_ratio = 0.1f;
  float clip = 1.0f;
  AdamWConfig adamw;
  uint64_t seed = 1337;
  int64_t eval_every = 100;
  int eval_windows = 64;  // validation windows (of seq_len tokens) per evaluation
  int64_t save_every = 500;
  int keep = 2;           // checkpoints kept in the run folder
  int64_t log_every = 10;
  double time_limit_min = 0;  // stop (with a checkpoint) after this much wall time; 0: none
  std::string dtype = "fp32";  // matmul operands: fp32 | bf16 (kernels/precision.h)
  std::string device = "cpu";  // the backend (kernels/backend.h); a run may resume on another
  float mask_rate = 0.15f;     // --objective mlm: share of positions masked (data/masking.h)
  int ranks = 1;               // processes of the job (mpirun -np); grad_accum is per rank
  bool oversubscribe = false;  // allow ranks x threads beyond this host's cores
  bool check_finite = false;   // stop at the first op or update that makes a NaN/infinity
  bool replace = false;        // a fresh run may delete the run in `out` (train/run_folder.h)
  bool allow_batch_change = false;  // a resume may change ranks x grad_accum

  // The hyper-parameters stored in checkpoints (the model's are its config); `resume` checks
  // flags against them.
  nlohmann::json to_json() const;
  // The options of a checkpoint: its "train" metadata and its config.
  static TrainOptions from_json(const nlohmann::json& train, const ModelConfig& model);
};

// The rows of TrainOptions but its model's, in --help's order (the stored ones and the CLI's).
const Fields<TrainOptions>& train_fields();
// What `alibi train` takes: train_fields() with model_fields() (model/config.h) lifted in.
const Fields<TrainOptions>& train_cli_fields();

struct TrainResult {
  int64_t step = 0;
  float last_loss = 0;
  float last_val_loss = 0;  // NaN if never evaluated
  std::string checkpoint;   // the last checkpoint written
};

// Throws UsageError for bad input (missing data, corpus too short, non-finite loss...) and for a
// memory plan over the budget `mem` gives (train_plan.h); with mem.dry_run it prints the plan
// and returns before anything else. Every rank of comm calls it with the same options (checked);
// a null comm is a job of one.
TrainResult train(const TrainOptions& opts, Comm* comm = nullptr, const MemoryOptions& mem = {});

// Micro-batches per step over all ranks: the global batch is this x batch windows.
inline int global_accum(const TrainOptions& o) { return o.grad_accum * o.ranks; }

}  // namespace alibi
