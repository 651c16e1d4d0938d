#include "serve/engine.h"

#include <omp.h>

#include <algorithm>

#include "core/error.h"

namespace alibi::serve {
namespace {

using Clock = std::chrono::steady_clock;

double seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

}  // namespace

const char* finish_name(Finish f) {
  switch (f) {
    case Finish::length:
      return "length";
    case Finish::stop:
      return "stop";
    case Finish::cancelled:
      return "cancelled";
    case Finish::error:
      return "error";
    case Finish::none:
      break;
  }
  return "none";
}

Job::Job(Spec spec, std::shared_ptr<Waiter> waiter)
    : spec_(std::move(spec)), waiter_(std::move(waiter)), text_(spec_.stop) {
  ALIBI_CHECK(!spec_.prompt.empty() && spec_.max_tokens >= 1, "a job needs a prompt and tokens");
}

std::string Job::Output::text() const {
  std::string s;
  for (const std::string& p : pieces) s += p;
  return s;
}

Job::Output Job::take() {
  std::lock_guard lock(waiter_->mu);
  Output o = std::move(out_);
  out_ = Output{};
  return o;
}

bool Job::done() const {
  std::lock_guard lock(waiter_->mu);
  return done_;
}

int Job::completion_tokens() const {
  std::lock_guard lock(waiter_->mu);
  return generated_;
}

void Job::deliver(std::string text, TokenLogprob* lp, Finish finish, std::string error) {
  {
    std::lock_guard lock(waiter_->mu);
    if (made_ > generated_) out_.pieces.push_back(std::move(text));  // a new token
    if (lp) out_.logprobs.push_back(std::move(*lp));
    generated_ = made_;
    if (finish != Finish::none) {
      out_.finish = finish;
      out_.error = std::move(error);
      done_ = true;
    }
    ++waiter_->version;
  }
  waiter_->cv.notify_all();
}

Engine::Engine(Model& model, const Tokenizer& tok, const EngineOptions& o, Metrics& metrics)
    : model_(model),
      tok_(tok),
      o_(o),
      metrics_(metrics),
      threads_(omp_get_max_threads()),
      V_(o.sample_vocab > 0 ? std::min(o.sample_vocab, model.cfg.vocab) : model.cfg.vocab) {
  ALIBI_CHECK(o.max_batch >= 1 && o.chunk >= 1 && o.max_queue >= 0 && o.window >= 0);
  ALIBI_CHECK(model.max_T() >= o.step_rows(), "the model is planned for ", model.max_T(),
              " rows; the engine needs ", o.step_rows());
  // Every slot is allocated here, once: nothing grows while serving.
  for (int s = 0; s < o.max_batch; ++s) {
    slots_.push_back(o.window > 0 ? model.make_cache(o.window, /*sliding=*/true, o.kv_type)
                                  : model.make_cache(o.max_context, /*sliding=*/false, o.kv_type));
    free_.push_back(o.max_batch - 1 - s);  // slot 0 is taken first
  }
  running_.reserve(size_t(o.max_batch));
  chunks_.reserve(size_t(o.max_batch) * 2);
  chunk_jobs_.reserve(size_t(o.max_batch) * 2);
  thread_ = std::thread([this] { loop(); });
}

Engine::~Engine() { stop(); }

bool Engine::submit(const std::vector<std::shared_ptr<Job>>& jobs) {
  {
    std::lock_guard lock(mu_);
    if (cancel_all_ || stopping_) return false;
    // Free slots not yet claimed by the queue count as room too.
    if (queue_.size() + jobs.size() > free_.size() + size_t(o_.max_queue)) return false;
    const auto now = Clock::now();
    for (const auto& j : jobs) {
      j->submitted_ = now;
      queue_.push_back(j);
    }
  }
  cv_.notify_all();
  return true;
}

void Engine::cancel_all() {
  {
    std::lock_guard lock(mu_);
    cancel_all_ = true;
  }
  cv_.notify_all();
}

bool Engine::wait_idle(std::chrono::steady_clock::time_point deadline) {
  std::unique_lock lock(mu_);
  return cv_.wait_until(lock, deadline, [&] { return queue_.empty() && running_count_ == 0; });
}

void Engine::stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
    cancel_all_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

EngineGauges Engine::gauges() const {
  std::lock_guard lock(mu_);
  return {running_count_, int(queue_.size()), o_.max_batch};
}

// Moves queued sequences into free slots (cancelled ones end here). Under mu_.
bool Engine::admit() {
  while (!queue_.empty() && (!free_.empty() || cancel_all_)) {
    std::shared_ptr<Job> j = std::move(queue_.front());
    queue_.pop_front();
    if (j->cancelled_.load() || cancel_all_) {
      admitted_.push_back(std::move(j));  // ended by the engine thread, outside the lock
      continue;
    }
    j->slot_ = free_.back();
    free_.pop_back();
    ++running_count_;
    admitted_.push_back(std::move(j));
  }
  return !admitted_.empty() || !running_.empty();
}

void Engine::loop() {
  omp_set_num_threads(threads_);  // the slots' attention scratch was planned for these
  for (;;) {
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return stopping_ || !queue_.empty() || !running_.empty(); });
      if (!admit() && stopping_) break;
    }
    for (std::shared_ptr<Job>& j : admitted_) {
      if (j->slot_ < 0) {
        finish(*j, Finish::cancelled);
        continue;
      }
      KVCache& kv = slots_[size_t(j->slot_)];
      kv.start = kv.len = 0;
      kv.pos = 0;
      kv.keep = model_.sink_rows(kv, j->spec_.prompt.front(), o_.bos);
      // The length a context extension scales to: what generate sizes its cache for.
      kv.context = kv.sliding ? 0 : j->prompt_tokens() + std::max(j->spec_.max_tokens - 1, 0);
      j->sampler_ = std::make_unique<Sampler>(j->spec_.sampling, V_);
      running_.push_back(std::move(j));
    }
    admitted_.clear();
    try {
      step();
    } catch (const std::exception& e) {  // a bug or no memory: the batch ends, the server goes on
      for (const auto& j : running_)
        if (j->slot_ >= 0) finish(*j, Finish::error, e.what());
    }
    std::erase_if(running_, [](const std::shared_ptr<Job>& j) { return j->slot_ < 0; });
  }
}

void Engine::step() {
  bool cancel_all;
  {
    std::lock_guard lock(mu_);
    cancel_all = cancel_all_;
  }
  for (const auto& j : running_)
    if (cancel_all || j->cancelled_.load()) finish(*j, Finish::cancelled);
  // Decoding sequences first, one row each; then prompt chunks in the rows left.
  chunks_.clear();
  chunk_jobs_.clear();
  for (const auto& j : running_)
    if (j->slot_ >= 0 && j->has_pending_) {
      chunks_.push_back({&j->pending_, 1, &slots_[size_t(j->slot_)]});
      chunk_jobs_.push_back(j.get());
    }
  int budget = o_.chunk;
  for (const auto& j : running_) {
    const auto& prompt = j->spec_.prompt;
    if (budget == 0) break;
    if (j->slot_ < 0 || j->has_pending_ || j->fed_ >= prompt.size()) continue;
    KVCache& kv = slots_[size_t(j->slot_)];
    int n = int(std::min<size_t>(size_t(budget), prompt.size() - j->fed_));
    // As Generator::feed: a sliding window's chunk only fills free rows, and once the window is
    // full the prompt goes one token at a time, so each token sees exactly the last W.
    if (kv.sliding) n = kv.capacity > kv.len ? std::min(n, kv.capacity - kv.len) : 1;
    chunks_.push_back({prompt.data() + j->fed_, n, &kv});
    chunk_jobs_.push_back(j.get());
    budget -= n;
  }
  if (chunks_.empty()) return;
  const auto t0 = Clock::now();
  const float* logits = model_.forward_batch(chunks_);
  int rows = 0;
  for (const CachedChunk& c : chunks_) rows += c.n;
  metrics_.step(rows, int(chunks_.size()), seconds(Clock::now() - t0));
  const int64_t V = model_.cfg.vocab;
  for (size_t i = 0; i < chunks_.size(); ++i) {
    Job& j = *chunk_jobs_[i];
    if (j.has_pending_) {
      j.has_pending_ = false;
    } else {
      j.fed_ += size_t(chunks_[i].n);
      if (j.fed_ < j.spec_.prompt.size()) continue;
      metrics_.tokens(int64_t(j.fed_), 0);
    }
    const float* lg = logits + int64_t(i) * V;
    sampled(j, j.sampler_->sample(lg), lg);
  }
}

void Engine::sampled(Job& j, int32_t token, const float* logits) {
  const auto now = Clock::now();
  if (++j.made_ == 1)
    metrics_.time_to_first_token(seconds(now - j.submitted_));
  else
    metrics_.inter_token_latency(seconds(now - j.last_token_));
  j.last_token_ = now;
  metrics_.tokens(0, 1);
  TokenLogprob lp;
  if (j.spec_.logprobs >= 0) lp = token_logprob(logits, V_, token, j.spec_.logprobs);
  TokenLogprob* lpp = j.spec_.logprobs >= 0 ? &lp : nullptr;
  std::string text = j.text_.push(tok_.decode_one(token));
  Finish f = Finish::none;
  if (j.text_.stopped()) {
    f = Finish::stop;
  } else if (j.made_ == j.spec_.max_tokens) {
    f = Finish::length;
    text += j.text_.flush();
  }
  j.deliver(std::move(text), lpp, f);
  if (f != Finish::none) {
    release(j, f);
    return;
  }
  j.pending_ = token;
  j.has_pending_ = true;
}

void Engine::finish(Job& j, Finish f, const std::string& error) {
  j.deliver({}, nullptr, f, error);
  release(j, f);
}

void Engine::release(Job& j, Finish f) {
  metrics_.sequence_done(finish_name(f));
  if (j.slot_ < 0) return;
  {
    std::lock_guard lock(mu_);
    free_.push_back(j.slot_);
    --running_count_;
  }
  j.slot_ = -1;
  j.has_pending_ = false;
  cv_.notify_all();  // wait_idle
}

MemoryPlan serve_memory(const ModelConfig& cfg, const Safetensors& weights, const Backend& backend,
                        const EngineOptions& o) {
  MemoryPlan p = plan_in_use();
  p.add("weights", Model::file_weight_bytes(cfg, weights, backend));
  add_activations(
      p, Model::plan(cfg, 1, o.step_rows(), /*training=*/false, backend, {.rows = o.max_batch}));
  const bool sliding = o.window > 0;
  p.add("KV cache",
        sat_mul(uint64_t(o.max_batch),
                Model::cache_bytes(cfg, o.step_rows(), sliding ? o.window : o.max_context, sliding,
                                   backend, o.kv_type)));
  // A step's rows on the host, and the Sampler's idx_ and p_.
  p.add("logits", Model::host_logits_bytes(cfg, o.max_batch) +
                      uint64_t(cfg.vocab) * (sizeof(int32_t) + sizeof(double)));
  return p;
}

}  // namespace alibi::serve
