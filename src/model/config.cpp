#include "model/config.h"

#include <cmath>

#include "core/error.h"
#include "core/json_int.h"
#include "position/position.h"

namespace alibi {

// Kernels keep per-row tables of HS/2 floats on the stack (rotary angles).
constexpr int kMaxHeadSize = 1024;

const char* init_name(InitScheme s) { return s == InitScheme::gpt2 ? "gpt2" : "fairseq"; }

InitScheme parse_init(const std::string& name, const std::string& flag) {
  for (InitScheme s : {InitScheme::gpt2, InitScheme::fairseq})
    if (name == init_name(s)) return s;
  usage_error(flag, " '", name, "' is not an initialisation; expected gpt2|fairseq");
}

const char* gelu_name(Gelu g) { return g == Gelu::tanh ? "tanh" : "erf"; }

Gelu parse_gelu(const std::string& name, const std::string& flag) {
  for (Gelu g : {Gelu::tanh, Gelu::erf})
    if (name == gelu_name(g)) return g;
  usage_error(flag, " '", name, "' is not a GELU form; expected tanh|erf");
}

const char* slopes_name(Slopes s) { return s == Slopes::fixed ? "fixed" : "trainable"; }

Slopes parse_slopes(const std::string& name, const std::string& flag) {
  for (Slopes s : {Slopes::fixed, Slopes::trainable})
    if (name == slopes_name(s)) return s;
  usage_error(flag, " '", name, "' is not a kind of slopes; expected fixed|trainable");
}

const char* objective_name(Objective o) { return o == Objective::clm ? "clm" : "mlm"; }

Objective parse_objective(const std::string& name, const std::string& flag) {
  for (Objective o : {Objective::clm, Objective::mlm})
    if (name == objective_name(o)) return o;
  usage_error(flag, " '", name, "' is not a training objective; expected clm (next token) | mlm "
              "(masked tokens)");
}

void ModelConfig::validate() const {
  if (vocab < 2) usage_error("--vocab ", vocab, " is too small; expected at least 2");
  if (layers < 1) usage_error("--layers ", layers, " must be at least 1");
  if (d_model < 1) usage_error("--d-model ", d_model, " must be at least 1");
  if (heads < 1) usage_error("--heads ", heads, " must be at least 1");
  if (d_model % heads != 0)
    usage_error("--d-model ", d_model, " is not divisible by --heads ", heads,
                "; expected a multiple of the head count");
  if (head_size() > kMaxHeadSize)
    usage_error("head size --d-model/--heads = ", head_size(), " exceeds ", kMaxHeadSize);
  if (ffn < 1) usage_error("--ffn ", ffn, " must be at least 1");
  if (!(dropout_resid >= 0 && dropout_resid < 1))
    usage_error("--dropout ", dropout_resid, " must be in [0, 1)");
  if (!(dropout_attn >= 0 && dropout_attn < 1))
    usage_error("--attn-dropout ", dropout_attn, " must be in [0, 1)");
  if (!(ln_eps > 0 && std::isfinite(ln_eps)))
    usage_error("--ln-eps ", ln_eps, " must be a positive number");
  if (!(alibi_bias_max > 0 && std::isfinite(alibi_bias_max)))
    usage_error("--alibi-bias-max ", alibi_bias_max, " must be a positive number");
  if (slopes == Slopes::trainable && pos != PosKind::alibi)
    usage_error("--slopes trainable needs --pos alibi, not --pos ", pos_name(pos));
  if (objective == Objective::mlm && causal)
    usage_error("--objective mlm trains an encoder and needs bidirectional attention; drop "
                "--causal true");
  if (objective == Objective::mlm && !(mask_token >= 1 && mask_token == vocab - 1))
    usage_error("config mask_token ", mask_token, " must be the last of the vocabulary's ", vocab,
                " ids (an mlm model appends it to its tokenizer's)");
  if (objective == Objective::clm && mask_token != -1)
    usage_error("config mask_token ", mask_token, " belongs to an mlm model; expected -1");
  position_method(pos).validate(*this);
}

nlohmann::json ModelConfig::to_json() const {
  return {{"vocab", vocab},          {"layers", layers},
          {"d_model", d_model},      {"heads", heads},
          {"ffn", ffn},              {"pos", pos_name(pos)},
          {"init", init_name(init)}, {"t5_lr_scale", t5_lr_scale},
          {"max_positions", max_positions}, {"t5_buckets", t5_buckets},
          {"t5_max_distance", t5_max_distance}, {"dropout_resid", dropout_resid},
          {"dropout_attn", dropout_attn},   {"linear_bias", linear_bias},
          {"ln_bias", ln_bias},             {"ln_eps", ln_eps},
          {"gelu", gelu_name(gelu)},        {"embed_scale", embed_scale},
          {"embed_ln", embed_ln},           {"alibi_bias_max", alibi_bias_max},
          {"tied_head", tied_head},         {"slopes", slopes_name(slopes)},
          {"causal", causal},               {"objective", objective_name(objective)},
          {"mask_token", mask_token},       {"alibi_scaled", alibi_scaled}};
}

ModelConfig ModelConfig::from_json(const nlohmann::json& j) {
  ModelConfig c;
  auto integer = [&](const char* key) { return json_int(j.at(key), str_cat("config ", key)); };
  auto integer_or = [&](const char* key, int fallback) {
    return j.contains(key) ? integer(key) : fallback;
  };
  c.vocab = integer("vocab");
  c.layers = integer("layers");
  c.d_model = integer("d_model");
  c.heads = integer("heads");
  c.ffn = integer("ffn");
  c.pos = parse_pos(j.at("pos").get<std::string>(), "config pos");
  // Checkpoints from before these fields started from gpt2 and trained t5 tables at --lr.
  c.init = parse_init(j.value("init", std::string("gpt2")), "config init");
  c.t5_lr_scale = j.value("t5_lr_scale", 1.0f);
  c.max_positions = integer_or("max_positions", 0);
  c.t5_buckets = integer_or("t5_buckets", 32);
  c.t5_max_distance = integer_or("t5_max_distance", 128);
  c.dropout_resid = j.value("dropout_resid", 0.0f);
  c.dropout_attn = j.value("dropout_attn", 0.0f);
  // Checkpoints from before the architecture options hold the defaults.
  const ModelConfig d;
  c.linear_bias = j.value("linear_bias", d.linear_bias);
  c.ln_bias = j.value("ln_bias", d.ln_bias);
  c.ln_eps = j.value("ln_eps", d.ln_eps);
  c.gelu = parse_gelu(j.value("gelu", std::string(gelu_name(d.gelu))), "config gelu");
  c.embed_scale = j.value("embed_scale", d.embed_scale);
  c.embed_ln = j.value("embed_ln", d.embed_ln);
  c.alibi_bias_max = j.value("alibi_bias_max", d.alibi_bias_max);
  c.alibi_scaled = j.value("alibi_scaled", d.alibi_scaled);
  c.tied_head = j.value("tied_head", d.tied_head);
  c.slopes = parse_slopes(j.value("slopes", std::string(slopes_name(d.slopes))), "config slopes");
  c.causal = j.value("causal", d.causal);
  c.objective = parse_objective(
      j.value("objective", std::string(objective_name(d.objective))), "config objective");
  c.mask_token = integer_or("mask_token", d.mask_token);
  return c;
}

bool ModelConfig::same_shape(const ModelConfig& o) const {
  return vocab == o.vocab && layers == o.layers && d_model == o.d_model && heads == o.heads &&
         ffn == o.ffn && pos == o.pos && linear_bias == o.linear_bias && ln_bias == o.ln_bias &&
         ln_eps == o.ln_eps && gelu == o.gelu && embed_scale == o.embed_scale &&
         embed_ln == o.embed_ln && alibi_bias_max == o.alibi_bias_max &&
         alibi_scaled == o.alibi_scaled &&
         tied_head == o.tied_head && slopes == o.slopes && causal == o.causal &&
         objective == o.objective && mask_token == o.mask_token &&
         position_method(pos).same_shape(*this, o);
}

}  // namespace alibi
