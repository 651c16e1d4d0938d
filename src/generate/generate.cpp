#include "generate/generate.h"

#include <algorithm>
#include <chrono>
#include <climits>
#include <cmath>
#include <cstring>
#include <numeric>

#include "core/error.h"
#include "core/signals.h"
#include "core/rng.h"

namespace alibi {

namespace {

// Stream id of sampling draws, so that a sampler seeded like the training run (same --seed)
// draws numbers unrelated to its initialisation or data order.
constexpr uint64_t kSampleStream = 0x53414D504C45ull;  // "SAMPLE"

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

}  // namespace

void SamplingOptions::validate() const {
  if (!(temperature >= 0.0f) || !std::isfinite(temperature))
    usage_error("--temperature ", temperature, " must be a finite number >= 0 (0: greedy)");
  if (top_k < 0) usage_error("--top-k ", top_k, " must be >= 0 (0: no top-k cut)");
  if (!(top_p > 0.0f && top_p <= 1.0f))
    usage_error("--top-p ", top_p, " must be in (0, 1] (1: no nucleus cut)");
}

int32_t argmax(const float* logits, int V) {
  int32_t best = 0;
  for (int32_t i = 1; i < V; ++i)
    if (logits[i] > logits[best]) best = i;
  return best;
}

Sampler::Sampler(const SamplingOptions& o, int V) : o_(o), V_(V), idx_(V), p_(V) {
  o_.validate();
  ALIBI_CHECK(V > 0);
}

int32_t Sampler::sample(const float* logits) {
  const uint64_t n = counter_++;
  if (o_.temperature == 0.0f) return argmax(logits, V_);
  // More likely first; equal logits by id, so the candidate set never depends on sort details.
  auto more_likely = [logits](int32_t a, int32_t b) {
    return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
  };
  std::iota(idx_.begin(), idx_.end(), 0);
  int K = V_;
  if (o_.top_k > 0 && o_.top_k < V_) {
    K = o_.top_k;
    std::partial_sort(idx_.begin(), idx_.begin() + K, idx_.end(), more_likely);
  } else if (o_.top_p < 1.0f) {
    std::sort(idx_.begin(), idx_.end(), more_likely);
  }
  float mx = logits[idx_[0]];
  for (int i = 1; i < K; ++i) mx = std::max(mx, logits[idx_[i]]);
  const double inv_t = 1.0 / double(o_.temperature);
  double total = 0.0;
  for (int i = 0; i < K; ++i) {
    p_[i] = std::exp((double(logits[idx_[i]]) - double(mx)) * inv_t);
    total += p_[i];
  }
  if (o_.top_p < 1.0f) {  // idx_[0..K) is sorted here
    const double target = double(o_.top_p) * total;
    double cum = 0.0;
    int keep = 0;
    while (keep < K) {
      cum += p_[keep++];
      if (cum >= target) break;
    }
    K = keep;
    total = cum;
  }
  const double u = double(hash64(o_.seed, kSampleStream, n) >> 11) * 0x1p-53 * total;
  double cum = 0.0;
  for (int i = 0; i < K; ++i) {
    cum += p_[i];
    if (u < cum) return idx_[i];
  }
  return idx_[K - 1];  // u within rounding of the total
}

std::string Utf8Stream::push(std::string_view bytes) {
  pending_.append(bytes);
  const size_t n = pending_.size();
  size_t cut = n;
  // The last lead byte within 3 bytes of the end: hold it back if its sequence is incomplete.
  for (size_t back = 1; back <= 3 && back <= n; ++back) {
    const unsigned char c = static_cast<unsigned char>(pending_[n - back]);
    if ((c & 0xC0) == 0x80) continue;  // continuation byte
    const size_t need = (c & 0xE0) == 0xC0   ? 2
                        : (c & 0xF0) == 0xE0 ? 3
                        : (c & 0xF8) == 0xF0 ? 4
                                             : 1;
    if (need > back) cut = n - back;
    break;
  }
  std::string out = pending_.substr(0, cut);
  pending_.erase(0, cut);
  return out;
}

std::string Utf8Stream::flush() {
  std::string out;
  out.swap(pending_);
  return out;
}

GenerateStats& GenerateStats::operator+=(const GenerateStats& o) {
  prompt_tokens += o.prompt_tokens;
  prompt_s += o.prompt_s;
  new_tokens += o.new_tokens;
  decode_s += o.decode_s;
  stopped = stopped || o.stopped;
  return *this;
}

Generator::Generator(Model& model, const GenerateOptions& o)
    : model_(model),
      sampler_(o.sampling,
               o.sample_vocab > 0 ? std::min(o.sample_vocab, model.cfg.vocab) : model.cfg.vocab),
      last_logits_(model.cfg.vocab),
      bos_(o.bos) {
  if (o.window < 0) usage_error("--window ", o.window, " must be >= 0 (0: no window)");
  model_.check_cache_type(o.kv_type);
  if (o.window > 0) cache_ = model_.make_cache(o.window, /*sliding=*/true, o.kv_type);
  cache_.type = o.kv_type;  // without a window: the type reserve() grows the cache in
}

// Prefill in chunks of max_T() rows. With a window, a chunk only fills free rows: a chunk that
// pushed rows out of a full window would hide from its first queries keys they should still
// see. So once the window is full the prompt goes one token at a time, and every token, from the
// prompt or sampled, attends to exactly the last W tokens.
const float* Generator::feed(const int32_t* tokens, int64_t n) {
  const float* lg = nullptr;
  for (int64_t i = 0; i < n;) {
    if (i > 0 && stop_signal()) break;  // a stop request: the context keeps what was fed
    int64_t step = std::min<int64_t>(model_.max_T(), n - i);
    if (cache_.sliding) {
      const int room = cache_.capacity - cache_.len;
      step = room > 0 ? std::min<int64_t>(step, room) : 1;
    }
    // forward_batch with one chunk is forward_cached with the head on the chunk's last row
    // only: the logits of a prompt's other rows are never read, and at a large vocabulary the
    // head is a large part of a prompt's work (BLOOM's is 46% of its weights).
    const CachedChunk chunk{tokens + i, int(step), &cache_};
    lg = model_.forward_batch({&chunk, 1});
    i += step;
  }
  return lg;
}

void Generator::reserve(int64_t more) {
  const int64_t need = cache_.len + more;
  if (need <= cache_.capacity) return;
  if (need > INT_MAX)
    usage_error("a context of ", need, " tokens does not fit one KV cache (at most ", INT_MAX,
                "); use --window");
  // Grows once per call (per turn in --interactive): the rows so far move to a cache sized for
  // the whole request, so decoding itself never reallocates.
  model_.grow_cache(cache_, int(need));
}

void Generator::check(int64_t prompt_tokens, int max_new) const {
  check_request(model_.cfg, cache_.pos, prompt_tokens + (has_pending_ ? 1 : 0), has_logits_,
                max_new);
}

void Generator::check_request(const ModelConfig& c, int64_t pos, int64_t to_feed,
                              bool has_logits, int max_new) {
  if (max_new < 0) usage_error("--max-new-tokens ", max_new, " must be >= 0");
  if (to_feed == 0 && !has_logits)
    usage_error("the prompt is empty and there is no context to continue; give some text");
  // Positions the model will have seen at the end: the last sampled token is only fed by the
  // next call, so it needs no position yet.
  const int64_t end = pos + cache_tokens(to_feed, max_new);
  const int64_t limit = position_method(c.pos).max_positions(c);
  if (end > limit)
    usage_error("--max-new-tokens ", max_new, ": a context of ", pos + to_feed,
                " tokens plus ", max_new, " new ones needs ", end, " positions, but this --pos ",
                pos_name(c.pos), " model has a table of ", limit, " (", pos_name(c.pos),
                " embeddings cannot extrapolate; a method without a table runs past the training",
                " length)");
}

MemoryPlan generate_memory(const ModelConfig& cfg, const Safetensors& weights,
                           const Backend& backend, int chunk, int capacity, bool sliding,
                           KvType kv_type) {
  MemoryPlan p = plan_in_use();
  p.add("weights", Model::file_weight_bytes(cfg, weights, backend));
  add_activations(p, Model::plan(cfg, 1, chunk, /*training=*/false, backend,
                                 {.rows = kGenerateSequences}));
  p.add("KV cache", Model::cache_bytes(cfg, chunk, capacity, sliding, backend, kv_type));
  // That row on the host, the Generator's last_logits_, the Sampler's idx_ and p_.
  const uint64_t V = uint64_t(cfg.vocab);
  p.add("logits",
        Model::host_logits_bytes(cfg, 1) + V * (sizeof(float) + sizeof(int32_t) + sizeof(double)));
  return p;
}

GenerateStats Generator::generate(const std::vector<int32_t>& prompt, int max_new,
                                  const OnToken& on_token) {
  const ModelConfig& c = model_.cfg;
  for (int32_t t : prompt)
    if (t < 0 || t >= c.vocab)
      usage_error("prompt token id ", t, " is outside the model's vocabulary of ", c.vocab);
  feed_buf_.clear();
  if (has_pending_) feed_buf_.push_back(pending_);
  feed_buf_.insert(feed_buf_.end(), prompt.begin(), prompt.end());
  check(int64_t(prompt.size()), max_new);
  if (!cache_.sliding) reserve(cache_tokens(int64_t(feed_buf_.size()), max_new));

  GenerateStats st;
  const auto t0 = Clock::now();
  const float* lg = last_logits_.data();
  if (cache_.pos == 0 && !feed_buf_.empty())
    cache_.keep = model_.sink_rows(cache_, feed_buf_.front(), bos_);
  if (!feed_buf_.empty()) lg = feed(feed_buf_.data(), int64_t(feed_buf_.size()));
  has_pending_ = false;
  st.prompt_tokens = int64_t(feed_buf_.size());
  st.prompt_s = seconds_since(t0);

  const auto t1 = Clock::now();
  int i = 0;
  for (; i < max_new; ++i) {
    if (stop_signal()) {  // a stop request: the logits of the context so far stay valid
      if (lg != last_logits_.data())
        std::memcpy(last_logits_.data(), lg, last_logits_.size() * sizeof(float));
      break;
    }
    const int32_t tok = sampler_.sample(lg);
    if (on_token) on_token(tok, lg);
    if (i + 1 < max_new) {
      lg = feed(&tok, 1);
    } else {
      pending_ = tok;
      has_pending_ = true;
    }
  }
  st.new_tokens = i;
  st.stopped = i < max_new;
  st.decode_s = seconds_since(t1);
  if (max_new == 0 && lg != last_logits_.data())
    std::memcpy(last_logits_.data(), lg, last_logits_.size() * sizeof(float));
  has_logits_ = !has_pending_;
  return st;
}

}  // namespace alibi
