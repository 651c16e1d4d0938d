#pragma once
// The position methods behind one interface: each is one unit in this folder (a PositionMethod)
// and one line in registry.cpp; the model calls the hooks and never asks which method it runs.
// A method declares its parameters and acts at the hooks it needs, doing nothing at the others:
//   embeddings   x (B,T,C) after the token embedding         sinusoidal, learned
//   q and k      (B,NH,T,HS) after the qkv projection          rotary, xpos
//   scores       the ScoreBias the attention kernel adds       alibi, t5, kerple-log,
//                                                               kerple-power, sandwich, fire
// and at the backward of each. Positions are absolute: the hooks take pos0, the position of the
// first row, so a KV cache or a window that starts later in a stream gets the same numbers as a
// full forward. A method that scales q and k by a power of the position (xpos) measures it from
// an anchor that every query and key meeting in one attention share (attention_anchor), so the
// numbers stay in range however far a stream has run; only distances reach the scores.
#include <cstdint>
#include <functional>
#include <limits>
#include <string>
#include <memory>
#include <vector>

#include "kernels/backend.h"
#include "model/config.h"
#include "model/params.h"
#include "position/pos_kind.h"

namespace alibi {

constexpr int64_t kAnyLength = std::numeric_limits<int64_t>::max();

// The anchor of n positions from `first`: their middle, first + ceil(n/2), as torchscale's xPos
// centres its positions. A full forward's is that of its T rows; a KV cache's that of its rows
// (KVCache::anchor), moved with them (PositionMethod::rebase_keys).
inline int64_t attention_anchor(int64_t first, int64_t n) { return first + (n + 1) / 2; }

class PositionMethod {
 public:
  virtual ~PositionMethod() = default;

  // ---- what the method is (no backend needed) -----------------------------------------------
  virtual PosKind kind() const = 0;
  // Its own fields of ModelConfig, as rows of model_fields() (model/config.h): key, flag, role,
  // range, and only_if(pos == this method), so they are compared and checked for its models.
  virtual void add_fields(Fields<ModelConfig>& /*rows*/) const {}
  // Fills the fields left at 0 from the length the weights were trained at (the run's --seq-len,
  // or the checkpoint's): learned's table, the length a context extension is relative to.
  virtual void fill_defaults(ModelConfig& /*c*/, int /*trained_len*/) const {}
  // The rules between its fields and the rest of the config: UsageError naming the flag.
  virtual void validate(const ModelConfig&) const {}
  // Its parameters, added to the table right after the token embeddings.
  virtual void add_params(const ModelConfig&, ParamLayout&) const {}
  // Positions it can run: learned ends with its table, the others go on (kAnyLength).
  virtual int64_t max_positions(const ModelConfig&) const { return kAnyLength; }
  // Whether a query's score bias depends on its position too, not on distances alone (fire
  // normalises by psi(max(thr, i))): a window far into a stream then differs from the same
  // tokens at position 0.
  virtual bool bias_sees_position() const { return false; }
  // Whether a cached key holds its own position (rotated into it, or added to the embedding it
  // came from), so that the row means something else at another position. A sliding cache keeps
  // its first row in view (Model::sink_rows) only where keys hold none.
  virtual bool keys_hold_position() const { return false; }
  // Whether score_bias's result holds only until its next call, which may rewrite what it points
  // to for another call's positions or context (fire's rows, alibi's interpolated slopes): a
  // batched step then runs each sequence's attention before asking for the next one's bias.
  virtual bool bias_per_call() const { return false; }
  // A stored parameter outside the method's domain (KERPLE's r below its clamp): UsageError
  // naming `where` (the file), the tensor, the element and the range. tensor(name) gives a
  // tensor of the layout, fp32, on the host.
  virtual void check_params(const ModelConfig& /*c*/,
                            const std::function<const float*(const std::string&)>& /*tensor*/,
                            const std::string& /*where*/) const {}

  // ---- the hooks, on the backend of the model that bound it ----------------------------------
  // Resolves its tensors in the layout and puts its tables (slopes, buckets) on the backend.
  virtual void bind(const ModelConfig&, const ParamLayout&, std::shared_ptr<Backend> be) {
    be_ = std::move(be);
  }
  // Plans what it keeps for calls spanning up to `distances` positions (a model's T, a cache's
  // capacity), after bind: when a model or a cache is planned, never in a step loop. A larger
  // plan replaces a smaller one.
  virtual void plan(int64_t /*distances*/) {}
  // Puts its parameters back in their domain (KERPLE's clamp), after initialisation and after
  // every optimizer update: the same on every rank.
  virtual void project(ParamSet& /*params*/) const {}
  // x (B,T,C) at positions pos0..; dx (B,T,C) -> grads (+=).
  virtual void embed_forward(float* /*x*/, int /*B*/, int /*T*/, int64_t /*pos0*/,
                             const ParamSet& /*params*/) const {}
  virtual void embed_backward(const float* /*dx*/, int /*B*/, int /*T*/, int64_t /*pos0*/,
                              ParamSet& /*grads*/) const {}
  // q, k (B,NH,T,HS) in place at positions pos0..pos0+T-1, measured from `anchor` where a
  // method needs one (attention_anchor); dq, dk in place.
  virtual void qk_forward(float* /*q*/, float* /*k*/, int /*B*/, int /*NH*/, int /*T*/,
                          int /*HS*/, int64_t /*pos0*/, int64_t /*anchor*/) const {}
  virtual void qk_backward(float* /*dq*/, float* /*dk*/, int /*B*/, int /*NH*/, int /*T*/,
                           int /*HS*/, int64_t /*pos0*/, int64_t /*anchor*/) const {}
  // Keys qk_forward left in a KV cache, rows [0, len) of `blocks` blocks of `rows` x HS, are
  // measured from an anchor `delta` positions later from now on (the cache moved its rows).
  virtual void rebase_keys(float* /*k*/, int64_t /*rows*/, int64_t /*len*/, int64_t /*blocks*/,
                           int /*HS*/, int64_t /*delta*/) const {}
  // Whether rebase_keys changes the keys (a KV cache that cannot, an f16 one, refuses it).
  virtual bool rebases_keys() const { return false; }
  // The bias the attention of `layer` adds to the scores of a call of shape s (its queries are
  // the last s.Tq of s.Tk positions, the first at absolute position pos0; a method may make a
  // table for the distances it spans, planned by plan()), and
  // where the gradient of the bias's table goes, with the table's shape (no data: nothing to
  // learn). Each forward asks score_bias of every layer in order; each backward asks
  // score_bias_grad of every layer, the last first, then score_bias_backward once (from the
  // tables' gradients to their parameters': alibi's slopes to theta).
  virtual ScoreBias score_bias(const ParamSet& /*params*/, int /*layer*/, const AttnShape& /*s*/,
                               int64_t /*pos0*/) const {
    return {};
  }
  virtual Tensor score_bias_grad(ParamSet& /*grads*/, int /*layer*/) const { return {}; }
  virtual void score_bias_backward(const ParamSet& /*params*/, ParamSet& /*grads*/) const {}

 protected:
  Backend& be() const { return *be_; }
  const std::shared_ptr<Backend>& backend_ptr() const { return be_; }

 private:
  std::shared_ptr<Backend> be_;
};

// A method of its own for a model to bind (registry.cpp).
std::unique_ptr<PositionMethod> make_position_method(PosKind kind);
// A shared, unbound instance for the questions that need no backend (validate, add_params, ...).
const PositionMethod& position_method(PosKind kind);

// ALiBi slopes m_h for any head count, in head order (paper.md); bias_max is MPT's
// alibi_bias_max (8: the paper's slopes, and BLOOM's).
std::vector<float> alibi_slopes(int NH, double bias_max = 8.0);
// The fixed slopes model `c` runs: alibi_slopes(heads, alibi_bias_max), each divided by
// sqrt(head size) where c.alibi_scaled (a bias added before the scale, as Falcon adds it).
std::vector<float> alibi_slopes(const ModelConfig& c);
// Trainable slopes (--slopes trainable): m_h = 2 m0_h sigmoid(theta_h), m0 the fixed slopes, so
// theta = 0 is exactly the fixed series and each slope stays in (0, 2 m0_h).
std::vector<float> alibi_trainable_slopes(const std::vector<float>& m0, const float* theta);
void alibi_trainable_slopes(const std::vector<float>& m0, const float* theta, float* out);
// The rotary family's per-pair tables (rotary with its --rope-scaling, xpos) for model `c`:
// pair i of a head (dimensions i and i + HS/2) turns by freq[i] radians per position and, for
// xpos, is scaled by exp(decay[i] n) at n positions from the anchor (q; k by exp(-decay[i] n));
// q and k each times mscale (YaRN's attention temperature, sqrt(1/t)). docs/rope-family.md.
struct RotaryTables {
  std::vector<double> freq;   // (HS/2)
  std::vector<double> decay;  // (HS/2) ln(zeta_i) / gamma; empty: none
  double mscale = 1.0;
};
RotaryTables rotary_tables(const ModelConfig& c);
// Causal T5 bucket of relative distance d >= 0.
int t5_bucket(int d, int num_buckets, int max_distance);
// t5_bucket(d) for d = 0..max_distance-1 (the attention kernel saturates past it).
std::vector<int32_t> t5_bucket_table(int num_buckets, int max_distance);

}  // namespace alibi
