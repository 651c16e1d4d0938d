// MPT (MptForCausalLM) as alibi reads and writes it (docs/hf.md): no biases, GELU erf, the FFN
// expansion_ratio x d_model, q/k/v fused in our order, the slopes' alibi_bias_max in attn_config.
#include <cmath>

#include "model/hf/family.h"

namespace alibi::hf {
namespace {

void read(const ConfigJson& c, Read& r) {
  const json attn = c.get_or("attn_config", json::object());
  auto attn_field = [&](const std::string& f, const json& fallback) {
    if (!attn.contains(f) || attn.at(f).is_null()) return fallback;
    // Of the fallback's type (any, for a null one): get<bool>() and get<float>() below would
    // throw nlohmann's type_error, not an error naming the field.
    const json& v = attn.at(f);
    const bool same = v.is_number() ? fallback.is_number() : v.type() == fallback.type();
    if (!fallback.is_null() && !same)
      c.refuse("attn_config." + f, str_cat("has the wrong type; expected ", fallback.type_name()));
    return v;
  };
  if (!attn_field("alibi", false).get<bool>())
    c.refuse("attn_config.alibi", "is not true; alibi imports ALiBi models only");
  if (attn_field("qk_ln", false).get<bool>())
    c.refuse("attn_config.qk_ln", "(LayerNorm on q and k) is not supported; expected false");
  if (!attn_field("clip_qkv", nullptr).is_null())
    c.refuse("attn_config.clip_qkv", "is not supported; expected null");
  if (attn_field("prefix_lm", false).get<bool>())
    c.refuse("attn_config.prefix_lm", "is not supported; expected false");
  if (attn_field("attn_uses_sequence_id", false).get<bool>())
    c.refuse("attn_config.attn_uses_sequence_id", "is not supported; expected false");
  if (attn_field("attn_type", "multihead_attention") != "multihead_attention")
    c.refuse("attn_config.attn_type", "is not supported; expected \"multihead_attention\"");
  if (!c.get_or("no_bias", true))
    c.refuse("no_bias", "is not supported; expected true (transformers' MPT has no biases)");
  if (c.has("logit_scale")) c.refuse("logit_scale", "is not supported; expected null");
  ModelConfig& k = r.config;
  k.layers = c.get<int>("n_layers");
  k.heads = c.get<int>("n_heads");
  k.d_model = c.get<int>("d_model");
  if (k.heads < 1 || k.d_model % k.heads) c.refuse("n_heads", "does not divide d_model");
  const double ffn = c.get_or("expansion_ratio", 4.0) * k.d_model;
  if (!(ffn == std::floor(ffn) && ffn >= 1 && ffn <= double(INT32_MAX)))
    c.refuse("expansion_ratio", "times d_model is not a whole number in 1..2^31-1");
  k.ffn = int(ffn);
  const json scale = attn_field("softmax_scale", nullptr);
  if (!scale.is_null() &&
      (!scale.is_number() ||
       std::fabs(scale.get<double>() * std::sqrt(double(k.head_size())) - 1.0) > 1e-6))
    c.refuse("attn_config.softmax_scale", "is not 1/sqrt(head size), which alibi's attention uses");
  // MosaicML's MPT honours alibi_bias_max; transformers' always runs 8 (docs/hf.md).
  k.alibi_bias_max = attn_field("alibi_bias_max", 8.0).get<float>();
  k.linear_bias = false;
  k.ln_bias = false;
  k.ln_eps = c.get_or("layer_norm_epsilon", 1e-5f);
  k.gelu = Gelu::erf;
  k.embed_scale = false;
  k.embed_ln = false;
  k.dropout_resid = c.get_or("resid_pdrop", 0.0f);
  k.dropout_attn = attn_field("attn_pdrop", 0.0).get<float>();
  r.trained_len = c.get_or("max_seq_len", 0);
}

json write(const ModelConfig& c, int max_seq_len) {
  return {{"d_model", c.d_model},
          {"n_heads", c.heads},
          {"n_layers", c.layers},
          {"expansion_ratio", c.ffn / c.d_model},
          {"max_seq_len", max_seq_len},
          {"resid_pdrop", decimal(c.dropout_resid)},
          {"emb_pdrop", 0.0},
          {"layer_norm_epsilon", decimal(c.ln_eps)},
          {"no_bias", true},
          {"attn_config",
           {{"alibi", true},
            // transformers runs 8 whatever this says: a model with another value reads back as
            // one that MPT cannot hold.
            {"alibi_bias_max", 8},
            // transformers 5.24 types attn_pdrop as int (MptAttentionConfig): 0 as an integer
            // loads; a nonzero float is written as it is (docs/hf.md).
            {"attn_pdrop", c.dropout_attn == 0.0f ? json(0) : json(decimal(c.dropout_attn))},
            {"attn_impl", "torch"},
            {"attn_type", "multihead_attention"},
            {"qk_ln", false},
            {"clip_qkv", nullptr},
            {"softmax_scale", nullptr},
            {"prefix_lm", false},
            {"attn_uses_sequence_id", false}}}};
}

}  // namespace

const Family& mpt() {
  static const Family f{"mpt",
                        "MPT",
                        "MptForCausalLM",
                        "mpt",
                        "n_layers",
                        {{"wte", "wte.weight"},
                         {"h.{i}.ln1.w", "blocks.{i}.norm_1.weight"},
                         {"h.{i}.attn.qkv.w", "blocks.{i}.attn.Wqkv.weight"},
                         {"h.{i}.attn.proj.w", "blocks.{i}.attn.out_proj.weight"},
                         {"h.{i}.ln2.w", "blocks.{i}.norm_2.weight"},
                         {"h.{i}.mlp.fc.w", "blocks.{i}.ffn.up_proj.weight"},
                         {"h.{i}.mlp.proj.w", "blocks.{i}.ffn.down_proj.weight"},
                         {"lnf.w", "norm_f.weight"}},
                        read,
                        write};
  return f;
}

}  // namespace alibi::hf
