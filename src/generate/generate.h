#pragma once
// The generation job: sampling (greedy, temperature, top-k, top-p) and a generation loop over a
// KV cache that continues a sequence past the training length (docs/generate.md).
//
//   prompt tokens -> prefill in chunks of model.max_T() -> logits of the last token
//   -> sample -> feed the token back (one row against the cache) -> ...
//
// Everything is deterministic: draw n of a sampler uses hash64(seed, stream, n), so a fixed seed
// reproduces a run whatever the thread count or timing.
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "model/model.h"

namespace alibi {

struct SamplingOptions {
  float temperature = 1.0f;  // 0: greedy (argmax)
  int top_k = 0;             // keep the k most likely tokens; 0: all
  float top_p = 1.0f;        // keep the smallest most-likely set with probability >= top_p; 1: all
  uint64_t seed = 0;
  // Throws UsageError naming --temperature / --top-k / --top-p for a value out of range.
  void validate() const;
};

// First index of the largest logit (V).
int32_t argmax(const float* logits, int V);

// Draws token ids from logits. Draw n uses the uniform hash64(seed, kStream, n) (53 bits), so the
// n-th token depends only on the seed, n and the logits. Scratch is allocated once.
//   temperature 0: argmax (top-k / top-p are irrelevant).
//   otherwise p ~ softmax(logits / temperature) in fp64, restricted to the top_k largest (ties
//   broken by the smaller id), then to the shortest prefix of those, most likely first, whose
//   probability reaches top_p of what is left (at least one token); renormalised; inverse CDF.
class Sampler {
 public:
  Sampler(const SamplingOptions& o, int V);
  int32_t sample(const float* logits);  // logits (V)

 private:
  SamplingOptions o_;
  int V_;
  uint64_t counter_ = 0;
  std::vector<int32_t> idx_;  // (V) candidate ids, most likely first once sorted
  std::vector<double> p_;     // (V) unnormalised probabilities of idx_
};

// Streams bytes to a terminal without splitting a UTF-8 character: a BPE model with byte
// fallback (or a byte model) can emit a multi-byte character one token at a time. push() returns
// what can be written now and keeps an incomplete trailing sequence (at most 3 bytes) back.
// Bytes that can never become valid UTF-8 are passed through unchanged.
class Utf8Stream {
 public:
  std::string push(std::string_view bytes);
  std::string flush();  // everything held back

 private:
  std::string pending_;
};

struct GenerateOptions {
  SamplingOptions sampling;
  // Sliding KV window: attention sees the last `window` tokens (the token itself included; with
  // a kept BOS, `bos` below, the BOS and the last window - 1) and the cache holds exactly that
  // many rows, so memory is bounded for endless streams. 0: keep
  // every token (the cache is sized once per call for the prompt plus max_new tokens).
  int window = 0;
  // Sample only among ids [0, sample_vocab): a tokenizer may have fewer tokens than the model
  // has embedding rows (BLOOM pads 250,680 to 250,880), and a padding row is no text. 0: all.
  int sample_vocab = 0;
  KvType kv_type = KvType::f32;  // how the cache holds keys and values (--kv-cache)
  // The BOS the tokenizer puts before a prompt (Tokenizer::leading_special): a sequence that
  // starts with it keeps it in a sliding window (Model::sink_rows).
  std::optional<int32_t> bos;
};

struct GenerateStats {
  int64_t prompt_tokens = 0;  // fed before the first sample (a pending token included)
  double prompt_s = 0;
  int64_t new_tokens = 0;
  double decode_s = 0;
  bool stopped = false;  // a stop request (core/signals.h) ended it before max_new tokens
  GenerateStats& operator+=(const GenerateStats& o);
};

// One sequence being continued. Successive generate() calls continue the same sequence (the
// cache and the last sampled token are kept), which is what --interactive needs.
class Generator {
 public:
  // token, and the logits (V) it was sampled from
  using OnToken = std::function<void(int32_t token, const float* logits)>;

  // `model` (planned with B >= 1, training = false) must outlive the generator; its max_T() is
  // the prefill chunk.
  Generator(Model& model, const GenerateOptions& o);

  // Feeds `prompt` after the context so far, then samples max_new tokens, calling on_token for
  // each as soon as it is made. The prompt may be empty when there is context to continue.
  // Throws UsageError for a learned-position model asked to run past its table (before doing
  // any work) and when there is nothing to continue.
  GenerateStats generate(const std::vector<int32_t>& prompt, int max_new,
                         const OnToken& on_token = nullptr);

  // Throws the UsageError generate() would throw before doing any work: a learned-position
  // model asked for positions past its table, or nothing to continue.
  void check(int64_t prompt_tokens, int max_new) const;
  // The same for a sequence at position `pos` with `to_feed` tokens to feed and, with
  // has_logits, the logits of its last token to continue from (a new sequence: 0, n, false).
  static void check_request(const ModelConfig& cfg, int64_t pos, int64_t to_feed,
                            bool has_logits, int max_new);
  // Tokens a call that feeds `to_feed` tokens and samples max_new puts into the cache: the last
  // sample is only fed by the next call.
  static int64_t cache_tokens(int64_t to_feed, int max_new) {
    return to_feed + (max_new > 1 ? max_new - 1 : 0);
  }

  // Tokens of the sequence so far (fed to the model or sampled and pending).
  int64_t length() const { return cache_.pos + (has_pending_ ? 1 : 0); }
  const KVCache& cache() const { return cache_; }

 private:
  const float* feed(const int32_t* tokens, int64_t n);  // logits (V) of the last token
  void reserve(int64_t more);                           // no window: room for `more` tokens

  Model& model_;
  Sampler sampler_;
  KVCache cache_;
  bool has_pending_ = false;  // the last sampled token, not yet fed
  int32_t pending_ = 0;
  std::vector<float> last_logits_;  // (V) the logits the next sample would be drawn from
  bool has_logits_ = false;
  std::vector<int32_t> feed_buf_;
  std::optional<int32_t> bos_;
};

// The sequences `alibi generate` decodes at once: one, so its model keeps the logits of one row
// (LogitsPlan::rows).
inline constexpr int kGenerateSequences = 1;

// The memory generation holds (core/memory_plan.h): what the process holds now, the model on a
// checkpoint's `weights` planned for chunks of `chunk` rows (Model's file constructor), a KV
// cache for `capacity` tokens (sliding: a window of them), and the logits on the host (a chunk's,
// the last token's and the sampler's).
MemoryPlan generate_memory(const ModelConfig& cfg, const Safetensors& weights,
                           const Backend& backend, int chunk, int capacity, bool sliding,
                           KvType kv_type);

}  // namespace alibi
