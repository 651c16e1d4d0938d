// Model::forward_batch: one step of continuous batching (src/serve). Several sequences' new
// tokens, each against its own KV cache at its own positions, share the dense layers: the rows
// of all chunks go through the LayerNorms, the linear layers and the MLP as one (N, C) matrix, so
// the weights are read once per step instead of once per sequence. Only the attention (and the
// position hooks, which take each sequence's first position) runs per sequence, on its cache.
#include <algorithm>

#include "core/error.h"
#include "model/model.h"

namespace alibi {

const float* Model::forward_batch(std::span<const CachedChunk> chunks) {
  ALIBI_CHECK(!chunks.empty() && head_cols_ == 0, "forward_batch needs chunks and logits");
  const int64_t C = cfg.d_model;
  int64_t rows = 0;
  for (const CachedChunk& c : chunks) {
    ALIBI_CHECK(c.n > 0 && c.cache != nullptr && c.tokens != nullptr, "an empty chunk");
    // Refused before any cache changes: a chunk that cannot fit its cache.
    if (c.n > c.cache->capacity || (!c.cache->sliding && c.cache->len + c.n > c.cache->capacity))
      usage_error("a chunk of ", c.n, " tokens does not fit a KV cache of ", c.cache->capacity,
                  " tokens holding ", c.cache->len);
    rows += c.n;
  }
  ALIBI_CHECK(rows <= int64_t(maxB_) * maxT_, "a batch of ", rows, " rows exceeds the plan ", maxB_,
              "x", maxT_);
  segs_.clear();
  batch_tokens_.clear();
  int64_t row0 = 0;
  for (const CachedChunk& c : chunks) {
    make_room(*c.cache, c.n);
    segs_.push_back({row0, c.n, c.cache});
    batch_tokens_.insert(batch_tokens_.end(), c.tokens, c.tokens + c.n);
    row0 += c.n;
  }
  B_ = 1;
  T_ = int(rows);
  train_ = false;
  embed(batch_tokens_.data(), 1, T_, 0, segs_);
  blocks_forward(1, T_, 0, segs_, 0);
  // Each chunk's last row of the final LayerNorm moves to row i (never below it, and every
  // source lies past the rows written before it), then the head runs on those rows only: a
  // prefill chunk of n tokens costs one row of the head, not n.
  for (size_t i = 0; i < segs_.size(); ++i) {
    const int64_t last = segs_[i].row0 + segs_[i].n - 1;
    if (last != int64_t(i))
      backend_->copy(acts_.lnf + int64_t(i) * C, acts_.lnf + last * C, size_t(C) * sizeof(float));
  }
  const int64_t k = int64_t(segs_.size());
  head_forward(k);
  T_ = int(k);  // logits() and logits_row() see the k rows
  for (const Segment& g : segs_) {
    g.cache->len += g.n;
    g.cache->pos += g.n;
  }
  return logits_to_host(k);
}

}  // namespace alibi
