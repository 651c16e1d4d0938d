// The rows of TrainOptions (train/train.h): every option of `alibi train` declared once.
#include "train/train.h"

namespace alibi {
namespace {

using F = Field<TrainOptions>;

// Where the run comes from and goes: never a reason to refuse a resume.
Fields<TrainOptions> head_fields() {
  return {
      F::of(ALIBI_MEMBER(TrainOptions, data), "data")
          .flag_help("--data", "prepared data folder (alibi prepare); a resume defaults to the "
                               "run's")
          .legacy_default(),
      F::of(ALIBI_MEMBER(TrainOptions, out), "")
          .flag_help("--out", "run folder for checkpoints and log.jsonl: new, or holding no run"),
      F::of(ALIBI_MEMBER(TrainOptions, replace), "")
          .flag_help("--replace", "start this new run in an --out that holds a run: deletes that "
                                  "run's checkpoints and log.jsonl first (and says so)")
          .as_switch(),
      F::of(ALIBI_MEMBER(TrainOptions, resume), "")
          .flag_help("--resume", "continue a run folder or checkpoint bit-identically"),
      F::of(ALIBI_MEMBER(TrainOptions, init_from), "init_from")
          .flag_help("--init-from",
                     "start a new run from this checkpoint's model and weights (an import, or a "
                     "run to fine-tune); the model flags come from it")
          .legacy_default(),
  };
}

// The run's hyper-parameters.
Fields<TrainOptions> run_fields() {
  return {
      F::of(ALIBI_MEMBER(TrainOptions, seq_len), "seq_len")
          .flag_help("--seq-len", "training window T")
          .as_role(Role::fixed)
          .at_least(1),
      F::of(ALIBI_MEMBER(TrainOptions, batch), "batch")
          .flag_help("--batch", "windows per micro-batch")
          .as_role(Role::fixed)
          .at_least(1),
      // Free: a resume keeps the global batch (ranks x this) unless --allow-batch-change.
      F::of(ALIBI_MEMBER(TrainOptions, grad_accum), "grad_accum")
          .flag_help("--grad-accum", "micro-batches per step and rank (mpirun -np N: N x this "
                                     "per step)")
          .at_least(1),
      F::of(ALIBI_MEMBER(TrainOptions, allow_batch_change), "")
          .flag_help("--allow-batch-change",
                     "resume with another global batch (ranks x --grad-accum) than the "
                     "checkpoint's")
          .as_switch(),
      F::of(ALIBI_MEMBER(TrainOptions, check_finite), "")
          .flag_help("--check-finite",
                     "check every op's output and every update for NaN/infinity and stop at the "
                     "first, naming the layer and op (slower: a debugging mode)")
          .as_switch(),
      F::of(ALIBI_MEMBER(TrainOptions, oversubscribe), "")
          .flag_help("--oversubscribe", "allow ranks x --threads beyond this host's cores "
                                        "(mpirun)")
          .as_switch(),
      // Free: a resume runs to the recorded length, or extends or shortens the run on purpose.
      F::of(ALIBI_MEMBER(TrainOptions, steps), "steps")
          .flag_help("--steps", "total optimizer steps (a resume continues to the run's own; a "
                                "different value extends or shortens it)")
          .at_least(1),
      F::of(ALIBI_MEMBER(TrainOptions, lr), "lr")
          .flag_help("--lr", "peak learning rate")
          .as_role(Role::fixed)
          .positive(),
      F::of(ALIBI_MEMBER(TrainOptions, warmup), "warmup")
          .flag_help("--warmup", "linear warm-up steps")
          .as_role(Role::fixed)
          .at_least(0),
      F::of(ALIBI_MEMBER(TrainOptions, min_lr_ratio), "min_lr_ratio")
          .flag_help("--min-lr-ratio", "cosine floor as a fraction of --lr")
          .as_role(Role::fixed),
      F::of(ALIBI_MEMBER(TrainOptions, clip), "clip")
          .flag_help("--clip", "gradient clipping: max global norm")
          .as_role(Role::fixed),
      F::of(ALIBI_MEMBER(TrainOptions, adamw.beta1), "beta1")
          .flag_help("--beta1", "AdamW beta1")
          .as_role(Role::fixed),
      F::of(ALIBI_MEMBER(TrainOptions, adamw.beta2), "beta2")
          .flag_help("--beta2", "AdamW beta2")
          .as_role(Role::fixed),
      F::of(ALIBI_MEMBER(TrainOptions, adamw.eps), "eps").as_role(Role::fixed),
      F::of(ALIBI_MEMBER(TrainOptions, adamw.weight_decay), "weight_decay")
          .flag_help("--weight-decay", "AdamW decoupled weight decay")
          .as_role(Role::fixed),
      F::of(ALIBI_MEMBER(TrainOptions, seed), "seed")
          .flag_help("--seed", "seed of initialisation, data order and dropout")
          .as_role(Role::fixed),
      // Checkpoints from before --dtype trained in fp32.
      F::of(ALIBI_MEMBER(TrainOptions, dtype), "dtype")
          .flag_help("--dtype", "matmul operands: fp32 | bf16 (bf16 needs AVX512-BF16; weights, "
                                "accumulation, softmax, LN and attention stay fp32)")
          .choices("fp32|bf16")
          .as_role(Role::fixed)
          .legacy_value("fp32"),
      // The device is the global option --device (tools/alibi.cpp); a run may resume on another.
      F::of(ALIBI_MEMBER(TrainOptions, device), "device").legacy_value("cpu"),
      // Checkpoints from before MPI ran on one process.
      F::of(ALIBI_MEMBER(TrainOptions, ranks), "ranks").legacy_value(1),
      // Checkpoints from before mlm hold the default; it means something for mlm runs only.
      F::of(ALIBI_MEMBER(TrainOptions, mask_rate), "mask_rate")
          .flag_help("--mask-rate",
                     "mlm: share of positions masked, in (0, 1); of them 80% become the mask "
                     "token, 10% a random token, 10% stay")
          .as_role(Role::fixed)
          .legacy_default()
          .only_if([](const TrainOptions& o) { return o.model.objective == Objective::mlm; }),
  };
}

// How often the run validates, saves and reports, and for how long it may run.
Fields<TrainOptions> cadence_fields() {
  return {
      F::of(ALIBI_MEMBER(TrainOptions, eval_every), "eval_every")
          .flag_help("--eval-every", "steps between validations (0: end only)")
          .legacy_default()
          .at_least(0),
      F::of(ALIBI_MEMBER(TrainOptions, eval_windows), "eval_windows")
          .flag_help("--eval-windows", "validation windows of --seq-len tokens")
          .legacy_default()
          .at_least(1),
      F::of(ALIBI_MEMBER(TrainOptions, save_every), "save_every")
          .flag_help("--save-every", "steps between checkpoints (0: end only)")
          .legacy_default()
          .at_least(0),
      F::of(ALIBI_MEMBER(TrainOptions, keep), "")
          .flag_help("--keep", "checkpoints kept in the run folder")
          .at_least(1),
      F::of(ALIBI_MEMBER(TrainOptions, log_every), "")
          .flag_help("--log-every", "steps between progress lines")
          .at_least(1),
      F::of(ALIBI_MEMBER(TrainOptions, time_limit_min), "")
          .flag_help("--time-limit",
                     "minutes of training before a clean stop with a checkpoint (0: none)")
          .at_least(0),
  };
}

}  // namespace

const Fields<TrainOptions>& train_fields() {
  static const Fields<TrainOptions> fields = [] {
    Fields<TrainOptions> f = head_fields();
    for (const Fields<TrainOptions>& more : {run_fields(), cadence_fields()})
      f.insert(f.end(), more.begin(), more.end());
    return f;
  }();
  return fields;
}

const Fields<TrainOptions>& train_cli_fields() {
  static const Fields<TrainOptions> fields = [] {
    Fields<TrainOptions> f = head_fields();
    for (const Field<ModelConfig>& m : model_fields())
      f.push_back(lift(m, ALIBI_MEMBER(TrainOptions, model)));
    for (const Fields<TrainOptions>& more : {run_fields(), cadence_fields()})
      f.insert(f.end(), more.begin(), more.end());
    return f;
  }();
  return fields;
}

nlohmann::json TrainOptions::to_json() const { return fields_to_json(train_fields(), *this); }

TrainOptions TrainOptions::from_json(const nlohmann::json& train, const ModelConfig& model) {
  TrainOptions o = fields_from_json(train_fields(), train, "train");
  o.model = model;
  return o;
}

}  // namespace alibi
