#pragma once
// Model shape and position method; serialised into every checkpoint's metadata. Each member is
// declared once more, as a row of model_fields() (config.cpp; a position method's own in its
// file), which gives its JSON key, flag, help, role, range and the value older checkpoints take.
#include <nlohmann/json.hpp>
#include <string>

#include "core/fields.h"
#include "kernels/layer_kinds.h"
#include "position/pos_kind.h"

namespace alibi {

// How a fresh model draws its parameters (docs/model.md, "Initialisation"). Recorded in every
// checkpoint; checkpoints from before the field started from gpt2.
enum class InitScheme { gpt2, fairseq };
const char* init_name(InitScheme s);
InitScheme parse_init(const std::string& name, const std::string& flag = "--init");
const char* gelu_name(Gelu g);
Gelu parse_gelu(const std::string& name, const std::string& flag = "--gelu");
// ALiBi's slopes: the paper's fixed series m0, or m_h = 2 m0_h sigmoid(theta_h) learned from it
// (position/alibi.cpp). Checkpoints from before the field have fixed slopes.
enum class Slopes { fixed, trainable };
const char* slopes_name(Slopes s);
Slopes parse_slopes(const std::string& name, const std::string& flag = "--slopes");
// Rotary's context extension (position/rotary.cpp, docs/rope-family.md): none, Position
// Interpolation, NTK-aware scaling of the base, or YaRN. Checkpoints from before the field: none.
enum class RopeScaling { none, pi, ntk, yarn };
const char* rope_scaling_name(RopeScaling s);
RopeScaling parse_rope_scaling(const std::string& name,
                               const std::string& flag = "--rope-scaling");
// What the model is trained to predict: the next token (a causal LM, a decoder) or BERT's
// masked tokens (an encoder; data/masking.h). Checkpoints from before the field are clm.
enum class Objective { clm, mlm };
const char* objective_name(Objective o);
Objective parse_objective(const std::string& name, const std::string& flag = "--objective");

struct ModelConfig {
  int vocab = 256;        // V
  int layers = 4;         // L
  int d_model = 256;      // C
  int heads = 8;          // NH
  int ffn = 1024;         // F
  PosKind pos = PosKind::alibi;
  InitScheme init = InitScheme::fairseq;
  // Fields of one position method each (src/position checks and uses them).
  int max_positions = 0;  // learned: rows of wpe (the training seq-len); unused otherwise
  int t5_buckets = 32;    // t5: T5's defaults
  int t5_max_distance = 128;
  float t5_lr_scale = 1.0f;  // t5: the table's learning rate as a multiple of --lr
  int sandwich_dim = 128;    // sandwich: d', the width of the sinusoids whose inner product it is
  int fire_width = 32;       // fire: hidden units of the MLP f_theta (FIRE's 32)
  int fire_length = 0;       // fire: L of the threshold |L_mult L| (0: --seq-len)
  float xpos_scale_base = 512.0f;  // xpos: gamma of zeta_i^(n / gamma) (torchscale's default)
  // Context extension (docs/rope-family.md), options of how a model runs that eval, generate
  // and a fine-tune set: rotary's scaling by rope_factor s, alibi's slopes times L / L'. Both
  // are relative to train_len L, the length the weights were first trained at (0: none yet;
  // filled from the checkpoint's training length when an extension that needs it is set).
  RopeScaling rope_scaling = RopeScaling::none;
  float rope_factor = 1.0f;
  bool alibi_interpolate = false;
  int train_len = 0;
  float dropout_resid = 0.0f;
  float dropout_attn = 0.0f;
  // Architecture options (docs/model.md, "Architecture options"): the defaults are this
  // repository's model; BLOOM and MPT set others. Checkpoints from before them hold the defaults.
  bool linear_bias = true;       // biases on the four linears of every block
  bool ln_bias = true;           // biases on every LayerNorm
  float ln_eps = 1e-5f;          // LayerNorm's epsilon (PyTorch's default)
  Gelu gelu = Gelu::tanh;        // the MLP's GELU: tanh approximation or exact (erf)
  bool embed_scale = true;       // x = sqrt(C) wte[t] (fairseq) or wte[t] (BLOOM, MPT)
  bool embed_ln = false;         // a LayerNorm on the token embeddings (BLOOM's)
  // alibi: the slopes' exponent scale (MPT's field; 8: the paper's): 2^(-alibi_bias_max h / NH)
  // for NH a power of two, and the paper's interleaving of two such series otherwise
  // (alibi_slopes, position/position.h).
  float alibi_bias_max = 8.0f;
  Slopes slopes = Slopes::fixed;  // alibi: fixed, or trainable from those (alibi_theta)
  // alibi: the bias is added before the 1/sqrt(head size) scale (Falcon): each slope is divided
  // by sqrt(head size). Checkpoints from before the field: false.
  bool alibi_scaled = false;
  // false: bidirectional attention, every token sees every other (an encoder); the biases
  // depend on |i - j| (t5: half the buckets per direction). Checkpoints from before: causal.
  bool causal = true;
  Objective objective = Objective::clm;  // mlm needs causal = false
  // mlm: the id of the mask token, the row appended after the tokenizer's (vocab = mask_token +
  // 1); the tokens of the text are 0..mask_token-1. -1 for clm.
  int mask_token = -1;
  bool tied_head = true;         // the output head is wte, or its own lm_head.w (V,C)

  int head_size() const { return d_model / heads; }
  // The ids a text can hold: the vocabulary less an mlm model's mask token.
  int text_vocab() const { return objective == Objective::mlm ? mask_token : vocab; }
  // Throws UsageError naming the offending flag (--d-model, --heads, ...): each field's range,
  // then the rules between fields, then the position method's own.
  void validate() const;
  nlohmann::json to_json() const;
  static ModelConfig from_json(const nlohmann::json& j);
  // Every field of role shape that means something here: the same function of the same
  // parameters (dropout, init and learning-rate scales aside).
  bool same_shape(const ModelConfig& o) const;
};

// The rows of ModelConfig: the common ones, then each registered position method's.
const Fields<ModelConfig>& model_fields();

}  // namespace alibi
