// Evaluation at any length: windows over a token stream, batched forwards, per-token losses.
#include "eval/eval.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <utility>

#include "core/error.h"
#include "core/format.h"
#include "core/signals.h"
#include "core/rss.h"
#include "data/masking.h"
#include "model/model.h"

namespace alibi {

namespace {

// Rows per forward when batching windows: past a few thousand rows the matrix products run at
// full speed, so more only costs memory.
constexpr int64_t kEvalBatchTokens = 16384;
// Cap on the activation plan of one batch. The head runs over blocks of vocabulary columns
// (Model::default_head_cols), so the logits take ~64 MiB at any vocabulary and the (B*T, C)
// activations decide. One window always runs, however large.
constexpr double kEvalPlanBytes = 512.0 * (1 << 20);

}  // namespace

namespace {

constexpr std::pair<EvalMode, const char*> kEvalModes[] = {
    {EvalMode::nonoverlapping, "nonoverlapping"},
    {EvalMode::sliding, "sliding"},
    {EvalMode::second_half, "second-half"}};

}  // namespace

EvalMode parse_eval_mode(const std::string& name, const std::string& flag) {
  std::string names;
  for (const auto& [mode, n] : kEvalModes) {
    if (name == n) return mode;
    names += str_cat(names.empty() ? "" : ", ", n);
  }
  usage_error("unknown ", flag, " '", name, "'; expected one of ", names);
}

const char* eval_mode_name(EvalMode mode) {
  for (const auto& [m, n] : kEvalModes)
    if (m == mode) return n;
  ALIBI_CHECK(false, "eval mode ", int(mode));
  return "";
}

std::vector<EvalWindow> eval_windows(int64_t n_targets, int length, EvalMode mode, int stride) {
  if (length < 1) usage_error("length ", length, " must be at least 1 token");
  if (int64_t(length) > n_targets)
    usage_error("length ", length, " is longer than the text: it has ", n_targets + 1,
                " tokens, so at most ", n_targets, " targets in one window");
  const int S = mode == EvalMode::sliding ? stride : length;
  if (mode == EvalMode::sliding && (S < 1 || S > length))
    usage_error("stride ", stride, " must be between 1 and the length ", length);
  if (mode == EvalMode::second_half && length < 3)
    usage_error("length ", length, " is too short for mode second-half: a chunk of L tokens "
                "scores rows L/2 to L - 2; expected L >= 3");
  std::vector<EvalWindow> w;
  w.reserve(size_t(eval_window_count(n_targets, length, mode, stride)));
  if (mode == EvalMode::second_half) {
    for (int64_t k = 0; k < (n_targets + 1) / length; ++k)
      w.push_back({k * length, length, length / 2, length - 1});
    return w;
  }
  // Window 0 scores rows [0, L); window k >= 1 starts at kS and scores rows [L - S, L), i.e.
  // targets from kS + L - S on, which continue exactly where window k - 1 stopped.
  for (int64_t k = 0;; ++k) {
    const int64_t start = k * S;
    const int64_t first = k == 0 ? 0 : start + length - S;  // first scored input position
    if (first >= n_targets) break;
    const int len = int(std::min<int64_t>(length, n_targets - start));
    w.push_back({start, len, int(first - start), len});
  }
  ALIBI_CHECK(int64_t(w.size()) == eval_window_count(n_targets, length, mode, stride));
  return w;
}

int64_t eval_window_count(int64_t n_targets, int length, EvalMode mode, int stride) {
  if (mode == EvalMode::second_half) return (n_targets + 1) / length;  // whole chunks
  // Window 0, and window k >= 1 while its first scored position kS + L - S < n_targets.
  const int64_t S = mode == EvalMode::sliding ? stride : length;
  return 1 + (n_targets - length + S - 1) / S;
}

int default_eval_batch(const ModelConfig& cfg, int length, const Backend& backend) {
  int64_t b = std::max<int64_t>(1, kEvalBatchTokens / std::max(length, 1));
  while (b > 1 &&
         double(Model::plan_bytes(cfg, int(b), length, /*training=*/false, backend,
                                  {.cols = Model::default_head_cols(cfg.vocab, b * length)})) >
             kEvalPlanBytes)
    b /= 2;
  return int(std::min<int64_t>(b, std::numeric_limits<int>::max()));
}

int eval_batch(const ModelConfig& cfg, const EvalOptions& opts, int64_t n_windows,
               const Backend& backend) {
  const int b = opts.batch > 0 ? opts.batch : default_eval_batch(cfg, opts.length, backend);
  return int(std::min<int64_t>(b, n_windows));
}

void check_eval_length(const ModelConfig& cfg, int64_t n_tokens, int L, const std::string& what,
                       const std::string& flag) {
  const int64_t n_targets = cfg.objective == Objective::mlm ? n_tokens
                                                           : std::max<int64_t>(n_tokens - 1, 0);
  if (L < 1) usage_error(flag, " ", L, " for ", what, " must be at least 1 token");
  if (int64_t(L) > n_targets)
    usage_error(flag, " ", L, " is longer than ", what, ": it has ",
                with_commas(uint64_t(n_tokens)), " tokens, so at most ",
                with_commas(uint64_t(n_targets)),
                " targets in a window; use a shorter length or more text");
  const int64_t limit = position_method(cfg.pos).max_positions(cfg);
  if (L > limit)
    usage_error(flag, " ", L, ": the model's --pos ", pos_name(cfg.pos), " has a table of ", limit,
                " positions and cannot run past it (no extrapolation); use lengths up to ", limit);
}

namespace {

// evaluate() on the model make(batch) builds on `backend`.
EvalResult run_eval(const ModelConfig& cfg, const Backend& backend,
                    const std::function<std::unique_ptr<Model>(int)>& make,
                    const std::vector<int32_t>& tokens, uint64_t source_bytes,
                    const EvalOptions& opts, const std::string& what) {
  const int L = opts.length;
  const bool mlm = cfg.objective == Objective::mlm;
  const int64_t n_targets = int64_t(tokens.size()) - (mlm ? 0 : 1);
  check_eval_length(cfg, int64_t(tokens.size()), L, what);
  if (opts.batch < 0) usage_error("batch ", opts.batch, " must be >= 1 (or 0 for the default)");
  if (mlm && opts.mode != EvalMode::nonoverlapping)
    usage_error("mode ", eval_mode_name(opts.mode), " gives each next-token target more left "
                "context; a masked LM (", what, " scored by an mlm model) sees both sides and is "
                "evaluated nonoverlapping");
  if (mlm) check_mask_rate(opts.mask_rate, "mask rate");
  if (opts.chunk_bos >= 0 && (opts.mode != EvalMode::second_half || opts.chunk_bos >= cfg.vocab))
    usage_error("a chunk BOS (id ", opts.chunk_bos, ", mode ", eval_mode_name(opts.mode),
                ") applies to mode second-half only, with an id below the vocab ", cfg.vocab);
  const MaskSpec spec{opts.mask_rate, cfg.mask_token};
  const uint64_t mask_seed = opts.mask_seed ? opts.mask_seed : kEvalMaskSeed;
  const std::vector<EvalWindow> windows = eval_windows(n_targets, L, opts.mode, opts.stride);

  EvalResult r;
  r.length = L;
  r.mode = opts.mode;
  r.stride = opts.mode == EvalMode::sliding ? opts.stride : L;
  r.batch = eval_batch(cfg, opts, int64_t(windows.size()), backend);
  r.windows = int64_t(windows.size());
  if (opts.per_position) {
    r.position_count.assign(size_t(L), 0);
    r.position_nats.assign(size_t(L), 0.0);
  }

  const auto t0 = std::chrono::steady_clock::now();
  const std::unique_ptr<Model> made = make(r.batch);
  Model& model = *made;
  // eval_memory counts these as host_bytes().
  std::vector<int32_t> in(size_t(r.batch) * L), tg(size_t(r.batch) * L);  // (B,L)
  std::vector<float> losses(size_t(r.batch) * L);                           // (B,L)
  std::vector<float> hits(mlm ? size_t(r.batch) * L : 0);                   // (B,L)

  for (size_t w0 = 0; w0 < windows.size();) {
    throw_if_stopped(str_cat("during length ", L, " after ", w0, " of ", windows.size(),
                             " windows"));
    // A batch: up to r.batch consecutive windows of the same length.
    const int T = windows[w0].len;
    size_t w1 = w0 + 1;
    while (w1 < windows.size() && int(w1 - w0) < r.batch && windows[w1].len == T) ++w1;
    const int B = int(w1 - w0);
    for (int b = 0; b < B; ++b) {
      const int32_t* src = tokens.data() + windows[w0 + b].start;
      int32_t* win = in.data() + size_t(b) * T;
      int32_t* tgt = tg.data() + size_t(b) * T;
      std::memcpy(win, src, sizeof(int32_t) * size_t(T));
      if (opts.chunk_bos >= 0) win[0] = opts.chunk_bos;
      if (mlm) {  // keyed by position in the stream: the same masking at every length
        mask_tokens(win, tgt, T, spec, mask_seed, windows[w0 + b].start);
      } else {
        // The rows past the stream's last target are not scored (second-half's last row).
        const int64_t have = std::min<int64_t>(T, n_targets - windows[w0 + b].start);
        std::memcpy(tgt, src + 1, sizeof(int32_t) * size_t(have));
        std::fill(tgt + have, tgt + T, 0);
      }
    }
    model.forward(in.data(), tg.data(), B, T);
    model.token_losses(losses.data());
    if (mlm) model.token_hits(hits.data());
    for (int b = 0; b < B; ++b) {
      const EvalWindow& w = windows[w0 + b];
      const float* row = losses.data() + size_t(b) * T;
      const int32_t* tgt = tg.data() + size_t(b) * T;
      double sum = 0;
      for (int t = w.score_from; t < w.score_end; ++t) {
        if (tgt[t] < 0) continue;  // an mlm position not masked
        sum += double(row[t]);
        r.tokens_scored += 1;
        if (mlm) r.correct += int64_t(hits[size_t(b) * T + size_t(t)]);
        if (opts.per_position) {
          r.position_count[size_t(t)] += 1;
          r.position_nats[size_t(t)] += double(row[t]);
        }
      }
      r.nats += sum;
    }
    r.tokens_forwarded += int64_t(B) * T;
    w0 = w1;
  }
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const int64_t expected = opts.mode == EvalMode::second_half
                               ? r.windows * (L - 1 - L / 2)
                               : n_targets;
  ALIBI_CHECK(mlm || r.tokens_scored == expected, "scored ", r.tokens_scored, " of ", expected);
  if (mlm && r.tokens_scored == 0)
    usage_error(what, " has no masked token at mask rate ", opts.mask_rate,
                "; use more text or a higher rate");

  r.loss = r.nats / double(r.tokens_scored);
  r.ppl = std::exp(r.loss);
  r.bits_per_token = r.loss / std::log(2.0);
  // Bits per byte: the scored targets stand for their share of the source's bytes (every
  // target but second-half's: all tokens but the first; for a byte tokenizer, n - 1 bytes).
  const double bytes_scored =
      double(source_bytes) * double(r.tokens_scored) / double(tokens.size());
  // A masked LM's loss is over a sample of the tokens, not a code length of the text.
  r.bits_per_byte = source_bytes > 0 && !mlm ? r.nats / std::log(2.0) / bytes_scored
                                             : std::numeric_limits<double>::quiet_NaN();
  r.accuracy = mlm ? double(r.correct) / double(r.tokens_scored)
                   : std::numeric_limits<double>::quiet_NaN();
  r.tokens_per_s = r.seconds > 0 ? double(r.tokens_scored) / r.seconds : 0.0;
  r.peak_rss_mb = peak_rss_mb();
  return r;
}

// run_eval's host memory for batches of B windows of L tokens: its inputs, targets, losses and
// (mlm) hits, the windows, and the per-position sums.
uint64_t host_bytes(int64_t B, int L, bool mlm, int64_t n_windows, bool per_position) {
  const uint64_t batch = sat_mul(sat_mul(uint64_t(B), uint64_t(L)), mlm ? 16 : 12);
  return sat_add(sat_add(batch, sat_mul(uint64_t(n_windows), sizeof(EvalWindow))),
                 per_position ? uint64_t(L) * (sizeof(int64_t) + sizeof(double)) : 0);
}

}  // namespace

MemoryPlan eval_memory(const ModelConfig& cfg, const Safetensors& weights,
                       const Backend& backend, int64_t n_tokens, const EvalOptions& opts) {
  const int L = opts.length;
  const bool mlm = cfg.objective == Objective::mlm;
  const int64_t n_windows = eval_window_count(n_tokens - (mlm ? 0 : 1), L, opts.mode,
                                              opts.stride);
  const int B = eval_batch(cfg, opts, n_windows, backend);
  MemoryPlan p = plan_in_use();
  p.add("weights", Model::file_weight_bytes(cfg, weights, backend));
  add_activations(p, Model::plan(cfg, B, L, /*training=*/false, backend,
                                 {.cols = Model::default_head_cols(cfg.vocab, int64_t(B) * L)}));
  p.add("activations", host_bytes(B, L, mlm, n_windows, opts.per_position));
  return p;
}

EvalResult evaluate(const ModelConfig& cfg, const ParamSet& params,
                    const std::vector<int32_t>& tokens, uint64_t source_bytes,
                    const EvalOptions& opts, const std::string& what) {
  auto make = [&](int batch) {
    auto m = std::make_unique<Model>(
        cfg, batch, opts.length, /*training=*/false, params.data.backend_ptr(),
        LogitsPlan{.cols = Model::default_head_cols(cfg.vocab, int64_t(batch) * opts.length)});
    m->params.copy_from(params);
    return m;
  };
  return run_eval(cfg, params.backend(), make, tokens, source_bytes, opts, what);
}

EvalResult evaluate(const ModelConfig& cfg, const Safetensors& weights,
                    const std::shared_ptr<Backend>& backend, const std::vector<int32_t>& tokens,
                    uint64_t source_bytes, const EvalOptions& opts, const std::string& what) {
  auto make = [&](int batch) {
    return std::make_unique<Model>(
        cfg, batch, opts.length, weights, backend,
        LogitsPlan{.cols = Model::default_head_cols(cfg.vocab, int64_t(batch) * opts.length)});
  };
  return run_eval(cfg, *backend, make, tokens, source_bytes, opts, what);
}

}  // namespace alibi
