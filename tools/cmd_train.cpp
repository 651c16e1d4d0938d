// alibi train. Its flags are the rows of train_cli_fields() (train/train.h, model/config.h); a
// resume checks the flags given against the checkpoint's values, and --init-from against its
// model, both by the rows' roles (core/fields.h).
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>

#include "cli_fields.h"
#include "commands.h"
#include "core/error.h"
#include "dist/comm.h"
#include "model/checkpoint.h"
#include "train/train.h"

namespace fs = std::filesystem;
namespace alibi::cli {
namespace {

using Flags = FieldFlags<TrainOptions>;

// The micro-batches per rank of a resumed run: by default the checkpoint's global batch shared
// among this job's ranks; a different global batch only with --allow-batch-change.
void resume_accum(TrainOptions& o, const TrainOptions& was, bool given, const std::string& path) {
  const int global_was = global_accum(was);
  if (!given) {
    if (global_was % o.ranks != 0)
      usage_error("--resume '", path, "' has ", global_was, " micro-batches per step (",
                  was.ranks, " ranks x --grad-accum ", was.grad_accum, "), which ", o.ranks,
                  " ranks cannot share; pass --grad-accum and --allow-batch-change");
    o.grad_accum = global_was / o.ranks;
  } else if (global_accum(o) != global_was && !o.allow_batch_change) {
    usage_error("--grad-accum ", o.grad_accum, " x ", o.ranks, " ranks = ", global_accum(o),
                " micro-batches per step contradicts --resume '", path, "', trained with ",
                global_was, " (", was.ranks, " ranks x ", was.grad_accum,
                "); keep the global batch or pass --allow-batch-change");
  }
}

// A resume continues to the run's recorded length; a --steps that differs changes the run on
// purpose, and the cosine schedule with it: said in one line.
void resume_steps(TrainOptions& o, const TrainOptions& was, bool given, const Checkpoint& ck,
                  bool root) {
  if (!given) {
    o.steps = was.steps;
    return;
  }
  if (o.steps == was.steps || !root) return;
  if (o.steps <= ck.step) {
    std::fprintf(stderr, "note: --steps %lld is not past the checkpoint's step %lld: nothing "
                 "to train\n", (long long)o.steps, (long long)ck.step);
    return;
  }
  std::fprintf(stderr,
               "note: --steps %lld %s the run, recorded with %lld steps: its learning-rate "
               "schedule (cosine to step %lld) changes from step %lld on, so it will not equal "
               "the run it was\n",
               (long long)o.steps, o.steps > was.steps ? "extends" : "shortens",
               (long long)was.steps, (long long)o.steps, (long long)ck.step + 1);
}

// A resume: every field but the free ones is the checkpoint's, and a flag that says otherwise
// is refused; the free ones that were not given default to the run's where that is natural.
void take_resumed(TrainOptions& o, const Flags& flags, bool root) {
  const Checkpoint ck = read_checkpoint(o.resume);
  if (ck.train.contains("imported_from"))  // alibi import's checkpoint, or a .gguf read in place
    usage_error("--resume '", o.resume, "' is an import of '",
                ck.train["imported_from"].get<std::string>(),
                "', not a run of alibi train: there is no training to resume; start one from its "
                "weights with --init-from");
  const TrainOptions was = TrainOptions::from_json(ck.train, ck.config);
  for (const Field<TrainOptions>& f : train_cli_fields()) {
    if (f.role == Role::free) continue;
    if (!f.flag.empty() && flags.given(f.flag) && f.applies_to(was) && f.get(o) != f.get(was))
      usage_error(f.flag, " ", f.get(o).dump(), " contradicts --resume '", ck.path,
                  "', which was trained with ", f.get(was).dump(),
                  "; drop the flag or start a new run");
    f.set(o, f.get(was), f.name());
  }
  resume_accum(o, was, flags.given("--grad-accum"), ck.path);
  resume_steps(o, was, flags.given("--steps"), ck, root);
  if (o.data.empty()) o.data = was.data;
  if (o.out.empty())
    o.out = fs::is_directory(o.resume) ? o.resume : fs::path(o.resume).parent_path().string();
}

// The flags against each other, before anything is read.
void check_flags(const TrainOptions& o, const Flags& flags) {
  if (!o.resume.empty() && o.replace)
    usage_error("--replace starts a new run; --resume '", o.resume,
                "' continues one: drop one of them");
  if (!o.init_from.empty())  // the model, and what comes with its weights, is the checkpoint's
    for (const Field<TrainOptions>& f : train_cli_fields())
      if ((f.role == Role::shape || f.role == Role::model) && !f.flag.empty() &&
          flags.given(f.flag))
        usage_error(f.flag, " contradicts --init-from '", o.init_from,
                    "', whose checkpoint gives the model; drop the flag");
}

void run_train(const Flags& flags) {
  TrainOptions o;
  flags.apply(o);
  o.device = globals().device;
  check_flags(o, flags);
  const std::shared_ptr<Comm> comm = make_comm();  // MPI under mpirun
  o.ranks = comm->size();
  if (!o.resume.empty()) take_resumed(o, flags, comm->root());
  if (o.model.objective == Objective::mlm && !flags.given("--causal"))
    o.model.causal = false;  // an encoder unless the flag says otherwise (validate refuses it)
  if (o.model.objective == Objective::clm && flags.given("--mask-rate") && o.init_from.empty())
    usage_error("--mask-rate ", o.mask_rate, " applies to --objective mlm; this run is "
                "--objective clm");
  if (o.data.empty()) usage_error("--data is required: a folder made by 'alibi prepare'");
  train(o, comm.get(), globals().memory);
}

}  // namespace

Command add_train(CLI::App& app) {
  CLI::App* ct = add_subcommand(app, "train", "train a language model on a prepared data folder");
  const auto flags = std::make_shared<Flags>(ct, train_cli_fields());
  Command c{ct, [flags] { run_train(*flags); }};
  // A stop signal ends the run at the next step with a checkpoint; rank 0 says so.
  c.stop = [] {
    return std::optional<std::string>(
        launch_rank() == 0 ? "stopping after this step with a checkpoint" : "");
  };
  c.uses_device = true;
  return c;
}

}  // namespace alibi::cli
