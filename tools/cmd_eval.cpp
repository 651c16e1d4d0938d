// alibi eval: perplexity of a checkpoint at any length, on a prepared split or a raw text file.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "commands.h"
#include "extension_flags.h"
#include "core/error.h"
#include "core/format.h"
#include "core/io.h"
#include "core/signals.h"
#include "data/dataset.h"
#include "data/masking.h"
#include "eval/eval.h"
#include "model/checkpoint.h"
#include "model/model.h"
#include "position/position.h"

namespace fs = std::filesystem;
namespace alibi::cli {
namespace {

// The slopes a checkpoint trained with --slopes trainable ended at (empty for fixed slopes).
std::vector<float> learned_slopes(const Checkpoint& ck) {
  const ModelConfig& c = ck.config;
  if (c.pos != PosKind::alibi || c.slopes != Slopes::trainable) return {};
  if (!ck.st.has("alibi_theta") || ck.st.at("alibi_theta").numel() != c.heads)
    usage_error("checkpoint '", ck.path, "' has trainable slopes but no alibi_theta of ", c.heads,
                " values");
  return alibi_trainable_slopes(alibi_slopes(c), ck.st.at("alibi_theta").f32());
}

struct EvalCliOptions {
  std::string checkpoint;
  std::string data;
  std::string split = "valid";
  std::string text;
  std::string lengths;  // "128,256,..."; empty: the training length
  std::string mode = "nonoverlapping";
  int stride = 0;
  int batch = 0;
  int64_t max_tokens = 0;
  std::string json;
  std::string per_position;
  std::string dtype = "fp32";
  float mask_rate = 0.15f;
  uint64_t mask_seed = kEvalMaskSeed;
};

std::string read_text_file(const std::string& path) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec))
    usage_error("--text '", path, "' does not exist or is not a file; expected a text file");
  return read_file(path, "--text");
}

std::string tokenizer_desc(const Tokenizer& t) {
  return str_cat(tokenizer_kind_name(t.kind()), " (vocab ", t.vocab(), ")");
}

// Output files are replaced whole (core/io.h), so an interrupted eval never leaves half a file;
// the error names the flag the path came from.
void write_output(const std::string& flag, const std::string& path, const std::string& text) {
  try {
    write_file_atomic(path, {text});
  } catch (const UsageError& e) {
    usage_error(flag, ": ", e.what());
  }
}

nlohmann::json num_or_null(double v) { return std::isfinite(v) ? nlohmann::json(v) : nullptr; }

// 1. Flags, checked before the (possibly long) work.
void check_flags(const EvalCliOptions& o, const CLI::App& app, EvalMode mode) {
  if (mode != EvalMode::sliding && app.count("--stride") > 0)
    usage_error("--stride ", o.stride, " applies to --mode sliding only (got --mode ", o.mode,
                ")");
  if (mode == EvalMode::sliding && o.stride < 1)
    usage_error("--mode sliding needs --stride S with 1 <= S < each length (got ", o.stride, ")");
  if (o.batch < 0) usage_error("--batch ", o.batch, " must be >= 1 (0: automatic)");
  if (o.max_tokens < 0) usage_error("--max-tokens ", o.max_tokens, " must be >= 0 (0: all)");
  if (o.data.empty() == o.text.empty())
    usage_error(o.data.empty() ? "give --data DIR (a prepared folder) or --text FILE"
                               : "give either --data or --text, not both");
  if (!o.text.empty() && app.count("--split") > 0)
    usage_error("--split ", o.split, " applies to --data only; --text scores the whole file");
  if (!o.data.empty() && o.split != "valid" && o.split != "test" && o.split != "train")
    usage_error("unknown --split '", o.split, "'; expected valid, test or train");
  // The files written at the end, checked before the work: their folders exist.
  for (const auto& [flag, path] : {std::pair{"--json", o.json}, {"--per-position", o.per_position}}) {
    if (path.empty() || path == "-") continue;
    const fs::path dir = fs::path(path).parent_path();
    std::error_code ec;
    if (!dir.empty() && !fs::is_directory(dir, ec))
      usage_error(flag, " '", path, "': folder '", dir.string(), "' does not exist");
  }
}

// 2. The checkpoint's own checks of the flags.
void check_against(const EvalCliOptions& o, const CLI::App& app, EvalMode mode,
                   const Checkpoint& ck) {
  const bool mlm = ck.config.objective == Objective::mlm;
  for (const char* flag : {"--mask-rate", "--mask-seed"})
    if (!mlm && app.count(flag) > 0)
      usage_error(flag, " applies to masked LMs; checkpoint '", ck.path, "' is a causal LM "
                  "(objective clm), scored on every next token");
  if (mlm) check_mask_rate(o.mask_rate);
  if (mlm && mode != EvalMode::nonoverlapping)
    usage_error("--mode ", o.mode, " is for causal LMs; checkpoint '", ck.path, "' is a masked "
                "LM (objective mlm), which sees both sides of every token: use nonoverlapping");
}

// The text scored, as tokens of the checkpoint's tokenizer.
struct EvalText {
  std::vector<int32_t> tokens;
  uint64_t source_bytes = 0;  // of the tokens kept (a --max-tokens prefix: its share)
  std::string what;           // "split '...'" or "--text '...'"
  // second-half on a vocabulary that adds a BOS (Tokenizer::leading_special): llama-perplexity
  // tokenizes the text with it and puts it at each chunk's start (EvalOptions::chunk_bos).
  int32_t chunk_bos = -1;
};

// 3. A prepared split (same tokenizer as the checkpoint) or a raw file, cut by --max-tokens.
EvalText load_text(const EvalCliOptions& o, EvalMode mode, const Checkpoint& ck) {
  const ModelConfig& cfg = ck.config;
  EvalText t;
  if (mode == EvalMode::second_half) t.chunk_bos = ck.tokenizer.leading_special().value_or(-1);
  if (!o.data.empty()) {
    const Tokenizer data_tok = Tokenizer::load_dir(o.data);
    if (data_tok.fingerprint() != ck.tokenizer.fingerprint())
      usage_error("checkpoint '", ck.path, "' uses tokenizer ", tokenizer_desc(ck.tokenizer),
                  " but --data '", o.data, "' was prepared with a different one, ",
                  tokenizer_desc(data_tok), "; prepare the text with 'alibi prepare "
                  "--tokenizer-from ", o.checkpoint, "'");
    TokenSplit s = load_split(o.data, o.split);
    // The same tokenizer; an import's embedding may have rows past its ids (BLOOM pads them).
    if (s.vocab > cfg.text_vocab())
      usage_error("split '", s.path, "' has vocab ", s.vocab, " but checkpoint '", ck.path,
                  "' has ", cfg.text_vocab(),
                  cfg.objective == Objective::mlm ? " (and its mask token)" : "");
    t.tokens = std::move(s.tokens);
    if (t.chunk_bos >= 0) t.tokens.insert(t.tokens.begin(), t.chunk_bos);  // as --text has it
    t.source_bytes = s.source_bytes;
    t.what = "split '" + s.path + "'";
  } else {
    const std::string text = read_text_file(o.text);
    // BOS first, never an EOS (an add_eos_token file: llama-perplexity refuses those).
    t.tokens = t.chunk_bos >= 0 ? ck.tokenizer.encode_prompt(text) : ck.tokenizer.encode(text);
    t.source_bytes = text.size();
    t.what = "--text '" + o.text + "'";
  }
  const uint64_t all_tokens = t.tokens.size();
  if (o.max_tokens > 0 && uint64_t(o.max_tokens) < all_tokens) {
    // A prefix of the text; bits per byte count the bytes of that share of the tokens.
    t.source_bytes = uint64_t(std::llround(double(t.source_bytes) * double(o.max_tokens) /
                                           double(all_tokens)));
    t.tokens.resize(size_t(o.max_tokens));
  }
  return t;
}

// 4. Every length fits the text and the mode, before any is run.
void check_lengths(const EvalCliOptions& o, EvalMode mode, const ModelConfig& cfg,
                   const EvalText& t, const std::vector<int>& lengths) {
  const std::string desc = t.what + (o.max_tokens > 0 ? " (cut by --max-tokens)" : "");
  for (int L : lengths) {
    check_eval_length(cfg, int64_t(t.tokens.size()), L, desc, "--lengths");
    if (mode == EvalMode::sliding && o.stride >= L)
      usage_error("--stride ", o.stride, " must be smaller than every length (got --lengths ",
                  L, "); a sliding window scores its last S tokens and keeps L - S as context");
    if (mode == EvalMode::second_half && L < 3)
      usage_error("--lengths ", L, " is too short for --mode second-half, which scores rows L/2 "
                  "to L - 2 of each chunk; expected lengths >= 3");
  }
}

void print_header(FILE* table, const EvalCliOptions& o, EvalMode mode, const Checkpoint& ck,
                  const ModelConfig& cfg, const EvalText& t, const std::vector<float>& slopes) {
  const bool mlm = cfg.objective == Objective::mlm;
  std::fprintf(table,
               "eval %s (%s%s, trained at %d, step %lld, %s weights) on %s: %s tokens, %s bytes, "
               "%s%s\n",
               ck.path.c_str(), pos_name(cfg.pos),
               mlm ? str_cat(" masked LM; ", o.mask_rate * 100, "% of tokens masked, seed ",
                             o.mask_seed).c_str()
                   : "",
               ck.train.value("seq_len", 0), (long long)ck.step, weight_type_name(ck.weights),
               t.what.c_str(), with_commas(t.tokens.size()).c_str(),
               with_commas(t.source_bytes).c_str(), eval_mode_name(mode),
               mode == EvalMode::sliding ? str_cat(" stride ", o.stride).c_str() : "");
  if (const nlohmann::json ext = extension_of(cfg); !ext.empty())
    std::fprintf(table, "context extension: %s\n", ext.dump().c_str());
  if (t.chunk_bos >= 0)
    std::fprintf(table,
                 "each chunk starts with BOS (id %d), as llama-perplexity's do for a "
                 "vocabulary that adds one\n",
                 t.chunk_bos);
  if (!slopes.empty()) {
    const std::vector<float> m0 = alibi_slopes(cfg);
    std::fprintf(table, "learned slopes by head (fixed ones in brackets):");
    for (size_t h = 0; h < slopes.size(); ++h)
      std::fprintf(table, " %.4g (%.4g)", slopes[h], m0[h]);
    std::fprintf(table, "\n");
  }
  // A masked LM: tokens, loss and ppl are over the masked tokens; accuracy replaces bits/byte.
  std::fprintf(table, "%8s %7s %8s %10s %8s %10s %9s %9s %9s %8s\n", "length", "x train",
               "windows", mlm ? "masked" : "tokens", "loss", "ppl", "bits/tok",
               mlm ? "accuracy" : "bits/byte", "tok/s", "peak MB");
  std::fflush(table);
}

// One length's row of the table and of the JSON.
nlohmann::json report_length(FILE* table, const EvalResult& r, int train_len, bool mlm) {
  const double factor = train_len > 0 ? double(r.length) / train_len : NAN;
  std::fprintf(table, "%8d %7.2f %8lld %10lld %8.4f %10.3f %9.4f %9.4f %9.0f %8.1f\n", r.length,
               factor, (long long)r.windows, (long long)r.tokens_scored, r.loss, r.ppl,
               r.bits_per_token, mlm ? r.accuracy : r.bits_per_byte, r.tokens_per_s,
               r.peak_rss_mb);
  std::fflush(table);
  nlohmann::json row = {{"length", r.length},
                        {"factor", num_or_null(factor)},
                        {"windows", r.windows},
                        {"batch", r.batch},
                        {"tokens_scored", r.tokens_scored},
                        {"tokens_forwarded", r.tokens_forwarded},
                        {"loss", r.loss},
                        {"ppl", r.ppl},
                        {"bits_per_token", r.bits_per_token},
                        {"bits_per_byte", num_or_null(r.bits_per_byte)},
                        {"seconds", r.seconds},
                        {"tokens_per_s", r.tokens_per_s},
                        {"peak_rss_mb", r.peak_rss_mb}};
  if (mlm) {
    row["correct"] = r.correct;
    row["accuracy"] = r.accuracy;
  }
  return row;
}

// The --per-position CSV rows of one length.
void append_positions(std::string& csv, const EvalResult& r) {
  char buf[96];
  for (int t = 0; t < r.length; ++t) {
    const int64_t c = r.position_count[size_t(t)];
    if (c == 0) continue;
    std::snprintf(buf, sizeof buf, "%d,%d,%lld,%.6f\n", r.length, t, (long long)c,
                  r.position_nats[size_t(t)] / double(c));
    csv += buf;
  }
}

// What the JSON says besides the results.
nlohmann::json json_head(const EvalCliOptions& o, EvalMode mode, const Checkpoint& ck,
                         const ModelConfig& cfg, const Backend& backend, const EvalText& t,
                         const std::vector<float>& slopes) {
  nlohmann::json j = {{"checkpoint", ck.path},
                      {"step", ck.step},
                      {"weights", weight_type_name(ck.weights)},
                      {"dtype", precision_name(backend.precision())},
                      {"pos", pos_name(cfg.pos)},
                      {"objective", objective_name(cfg.objective)},
                      {"train_seq_len", ck.train.value("seq_len", 0)},
                      {"extension", extension_of(cfg)},
                      {"source", t.what},
                      {"tokens", t.tokens.size()},
                      {"source_bytes", t.source_bytes},
                      {"mode", eval_mode_name(mode)},
                      {"stride", mode == EvalMode::sliding ? nlohmann::json(o.stride) : nullptr}};
  if (!slopes.empty()) j["learned_slopes"] = slopes;
  if (t.chunk_bos >= 0) j["chunk_bos"] = t.chunk_bos;
  if (cfg.objective == Objective::mlm) {
    j["mask_rate"] = o.mask_rate;
    j["mask_seed"] = o.mask_seed;
  }
  if (!o.data.empty()) {
    j["data"] = o.data;
    j["split"] = o.split;
  } else {
    j["text"] = o.text;
  }
  return j;
}

void emit_json(const EvalCliOptions& o, nlohmann::json j) {
  if (o.json.empty()) return;
  if (o.json == "-")
    std::printf("%s\n", j.dump(2).c_str());
  else
    write_output("--json", o.json, j.dump(2) + "\n");
}

EvalOptions eval_options(const EvalCliOptions& o, EvalMode mode, int L, const EvalText& t) {
  EvalOptions eo;
  eo.chunk_bos = t.chunk_bos;
  eo.length = L;
  eo.mode = mode;
  eo.stride = o.stride;
  eo.batch = o.batch;
  eo.per_position = !o.per_position.empty();
  eo.mask_rate = o.mask_rate;
  eo.mask_seed = o.mask_seed;
  return eo;
}

// 5. The memory of the length that needs the most (each length's model is made and freed in
// turn), printed, and refused where it does not fit: the line names --lengths (and --batch) and
// the largest length, or batch, that would fit. Returns false for --dry-run.
bool check_memory_plan(const EvalCliOptions& o, EvalMode mode, const Checkpoint& ck,
                       const Backend& backend, const EvalText& t, const std::vector<int>& lengths) {
  const int64_t n = int64_t(t.tokens.size());
  auto plan_at = [&](int L, int batch) {
    EvalOptions eo = eval_options(o, mode, L, t);
    eo.batch = batch;
    return eval_memory(ck.config, ck.st, backend, n, eo);
  };
  int worst = lengths.front();
  MemoryPlan plan = plan_at(worst, o.batch);
  for (int L : lengths)
    if (MemoryPlan p = plan_at(L, o.batch); p.total() > plan.total()) {
      plan = p;
      worst = L;
    }
  const MemoryBudget budget = memory_budget(globals().memory);
  const std::string at = lengths.size() > 1 ? str_cat("at length ", worst) : "";
  if (globals().memory.dry_run) std::printf("%s\n", memory_line(plan, budget, at).c_str());
  std::fflush(stdout);
  const std::string what =
      str_cat("--lengths ", worst, o.batch > 0 ? str_cat(" x --batch ", o.batch) : "");
  check_memory(plan, budget, what, [&]() -> std::string {
    auto fits = [&](int L, int batch) { return plan_at(L, batch).total() <= budget.bytes; };
    if (o.batch > 1)
      if (const int64_t b = largest_fitting(1, o.batch - 1, [&](int64_t v) {
            return fits(worst, int(v));
          }); b >= 1)
        return str_cat("--batch ", b, " would fit");
    const int64_t L = largest_fitting(1, worst - 1, [&](int64_t v) { return fits(int(v), 1); });
    if (L >= 1) return str_cat("--lengths up to ", L, o.batch > 1 ? " with --batch 1" : "",
                               " would fit");
    return "the weights alone need " + format_bytes(plan.of("weights"));
  });
  if (!globals().memory.dry_run)
    std::fprintf(stderr, "%s\n", memory_line(plan, budget, at).c_str());
  return !globals().memory.dry_run;
}

void run_eval(const EvalCliOptions& o, const CLI::App& app, const ExtensionFlags& ext) {
  const EvalMode mode = parse_eval_mode(o.mode);
  check_flags(o, app, mode);
  const std::shared_ptr<Backend> backend = make_backend(globals().device, parse_precision(o.dtype));
  const Checkpoint ck = read_checkpoint(o.checkpoint);
  check_against(o, app, mode, ck);
  const ModelConfig cfg = ext.apply(ck);
  const bool mlm = cfg.objective == Objective::mlm;
  const int train_len = ck.train.value("seq_len", 0);
  const std::vector<int> lengths =
      o.lengths.empty() ? std::vector<int>{train_len} : parse_lengths("--lengths", o.lengths);
  const EvalText text = load_text(o, mode, ck);
  check_lengths(o, mode, cfg, text, lengths);
  if (!check_memory_plan(o, mode, ck, *backend, text, lengths)) return;

  // Shortest length first, on the checkpoint's weights as stored (read in place).
  FILE* table = o.json == "-" ? stderr : stdout;
  const std::vector<float> slopes = learned_slopes(ck);
  print_header(table, o, mode, ck, cfg, text, slopes);
  nlohmann::json j = json_head(o, mode, ck, cfg, *backend, text, slopes);
  j["results"] = nlohmann::json::array();
  // The whole CSV is kept and rewritten after each length: a run stopped part way leaves a
  // complete CSV of the lengths it finished. Writing the header now checks the path early.
  std::string pos_csv = "length,position,count,mean_loss\n";
  if (!o.per_position.empty()) write_output("--per-position", o.per_position, pos_csv);
  for (int L : lengths) {
    test_pause_point("ALIBI_TEST_PAUSE_IN_EVAL", str_cat("eval at length ", L));
    const EvalOptions eo = eval_options(o, mode, L, text);
    EvalResult r;
    try {
      r = evaluate(cfg, ck.st, backend, text.tokens, text.source_bytes, eo, text.what);
    } catch (const Interrupted& e) {  // the JSON keeps the lengths finished, and says so
      j["interrupted"] = {{"signal", e.signal}, {"at", e.message}};
      emit_json(o, j);
      throw;
    }
    j["results"].push_back(report_length(table, r, train_len, mlm));
    if (!o.per_position.empty()) {
      append_positions(pos_csv, r);
      write_output("--per-position", o.per_position, pos_csv);
    }
  }
  emit_json(o, j);
}

}  // namespace

Command add_eval(CLI::App& app) {
  auto o = std::make_shared<EvalCliOptions>();
  CLI::App* c = add_subcommand(
      app, "eval",
      "evaluate a checkpoint at any length: perplexity, bits per token and per byte, tokens "
      "scored per second and the process's peak resident memory for each --lengths (run "
      "shortest first), as a table on stdout (and --json); a masked LM: loss, perplexity and "
      "accuracy on a fixed masking of the text");
  c->add_option("checkpoint", o->checkpoint,
                "run folder (its latest checkpoint), a checkpoint file, or a GGUF file "
                "(read in place)")
      ->required();
  c->add_option("--data", o->data,
                "prepared data folder (alibi prepare); its tokenizer must be the checkpoint's");
  c->add_option("--split", o->split, "split of --data: valid | test | train");
  c->add_option("--text", o->text,
                "score a raw text file instead, tokenised with the checkpoint's own tokenizer");
  c->add_option("--lengths", o->lengths,
                "window lengths in tokens, comma-separated, e.g. 128,256,512 (default: the "
                "training length)");
  c->add_option("--mode", o->mode,
                "nonoverlapping (chunks of L, every token scored) | sliding (windows of L moved "
                "by --stride, each scores its last S tokens) | second-half (llama-perplexity's: "
                "whole chunks of L only, each scoring rows L/2 to L - 2; no BOS in front)");
  c->add_option("--stride", o->stride, "sliding: tokens scored per window, 1 <= S < every length");
  c->add_option("--batch", o->batch,
                "windows per forward (0: as many as fit 16384 tokens and 512 MiB of activations)");
  c->add_option("--dtype", o->dtype,
                "matrix-product operands: fp32 | bf16 (AVX512-BF16; bf16 weights are used as "
                "stored; accumulation, softmax and LayerNorm stay fp32) | int8 (AVX512-VNNI: "
                "decoding's products on Q8_0/Q4_0/Q4_K/Q6_K weights take activations rounded to "
                "8 bits per block of 32, as llama.cpp; docs/gguf.md)");
  c->add_option("--max-tokens", o->max_tokens,
                "score only the first N tokens of the text (0: all)");
  c->add_option("--json", o->json,
                "also write the results as JSON to this file ('-': JSON to stdout, table to "
                "stderr)");
  c->add_option("--mask-rate", o->mask_rate,
                "masked LMs: share of the text's tokens masked and scored (BERT's corruption)");
  c->add_option("--mask-seed", o->mask_seed,
                "masked LMs: seed of the masking, keyed by position in the text, so every length "
                "scores the same tokens (the default is validation's)");
  c->add_option("--per-position", o->per_position,
                "write the mean loss at each position inside the window as CSV "
                "(length,position,count,mean_loss; loss in nats)");
  const auto ext = std::make_shared<ExtensionFlags>(c);
  Command cmd{c, [o, c, ext] { run_eval(*o, *c, *ext); }};
  cmd.stop = [] {
    return std::optional<std::string>(
        "stopping after this batch of windows; the lengths finished are kept");
  };
  cmd.uses_device = true;
  return cmd;
}

}  // namespace alibi::cli
