// Model::forward_batch: one step of continuous batching (src/serve). Several sequences' new
// tokens, each against its own KV cache at its own positions, share the dense layers: the rows
// of all chunks go through the LayerNorms, the linear layers and the MLP as one (N, C) matrix, so
// the weights are read once per step instead of once per sequence. Only the attention (and the
// position hooks, which take each sequence's first position) runs per sequence, on its cache:
// attend_segments, which forward_cached uses too (a batch of one), runs the sequences'
// attentions together where it can.
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
  ALIBI_CHECK(int64_t(chunks.size()) <= logit_rows_, chunks.size(),
              " chunks; this model keeps the logits of ", logit_rows_, " rows (LogitsPlan::rows)");
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

// A cached segment's (1,NH,n,HS) keys and values appended after the rows in use of each head's
// (rows, HS) block of its cache; the attention sees each head's rows from `start` on.
AttentionForward Model::segment_attention(int l, const Segment& g) {
  Backend& be = *backend_;
  Activations::Layer& s = acts_.layer[l];
  const int NH = cfg.heads, HS = cfg.head_size();
  const int64_t off = g.row0 * cfg.d_model;  // the segment's (1,NH,n,HS) blocks start here
  KVCache& kv = *g.cache;
  float *q = s.q + off, *k = s.k + off, *v = s.v + off;
  be.split_heads(q, k, v, acts_.qkv + 3 * off, 1, g.n, NH, HS);
  pos_->qk_forward(q, k, 1, NH, g.n, HS, kv.pos, kv.anchor());
  AttnShape as{1, NH, g.n, kv.len + g.n, HS, kv.rows(), MatmulPrecision::fp32};
  as.context = kv.context > 0 ? kv.context : kv.capacity;
  as.kv = kv.type;
  const ScoreBias bias = pos_->score_bias(params, l, as, kv.pos);
  const size_t layer_off = (size_t(l) * NH * kv.rows() + kv.start) * HS;
  auto heads = [&](auto* p, int64_t rows) { return View(p, {1, NH, rows, HS}); };
  const AttnWorkspace ws{kv.workspace.data(), kv.workspace.size(), kv.workspace_threads};
  AttentionForward a{.s = as,
                     .q = heads(q, g.n),
                     .k = {},
                     .v = {},
                     .bias = bias,
                     .drop = AttnDropout{},
                     .out = heads(s.att + off, g.n),
                     .lse = {s.lse + g.row0 * NH, {1, NH, g.n}},
                     .ws = ws,
                     .k16 = {},
                     .v16 = {}};
  // The segment's keys and values appended to this layer's rows of the cache (float or
  // uint16_t, as its type), and the attention's view of those rows.
  auto append = [&](auto* cache, const float* x) {
    be.kv_append(cache + layer_off, kv.rows(), kv.len, x, NH, g.n, HS);
    return heads(cache + layer_off, kv.rows());
  };
  if (kv.type == KvType::f16) {
    a.k16 = append(kv.k16.data(), k);
    a.v16 = append(kv.v16.data(), v);
  } else {
    a.k = append(kv.k.data(), k);
    a.v = append(kv.v.data(), v);
  }
  return a;
}

void Model::attend_segments(int l, std::span<const Segment> segs) {
  Backend& be = *backend_;
  Activations::Layer& s = acts_.layer[l];
  const int NH = cfg.heads, HS = cfg.head_size();
  // The sequences' attentions together: one parallel region on the CPU instead of one each
  // (docs/serve.md). A bias valid for one call only runs each before the next is asked for.
  seg_attn_.clear();
  for (const Segment& g : segs) {
    seg_attn_.push_back(segment_attention(l, g));
    if (pos_->bias_per_call()) {
      be.run_all(seg_attn_.data(), seg_attn_.size());
      seg_attn_.clear();
    }
  }
  be.run_all(seg_attn_.data(), seg_attn_.size());
  for (const Segment& g : segs) {
    const int64_t off = g.row0 * cfg.d_model;
    be.merge_heads(s.atty + off, s.att + off, 1, g.n, NH, HS);
  }
}

}  // namespace alibi
