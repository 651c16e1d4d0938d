// Falcon with ALiBi (FalconForCausalLM, "alibi": true: the Falcon-RW models) as alibi reads and
// writes it (docs/hf.md): attention then MLP (parallel_attn false), a key and a value per head
// fused per head with the query as in BLOOM, LayerNorms with biases, linear biases as `bias`
// says, exact GELU, no embedding scale or LayerNorm. transformers' FalconModel.forward divides
// the bias by sqrt(head size) before it joins the mask (alibi_scaled).
#include "model/hf/family.h"

namespace alibi::hf {

const Family& bloom();

namespace {

void read(const ConfigJson& c, Read& r) {
  // transformers' defaults where a field is absent: alibi false, multi_query and parallel_attn
  // true.
  if (!c.get_or("alibi", false))
    c.refuse("alibi", "is not true; alibi imports ALiBi models only (rotary Falcons are not)");
  if (c.get_or("new_decoder_architecture", false))
    c.refuse("new_decoder_architecture",
             "(grouped keys and values, parallel attention and MLP) is not supported; expected "
             "false");
  if (c.get_or("multi_query", true))
    c.refuse("multi_query", "(one key and value for all heads) is not supported; expected false");
  if (c.get_or("parallel_attn", true))
    c.refuse("parallel_attn", "(attention and MLP side by side) is not supported; expected false");
  if (c.get_or("activation", std::string("gelu")) != "gelu")
    c.refuse("activation", "is not supported; expected \"gelu\" (exact)");
  ModelConfig& k = r.config;
  k.layers = c.get<int>("num_hidden_layers");
  k.heads = c.get<int>("num_attention_heads");
  k.d_model = c.get<int>("hidden_size");
  if (k.heads < 1 || k.d_model % k.heads)
    c.refuse("num_attention_heads", "does not divide hidden_size");
  if (c.get_or("num_kv_heads", k.heads) != k.heads)
    c.refuse("num_kv_heads",
             "differs from num_attention_heads; expected a key and a value per head");
  k.ffn = c.get_or("ffn_hidden_size", int(4 * int64_t(k.d_model)));
  k.linear_bias = c.get_or("bias", false);
  k.ln_bias = true;
  k.ln_eps = c.get_or("layer_norm_epsilon", 1e-5f);
  k.gelu = Gelu::erf;
  k.embed_scale = false;
  k.embed_ln = false;
  k.alibi_scaled = true;
  // Falcon drops the attention's output at attention_dropout, alibi at hidden_dropout: the
  // same in eval, different in fine-tuning where the two differ (Falcon-RW: both 0).
  k.dropout_resid = c.get_or("hidden_dropout", 0.0f);
  k.dropout_attn = c.get_or("attention_dropout", 0.0f);
  r.trained_len = c.get_or("max_position_embeddings", 0);
}

json write(const ModelConfig& c, int max_seq_len) {
  return {{"hidden_size", c.d_model},
          {"num_attention_heads", c.heads},
          {"num_kv_heads", c.heads},
          {"num_hidden_layers", c.layers},
          {"ffn_hidden_size", c.ffn},
          {"alibi", true},
          {"new_decoder_architecture", false},
          {"multi_query", false},
          {"parallel_attn", false},
          {"activation", "gelu"},
          {"bias", c.linear_bias},
          {"layer_norm_epsilon", decimal(c.ln_eps)},
          {"hidden_dropout", decimal(c.dropout_resid)},
          {"attention_dropout", decimal(c.dropout_attn)},
          {"max_position_embeddings", max_seq_len}};
}

// Falcon-RW's modelling code is BLOOM's: the same tensor names and fused q/k/v order, less the
// embedding LayerNorm.
std::vector<TensorName> tensors() {
  std::vector<TensorName> t;
  for (const TensorName& n : bloom().tensors)
    if (!std::string(n.ours).starts_with("emb_ln.")) t.push_back(n);
  return t;
}

}  // namespace

const Family& falcon() {
  static const Family f{.name = "falcon",
                        .title = "Falcon",
                        .architecture = "FalconForCausalLM",
                        .model_type = "falcon",
                        .layers_key = "num_hidden_layers",
                        .tensors = tensors(),
                        .read = read,
                        .write = write};
  return f;
}

}  // namespace alibi::hf
