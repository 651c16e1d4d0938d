// The training loop (train/train_loop.h): steps, progress, validation, checkpoints and stops.
#include "train/train_loop.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "core/error.h"
#include "core/format.h"
#include "core/io.h"
#include "core/rng.h"
#include "core/rss.h"
#include "core/signals.h"
#include "model/checkpoint.h"
#include "train/train_plan.h"

namespace fs = std::filesystem;

namespace alibi {
namespace {

// Mean loss over up to n_windows nonoverlapping windows of the valid split, batched by B, of
// --seq-len tokens, or shorter where the split is (validation_length; train() refuses a split
// that fills none). A masked LM (mlm non-null) scores the masked tokens of a fixed masking
// (kEvalMaskSeed) of the split, the same at every validation.
float validation_loss(Model& model, const TokenSplit& valid, int B, int seq_len, int n_windows,
                      std::vector<int32_t>& tok, std::vector<int32_t>& tgt,
                      const MaskSpec* mlm) {
  const int T = validation_length(valid, seq_len);
  ALIBI_CHECK(T >= 1, "valid split ", valid.path, " fills no window");
  const int64_t avail = (int64_t(valid.tokens.size()) - 1) / T;
  const int64_t W = std::min<int64_t>(n_windows, avail);
  double sum = 0.0, scored = 0.0;
  for (int64_t w0 = 0; w0 < W; w0 += B) {
    const int nb = int(std::min<int64_t>(B, W - w0));
    int64_t masked = 0;
    for (int b = 0; b < nb; ++b) {
      const int32_t* src = valid.tokens.data() + (w0 + b) * T;
      int32_t* in = tok.data() + int64_t(b) * T;
      int32_t* out = tgt.data() + int64_t(b) * T;
      std::copy(src, src + T, in);
      if (mlm) {
        mask_tokens(in, out, T, *mlm, kEvalMaskSeed, (w0 + b) * T);
        masked += std::count_if(out, out + T, [](int32_t t) { return t >= 0; });
      } else {
        std::copy(src + 1, src + T + 1, out);
      }
    }
    const double loss = model.forward(tok.data(), tgt.data(), nb, T);
    sum += loss * double(mlm ? masked : nb);  // the batch's mean, weighted by what it scored
    scored += double(mlm ? masked : nb);
  }
  return scored > 0 ? float(sum / scored) : NAN;
}

// Rank 0 prints what the job cost each rank: memory, communication, bytes per step against the
// volume of the scheme (sharded_adamw.h) in theory.
void report_job(Comm& comm, const ShardedAdamW& opt, uint64_t step_bytes, int accum) {
  const int N = comm.size();
  const double mine[3] = {peak_rss_mb(), opt.comm_seconds(), double(step_bytes)};
  std::vector<double> all(3 * size_t(N));
  comm.allgather(mine, all.data(), sizeof(mine));
  if (!comm.root()) return;
  const std::vector<Range> parts = split_ranges(opt.total(), N);
  std::fprintf(stderr, "job: %d ranks; AdamW moments %.1f MB on rank 0 (%.1f MB on one rank)\n",
               N, double(opt.moment_bytes()) / 1e6, 2.0 * double(opt.total()) * 4 / 1e6);
  for (int r = 0; r < N; ++r) {
    const size_t own = parts[size_t(r)].size();
    const double theory = 4.0 * (double(accum) * double(opt.total() - own) + double(N - 1) * own);
    std::fprintf(stderr,
                 "  rank %d: peak RSS %.1f MB, communication %.2f s, sent %.0f bytes in the last "
                 "step (gradient parts + parameters in theory: %.0f; the rest: losses, norms, "
                 "stop flag)\n",
                 r, all[3 * size_t(r)], all[3 * size_t(r) + 1], all[3 * size_t(r) + 2], theory);
  }
}

}  // namespace

TrainLoop::TrainLoop(const TrainRun& run, int64_t step)
    : r_(run),
      o_(run.o),
      B_(run.o.batch),
      T_(run.o.seq_len),
      N_(run.comm.size()),
      G_(global_accum(run.o)),
      accum_scale_(1.0f / float(G_)),
      sched_{run.o.lr, run.o.warmup, run.o.steps, run.o.min_lr_ratio},
      step_(step),
      first_step_(step),
      tokens_(size_t(B_) * T_),
      targets_(size_t(B_) * T_),
      losses_(size_t(o_.grad_accum)),
      all_losses_(size_t(G_)) {
  meta_ = o_.to_json();
  meta_["threads"] = omp_get_max_threads();  // a fact of the run, not an option
  res_.last_val_loss = NAN;
  res_.step = step;
  if (!r_.comm.root()) return;
  const fs::path path = fs::path(o_.out) / "log.jsonl";
  log_ = std::fopen(path.c_str(), "a");
  if (!log_)
    usage_error("cannot append to '", path.string(), "': ", std::strerror(errno),
                "; check the folder is writable and has space");
}

TrainLoop::~TrainLoop() {
  if (log_) std::fclose(log_);
}

TrainResult TrainLoop::run() {
  t_start_ = t_last_ = Clock::now();
  uint64_t step_bytes = 0;  // sent by this rank in the last step (not counting checkpoints)
  while (step_ < o_.steps) {
    const uint64_t bytes0 = r_.comm.bytes_sent();
    const double loss = micro_batches();
    if (!std::isfinite(loss))
      usage_error("loss is ", loss, " at step ", step_ + 1, "; stopping. The last good checkpoint",
                  res_.checkpoint.empty() ? std::string(" is the last one in '") + o_.out + "'"
                                          : " is '" + res_.checkpoint + "'",
                  " (try a lower --lr than ", o_.lr, ")");
    const float lr = sched_.at(step_);
    const float gnorm = r_.opt.step(r_.model.params, lr, step_ + 1, o_.clip, o_.adamw);
    r_.model.project_params();
    if (o_.check_finite)
      r_.model.check_finite(r_.model.params, str_cat("step ", step_ + 1, ": after the AdamW "
                                                     "update, parameter").c_str());
    ++step_;
    ++steps_since_log_;
    res_.step = step_;
    res_.last_loss = float(loss);

    const bool last = step_ == o_.steps;
    const double elapsed = seconds_since(t_start_);
    // Every rank stops at the same step: any rank's signal or clock stops them all.
    const bool out_of_time_here = o_.time_limit_min > 0 && elapsed >= 60.0 * o_.time_limit_min;
    const int stop = r_.comm.allreduce_max(int(stop_signal() != 0) | int(out_of_time_here) << 1);
    const bool out_of_time = stop & 2;
    int len = std::snprintf(rec_, sizeof(rec_),
                            "{\"step\":%lld,\"loss\":%.6g,\"lr\":%.6g,\"grad_norm\":%.6g,"
                            "\"elapsed_s\":%.3f",
                            (long long)step_, loss, double(lr), double(gnorm), elapsed);
    if (r_.comm.root() && (step_ % o_.log_every == 0 || last || step_ == first_step_ + 1))
      len = progress(len, loss, lr, gnorm, elapsed);
    if (r_.comm.root() &&
        ((o_.eval_every > 0 && step_ % o_.eval_every == 0) || last || out_of_time))
      len = validate(len);
    if (r_.comm.root()) {
      std::fprintf(log_, "%s}\n", rec_);
      std::fflush(log_);
    }
    step_bytes = r_.comm.bytes_sent() - bytes0;
    if ((o_.save_every > 0 && step_ % o_.save_every == 0) || last || stop) save();
    if (stop) {
      if (r_.comm.root())
        std::fprintf(stderr, "%s at step %lld; saved %s\n",
                     out_of_time ? "time limit reached" : "interrupted", (long long)step_,
                     res_.checkpoint.c_str());
      break;
    }
  }
  if (N_ > 1) report_job(r_.comm, r_.opt, step_bytes, o_.grad_accum);
  return res_;
}

// Micro-batch i of a step is rank i % N's in round i / N (sharded_adamw.h): the same windows
// and dropout whoever computes it. Returns the step's loss, the mean over every micro-batch.
double TrainLoop::micro_batches() {
  const int rank = r_.comm.rank();
  for (int round = 0; round < o_.grad_accum; ++round) {
    const int micro = round * N_ + rank;
    r_.model.grads.zero();
    sample_batch(r_.train, B_, T_, o_.seed, step_, micro, tokens_.data(), targets_.data());
    if (r_.mlm)  // targets: the window's own tokens where masked
      mask_tokens(tokens_.data(), targets_.data(), int64_t(B_) * T_, *r_.mlm,
                  hash64(o_.seed, uint64_t(step_), uint64_t(micro), 0x4D4Cull), 0);
    const uint64_t drop_seed = hash64(o_.seed, uint64_t(step_), uint64_t(micro), 0xD509);
    try {
      losses_[size_t(round)] =
          r_.model.forward(tokens_.data(), targets_.data(), B_, T_, true, drop_seed);
      r_.model.backward(accum_scale_);
    } catch (const UsageError& e) {  // --check-finite: say where in the run it happened
      if (!o_.check_finite) throw;
      usage_error("step ", step_ + 1, ", micro-batch ", micro, ": ", e.what());
    }
    r_.opt.reduce(r_.model.grads, round);
  }
  r_.comm.allgather(losses_.data(), all_losses_.data(), losses_.size() * sizeof(float));
  double loss = 0.0;
  for (int i = 0; i < G_; ++i)  // rank r's round k is micro-batch k * N + r
    loss += double(all_losses_[size_t(i % N_) * size_t(o_.grad_accum) + size_t(i / N_)]) *
            accum_scale_;
  return loss;
}

// The progress line: step, loss, lr, gradient norm, tokens/s since the last line, ETA; its
// rate (and communication share) also go into the step's log record, which ends at rec_ + len.
int TrainLoop::progress(int len, double loss, float lr, float gnorm, double elapsed) {
  const auto now = Clock::now();
  const double dt = std::chrono::duration<double>(now - t_last_).count();
  const double tps = double(steps_since_log_) * double(B_) * T_ * G_ / dt;
  const double eta = double(o_.steps - step_) * elapsed / double(step_ - first_step_);
  const double comm_s = r_.opt.comm_seconds() - comm_s_logged_;
  char comm_note[48] = "";
  if (N_ > 1) std::snprintf(comm_note, sizeof(comm_note), " | comm %.0f%%", 100 * comm_s / dt);
  std::fprintf(stderr,
               "step %6lld/%lld | loss %.4f | lr %.2e | gnorm %.2f | %.0f tok/s%s | %s elapsed"
               " | ETA %s\n",
               (long long)step_, (long long)o_.steps, loss, lr, gnorm, tps, comm_note,
               fmt_duration(elapsed).c_str(), fmt_duration(eta).c_str());
  len += std::snprintf(rec_ + len, sizeof(rec_) - size_t(len), ",\"tokens_per_s\":%.1f", tps);
  if (N_ > 1)
    len += std::snprintf(rec_ + len, sizeof(rec_) - size_t(len), ",\"comm_s\":%.4f", comm_s);
  comm_s_logged_ = r_.opt.comm_seconds();
  t_last_ = now;
  steps_since_log_ = 0;
  return len;
}

int TrainLoop::validate(int len) {
  test_pause_point("ALIBI_TEST_PAUSE_IN_VALIDATION", str_cat("validation at step ", step_));
  res_.last_val_loss = validation_loss(r_.model, r_.valid, B_, T_, o_.eval_windows, tokens_,
                                       targets_, r_.mlm);
  std::fprintf(stderr, "step %6lld | val loss %.4f | val ppl %.2f\n", (long long)step_,
               res_.last_val_loss, std::exp(res_.last_val_loss));
  len += std::snprintf(rec_ + len, sizeof(rec_) - size_t(len),
                       ",\"val_loss\":%.6g,\"val_ppl\":%.6g", double(res_.last_val_loss),
                       std::exp(double(res_.last_val_loss)));
  t_last_ = Clock::now();  // keep evaluation out of the training throughput
  return len;
}

// Every rank: the moments are gathered on rank 0, which writes.
void TrainLoop::save() {
  r_.opt.with_moments([&](const ParamSet* m, const ParamSet* v) {
    if (r_.comm.root())
      res_.checkpoint = write_checkpoint(o_.out, r_.cfg, meta_, step_, r_.tok, r_.model.params,
                                         m, v, o_.keep);
  });
}

double TrainLoop::seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

}  // namespace alibi
