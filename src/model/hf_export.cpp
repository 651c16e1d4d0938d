// alibi models into Hugging Face MPT or BLOOM folders (model/hf_export.h, docs/hf.md).
#include "model/hf_export.h"

#include <unistd.h>

#include <charconv>
#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>

#include "core/error.h"
#include "core/io.h"
#include "core/safetensors.h"
#include "model/hf_import.h"
#include "model/params.h"

namespace fs = std::filesystem;

namespace alibi {
namespace {

using json = nlohmann::json;

struct Want {
  const char* field;
  bool ok;
  const char* expected;
};

// The first option of cfg that `family` does not have.
std::optional<Want> mismatch(const ModelConfig& c, const std::string& family) {
  const bool mpt = family == "mpt";
  const Want wants[] = {
      {"pos", c.pos == PosKind::alibi, "alibi"},
      // Both families are causal LMs whose slopes are the fixed series.
      {"causal", c.causal, "true"},
      {"slopes", c.slopes == Slopes::fixed, "fixed"},
      {"linear_bias", c.linear_bias == !mpt, mpt ? "false" : "true"},
      {"ln_bias", c.ln_bias == !mpt, mpt ? "false" : "true"},
      {"gelu", c.gelu == (mpt ? Gelu::erf : Gelu::tanh), mpt ? "erf" : "tanh"},
      {"embed_scale", !c.embed_scale, "false"},
      {"embed_ln", c.embed_ln == !mpt, mpt ? "false" : "true"},
      // transformers' MPT builds its bias with 8 whatever the config says (docs/hf.md).
      {"alibi_bias_max", c.alibi_bias_max == 8.0f, "8"},
      {"ffn", mpt ? c.ffn % c.d_model == 0 : c.ffn == 4 * c.d_model,
       mpt ? "a multiple of d_model" : "4 x d_model"},
  };
  for (const Want& w : wants)
    if (!w.ok) return w;
  return std::nullopt;
}

std::string why_not(const ModelConfig& c, const std::string& family) {
  const Want w = *mismatch(c, family);
  return str_cat("its ", w.field, " is ", c.to_json().at(w.field).dump(), " where ",
                 family == "mpt" ? "MPT" : "BLOOM", " needs ", w.expected);
}

// The shortest decimal that reads back as x: config.json then says 1e-05, not the double
// nearest the float (9.999999747378752e-06).
double decimal(float x) {
  char buf[32];
  const auto r = std::to_chars(buf, buf + sizeof(buf), x);
  return std::strtod(std::string(buf, r.ptr).c_str(), nullptr);
}

}  // namespace

std::string hf_family(const ModelConfig& c, const std::string& want) {
  if (!want.empty() && want != "mpt" && want != "bloom")
    usage_error("--family '", want, "' is not a family alibi exports; expected mpt or bloom");
  if (want.empty()) {
    for (const std::string f : {"mpt", "bloom"})
      if (!mismatch(c, f)) return f;
    usage_error("the model is neither MPT nor BLOOM: ", why_not(c, "mpt"), ", and ",
                why_not(c, "bloom"), " (train with a family's options: docs/hf.md)");
  }
  if (mismatch(c, want)) usage_error("--family ", want, ": ", why_not(c, want), " (docs/hf.md)");
  return want;
}

void export_hf(const ModelConfig& c, const std::vector<float>& params, const Tokenizer& tok,
               const std::string& family, int max_seq_len, const std::string& dir) {
  ALIBI_CHECK(hf_family(c, family) == family);
  std::error_code ec;
  if (fs::exists(dir, ec)) usage_error("--to-hf '", dir, "' already exists; expected a new folder");
  const ParamLayout l = make_param_layout(c);
  ALIBI_CHECK(params.size() == l.total);
  const int64_t C = c.d_model, V = c.vocab;
  Safetensors st;
  st.metadata["format"] = "pt";
  auto add = [&](const std::string& hf, const std::string& ours) {
    const TensorInfo& t = l.at(ours);
    st.add_f32(hf, t.shape, params.data() + t.offset);
  };
  json cfg;
  if (family == "mpt") {
    cfg = {{"architectures", {"MptForCausalLM"}},
           {"model_type", "mpt"},
           {"d_model", C},
           {"n_heads", c.heads},
           {"n_layers", c.layers},
           {"expansion_ratio", c.ffn / c.d_model},
           {"max_seq_len", max_seq_len},
           {"vocab_size", V},
           {"resid_pdrop", decimal(c.dropout_resid)},
           {"emb_pdrop", 0.0},
           {"layer_norm_epsilon", decimal(c.ln_eps)},
           {"no_bias", true},
           {"tie_word_embeddings", c.tied_head},
           {"attn_config",
            {{"alibi", true},
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
             {"attn_uses_sequence_id", false}}},
           {"torch_dtype", "float32"}};
    add("transformer.wte.weight", "wte");
    for (int i = 0; i < c.layers; ++i) {
      const std::string b = "transformer.blocks." + std::to_string(i) + ".";
      const std::string h = "h." + std::to_string(i) + ".";
      add(b + "norm_1.weight", h + "ln1.w");
      add(b + "attn.Wqkv.weight", h + "attn.qkv.w");
      add(b + "attn.out_proj.weight", h + "attn.proj.w");
      add(b + "norm_2.weight", h + "ln2.w");
      add(b + "ffn.up_proj.weight", h + "mlp.fc.w");
      add(b + "ffn.down_proj.weight", h + "mlp.proj.w");
    }
    add("transformer.norm_f.weight", "lnf.w");
  } else {
    cfg = {{"architectures", {"BloomForCausalLM"}},
           {"model_type", "bloom"},
           {"hidden_size", C},
           {"n_head", c.heads},
           {"n_layer", c.layers},
           {"vocab_size", V},
           {"layer_norm_epsilon", decimal(c.ln_eps)},
           {"apply_residual_connection_post_layernorm", false},
           {"hidden_dropout", decimal(c.dropout_resid)},
           {"attention_dropout", decimal(c.dropout_attn)},
           {"tie_word_embeddings", c.tied_head},
           {"torch_dtype", "float32"}};
    add("transformer.word_embeddings.weight", "wte");
    add("transformer.word_embeddings_layernorm.weight", "emb_ln.w");
    add("transformer.word_embeddings_layernorm.bias", "emb_ln.b");
    const int HS = c.head_size();
    for (int i = 0; i < c.layers; ++i) {
      const std::string b = "transformer.h." + std::to_string(i) + ".";
      const std::string h = "h." + std::to_string(i) + ".";
      add(b + "input_layernorm.weight", h + "ln1.w");
      add(b + "input_layernorm.bias", h + "ln1.b");
      for (const char* part : {"w", "b"}) {
        const TensorInfo& t = l.at(h + "attn.qkv." + part);
        const std::vector<float> src(params.begin() + long(t.offset),
                                     params.begin() + long(t.offset + t.numel));
        const std::vector<float> rows =
            bloom_qkv_rows(src, c.heads, HS, t.shape.size() == 2 ? C : 1, /*to_bloom=*/true);
        st.add_f32(b + "self_attention.query_key_value." + (part[0] == 'w' ? "weight" : "bias"),
                   t.shape, rows.data());
      }
      add(b + "self_attention.dense.weight", h + "attn.proj.w");
      add(b + "self_attention.dense.bias", h + "attn.proj.b");
      add(b + "post_attention_layernorm.weight", h + "ln2.w");
      add(b + "post_attention_layernorm.bias", h + "ln2.b");
      add(b + "mlp.dense_h_to_4h.weight", h + "mlp.fc.w");
      add(b + "mlp.dense_h_to_4h.bias", h + "mlp.fc.b");
      add(b + "mlp.dense_4h_to_h.weight", h + "mlp.proj.w");
      add(b + "mlp.dense_4h_to_h.bias", h + "mlp.proj.b");
    }
    add("transformer.ln_f.weight", "lnf.w");
    add("transformer.ln_f.bias", "lnf.b");
  }
  if (!c.tied_head) add("lm_head.weight", "lm_head.w");

  // All or nothing: the files go into a sibling folder, renamed into place at the end.
  const std::string tmp = dir + ".tmp-" + std::to_string(::getpid());
  fs::remove_all(tmp, ec);
  fs::create_directories(tmp);
  try {
    write_file_atomic(tmp + "/config.json", {cfg.dump(2), "\n"});
    st.write_atomic(tmp + "/model.safetensors");
    if (tok.kind() == TokenizerKind::hf)
      write_file_atomic(tmp + "/tokenizer.json", {tok.model_bytes()});
    fs::rename(tmp, dir);
  } catch (...) {
    fs::remove_all(tmp, ec);
    throw;
  }
}

}  // namespace alibi
