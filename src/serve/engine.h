#pragma once
// Continuous batching (docs/serve.md): one thread owns the model and runs steps; sequences join
// and leave the running batch between any two steps.
//
//   submit -> queue (at most --max-queue sequences; more: refused, the server answers 429)
//          -> a free KV cache slot (--max-batch slots, each --max-context rows, or a sliding
//             window of --window, all allocated when the engine starts)
//          -> steps: every decoding sequence feeds its last token (one row), and prompts are
//             prefilled in the rows left (at most --chunk per step, first come first served),
//             so a long prompt never stalls the sequences already decoding
//          -> Model::forward_batch: the rows of all sequences through the dense layers at once,
//             each sequence's attention on its own cache at its own positions
//          -> per sequence: the sampler of generate (same seed, same draws), its text through
//             StopText, its output handed to the request's handler
//          -> done (max_tokens, a stop string, cancelled): its slot is free for the next step.
// A sequence's tokens are those `alibi generate` makes from the same prompt and sampling options:
// the same Sampler draws from logits equal to generate's to fp32 summation order.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "core/memory_plan.h"
#include "data/tokenizer.h"
#include "generate/generate.h"
#include "model/model.h"
#include "serve/metrics.h"
#include "serve/text.h"

namespace alibi::serve {

struct EngineOptions {
  int max_batch = 8;       // KV cache slots: sequences in the running batch
  int max_context = 2048;  // rows of a slot without a window: prompt + max_tokens - 1 at most
  int window = 0;          // > 0: each slot is a sliding window of this many tokens
  int chunk = 128;         // prompt rows per step, over all prefilling sequences
  int max_queue = 64;      // sequences waiting for a slot
  int sample_vocab = 0;    // as GenerateOptions::sample_vocab
  KvType kv_type = KvType::f32;  // as GenerateOptions::kv_type
  std::optional<int32_t> bos;    // as GenerateOptions::bos
  // Rows a step can hold: every slot decoding plus one chunk (the model's plan).
  int step_rows() const { return max_batch + chunk; }
};

enum class Finish { none, length, stop, cancelled, error };
const char* finish_name(Finish f);  // OpenAI's finish_reason: "length", "stop"; ours otherwise

// The waiting side of one request: the engine bumps it after every change to one of the
// request's sequences, and the handler waits on it.
struct Waiter {
  std::mutex mu;
  std::condition_variable cv;
  uint64_t version = 0;
};

// One sequence: a prompt continued for max_tokens (one choice of a request).
class Job {
 public:
  struct Spec {
    std::vector<int32_t> prompt;  // not empty
    int max_tokens = 16;          // >= 1
    SamplingOptions sampling;
    std::vector<std::string> stop;
    int logprobs = -1;  // -1: none
  };
  // What the sequence made since the last take(): per token its text as it may be sent (maybe
  // empty: held back; the last one holds what was held back) and, when asked, its logprobs.
  struct Output {
    std::vector<std::string> pieces;
    std::vector<TokenLogprob> logprobs;  // empty, or one per piece
    Finish finish = Finish::none;        // set once, with the last output
    std::string error;                   // Finish::error's message
    std::string text() const;            // the pieces joined
  };
  Job(Spec spec, std::shared_ptr<Waiter> waiter);

  // Handler side (any thread).
  Output take();  // under waiter->mu
  bool done() const;
  void cancel() { cancelled_.store(true); }  // the engine frees its slot at its next step
  int completion_tokens() const;
  int prompt_tokens() const { return int(spec_.prompt.size()); }
  Waiter& waiter() { return *waiter_; }

 private:
  friend class Engine;
  void deliver(std::string text, TokenLogprob* lp, Finish finish, std::string error = {});

  const Spec spec_;
  std::shared_ptr<Waiter> waiter_;
  std::atomic<bool> cancelled_{false};
  // Under waiter_->mu: what take() hands over, and the totals.
  Output out_;
  bool done_ = false;
  int generated_ = 0;
  // The engine thread's own.
  using Clock = std::chrono::steady_clock;
  Clock::time_point submitted_, last_token_;
  int slot_ = -1;
  size_t fed_ = 0;  // prompt tokens fed
  bool has_pending_ = false;
  int32_t pending_ = 0;  // the last sampled token, fed at the next step
  int made_ = 0;         // tokens sampled
  std::unique_ptr<Sampler> sampler_;
  StopText text_;
};

class Engine {
 public:
  // Plans the slots on `model` (planned for B = 1, T >= o.step_rows(), inference) for the
  // calling thread's OpenMP thread count, which the engine's thread then uses.
  Engine(Model& model, const Tokenizer& tok, const EngineOptions& o, Metrics& metrics);
  ~Engine();  // stop()
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Queues the sequences of one request, all or none: false where the queue lacks room for
  // them (or the engine is stopping).
  bool submit(const std::vector<std::shared_ptr<Job>>& jobs);
  // Every queued and running sequence ends (Finish::cancelled) at the next step.
  void cancel_all();
  // Waits until no sequence runs or waits, or until `deadline`; true if idle.
  bool wait_idle(std::chrono::steady_clock::time_point deadline);
  void stop();  // cancels everything and ends the thread
  EngineGauges gauges() const;
  const EngineOptions& options() const { return o_; }

 private:
  void loop();
  bool admit();  // under mu_; false when there is nothing to do
  void step();
  // Ends a sequence: its last output and its slot; release only frees the slot (the output
  // with its finish reason was delivered).
  void finish(Job& job, Finish f, const std::string& error = {});
  void release(Job& job, Finish f);
  void sampled(Job& job, int32_t token, const float* logits);

  Model& model_;
  const Tokenizer& tok_;
  const EngineOptions o_;
  Metrics& metrics_;
  const int threads_;  // OpenMP threads of the constructing thread
  const int V_;
  std::vector<KVCache> slots_;
  std::vector<std::shared_ptr<Job>> running_;  // the engine thread's; admission order

  mutable std::mutex mu_;  // guards everything below
  std::condition_variable cv_;
  std::deque<std::shared_ptr<Job>> queue_;
  std::vector<std::shared_ptr<Job>> admitted_;  // from the queue, for the engine to start
  std::vector<int> free_;                       // free slots
  int running_count_ = 0;
  bool cancel_all_ = false, stopping_ = false;
  std::thread thread_;

  // Per step, kept for their capacity.
  std::vector<CachedChunk> chunks_;
  std::vector<Job*> chunk_jobs_;
};

// The memory `alibi serve` holds (core/memory_plan.h): what the process holds now, the model on
// a checkpoint's `weights` planned for steps of o.step_rows() rows, the o.max_batch slots' KV
// caches, and the logits on the host.
MemoryPlan serve_memory(const ModelConfig& cfg, const Safetensors& weights, const Backend& backend,
                        const EngineOptions& o);

}  // namespace alibi::serve
