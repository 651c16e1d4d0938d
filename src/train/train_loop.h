#pragma once
// The steps of a training run once its model, optimizer and data are ready (train.cpp makes
// them): each step's micro-batches, the AdamW update, the progress line and log record,
// validation, checkpoints, and the stop on a signal or the time limit, on every rank alike.
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <vector>

#include "data/dataset.h"
#include "data/masking.h"
#include "data/tokenizer.h"
#include "dist/comm.h"
#include "model/model.h"
#include "train/optim.h"
#include "train/sharded_adamw.h"
#include "train/train.h"

namespace alibi {

// What a run trains: everything the loop reads and does not own.
struct TrainRun {
  const TrainOptions& o;
  const ModelConfig& cfg;
  const Tokenizer& tok;
  const TokenSplit& train;
  const TokenSplit& valid;
  const MaskSpec* mlm;  // masked LM: its masking; null for a causal LM
  Comm& comm;
  Model& model;
  ShardedAdamW& opt;
};

class TrainLoop {
 public:
  // From `step` (a resumed checkpoint's, or 0) to o.steps; rank 0 appends to OUT/log.jsonl.
  TrainLoop(const TrainRun& run, int64_t step);
  ~TrainLoop();
  TrainLoop(const TrainLoop&) = delete;
  TrainLoop& operator=(const TrainLoop&) = delete;
  TrainResult run();

 private:
  using Clock = std::chrono::steady_clock;
  double micro_batches();
  int progress(int len, double loss, float lr, float gnorm, double elapsed);
  int validate(int len);
  void save();
  static double seconds_since(Clock::time_point t);

  const TrainRun& r_;
  const TrainOptions& o_;
  const int B_, T_, N_, G_;  // batch, window, ranks, micro-batches per step over all ranks
  const float accum_scale_;  // 1 / G
  const LrSchedule sched_;
  nlohmann::json meta_;      // the checkpoints' "train" metadata
  int64_t step_, first_step_, steps_since_log_ = 0;
  double comm_s_logged_ = 0;
  Clock::time_point t_start_, t_last_;
  // Planned once: nothing is allocated in the loop.
  std::vector<int32_t> tokens_, targets_;     // (B,T)
  std::vector<float> losses_, all_losses_;    // (grad_accum), (G)
  char rec_[256];                             // the step's log record
  std::FILE* log_ = nullptr;
  TrainResult res_;
};

}  // namespace alibi
