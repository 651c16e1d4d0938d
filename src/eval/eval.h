#pragma once
// Evaluation at any length: the perplexity of a model on a token stream, scored in windows of
// L tokens (paper.md, "Evaluation protocols").
//
// A stream of n tokens has n - 1 targets: input tokens[i] predicts tokens[i+1]. Windows cover
// input positions [start, start + len) and score the targets of rows [score_from, score_end):
//   nonoverlapping  windows [kL, kL + L), every row scored; the last window is shorter if the
//                   stream does not divide evenly, so every target is scored exactly once.
//   sliding, S      window k covers [kS, kS + L) and scores its last S rows (the first window
//                   scores all of its rows); the last window is cut at the end of the stream.
//                   Every target is scored exactly once, each with at least L - S tokens of
//                   context (except the first window's). S == L is the nonoverlapping split.
//   second-half     llama-perplexity's protocol: the whole chunks [kL, kL + L) of the n tokens
//                   only (floor(n / L) of them), each scoring rows [L/2, L - 1), so every scored
//                   target has at least L/2 tokens of context and a chunk's last row, whose
//                   target starts the next chunk, is not scored. Not every target is scored.
//                   With EvalOptions::chunk_bos, a chunk's first input is that BOS instead
//                   (llama-perplexity on a vocabulary whose add_bos_token is true); without,
//                   the tokens are the stream's (add_bos_token false: llama.cpp's default for
//                   the gpt-2, bloom and mpt pre-tokenizers).
// Windows of equal length run together in batches; the batching changes neither which tokens
// are scored nor (up to fp32 rounding) their losses.
//
// A masked LM (config objective mlm) is scored on BERT's corruption of the stream
// (data/masking.h) with a fixed seed: every token may be a target, windows are nonoverlapping
// windows of the n tokens, and the loss, perplexity and accuracy are over the masked tokens,
// which are the same at every length.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/memory_plan.h"
#include "core/safetensors.h"
#include "kernels/backend.h"
#include "model/config.h"
#include "model/params.h"

namespace alibi {

enum class EvalMode { nonoverlapping, sliding, second_half };

// Throws UsageError naming `flag` for an unknown name.
EvalMode parse_eval_mode(const std::string& name, const std::string& flag = "--mode");
const char* eval_mode_name(EvalMode mode);

struct EvalOptions {
  int length = 0;  // L: tokens per window (the context of the last row)
  EvalMode mode = EvalMode::nonoverlapping;
  int stride = 0;  // sliding only: S in 1..L, the targets each window scores
  int batch = 0;   // windows per forward; 0: default_eval_batch()
  bool per_position = false;  // fill EvalResult::position_*
  // second-half: the id each chunk's first input is replaced with, as llama-perplexity does with
  // BOS for a vocabulary that adds one (Tokenizer::leading_special); -1: none. Targets keep the
  // stream's tokens.
  int32_t chunk_bos = -1;
  // mlm: the masking of the stream (data/masking.h).
  float mask_rate = 0.15f;
  uint64_t mask_seed = 0;  // 0: kEvalMaskSeed, the one validation uses
};

struct EvalResult {
  int length = 0;
  EvalMode mode = EvalMode::nonoverlapping;
  int stride = 0;  // sliding: S; nonoverlapping and second-half: L
  int batch = 0;   // windows per forward used
  int64_t windows = 0;
  int64_t tokens_scored = 0;     // targets scored (n - 1 for a stream of n tokens, but in
                                 // second-half)
  int64_t tokens_forwarded = 0;  // rows run through the model (> scored for sliding)
  double nats = 0;               // sum of the scored targets' cross-entropy
  double loss = 0;               // nats / tokens_scored
  double ppl = 0;                // exp(loss)
  double bits_per_token = 0;     // loss / ln 2
  double bits_per_byte = 0;      // NaN when the source size is unknown (0)
  double seconds = 0;
  double tokens_per_s = 0;       // scored targets per second
  double peak_rss_mb = 0;        // the process's peak resident set (getrusage) after the run
  // mlm: scored (masked) tokens whose target was the model's first choice, and their share.
  int64_t correct = 0;
  double accuracy = 0;           // NaN for clm
  // per_position: for each row r in 0..L-1 of a window, how many scored targets sat there and
  // the sum of their losses. sum(position_nats) / sum(position_count) == loss.
  std::vector<int64_t> position_count;  // (L)
  std::vector<double> position_nats;    // (L)
};

// One window: inputs tokens[start, start + len), targets tokens[start + 1, start + len + 1),
// rows [score_from, score_end) scored. Only the scored rows' targets need to exist.
struct EvalWindow {
  int64_t start = 0;
  int len = 0;
  int score_from = 0;
  int score_end = 0;
};

// The windows of a stream with n_targets targets (n - 1 for n tokens), in order. Checks its
// arguments (UsageError): 1 <= length <= n_targets, sliding 1 <= stride <= length, second-half
// length >= 3 (a chunk scores L - 1 - L/2 rows).
std::vector<EvalWindow> eval_windows(int64_t n_targets, int length, EvalMode mode, int stride);

// How many windows eval_windows() gives, without making them.
int64_t eval_window_count(int64_t n_targets, int length, EvalMode mode, int stride);

// Windows per forward when EvalOptions::batch is 0: as many as fit kEvalBatchTokens tokens and
// kEvalPlanBytes of activations planned on `backend`, at least one.
int default_eval_batch(const ModelConfig& cfg, int length, const Backend& backend);
// Windows per forward evaluate() runs for opts on a text of n_windows windows.
int eval_batch(const ModelConfig& cfg, const EvalOptions& opts, int64_t n_windows,
               const Backend& backend);

// The memory evaluate() on a checkpoint file's weights (its `weights` on `backend`) holds for
// opts on a text of n_tokens tokens (core/memory_plan.h): what the process holds now, the
// weights, the activations of one batch of windows with the host's copies of its tokens and
// losses, the logits' block. Checks nothing: call it on lengths check_eval_length accepted.
MemoryPlan eval_memory(const ModelConfig& cfg, const Safetensors& weights,
                       const Backend& backend, int64_t n_tokens, const EvalOptions& opts);

// Whether a model of `cfg` can score windows of L tokens of a text of n_tokens tokens (`what`
// names it): UsageError naming `flag` and L for a length of 0, one longer than the text has
// targets (n_tokens - 1; an mlm model's: n_tokens), or one past the positions the model's
// method can run (learned: its table).
// evaluate() checks its length with it; a caller with several lengths checks them all first.
void check_eval_length(const ModelConfig& cfg, int64_t n_tokens, int L, const std::string& what,
                       const std::string& flag = "length");

// Scores `tokens` with the model (cfg, params) on the parameters' backend. `source_bytes` is
// the size of the text the tokens came from (for bits per byte; 0 if unknown); `what` names the
// text in error messages, e.g. "split 'data/valid.tok'". Throws UsageError for a length the text
// or the model cannot take (learned positions past their table included) before doing any work.
EvalResult evaluate(const ModelConfig& cfg, const ParamSet& params,
                    const std::vector<int32_t>& tokens, uint64_t source_bytes,
                    const EvalOptions& opts, const std::string& what = "the text");
// The same on a checkpoint file's weights (a Checkpoint's st), read in place on `backend`
// (Model's file constructor): the weights are not copied, and bf16/f16 matrices stay so.
EvalResult evaluate(const ModelConfig& cfg, const Safetensors& weights,
                    const std::shared_ptr<Backend>& backend, const std::vector<int32_t>& tokens,
                    uint64_t source_bytes, const EvalOptions& opts,
                    const std::string& what = "the text");

}  // namespace alibi
