#include "train/train.h"

#include <omp.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <optional>
#include <vector>

#include "core/error.h"
#include "core/format.h"
#include "core/io.h"
#include "core/rng.h"
#include "core/rss.h"
#include "core/signals.h"
#include "data/dataset.h"
#include "data/masking.h"
#include "dist/job.h"
#include "kernels/backend.h"
#include "model/checkpoint.h"
#include "model/model.h"
#include "train/run_folder.h"
#include "train/sharded_adamw.h"

namespace fs = std::filesystem;

namespace alibi {
namespace {

// Mean loss over up to n_windows nonoverlapping windows of the valid split, batched by B. A
// masked LM (mlm non-null) scores the masked tokens of a fixed masking (kEvalMaskSeed) of the
// split, the same at every validation.
float validation_loss(Model& model, const TokenSplit& valid, int B, int T, int n_windows,
                      std::vector<int32_t>& tok, std::vector<int32_t>& tgt,
                      const MaskSpec* mlm) {
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

TrainResult train(const TrainOptions& o, Comm* job) {
  const std::shared_ptr<Comm> one = job ? nullptr : single_process_comm();
  Comm& comm = job ? *job : *one;
  const int B = o.batch, T = o.seq_len;
  const int N = comm.size(), rank = comm.rank();
  const bool root = comm.root();
  ALIBI_CHECK(o.ranks == N, "TrainOptions::ranks ", o.ranks, " but the job has ", N);
  check_fields(train_fields(), o);
  if (o.out.empty()) usage_error("--out is required: the run folder for checkpoints");
  // Threads may differ between hosts of different sizes; every other option must agree.
  const nlohmann::json options = o.to_json();
  check_same_job(comm, options.dump() + o.model.to_json().dump() + o.out + "|" + o.resume + "|" +
                           o.init_from + "|" + std::to_string(o.time_limit_min));
  check_threads(comm, o.oversubscribe);
  // Every product of this job (training and validation) runs in this precision.
  const std::shared_ptr<Backend> backend = make_backend(o.device, parse_precision(o.dtype));
  if (N > 1 && !backend->host_memory())
    usage_error("--device ", o.device, " trains on one process only: data parallel over ", N,
                " processes needs a host-memory backend (cpu); NCCL is not built yet "
                "(docs/cuda.md)");

  if (!fs::is_directory(o.data))
    usage_error("--data '", o.data, "' is not a folder; expected the output of 'alibi prepare'");
  const Tokenizer tok = Tokenizer::load_dir(o.data);
  const TokenSplit train_split = load_split(o.data, "train");
  const TokenSplit valid_split = load_split(o.data, "valid");
  if (int64_t(train_split.tokens.size()) < int64_t(T) + 1)
    usage_error("train split '", train_split.path, "' has ", train_split.tokens.size(),
                " tokens; need at least --seq-len+1 = ", int64_t(T) + 1);
  if (!o.resume.empty() && !o.init_from.empty())
    usage_error("--init-from '", o.init_from, "' and --resume '", o.resume,
                "' both give the weights; use one");
  ModelConfig cfg = o.model;
  cfg.vocab = tok.vocab();
  if (cfg.objective == Objective::mlm) {  // the mask token: one row after the tokenizer's
    cfg.mask_token = tok.vocab();
    cfg.vocab = tok.vocab() + 1;
  }
  // The checkpoint a run starts from (--resume or --init-from), read before the model is planned:
  // an imported model keeps its vocabulary rows (BLOOM pads them past the tokenizer's).
  std::unique_ptr<Checkpoint> start;
  const char* from_flag = o.resume.empty() ? "--init-from" : "--resume";
  if (!o.resume.empty() || !o.init_from.empty()) {
    start =
        std::make_unique<Checkpoint>(read_checkpoint(o.resume.empty() ? o.init_from : o.resume));
    if (start->tokenizer.fingerprint() != tok.fingerprint())
      usage_error(from_flag, " '", start->path,
                  "' was trained with another tokenizer than --data '", o.data,
                  "'; prepare the data with --tokenizer-from ", start->path);
    if (!o.init_from.empty()) {  // its model; this run's own fields (dropout, t5 table rate)
      const ModelConfig flags = cfg;
      cfg = start->config;
      for (const Field<ModelConfig>& f : model_fields())
        if (f.role == Role::fixed || f.role == Role::free) f.set(cfg, f.get(flags), f.name());
    } else {
      cfg.vocab = start->config.vocab;
      cfg.mask_token = start->config.mask_token;
    }
  }
  position_method(cfg.pos).fill_defaults(cfg, T);
  if (cfg.objective == Objective::clm && !cfg.causal)
    usage_error("--causal false with --objective clm would let every position see the token it "
                "predicts; use --objective mlm for an encoder");
  cfg.validate();
  if (cfg.objective == Objective::mlm) check_mask_rate(o.mask_rate);
  const MaskSpec mask_spec{o.mask_rate, cfg.mask_token};
  const MaskSpec* mlm = cfg.objective == Objective::mlm ? &mask_spec : nullptr;

  // The run folder is this process's from here on (rank 0 writes it; every rank stops if it is
  // refused). Taken after every check of the flags and data, so a refused run leaves nothing.
  std::optional<RunFolder> folder;
  std::string refused;
  if (root) {
    try {
      folder.emplace(o.out, !o.resume.empty() ? RunFolder::Start::resume
                            : o.replace       ? RunFolder::Start::fresh_replacing
                                              : RunFolder::Start::fresh);
    } catch (const UsageError& e) {
      refused = e.what();
    }
  }
  if (comm.allreduce_max(int(!refused.empty())))
    usage_error(root ? refused : "rank 0 could not take the run folder '" + o.out + "'");

  Model model(cfg, B, T, /*training=*/true, backend);
  model.set_check_finite(o.check_finite);
  ShardedAdamW opt(model.layout, backend, comm, o.grad_accum);
  int64_t step = 0;
  if (!o.resume.empty()) {
    const Checkpoint& ck = *start;
    if (!ck.config.same_shape(cfg))
      usage_error("--resume '", ck.path, "' has model ", ck.config.to_json().dump(),
                  " but the flags give ", cfg.to_json().dump());
    ck.load_params(model.params);
    opt.load(ck);
    step = ck.step;
    if (root) std::fprintf(stderr, "resumed %s at step %lld\n", ck.path.c_str(), (long long)step);
    // Already complete: the run was stopped after its final save, perhaps before the clean-up.
    if (root && step >= o.steps && fs::is_directory(o.out)) tidy_run_folder(o.out, o.keep);
  } else if (start) {
    start->load_params(model.params);
    if (root) std::fprintf(stderr, "starting from the weights of %s\n", start->path.c_str());
  } else {
    model.init_weights(o.seed);
  }
  start.reset();  // its tensors are in the model now
  nlohmann::json train_meta = o.to_json();
  train_meta["threads"] = omp_get_max_threads();  // a fact of the run, not an option
  const LrSchedule sched{o.lr, o.warmup, o.steps, o.min_lr_ratio};

  size_t n_params = 0;
  for (const TensorInfo& t : model.layout.tensors) n_params += t.numel;
  if (root)
    std::fprintf(stderr,
                 "model: %s%s, %d layers, d_model %d, %d heads, ffn %d, vocab %d: %.2fM "
                 "parameters; batch %d x %d x %d accum%s, %s, %d threads, %s matmuls\n",
                 pos_name(cfg.pos),
                 cfg.objective == Objective::mlm
                     ? str_cat(" masked LM (encoder, ", o.mask_rate * 100, "% masked)").c_str()
                     : "",
                 cfg.layers, cfg.d_model, cfg.heads, cfg.ffn, cfg.vocab,
                 double(n_params) / 1e6, B, T, o.grad_accum,
                 N > 1 ? str_cat(" x ", N, " ranks").c_str() : "", backend->device(),
                 omp_get_max_threads(), o.dtype.c_str());

  std::vector<int32_t> tokens(size_t(B) * T), targets(size_t(B) * T);
  // One JSON object per step, formatted into a fixed buffer: nothing allocated in the loop.
  std::FILE* log = root ? std::fopen((fs::path(o.out) / "log.jsonl").c_str(), "a") : nullptr;
  if (root && !log)
    usage_error("cannot append to '", (fs::path(o.out) / "log.jsonl").string(), "': ",
                std::strerror(errno), "; check the folder is writable and has space");
  struct Closer {
    std::FILE* f;
    ~Closer() {
      if (f) std::fclose(f);
    }
  } closer{log};
  char rec[256];
  TrainResult res;
  res.last_val_loss = NAN;
  res.step = step;

  auto save = [&]() {  // every rank: the moments are gathered on rank 0, which writes
    opt.with_moments([&](const ParamSet* m, const ParamSet* v) {
      if (root)
        res.checkpoint = write_checkpoint(o.out, cfg, train_meta, step, tok, model.params, m, v,
                                          o.keep);
    });
  };
  using clock = std::chrono::steady_clock;
  const auto t_start = clock::now();
  auto t_last = t_start;
  int64_t steps_since_log = 0;
  const int G = global_accum(o);  // micro-batches per step, over all ranks
  const int64_t tokens_per_step = int64_t(B) * T * G;
  const float accum_scale = 1.0f / float(G);
  const int64_t first_step = step;
  // Micro-batch i of a step is rank i % N's in round i / N (sharded_adamw.h): the same windows
  // and dropout whoever computes it.
  std::vector<float> losses(static_cast<size_t>(o.grad_accum)), all_losses(static_cast<size_t>(G));
  double comm_s_logged = 0;

  uint64_t step_bytes = 0;  // sent by this rank in the last step (not counting checkpoints)
  while (step < o.steps) {
    const uint64_t bytes0 = comm.bytes_sent();
    for (int round = 0; round < o.grad_accum; ++round) {
      const int micro = round * N + rank;
      model.grads.zero();
      sample_batch(train_split, B, T, o.seed, step, micro, tokens.data(), targets.data());
      if (mlm)  // targets: the window's own tokens where masked
        mask_tokens(tokens.data(), targets.data(), int64_t(B) * T, *mlm,
                    hash64(o.seed, uint64_t(step), uint64_t(micro), 0x4D4Cull), 0);
      const uint64_t drop_seed = hash64(o.seed, uint64_t(step), uint64_t(micro), 0xD509);
      try {
        losses[size_t(round)] =
            model.forward(tokens.data(), targets.data(), B, T, true, drop_seed);
        model.backward(accum_scale);
      } catch (const UsageError& e) {  // --check-finite: say where in the run it happened
        if (!o.check_finite) throw;
        usage_error("step ", step + 1, ", micro-batch ", micro, ": ", e.what());
      }
      opt.reduce(model.grads, round);
    }
    comm.allgather(losses.data(), all_losses.data(), losses.size() * sizeof(float));
    double loss = 0.0;
    for (int i = 0; i < G; ++i)  // rank r's round k is micro-batch k * N + r
      loss += double(all_losses[size_t(i % N) * size_t(o.grad_accum) + size_t(i / N)]) *
              accum_scale;
    if (!std::isfinite(loss))
      usage_error("loss is ", loss, " at step ", step + 1, "; stopping. The last good checkpoint",
                  res.checkpoint.empty() ? std::string(" is the last one in '") + o.out + "'"
                                         : " is '" + res.checkpoint + "'",
                  " (try a lower --lr than ", o.lr, ")");
    const float lr = sched.at(step);
    const float gnorm = opt.step(model.params, lr, step + 1, o.clip, o.adamw);
    if (o.check_finite)
      model.check_finite(model.params, str_cat("step ", step + 1, ": after the AdamW update, "
                                               "parameter").c_str());
    ++step;
    ++steps_since_log;
    res.step = step;
    res.last_loss = float(loss);

    const bool last = step == o.steps;
    const double elapsed = std::chrono::duration<double>(clock::now() - t_start).count();
    // Every rank stops at the same step: any rank's signal or clock stops them all.
    const bool stop = comm.allreduce_max(int(stop_signal() != 0) |
                                         (o.time_limit_min > 0 && elapsed >= 60.0 * o.time_limit_min) << 1);
    const bool out_of_time = stop & 2;
    int len = std::snprintf(rec, sizeof(rec),
                            "{\"step\":%lld,\"loss\":%.6g,\"lr\":%.6g,\"grad_norm\":%.6g,"
                            "\"elapsed_s\":%.3f",
                            (long long)step, loss, double(lr), double(gnorm), elapsed);
    if (root && (step % o.log_every == 0 || last || step == first_step + 1)) {
      const auto now = clock::now();
      const double dt = std::chrono::duration<double>(now - t_last).count();
      const double tps = double(steps_since_log * tokens_per_step) / dt;
      const double eta = double(o.steps - step) * elapsed / double(step - first_step);
      const double comm_s = opt.comm_seconds() - comm_s_logged;
      char comm_note[48] = "";
      if (N > 1) std::snprintf(comm_note, sizeof(comm_note), " | comm %.0f%%", 100 * comm_s / dt);
      std::fprintf(stderr,
                   "step %6lld/%lld | loss %.4f | lr %.2e | gnorm %.2f | %.0f tok/s%s | %s elapsed"
                   " | ETA %s\n",
                   (long long)step, (long long)o.steps, loss, lr, gnorm, tps, comm_note,
                   fmt_duration(elapsed).c_str(), fmt_duration(eta).c_str());
      len += std::snprintf(rec + len, sizeof(rec) - size_t(len), ",\"tokens_per_s\":%.1f", tps);
      if (N > 1)
        len += std::snprintf(rec + len, sizeof(rec) - size_t(len), ",\"comm_s\":%.4f", comm_s);
      comm_s_logged = opt.comm_seconds();
      t_last = now;
      steps_since_log = 0;
    }
    if (root && ((o.eval_every > 0 && step % o.eval_every == 0) || last || out_of_time)) {
      test_pause_point("ALIBI_TEST_PAUSE_IN_VALIDATION", str_cat("validation at step ", step));
      res.last_val_loss = validation_loss(model, valid_split, B, T, o.eval_windows, tokens,
                                          targets, mlm);
      std::fprintf(stderr, "step %6lld | val loss %.4f | val ppl %.2f\n", (long long)step,
                   res.last_val_loss, std::exp(res.last_val_loss));
      len += std::snprintf(rec + len, sizeof(rec) - size_t(len),
                           ",\"val_loss\":%.6g,\"val_ppl\":%.6g", double(res.last_val_loss),
                           std::exp(double(res.last_val_loss)));
      t_last = clock::now();  // keep evaluation out of the training throughput
    }
    if (root) {
      std::fprintf(log, "%s}\n", rec);
      std::fflush(log);
    }
    step_bytes = comm.bytes_sent() - bytes0;
    if ((o.save_every > 0 && step % o.save_every == 0) || last || stop) save();
    if (stop) {
      if (root)
        std::fprintf(stderr, "%s at step %lld; saved %s\n",
                   out_of_time ? "time limit reached" : "interrupted", (long long)step,
                   res.checkpoint.c_str());
      break;
    }
  }
  if (N > 1) report_job(comm, opt, step_bytes, o.grad_accum);
  return res;
}

}  // namespace alibi
