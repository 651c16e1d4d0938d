// The KV cache of incremental decoding (Model::make_cache and the calls that move its rows) and
// Model::forward_cached, one sequence's new tokens against it. forward_batch (model_batch.cpp)
// runs several sequences' caches in one step.
#include <climits>
#include <utility>

#include "core/error.h"
#include "model/model.h"

namespace alibi {

void Model::check_cache_type(KvType type) const {
  if (type == KvType::f32) return;
  if (!backend_->host_memory())
    usage_error("--kv-cache f16 runs on the CPU; on this device use --kv-cache f32");
  if (pos_->rebases_keys())
    usage_error("--kv-cache f16 holds keys that a --pos ", pos_name(cfg.pos),
                " model re-scales as its cache moves; use --kv-cache f32");
}

KVCache Model::make_cache(int capacity, bool sliding, KvType type) const {
  ALIBI_CHECK(capacity > 0);
  if (!cfg.causal)
    usage_error(
        "this model is an encoder (bidirectional attention, config causal false): it "
        "sees the tokens after each position, so it cannot generate; evaluate it");
  ALIBI_CHECK(head_cols_ == 0, "a chunked head gives losses only; decoding needs logits");
  ALIBI_CHECK(!sliding || capacity <= INT_MAX / 2, "window ", capacity);
  check_cache_type(type);
  KVCache kv;
  const CacheSizes sz = cache_sizes(cfg, maxT_, capacity, sliding, *backend_, type);
  kv.capacity = capacity;
  kv.sliding = sliding;
  kv.type = type;
  if (type == KvType::f16) {
    kv.k16 = DeviceArray<uint16_t>(backend_, sz.kv_elems);
    kv.v16 = DeviceArray<uint16_t>(backend_, sz.kv_elems);
  } else {
    kv.k = DeviceArray<float>(backend_, sz.kv_elems);
    kv.v = DeviceArray<float>(backend_, sz.kv_elems);
  }
  kv.workspace = DeviceArray<float>(backend_, sz.ws.floats);
  kv.workspace_threads = sz.ws.threads;
  pos_->plan(capacity);
  return kv;
}

void Model::move_rows(KVCache& to, const KVCache& from) const {
  const int64_t blocks = int64_t(cfg.layers) * cfg.heads;
  auto move = [&](auto* dst, const auto* src) {  // float or uint16_t, as the cache's type
    backend_->kv_move(dst, to.rows(), src, from.rows(), from.start, from.len, blocks,
                      cfg.head_size());
  };
  if (from.type == KvType::f16) {
    move(to.k16.data(), from.k16.data());
    move(to.v16.data(), from.v16.data());
  } else {
    move(to.k.data(), from.k.data());
    move(to.v.data(), from.v.data());
  }
}

void Model::advance_kept_rows(KVCache& cache, int by) const {
  const int64_t blocks = int64_t(cfg.layers) * cfg.heads, HS = cfg.head_size();
  const int64_t to = (int64_t(cache.start) + by) * HS;  // row start + by of each block
  auto move = [&](auto* rows) {                         // float or uint16_t, as the cache's type
    backend_->kv_move(rows + to, cache.rows(), rows, cache.rows(), cache.start, cache.keep, blocks,
                      int(HS));
  };
  if (cache.type == KvType::f16) {
    move(cache.k16.data());
    move(cache.v16.data());
  } else {
    move(cache.k.data());
    move(cache.v.data());
  }
}

int Model::sink_rows(const KVCache& cache, int32_t first, std::optional<int32_t> bos) const {
  return cache.sliding && cache.capacity >= 2 && bos && first == *bos && !pos_->keys_hold_position()
             ? 1
             : 0;
}

void Model::grow_cache(KVCache& cache, int capacity) const {
  KVCache bigger = make_cache(capacity, /*sliding=*/false, cache.type);
  move_rows(bigger, cache);
  bigger.len = cache.len;
  bigger.pos = cache.pos;
  if (bigger.type == KvType::f32)  // an f16 cache's method re-anchors nothing (make_cache)
    pos_->rebase_keys(bigger.k.data(), bigger.rows(), bigger.len, int64_t(cfg.layers) * cfg.heads,
                      cfg.head_size(), bigger.anchor() - cache.anchor());
  cache = std::move(bigger);
}

void Model::make_room(KVCache& cache, int n) const {
  if (n > cache.capacity)
    usage_error("a chunk of ", n, " tokens does not fit a KV cache of ", cache.capacity);
  const int over = cache.len + n - cache.capacity;
  if (over > 0) {
    if (!cache.sliding)
      usage_error("KV cache of ", cache.capacity, " tokens is full at position ", cache.pos,
                  "; use a sliding window or a larger cache");
    // Drop the oldest `over` rows of every (layer, head) after the kept ones, which move on to
    // just before the rows that stay: relative distances are unchanged, and a kept BOS is as far
    // from the queries as the window's oldest token.
    ALIBI_CHECK(over <= cache.len - cache.keep, "a chunk of ", n, " tokens would push out the ",
                cache.keep, " kept rows of a window of ", cache.capacity);
    if (cache.keep > 0) advance_kept_rows(cache, over);
    cache.start += over;
    cache.len -= over;
  }
  if (cache.start + cache.len + n > cache.rows()) {
    // Out of room behind the live rows: move them to the front of each (layer, head) block.
    // In a full window of a sliding cache (rows = 2 * capacity) that is once every `capacity`
    // tokens: O(1) rows copied per token, where shifting on every token copied `capacity`.
    move_rows(cache, cache);
    const int64_t was = cache.anchor();
    cache.start = 0;
    if (cache.type == KvType::f32)
      pos_->rebase_keys(cache.k.data(), cache.rows(), cache.len, int64_t(cfg.layers) * cfg.heads,
                        cfg.head_size(), cache.anchor() - was);
  }
}

const float* Model::forward_cached(const int32_t* tokens, int n, KVCache& cache) {
  ALIBI_CHECK(n > 0 && n <= maxT_, "chunk of ", n, " tokens; the plan allows ", maxT_);
  ALIBI_CHECK(n <= logit_rows_, "chunk of ", n, " tokens; this model keeps the logits of ",
              logit_rows_, " rows (LogitsPlan::rows): use forward_batch");
  make_room(cache, n);
  const Segment seg{0, n, &cache};
  B_ = 1;
  T_ = n;
  train_ = false;
  embed(tokens, 1, n, cache.pos, {&seg, 1});
  blocks_forward(1, n, cache.pos, {&seg, 1}, 0);
  head_forward(n);
  cache.len += n;
  cache.pos += n;
  return logits_to_host(n);
}

}  // namespace alibi
