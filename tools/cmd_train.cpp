// alibi prepare and alibi train.
#include <cstdio>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "core/error.h"
#include "data/dataset.h"
#include "model/checkpoint.h"
#include "train/train.h"
#include "commands.h"

namespace fs = std::filesystem;
namespace alibi::cli {
namespace {

// A flag whose value is part of a run's identity: on --resume it must agree with the checkpoint.
struct FixedFlag {
  std::string flag;
  std::function<nlohmann::json(const TrainOptions&)> get;
  std::function<void(TrainOptions&, const TrainOptions&)> copy;
};

#define FIXED(flagname, field) FIXED_AS(flagname, field, )
// An enum field, compared and shown by its name (name_fn).
#define FIXED_AS(flagname, field, name_fn)                                                  \
  FixedFlag{flagname, [](const TrainOptions& o) { return nlohmann::json(name_fn(o.field)); }, \
            [](TrainOptions& d, const TrainOptions& s) { d.field = s.field; }}

std::vector<FixedFlag> fixed_flags() {
  return {
      FIXED_AS("--pos", model.pos, pos_name),
      FIXED_AS("--init", model.init, init_name),
      FIXED("--layers", model.layers),
      FIXED("--d-model", model.d_model),
      FIXED("--heads", model.heads),
      FIXED("--ffn", model.ffn),
      FIXED("--dropout", model.dropout_resid),
      FIXED("--attn-dropout", model.dropout_attn),
      FIXED("--t5-buckets", model.t5_buckets),
      FIXED("--t5-max-distance", model.t5_max_distance),
      FIXED("--t5-lr-scale", model.t5_lr_scale),
      FIXED("--max-positions", model.max_positions),
      FIXED("--seq-len", seq_len),
      FIXED("--batch", batch),
      FIXED("--warmup", warmup),
      FIXED("--lr", lr),
      FIXED("--min-lr-ratio", min_lr_ratio),
      FIXED("--clip", clip),
      FIXED("--beta1", adamw.beta1),
      FIXED("--beta2", adamw.beta2),
      FIXED("--weight-decay", adamw.weight_decay),
      FIXED("--seed", seed),
      FIXED("--dtype", dtype),
      FIXED_AS("--gelu", model.gelu, gelu_name),
      FIXED("--linear-bias", model.linear_bias),
      FIXED("--ln-bias", model.ln_bias),
      FIXED("--ln-eps", model.ln_eps),
      FIXED("--embed-scale", model.embed_scale),
      FIXED("--embed-ln", model.embed_ln),
      FIXED("--alibi-bias-max", model.alibi_bias_max),
      FIXED("--tied-head", model.tied_head),
      FIXED_AS("--slopes", model.slopes, slopes_name),
      FIXED_AS("--objective", model.objective, objective_name),
      FIXED("--causal", model.causal),
      FIXED("--mask-rate", mask_rate)};
}
#undef FIXED_AS
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
  o.ranks = j.value("ranks", 1);  // checkpoints from before MPI ran on one process
  o.warmup = j.at("warmup");
  o.lr = j.at("lr");
  o.min_lr_ratio = j.at("min_lr_ratio");
  o.clip = j.at("clip");
  o.adamw.beta1 = j.at("beta1");
  o.adamw.beta2 = j.at("beta2");
  o.adamw.eps = j.at("eps");
  o.adamw.weight_decay = j.at("weight_decay");
  o.seed = j.at("seed");
  o.dtype = j.value("dtype", "fp32");  // checkpoints from before --dtype are fp32
  o.mask_rate = j.value("mask_rate", o.mask_rate);  // and before mlm: its default
  o.steps = j.at("steps");
  return o;
}

// The micro-batches per rank of a resumed run: by default the checkpoint's global batch shared
// among this job's ranks; a different global batch only with --allow-batch-change.
void resume_accum(TrainOptions& o, const TrainOptions& was, bool given, bool allow,
                  const std::string& path) {
  const int global_was = global_accum(was);
  if (!given) {
    if (global_was % o.ranks != 0)
      usage_error("--resume '", path, "' has ", global_was, " micro-batches per step (",
                  was.ranks, " ranks x --grad-accum ", was.grad_accum, "), which ", o.ranks,
                  " ranks cannot share; pass --grad-accum and --allow-batch-change");
    o.grad_accum = global_was / o.ranks;
  } else if (global_accum(o) != global_was && !allow) {
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

}  // namespace

Command add_prepare(CLI::App& app) {
  auto o = std::make_shared<PrepareOptions>();
  CLI::App* cp = add_subcommand(app, "prepare", "tokenise a corpus into a data folder");
  cp->add_option("--input", o->input, "text file, or folder with train/valid/test files")
      ->required();
  cp->add_option("--out", o->out, "output data folder: new or empty")->required();
  cp->add_flag("--replace", o->replace,
               "replace the data an earlier prepare wrote in --out (only once the new data is "
               "complete)");
  cp->add_option(
      "--tokenizer", o->tokenizer,
      "bytes | bpe (SentencePiece) | bytebpe (byte-level BPE, written as tokenizer.json)");
  cp->add_option("--vocab", o->vocab, "BPE vocabulary size (bpe, bytebpe)");
  cp->add_option(
      "--tokenizer-from", o->tokenizer_from,
      "use this tokenizer instead of --tokenizer: a Hugging Face tokenizer.json or model "
      "folder, a SentencePiece .model, a data folder, a run folder or checkpoint");
  cp->add_option("--valid-fraction", o->valid_fraction, "single-file input: share for valid");
  cp->add_option("--test-fraction", o->test_fraction, "single-file input: share for test");
  return {cp, [o, cp] {
            if (!o->tokenizer_from.empty())
              for (const char* flag : {"--tokenizer", "--vocab"})
                if (cp->count(flag) > 0)
                  usage_error(flag, " contradicts --tokenizer-from '", o->tokenizer_from,
                              "', which brings its own tokenizer; drop one of them");
            if (!o->tokenizer_from.empty()) o->tokenizer_given = load_tokenizer(o->tokenizer_from);
            prepare(*o);
          }};
}

Command add_train(CLI::App& app) {
  auto to = std::make_shared<TrainOptions>();
  auto pos = std::make_shared<std::string>("alibi");
  auto init = std::make_shared<std::string>(init_name(to->model.init));
  auto gelu = std::make_shared<std::string>(gelu_name(to->model.gelu));
  auto slopes = std::make_shared<std::string>(slopes_name(to->model.slopes));
  auto objective = std::make_shared<std::string>(objective_name(to->model.objective));
  auto time_limit_min = std::make_shared<double>(0.0);
  CLI::App* ct = add_subcommand(app, "train", "train a language model on a prepared data folder");
  ct->add_option("--data", to->data, "prepared data folder (alibi prepare)");
  ct->add_option("--out", to->out,
                 "run folder for checkpoints and log.jsonl: new, or holding no run");
  ct->add_flag("--replace", to->replace,
               "start this new run in an --out that holds a run: deletes that run's checkpoints "
               "and log.jsonl first (and says so)");
  ct->add_option("--resume", to->resume, "continue a run folder or checkpoint bit-identically");
  ct->add_option("--init-from", to->init_from,
                 "start a new run from this checkpoint's model and weights (an import, or a run "
                 "to fine-tune); the model flags come from it");
  ct->add_option("--pos", *pos, "position method: " + pos_names());
  ct->add_option("--init", *init,
                 "initialisation: fairseq (embeddings N(0, 1/C), Xavier linears) | gpt2 "
                 "(N(0, 0.02), residual projections / sqrt(2L)); docs/model.md");
  ct->add_option("--seq-len", to->seq_len, "training window T");
  ct->add_option("--layers", to->model.layers, "transformer blocks");
  ct->add_option("--d-model", to->model.d_model, "model width C");
  ct->add_option("--heads", to->model.heads, "attention heads (any count)");
  ct->add_option("--ffn", to->model.ffn, "feed-forward width");
  ct->add_option("--dropout", to->model.dropout_resid, "residual dropout");
  ct->add_option("--attn-dropout", to->model.dropout_attn, "attention-probability dropout");
  ct->add_option("--max-positions", to->model.max_positions,
                 "learned: table size (0: --seq-len)");
  ct->add_option("--t5-buckets", to->model.t5_buckets, "t5: relative-distance buckets");
  ct->add_option("--t5-max-distance", to->model.t5_max_distance,
                 "t5: distance of the last bucket");
  ct->add_option("--t5-lr-scale", to->model.t5_lr_scale,
                 "t5: learning rate of the bias table as a multiple of --lr");
  // Architecture options (docs/model.md): the defaults are this repository's model.
  ct->add_option("--linear-bias", to->model.linear_bias, "biases on the blocks' linears");
  ct->add_option("--ln-bias", to->model.ln_bias, "biases on the LayerNorms");
  ct->add_option("--ln-eps", to->model.ln_eps, "LayerNorm epsilon");
  ct->add_option("--gelu", *gelu, "GELU form: tanh (approximation) | erf (exact)");
  ct->add_option("--embed-scale", to->model.embed_scale,
                 "scale token embeddings by sqrt(d_model) (fairseq); false: unscaled");
  ct->add_option("--embed-ln", to->model.embed_ln, "a LayerNorm on the token embeddings (BLOOM)");
  ct->add_option("--alibi-bias-max", to->model.alibi_bias_max,
                 "alibi: slopes 2^(-X h/heads) (MPT's alibi_bias_max; 8: the paper's)");
  ct->add_option("--slopes", *slopes,
                 "alibi: fixed (the paper's) | trainable (m_h = 2 m0_h sigmoid(theta_h), from "
                 "the fixed m0 at theta = 0; docs/model.md)");
  ct->add_option("--objective", *objective,
                 "clm (next token: a decoder) | mlm (BERT's masked tokens: an encoder, "
                 "bidirectional; a mask token is added to the vocabulary)");
  ct->add_option("--causal", to->model.causal,
                 "causal attention; --objective mlm implies false (and refuses true)");
  ct->add_option("--mask-rate", to->mask_rate,
                 "mlm: share of positions masked, in (0, 1); of them 80% become the mask token, "
                 "10% a random token, 10% stay");
  ct->add_option("--tied-head", to->model.tied_head,
                 "output head tied to the token embeddings; false: its own lm_head.w");
  ct->add_option("--batch", to->batch, "windows per micro-batch");
  ct->add_option("--grad-accum", to->grad_accum,
                 "micro-batches per step and rank (mpirun -np N: N x this per step)");
  auto allow_batch_change = std::make_shared<bool>(false);
  ct->add_flag("--allow-batch-change", *allow_batch_change,
               "resume with another global batch (ranks x --grad-accum) than the checkpoint's");
  ct->add_flag("--check-finite", to->check_finite,
               "check every op's output and every update for NaN/infinity and stop at the first, "
               "naming the layer and op (slower: a debugging mode)");
  ct->add_flag("--oversubscribe", to->oversubscribe,
               "allow ranks x --threads beyond this host's cores (mpirun)");
  ct->add_option("--steps", to->steps,
                 "total optimizer steps (a resume continues to the run's own; a different value "
                 "extends or shortens it)");
  ct->add_option("--lr", to->lr, "peak learning rate");
  ct->add_option("--warmup", to->warmup, "linear warm-up steps");
  ct->add_option("--min-lr-ratio", to->min_lr_ratio, "cosine floor as a fraction of --lr");
  ct->add_option("--clip", to->clip, "gradient clipping: max global norm");
  ct->add_option("--beta1", to->adamw.beta1, "AdamW beta1");
  ct->add_option("--beta2", to->adamw.beta2, "AdamW beta2");
  ct->add_option("--weight-decay", to->adamw.weight_decay, "AdamW decoupled weight decay");
  ct->add_option("--seed", to->seed, "seed of initialisation, data order and dropout");
  ct->add_option("--dtype", to->dtype,
                 "matmul operands: fp32 | bf16 (bf16 needs AVX512-BF16; weights, accumulation, "
                 "softmax, LN and attention stay fp32)");
  ct->add_option("--device", to->device,
                 "where to compute: " + device_names() + " (a run may resume on another device)");
  ct->add_option("--eval-every", to->eval_every, "steps between validations (0: end only)");
  ct->add_option("--eval-windows", to->eval_windows, "validation windows of --seq-len tokens");
  ct->add_option("--save-every", to->save_every, "steps between checkpoints (0: end only)");
  ct->add_option("--keep", to->keep, "checkpoints kept in the run folder");
  ct->add_option("--log-every", to->log_every, "steps between progress lines");
  ct->add_option("--time-limit", *time_limit_min,
                 "minutes of training before a clean stop with a checkpoint (0: none)");
  return {ct, [=] {
            TrainOptions& o = *to;
            const std::shared_ptr<Comm> comm = make_comm();  // MPI under mpirun
            o.ranks = comm->size();
            o.model.pos = parse_pos(*pos);
            o.model.init = parse_init(*init);
            o.model.gelu = parse_gelu(*gelu);
            o.model.slopes = parse_slopes(*slopes);
            o.model.objective = parse_objective(*objective);
            o.time_limit_s = *time_limit_min * 60.0;
            if (!o.init_from.empty())  // the model is the checkpoint's
              for (const char* flag :
                   {"--pos", "--init", "--layers", "--d-model", "--heads", "--ffn",
                    "--max-positions", "--t5-buckets", "--t5-max-distance", "--linear-bias",
                    "--ln-bias", "--ln-eps", "--gelu", "--embed-scale", "--embed-ln",
                    "--alibi-bias-max", "--tied-head", "--slopes", "--objective", "--causal"})
                if (ct->count(flag) > 0)
                  usage_error(flag, " contradicts --init-from '", o.init_from,
                              "', whose checkpoint gives the model; drop the flag");
            if (!o.resume.empty() && o.replace)
              usage_error("--replace starts a new run; --resume '", o.resume,
                          "' continues one: drop one of them");
            if (!o.resume.empty()) {
              const Checkpoint ck = read_checkpoint(o.resume);
              const TrainOptions was = options_of(ck);
              for (const FixedFlag& f : fixed_flags()) {
                if (ct->count(f.flag) > 0 && f.get(o) != f.get(was))
                  usage_error(f.flag, " ", f.get(o).dump(), " contradicts --resume '", ck.path,
                              "', which was trained with ", f.get(was).dump(),
                              "; drop the flag or start a new run");
                f.copy(o, was);
              }
              resume_accum(o, was, ct->count("--grad-accum") > 0, *allow_batch_change, ck.path);
              resume_steps(o, was, ct->count("--steps") > 0, ck, comm->root());
              if (o.data.empty()) o.data = was.data;
              if (o.out.empty())
                o.out = fs::is_directory(o.resume) ? o.resume
                                                   : fs::path(o.resume).parent_path().string();
            }
            if (o.model.objective == Objective::mlm) {
              if (ct->count("--causal") > 0 && o.model.causal)
                usage_error("--causal true contradicts --objective mlm, which trains an encoder "
                            "(bidirectional attention); drop --causal");
              o.model.causal = false;
            } else if (ct->count("--mask-rate") > 0 && o.init_from.empty()) {
              usage_error("--mask-rate ", o.mask_rate, " applies to --objective mlm; this run is "
                          "--objective clm");
            }
            if (o.data.empty()) usage_error("--data is required: a folder made by 'alibi prepare'");
            train(o, comm.get());
          },
          // A stop signal ends the run at the next step with a checkpoint; rank 0 says so.
          [] {
            return std::optional<std::string>(
                launch_rank() == 0 ? "stopping after this step with a checkpoint" : "");
          }};
}

}  // namespace alibi::cli
