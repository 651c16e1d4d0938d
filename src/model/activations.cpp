#include "model/activations.h"

#include <algorithm>

namespace alibi {

void describe_activations(ArenaPlanner& p, const ModelConfig& c, int B, int T,
                          const AttnWorkspace& attn, Activations& a, int64_t head_cols,
                          int64_t logit_rows) {
  const int64_t N = int64_t(B) * T, C = c.d_model, F = c.ffn, V = c.vocab;
  const int64_t NH = c.heads, HS = c.head_size();
  const Pass fwd = Pass::forward, bwd = Pass::backward;
  const int kept = p.training() ? c.layers : 1;
  a.layer.resize(size_t(c.layers));
  for (int l = 0; l < kept; ++l) {
    Activations::Layer& s = a.layer[size_t(l)];
    const std::string h = "h." + std::to_string(l) + ".";
    s.x_in = p.take<float>(h + "x_in", {N, C}, fwd);
    s.ln1 = p.take<float>(h + "ln1", {N, C}, fwd);
    s.ln1_mean = p.take<float>(h + "ln1_mean", {N}, fwd);
    s.ln1_rstd = p.take<float>(h + "ln1_rstd", {N}, fwd);
    s.q = p.take<float>(h + "q", {B, NH, T, HS}, fwd);
    s.k = p.take<float>(h + "k", {B, NH, T, HS}, fwd);
    s.v = p.take<float>(h + "v", {B, NH, T, HS}, fwd);
    s.att = p.take<float>(h + "att", {B, NH, T, HS}, fwd);
    s.lse = p.take<float>(h + "lse", {B, NH, T}, fwd);
    s.atty = p.take<float>(h + "atty", {N, C}, fwd);
    s.x_mid = p.take<float>(h + "x_mid", {N, C}, fwd);
    s.ln2 = p.take<float>(h + "ln2", {N, C}, fwd);
    s.ln2_mean = p.take<float>(h + "ln2_mean", {N}, fwd);
    s.ln2_rstd = p.take<float>(h + "ln2_rstd", {N}, fwd);
    s.fch = p.take<float>(h + "fch", {N, F}, fwd);
    s.fcg = p.take<float>(h + "fcg", {N, F}, fwd);
  }
  for (size_t l = size_t(kept); l < a.layer.size(); ++l) a.layer[l] = a.layer[0];
  a.x_final = p.take<float>("x_final", {N, C}, fwd);
  a.lnf = p.take<float>("lnf", {N, C}, fwd);
  a.lnf_mean = p.take<float>("lnf_mean", {N}, fwd);
  a.lnf_rstd = p.take<float>("lnf_rstd", {N}, fwd);
  a.ce_lse = p.take<float>("ce_lse", {N}, fwd);
  a.logits = p.take<float>(
      "logits", {std::min(N, logit_rows), head_cols > 0 ? std::min(V, head_cols) : V}, fwd);
  if (head_cols > 0) a.ce_state = p.take<float>("ce_state", {3, N}, fwd);
  a.qkv = p.take<float>("qkv", {N, 3 * C}, fwd);
  a.branch = p.take<float>("branch", {N, C}, fwd);
  a.dres = p.take<float>("dres", {N, C}, bwd);
  a.dln = p.take<float>("dln", {N, C}, bwd);
  a.datty = p.take<float>("datty", {N, C}, bwd);
  a.datt = p.take<float>("datt", {B, NH, T, HS}, bwd);
  a.dq = p.take<float>("dq", {B, NH, T, HS}, bwd);
  a.dk = p.take<float>("dk", {B, NH, T, HS}, bwd);
  a.dv = p.take<float>("dv", {B, NH, T, HS}, bwd);
  a.dF = p.take<float>("dF", {N, F}, bwd);
  a.attn_ws = attn;
  a.attn_ws.data = p.take<float>("attn_ws", {int64_t(attn.floats)}, fwd);
  a.tokens = p.take<int32_t>("tokens", {N}, fwd);
  a.targets = p.take<int32_t>("targets", {N}, fwd);
  a.losses = p.take<float>("losses", {N}, fwd);
  if (c.embed_ln) {
    a.emb = p.take<float>("emb", {N, C}, fwd);
    a.emb_mean = p.take<float>("emb_mean", {N}, fwd);
    a.emb_rstd = p.take<float>("emb_rstd", {N}, fwd);
  }
}

}  // namespace alibi
