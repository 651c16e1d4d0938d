// Checkpoints into GGUF files (model/gguf_export.h).
#include "model/gguf_export.h"

#include <nlohmann/json.hpp>
#include <optional>

#include "core/error.h"
#include "core/gguf.h"
#include "kernels/quant.h"
#include "model/gguf_import.h"

namespace alibi {
namespace {

using json = nlohmann::json;

// The tokenizer as tokenizer.ggml.*, as llama.cpp's converter writes a byte-level BPE: every row
// of the embedding a token ("[PADn]" of type UNUSED past the tokenizer's), the merges, and the
// pre-tokenizer's name.
void add_tokenizer(GgufWriter& w, const Tokenizer& tok, int rows) {
  const char* expected =
      "; export --to-gguf writes Hugging Face byte-level BPE tokenizers only (an import's, or "
      "prepare --tokenizer bytebpe)";
  if (tok.kind() != TokenizerKind::hf)
    usage_error("the checkpoint's tokenizer is ", tokenizer_kind_name(tok.kind()), expected);
  const json t = json::parse(tok.model_bytes());
  const json& model = t.at("model");
  if (model.value("type", "") != "BPE") usage_error("the checkpoint's tokenizer is not a BPE", expected);
  const json& pre = t.at("pre_tokenizer");
  std::string pre_name;
  if (pre.value("type", "") == "ByteLevel" && pre.value("use_regex", true))
    pre_name = "gpt-2";
  else if (pre.value("type", "") == "Sequence" && pre.at("pretokenizers").size() == 2 &&
           pre.at("pretokenizers")[0].value("type", "") == "Split" &&
           pre.at("pretokenizers")[1].value("type", "") == "ByteLevel")
    pre_name = "bloom";
  else
    usage_error("the checkpoint's tokenizer splits with ", pre.dump(),
                "; llama.cpp names GPT-2's ByteLevel split and BLOOM's", expected);
  std::vector<std::string> tokens(static_cast<size_t>(rows));
  std::vector<int32_t> types(static_cast<size_t>(rows), 5);  // UNUSED
  for (int i = 0; i < rows; ++i) tokens[size_t(i)] = "[PAD" + std::to_string(i) + "]";
  auto put = [&](const std::string& s, int64_t id, int32_t type) {
    if (id < 0 || id >= rows)
      usage_error("the checkpoint's tokenizer has id ", id, " for '", s, "', past the ", rows,
                  " rows of the embedding");
    tokens[size_t(id)] = s;
    types[size_t(id)] = type;
  };
  for (const auto& [s, id] : model.at("vocab").items()) put(s, id.get<int64_t>(), 1);
  if (t.contains("added_tokens"))
    for (const json& a : t.at("added_tokens"))
      put(a.at("content"), a.at("id").get<int64_t>(), a.value("special", false) ? 3 : 4);
  std::vector<std::string> merges;
  for (const json& m : model.at("merges"))
    merges.push_back(m.is_string() ? m.get<std::string>()
                                   : m[0].get<std::string>() + " " + m[1].get<std::string>());
  w.add_string("tokenizer.ggml.model", "gpt2");
  w.add_string("tokenizer.ggml.pre", pre_name);
  w.add_strings("tokenizer.ggml.tokens", tokens);
  w.add_i32s("tokenizer.ggml.token_type", types);
  w.add_strings("tokenizer.ggml.merges", merges);
  if (const std::optional<int32_t> bos = tok.leading_special()) {  // as gguf_import reads them
    w.add_bool("tokenizer.ggml.add_bos_token", true);
    w.add_u32("tokenizer.ggml.bos_token_id", uint32_t(*bos));
  }
  if (const std::optional<int32_t> eos = tok.trailing_special()) {
    w.add_bool("tokenizer.ggml.add_eos_token", true);
    w.add_u32("tokenizer.ggml.eos_token_id", uint32_t(*eos));
  }
}

}  // namespace

void export_gguf(const Checkpoint& ck, const hf::Family& f, GgufExportType type,
                 int context_length, const std::string& path) {
  const std::string arch = gguf_architecture(f);
  if (arch.empty())
    usage_error("llama.cpp runs no ", f.title, " with ALiBi; export --to-gguf writes bloom or mpt");
  const ModelConfig& cfg = ck.config;
  const ParamLayout layout = make_param_layout(cfg);
  // Everything checked and converted before the file is opened.
  std::vector<std::vector<uint8_t>> blocks(layout.tensors.size());
  ParamSet set(layout);
  ck.load_params(set);
  const std::vector<float> host = set.to_host();
  GgufWriter w;
  w.add_string("general.architecture", arch);
  w.add_string("general.name", "alibi");
  w.add_u32("general.quantization_version", 2);
  add_gguf_metadata(w, f, cfg, context_length);
  add_tokenizer(w, ck.tokenizer, cfg.vocab);
  for (size_t k = 0; k < layout.tensors.size(); ++k) {
    const TensorInfo& ti = layout.tensors[k];
    const std::string name = gguf_tensor_name(ti.name);
    ALIBI_CHECK(!name.empty(), ti.name);
    const std::vector<int64_t> shape(ti.shape.begin(), ti.shape.end());
    const StTensor& st = ck.st.at(ti.name);
    if (!ti.matrix || (type.as_stored && st.dtype == "F32")) {
      w.add_tensor(name, shape, *ggml_type(std::string_view("F32")), host.data() + ti.offset);
    } else if (type.as_stored) {
      w.add_tensor(name, shape, *ggml_type(std::string_view(st.dtype)), st.bytes());
    } else {
      const int64_t cols = shape.back();
      const GgmlType& g = ggml_of(type.type);
      if (cols % g.block)
        usage_error("tensor '", ti.name, "' has rows of ", cols, " elements; ", g.name,
                    " stores rows of a multiple of ", g.block);
      blocks[k].resize(weight_row_bytes(type.type, cols) * size_t(ti.numel / size_t(cols)));
      quantize(blocks[k].data(), host.data() + ti.offset, type.type, int64_t(ti.numel));
      w.add_tensor(name, shape, g, blocks[k].data());
    }
  }
  w.write(path);
}

}  // namespace alibi
