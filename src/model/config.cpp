#include "model/config.h"

#include <cmath>

#include "core/error.h"
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

const char* rope_scaling_name(RopeScaling s) {
  switch (s) {
    case RopeScaling::pi: return "pi";
    case RopeScaling::ntk: return "ntk";
    case RopeScaling::yarn: return "yarn";
    case RopeScaling::none: break;
  }
  return "none";
}

RopeScaling parse_rope_scaling(const std::string& name, const std::string& flag) {
  for (RopeScaling s : {RopeScaling::none, RopeScaling::pi, RopeScaling::ntk, RopeScaling::yarn})
    if (name == rope_scaling_name(s)) return s;
  usage_error(flag, " '", name, "' is not a rotary scaling; expected none|pi|ntk|yarn");
}

const char* objective_name(Objective o) { return o == Objective::clm ? "clm" : "mlm"; }

Objective parse_objective(const std::string& name, const std::string& flag) {
  for (Objective o : {Objective::clm, Objective::mlm})
    if (name == objective_name(o)) return o;
  usage_error(flag, " '", name, "' is not a training objective; expected clm (next token) | mlm "
              "(masked tokens)");
}

namespace {

using F = Field<ModelConfig>;

// The common rows, in the order --help lists them; the position methods add theirs after.
Fields<ModelConfig> common_fields() {
  return {
      F::of(ALIBI_MEMBER(ModelConfig, vocab), "vocab").as_role(Role::shape).at_least(2),
      F::of_enum(ALIBI_MEMBER(ModelConfig, pos), "pos", pos_name, parse_pos, pos_names())
          .flag_help("--pos", "position method")
          .as_role(Role::shape),
      // Checkpoints from before the field started from gpt2.
      F::of_enum(ALIBI_MEMBER(ModelConfig, init), "init", init_name, parse_init, "gpt2|fairseq")
          .flag_help("--init",
                     "initialisation: fairseq (embeddings N(0, 1/C), Xavier linears) | gpt2 "
                     "(N(0, 0.02), residual projections / sqrt(2L)); docs/model.md")
          .as_role(Role::model)
          .legacy_value("gpt2"),
      F::of(ALIBI_MEMBER(ModelConfig, layers), "layers")
          .flag_help("--layers", "transformer blocks")
          .as_role(Role::shape)
          .at_least(1),
      F::of(ALIBI_MEMBER(ModelConfig, d_model), "d_model")
          .flag_help("--d-model", "model width C")
          .as_role(Role::shape)
          .at_least(1),
      F::of(ALIBI_MEMBER(ModelConfig, heads), "heads")
          .flag_help("--heads", "attention heads (any count)")
          .as_role(Role::shape)
          .at_least(1),
      F::of(ALIBI_MEMBER(ModelConfig, ffn), "ffn")
          .flag_help("--ffn", "feed-forward width")
          .as_role(Role::shape)
          .at_least(1),
      F::of(ALIBI_MEMBER(ModelConfig, dropout_resid), "dropout_resid")
          .flag_help("--dropout", "residual dropout")
          .as_role(Role::fixed)
          .legacy_default()
          .unit_interval(),
      F::of(ALIBI_MEMBER(ModelConfig, dropout_attn), "dropout_attn")
          .flag_help("--attn-dropout", "attention-probability dropout")
          .as_role(Role::fixed)
          .legacy_default()
          .unit_interval(),
      // Architecture options (docs/model.md): the defaults are this repository's model, and
      // checkpoints from before them hold the defaults.
      F::of(ALIBI_MEMBER(ModelConfig, linear_bias), "linear_bias")
          .flag_help("--linear-bias", "biases on the blocks' linears")
          .as_role(Role::shape)
          .legacy_default(),
      F::of(ALIBI_MEMBER(ModelConfig, ln_bias), "ln_bias")
          .flag_help("--ln-bias", "biases on the LayerNorms")
          .as_role(Role::shape)
          .legacy_default(),
      F::of(ALIBI_MEMBER(ModelConfig, ln_eps), "ln_eps")
          .flag_help("--ln-eps", "LayerNorm epsilon")
          .as_role(Role::shape)
          .legacy_default()
          .positive(),
      F::of_enum(ALIBI_MEMBER(ModelConfig, gelu), "gelu", gelu_name, parse_gelu, "tanh|erf")
          .flag_help("--gelu", "GELU form: tanh (approximation) | erf (exact)")
          .as_role(Role::shape)
          .legacy_default(),
      F::of(ALIBI_MEMBER(ModelConfig, embed_scale), "embed_scale")
          .flag_help("--embed-scale",
                     "scale token embeddings by sqrt(d_model) (fairseq); false: unscaled")
          .as_role(Role::shape)
          .legacy_default(),
      F::of(ALIBI_MEMBER(ModelConfig, embed_ln), "embed_ln")
          .flag_help("--embed-ln", "a LayerNorm on the token embeddings (BLOOM)")
          .as_role(Role::shape)
          .legacy_default(),
      F::of_enum(ALIBI_MEMBER(ModelConfig, objective), "objective", objective_name,
                 parse_objective, "clm|mlm")
          .flag_help("--objective",
                     "clm (next token: a decoder) | mlm (BERT's masked tokens: an encoder, "
                     "bidirectional; a mask token is added to the vocabulary)")
          .as_role(Role::shape)
          .legacy_default(),
      F::of(ALIBI_MEMBER(ModelConfig, causal), "causal")
          .flag_help("--causal", "causal attention; --objective mlm implies false")
          .as_role(Role::shape)
          .legacy_default(),
      F::of(ALIBI_MEMBER(ModelConfig, mask_token), "mask_token")
          .as_role(Role::shape)
          .legacy_default(),
      F::of(ALIBI_MEMBER(ModelConfig, tied_head), "tied_head")
          .flag_help("--tied-head", "output head tied to the token embeddings; false: its own "
                     "lm_head.w")
          .as_role(Role::shape)
          .legacy_default(),
      // The length a context extension is relative to: it comes with the weights, so a model
      // fine-tuned at a longer length with an extension keeps its first training length.
      F::of(ALIBI_MEMBER(ModelConfig, train_len), "train_len")
          .as_role(Role::model)
          .legacy_default()
          .at_least(0),
  };
}

// The methods a position method's field means something for ("rotary").
std::string methods_of(const F& f) {
  std::string names;
  for (PosKind p : all_positions()) {
    ModelConfig c;
    c.pos = p;
    if (f.applies_to(c)) names += std::string(names.empty() ? "" : "|") + pos_name(p);
  }
  return names;
}

// An evaluation-time option of another method (--rope-scaling on an alibi model) is refused
// rather than ignored: the user asked for an extension the model cannot make.
void check_inference_fields(const ModelConfig& c) {
  const ModelConfig defaults;
  for (const F& f : model_fields())
    if (f.at_inference && !f.applies_to(c) && f.get(c) != f.get(defaults))
      usage_error(f.flag, " ", f.show(c), " does not apply to this --pos ", pos_name(c.pos),
                  " model; it applies to --pos ", methods_of(f));
}

}  // namespace

const Fields<ModelConfig>& model_fields() {
  static const Fields<ModelConfig> fields = [] {
    Fields<ModelConfig> f = common_fields();
    for (PosKind p : all_positions()) position_method(p).add_fields(f);
    return f;
  }();
  return fields;
}

void ModelConfig::validate() const {
  check_fields(model_fields(), *this);
  if (d_model % heads != 0)
    usage_error("--d-model ", d_model, " is not divisible by --heads ", heads,
                "; expected a multiple of the head count");
  if (head_size() > kMaxHeadSize)
    usage_error("head size --d-model/--heads = ", head_size(), " exceeds ", kMaxHeadSize);
  if (slopes == Slopes::trainable && pos != PosKind::alibi)
    usage_error("--slopes trainable needs --pos alibi, not --pos ", pos_name(pos));
  check_inference_fields(*this);
  // (A causal LM with bidirectional attention is a model, used to test attention both ways;
  // training one is refused by train().)
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

nlohmann::json ModelConfig::to_json() const { return fields_to_json(model_fields(), *this); }

ModelConfig ModelConfig::from_json(const nlohmann::json& j) {
  return fields_from_json(model_fields(), j, "config");
}

bool ModelConfig::same_shape(const ModelConfig& o) const {
  return same_fields(model_fields(), *this, o, {Role::shape});
}

}  // namespace alibi
