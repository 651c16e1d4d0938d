// BLOOM (BloomForCausalLM) as alibi reads and writes it (docs/hf.md): a LayerNorm on the
// embeddings, biases everywhere, GELU tanh, the FFN 4 x hidden_size, q/k/v fused per head.
#include "model/hf/family.h"

namespace alibi::hf {
namespace {

void read(const ConfigJson& c, Read& r) {
  if (c.get_or("apply_residual_connection_post_layernorm", false))
    c.refuse("apply_residual_connection_post_layernorm", "is not supported; expected false");
  ModelConfig& k = r.config;
  k.layers = c.get<int>("n_layer");
  k.heads = c.get<int>("n_head");
  k.d_model = c.raw().contains("hidden_size") ? c.get<int>("hidden_size") : c.get<int>("n_embed");
  if (k.heads < 1 || k.d_model % k.heads) c.refuse("n_head", "does not divide hidden_size");
  k.ffn = int(4 * int64_t(k.d_model));
  k.linear_bias = true;
  k.ln_bias = true;
  k.ln_eps = c.get_or("layer_norm_epsilon", 1e-5f);
  k.gelu = Gelu::tanh;
  k.embed_scale = false;
  k.embed_ln = true;
  k.dropout_resid = c.get_or("hidden_dropout", 0.0f);
  k.dropout_attn = c.get_or("attention_dropout", 0.0f);
}

json write(const ModelConfig& c, int /*max_seq_len: BLOOM has no such field*/) {
  return {{"hidden_size", c.d_model},
          {"n_head", c.heads},
          {"n_layer", c.layers},
          {"layer_norm_epsilon", decimal(c.ln_eps)},
          {"apply_residual_connection_post_layernorm", false},
          {"hidden_dropout", decimal(c.dropout_resid)},
          {"attention_dropout", decimal(c.dropout_attn)}};
}

}  // namespace

const Family& bloom() {
  static const Family f{
      "bloom",
      "BLOOM",
      "BloomForCausalLM",
      "bloom",
      "n_layer",
      {{"wte", "word_embeddings.weight"},
       {"emb_ln.w", "word_embeddings_layernorm.weight"},
       {"emb_ln.b", "word_embeddings_layernorm.bias"},
       {"h.{i}.ln1.w", "h.{i}.input_layernorm.weight"},
       {"h.{i}.ln1.b", "h.{i}.input_layernorm.bias"},
       {"h.{i}.attn.qkv.w", "h.{i}.self_attention.query_key_value.weight", Rows::qkv_per_head},
       {"h.{i}.attn.qkv.b", "h.{i}.self_attention.query_key_value.bias", Rows::qkv_per_head},
       {"h.{i}.attn.proj.w", "h.{i}.self_attention.dense.weight"},
       {"h.{i}.attn.proj.b", "h.{i}.self_attention.dense.bias"},
       {"h.{i}.ln2.w", "h.{i}.post_attention_layernorm.weight"},
       {"h.{i}.ln2.b", "h.{i}.post_attention_layernorm.bias"},
       {"h.{i}.mlp.fc.w", "h.{i}.mlp.dense_h_to_4h.weight"},
       {"h.{i}.mlp.fc.b", "h.{i}.mlp.dense_h_to_4h.bias"},
       {"h.{i}.mlp.proj.w", "h.{i}.mlp.dense_4h_to_h.weight"},
       {"h.{i}.mlp.proj.b", "h.{i}.mlp.dense_4h_to_h.bias"},
       {"lnf.w", "ln_f.weight"},
       {"lnf.b", "ln_f.bias"}},
      read,
      write};
  return f;
}

}  // namespace alibi::hf
