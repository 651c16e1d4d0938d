// The training job (train/train.h): its checks, the model it plans and where it starts from,
// the run folder it takes, then the loop (train_loop.h).
#include "train/train.h"

#include <omp.h>

#include <cstdio>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>

#include "core/error.h"
#include "core/format.h"
#include "data/dataset.h"
#include "data/masking.h"
#include "dist/job.h"
#include "kernels/backend.h"
#include "model/checkpoint.h"
#include "model/model.h"
#include "train/run_folder.h"
#include "train/sharded_adamw.h"
#include "train/train_loop.h"
#include "train/train_plan.h"

namespace fs = std::filesystem;

namespace alibi {
namespace {

// Every rank has the same options and binary, threads that fit the host, and a device that
// trains on this many ranks; returns that device's backend, computing in --dtype.
std::shared_ptr<Backend> check_job(const TrainOptions& o, Comm& comm) {
  const int N = comm.size();
  ALIBI_CHECK(o.ranks == N, "TrainOptions::ranks ", o.ranks, " but the job has ", N);
  check_fields(train_fields(), o);
  if (o.out.empty()) usage_error("--out is required: the run folder for checkpoints");
  if (!o.resume.empty() && !o.init_from.empty())
    usage_error("--init-from '", o.init_from, "' and --resume '", o.resume,
                "' both give the weights; use one");
  // Threads may differ between hosts of different sizes; every other option must agree.
  check_same_job(comm, o.to_json().dump() + o.model.to_json().dump() + o.out + "|" + o.resume +
                           "|" + o.init_from + "|" + std::to_string(o.time_limit_min));
  check_threads(comm, o.oversubscribe);
  // Every product of this job (training and validation) runs in this precision.
  const MatmulPrecision precision = parse_precision(o.dtype);
  if (precision == MatmulPrecision::int8)
    usage_error("--dtype int8 rounds activations against block-quantized weights, for inference "
                "(eval, generate, serve, bench); train takes fp32 | bf16");
  std::shared_ptr<Backend> backend = make_backend(o.device, precision);
  if (N > 1 && !backend->host_memory())
    usage_error("--device ", o.device, " trains on one process only: data parallel over ", N,
                " processes needs a host-memory backend (cpu); NCCL is not built yet "
                "(docs/cuda.md)");
  return backend;
}

// The prepared data: its tokenizer and the train and valid splits.
struct Data {
  Tokenizer tok;
  TokenSplit train, valid;
};

Data load_data(const TrainOptions& o) {
  if (!fs::is_directory(o.data))
    usage_error("--data '", o.data, "' is not a folder; expected the output of 'alibi prepare'");
  Data d{Tokenizer::load_dir(o.data), load_split(o.data, "train"), load_split(o.data, "valid")};
  if (int64_t(d.train.tokens.size()) < int64_t(o.seq_len) + 1)
    usage_error("train split '", d.train.path, "' has ", d.train.tokens.size(),
                " tokens; need at least --seq-len+1 = ", int64_t(o.seq_len) + 1);
  return d;
}

// The model this run trains and the checkpoint it starts from (--resume or --init-from; null
// for a fresh one), read before the model is planned: an imported model keeps its vocabulary
// rows (BLOOM pads them past the tokenizer's).
struct Plan {
  ModelConfig cfg;
  std::unique_ptr<Checkpoint> from;
};

Plan plan_model(const TrainOptions& o, const Tokenizer& tok) {
  Plan p{o.model, nullptr};
  p.cfg.vocab = tok.vocab();
  if (p.cfg.objective == Objective::mlm) {  // the mask token: one row after the tokenizer's
    p.cfg.mask_token = tok.vocab();
    p.cfg.vocab = tok.vocab() + 1;
  }
  if (!o.resume.empty() || !o.init_from.empty()) {
    const char* flag = o.resume.empty() ? "--init-from" : "--resume";
    p.from = std::make_unique<Checkpoint>(read_checkpoint(o.resume.empty() ? o.init_from
                                                                            : o.resume));
    if (p.from->tokenizer.fingerprint() != tok.fingerprint())
      usage_error(flag, " '", p.from->path, "' was trained with another tokenizer than --data '",
                  o.data, "'; prepare the data with --tokenizer-from ", p.from->path);
    if (!o.init_from.empty()) {  // its model; this run's own fields (dropout, t5 table rate)
      const ModelConfig flags = p.cfg;
      p.cfg = p.from->config;
      for (const Field<ModelConfig>& f : model_fields())
        if (f.role == Role::fixed || f.role == Role::free) f.set(p.cfg, f.get(flags), f.name());
    } else {
      p.cfg.vocab = p.from->config.vocab;
      p.cfg.mask_token = p.from->config.mask_token;
    }
  }
  // The length the weights were trained at: the checkpoint's (a fine-tune's context extension
  // is relative to it), or this run's.
  position_method(p.cfg.pos)
      .fill_defaults(p.cfg, p.from ? p.from->train.value("seq_len", o.seq_len) : o.seq_len);
  if (p.cfg.objective == Objective::clm && !p.cfg.causal)
    usage_error("--causal false with --objective clm would let every position see the token it "
                "predicts; use --objective mlm for an encoder");
  p.cfg.validate();
  if (p.cfg.objective == Objective::mlm) check_mask_rate(o.mask_rate);
  if (!o.resume.empty() && !p.from->config.same_shape(p.cfg))
    usage_error("--resume '", p.from->path, "' has model ", p.from->config.to_json().dump(),
                " but the flags give ", p.cfg.to_json().dump());
  return p;
}

// The run folder is this process's from here on (rank 0 writes it; every rank stops if it is
// refused). Taken after every check of the flags and data, so a refused run leaves nothing.
void take_folder(const TrainOptions& o, Comm& comm, std::optional<RunFolder>& folder) {
  std::string refused;
  if (comm.root()) {
    try {
      folder.emplace(o.out, !o.resume.empty() ? RunFolder::Start::resume
                            : o.replace       ? RunFolder::Start::fresh_replacing
                                              : RunFolder::Start::fresh);
    } catch (const UsageError& e) {
      refused = e.what();
    }
  }
  if (comm.allreduce_max(int(!refused.empty())))
    usage_error(comm.root() ? refused : "rank 0 could not take the run folder '" + o.out + "'");
}

// The weights (and AdamW moments) the run starts from; returns its first step.
int64_t start_weights(const TrainOptions& o, Plan& p, Model& model, ShardedAdamW& opt,
                      bool root) {
  int64_t step = 0;
  if (!o.resume.empty()) {
    const Checkpoint& ck = *p.from;
    ck.load_params(model.params);
    opt.load(ck);
    step = ck.step;
    if (root) std::fprintf(stderr, "resumed %s at step %lld\n", ck.path.c_str(), (long long)step);
    // Already complete: the run was stopped after its final save, perhaps before the clean-up.
    if (root && step >= o.steps && fs::is_directory(o.out)) tidy_run_folder(o.out, o.keep);
  } else if (p.from) {
    p.from->load_params(model.params);
    if (root) std::fprintf(stderr, "starting from the weights of %s\n", p.from->path.c_str());
  } else {
    model.init_weights(o.seed);
  }
  p.from.reset();  // its tensors are in the model now
  return step;
}

// Validation scores windows the valid split can fill: refused at the start where it fills none,
// said once where they are shorter than --seq-len.
void check_validation(const TrainOptions& o, const TokenSplit& valid, bool root) {
  const int T = validation_length(valid, o.seq_len);
  const int64_t n = int64_t(valid.tokens.size());
  if (T < 1)
    usage_error("valid split '", valid.path, "' has ", n, n == 1 ? " token" : " tokens",
                "; validation needs at least 2 (a window of 1 and its target; --seq-len ",
                o.seq_len, " would use ", int64_t(o.seq_len) + 1,
                "): prepare more text or a larger --valid-fraction");
  if (T < o.seq_len && root)
    std::fprintf(stderr,
                 "note: valid split '%s' has %lld tokens, fewer than --seq-len + 1 = %lld: "
                 "validation scores one window of its first %d tokens\n",
                 valid.path.c_str(), (long long)n, (long long)o.seq_len + 1, T);
}

void print_banner(const TrainOptions& o, const ModelConfig& cfg, const Model& model, int ranks,
                  const Backend& backend) {
  size_t n_params = 0;
  for (const TensorInfo& t : model.layout.tensors) n_params += t.numel;
  std::fprintf(stderr,
               "model: %s%s, %d layers, d_model %d, %d heads, ffn %d, vocab %d: %.2fM "
               "parameters; batch %d x %d x %d accum%s, %s, %d threads, %s matmuls\n",
               pos_name(cfg.pos),
               cfg.objective == Objective::mlm
                   ? str_cat(" masked LM (encoder, ", o.mask_rate * 100, "% masked)").c_str()
                   : "",
               cfg.layers, cfg.d_model, cfg.heads, cfg.ffn, cfg.vocab, double(n_params) / 1e6,
               o.batch, o.seq_len, o.grad_accum,
               ranks > 1 ? str_cat(" x ", ranks, " ranks").c_str() : "", backend.device(),
               omp_get_max_threads(), o.dtype.c_str());
}

}  // namespace

TrainResult train(const TrainOptions& o, Comm* job, const MemoryOptions& mem) {
  const std::shared_ptr<Comm> one = job ? nullptr : single_process_comm();
  Comm& comm = job ? *job : *one;
  const std::shared_ptr<Backend> backend = check_job(o, comm);
  const Data data = load_data(o);
  Plan plan = plan_model(o, data.tok);
  const ModelConfig& cfg = plan.cfg;
  check_validation(o, data.valid, comm.root());
  // Before the run folder is taken and anything is allocated (core/memory_plan.h).
  if (!check_training_memory(o, cfg, *backend, comm, mem)) return TrainResult{};
  const MaskSpec mask_spec{o.mask_rate, cfg.mask_token};
  std::optional<RunFolder> folder;
  take_folder(o, comm, folder);

  Model model(cfg, o.batch, o.seq_len, /*training=*/true, backend);
  model.set_check_finite(o.check_finite);
  ShardedAdamW opt(model.layout, backend, comm, o.grad_accum);
  const int64_t step = start_weights(o, plan, model, opt, comm.root());
  if (comm.root()) print_banner(o, cfg, model, comm.size(), *backend);
  const TrainRun run{o,          cfg,  data.tok, data.train, data.valid,
                     cfg.objective == Objective::mlm ? &mask_spec : nullptr,
                     comm,       model, opt};
  return TrainLoop(run, step).run();
}

}  // namespace alibi
