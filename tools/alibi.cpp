// alibi: train, evaluate and run transformer language models with ALiBi and its baselines.
//   alibi prepare --input PATH --out DIR --tokenizer bytes|bpe --vocab N
//   alibi train   --data DIR --out RUN [--pos alibi ...] [--resume RUN]
// Bad input exits with code 2 and one line naming the flag or file, the value and what is expected.
#include <omp.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "core/error.h"
#include "data/dataset.h"
#include "model/checkpoint.h"
#include "train/train.h"

namespace fs = std::filesystem;
using namespace alibi;

namespace {

constexpr int kExitUsage = 2;

// A flag whose value is part of a run's identity: on --resume it must agree with the checkpoint.
struct FixedFlag {
  std::string flag;
  std::function<nlohmann::json(const TrainOptions&)> get;
  std::function<void(TrainOptions&, const TrainOptions&)> copy;
};

#define FIXED(flagname, field) \
  FixedFlag{flagname, [](const TrainOptions& o) { return nlohmann::json(o.field); }, \
            [](TrainOptions& d, const TrainOptions& s) { d.field = s.field; }}

std::vector<FixedFlag> fixed_flags() {
  return {FixedFlag{"--pos", [](const TrainOptions& o) { return nlohmann::json(pos_name(o.model.pos)); },
                    [](TrainOptions& d, const TrainOptions& s) { d.model.pos = s.model.pos; }},
          FIXED("--layers", model.layers), FIXED("--d-model", model.d_model),
          FIXED("--heads", model.heads), FIXED("--ffn", model.ffn),
          FIXED("--dropout", model.dropout_resid), FIXED("--attn-dropout", model.dropout_attn),
          FIXED("--t5-buckets", model.t5_buckets),
          FIXED("--t5-max-distance", model.t5_max_distance),
          FIXED("--max-positions", model.max_positions), FIXED("--seq-len", seq_len),
          FIXED("--batch", batch), FIXED("--grad-accum", grad_accum),
          FIXED("--warmup", warmup), FIXED("--lr", lr), FIXED("--min-lr-ratio", min_lr_ratio),
          FIXED("--clip", clip), FIXED("--beta1", adamw.beta1), FIXED("--beta2", adamw.beta2),
          FIXED("--weight-decay", adamw.weight_decay), FIXED("--seed", seed)};
}
#undef FIXED

// The options a checkpoint was trained with.
TrainOptions options_of(const Checkpoint& ck) {
  TrainOptions o;
  const auto& j = ck.train;
  o.model = ck.config;
  o.data = j.value("data", "");
  o.seq_len = j.at("seq_len");
  o.batch = j.at("batch");
  o.grad_accum = j.at("grad_accum");
  o.warmup = j.at("warmup");
  o.lr = j.at("lr");
  o.min_lr_ratio = j.at("min_lr_ratio");
  o.clip = j.at("clip");
  o.adamw.beta1 = j.at("beta1");
  o.adamw.beta2 = j.at("beta2");
  o.adamw.eps = j.at("eps");
  o.adamw.weight_decay = j.at("weight_decay");
  o.seed = j.at("seed");
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"alibi: train, evaluate and run transformer LMs with Attention with Linear Biases"};
  app.option_defaults()->always_capture_default();
  app.require_subcommand(1);
  int threads = 0;
  app.add_option("--threads", threads, "OpenMP threads (0: all cores)");

  // prepare
  PrepareOptions prep;
  auto* cp = app.add_subcommand("prepare", "tokenise a corpus into a data folder");
  cp->option_defaults()->always_capture_default()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  cp->add_option("--input", prep.input, "text file, or folder with train/valid/test files")
      ->required();
  cp->add_option("--out", prep.out, "output data folder")->required();
  cp->add_option("--tokenizer", prep.tokenizer, "bytes | bpe");
  cp->add_option("--vocab", prep.vocab, "BPE vocabulary size");
  cp->add_option("--valid-fraction", prep.valid_fraction, "single-file input: share for valid");
  cp->add_option("--test-fraction", prep.test_fraction, "single-file input: share for test");

  // train
  TrainOptions to;
  std::string pos = "alibi";
  double time_limit_min = 0;
  auto* ct = app.add_subcommand("train", "train a language model on a prepared data folder");
  ct->option_defaults()->always_capture_default()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  ct->add_option("--data", to.data, "prepared data folder (alibi prepare)");
  ct->add_option("--out", to.out, "run folder for checkpoints and log.jsonl");
  ct->add_option("--resume", to.resume, "continue a run folder or checkpoint bit-identically");
  ct->add_option("--pos", pos, "position method: " + pos_names());
  ct->add_option("--seq-len", to.seq_len, "training window T");
  ct->add_option("--layers", to.model.layers, "transformer blocks");
  ct->add_option("--d-model", to.model.d_model, "model width C");
  ct->add_option("--heads", to.model.heads, "attention heads (any count)");
  ct->add_option("--ffn", to.model.ffn, "feed-forward width");
  ct->add_option("--dropout", to.model.dropout_resid, "residual dropout");
  ct->add_option("--attn-dropout", to.model.dropout_attn, "attention-probability dropout");
  ct->add_option("--max-positions", to.model.max_positions,
                 "learned: table size (0: --seq-len)");
  ct->add_option("--t5-buckets", to.model.t5_buckets, "t5: relative-distance buckets");
  ct->add_option("--t5-max-distance", to.model.t5_max_distance, "t5: distance of the last bucket");
  ct->add_option("--batch", to.batch, "windows per micro-batch");
  ct->add_option("--grad-accum", to.grad_accum, "micro-batches per step");
  ct->add_option("--steps", to.steps, "total optimizer steps (a resumed run continues to it)");
  ct->add_option("--lr", to.lr, "peak learning rate");
  ct->add_option("--warmup", to.warmup, "linear warm-up steps");
  ct->add_option("--min-lr-ratio", to.min_lr_ratio, "cosine floor as a fraction of --lr");
  ct->add_option("--clip", to.clip, "gradient clipping: max global norm");
  ct->add_option("--beta1", to.adamw.beta1, "AdamW beta1");
  ct->add_option("--beta2", to.adamw.beta2, "AdamW beta2");
  ct->add_option("--weight-decay", to.adamw.weight_decay, "AdamW decoupled weight decay");
  ct->add_option("--seed", to.seed, "seed of initialisation, data order and dropout");
  ct->add_option("--eval-every", to.eval_every, "steps between validations (0: end only)");
  ct->add_option("--eval-windows", to.eval_windows, "validation windows of --seq-len tokens");
  ct->add_option("--save-every", to.save_every, "steps between checkpoints (0: end only)");
  ct->add_option("--keep", to.keep, "checkpoints kept in the run folder");
  ct->add_option("--log-every", to.log_every, "steps between progress lines");
  ct->add_option("--time-limit", time_limit_min, "minutes of training before a clean stop (0: none)");

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "alibi: error: %s (see --help)\n", e.what());
    return kExitUsage;
  }
  if (threads < 0) {
    std::fprintf(stderr, "alibi: error: --threads %d must be >= 0\n", threads);
    return kExitUsage;
  }
  if (threads > 0) omp_set_num_threads(threads);

  try {
    if (*cp) {
      prep.threads = threads;
      prepare(prep);
    } else if (*ct) {
      to.model.pos = parse_pos(pos);
      to.time_limit_s = time_limit_min * 60.0;
      if (!to.resume.empty()) {
        const Checkpoint ck = read_checkpoint(to.resume);
        const TrainOptions was = options_of(ck);
        for (const FixedFlag& f : fixed_flags()) {
          if (ct->count(f.flag) > 0 && f.get(to) != f.get(was))
            usage_error(f.flag, " ", f.get(to).dump(), " contradicts --resume '", ck.path,
                        "', which was trained with ", f.get(was).dump(),
                        "; drop the flag or start a new run");
          f.copy(to, was);
        }
        if (to.data.empty()) to.data = was.data;
        if (to.out.empty())
          to.out = fs::is_directory(to.resume) ? to.resume
                                                : fs::path(to.resume).parent_path().string();
      }
      if (to.data.empty()) usage_error("--data is required: a folder made by 'alibi prepare'");
      train(to);
    }
  } catch (const UsageError& e) {
    std::fprintf(stderr, "alibi: error: %s\n", e.what());
    return kExitUsage;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "alibi: internal error: %s\n", e.what());
    return 1;
  }
  return 0;
}
