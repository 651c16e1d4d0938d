// alibi import and alibi export: Hugging Face folders of the families in model/hf/registry.cpp to
// alibi checkpoints and back (docs/hf.md), and GGUF files into checkpoints (docs/gguf.md).
#include <cstdio>
#include <filesystem>
#include <string>

#include "commands.h"
#include "core/error.h"
#include "model/checkpoint.h"
#include "model/hf_export.h"
#include "model/gguf_export.h"
#include "model/gguf_import.h"
#include "model/hf_import.h"

namespace fs = std::filesystem;
namespace alibi::cli {
namespace {

// "MptForCausalLM, BloomForCausalLM, ...": the registry's families, for help texts.
std::string architectures() {
  std::string s;
  for (const hf::Family* f : hf::families())
    s += std::string(s.empty() ? "" : ", ") + f->architecture;
  return s;
}

// alibi import FILE.gguf: the file's matrices kept in their types, byte for byte.
void import_gguf_file(const std::string& file, const std::string& out, const std::string& dtype) {
  if (dtype != "auto")
    usage_error("--dtype '", dtype, "' applies to Hugging Face folders; a GGUF file's matrices ",
                "keep their types (expected auto)");
  const GgufImport m = import_gguf(file);  // everything checked before anything is written
  const std::string path =
      write_gguf_checkpoint(m, out, gguf_train_record(m, fs::absolute(file).string()));
  const ModelConfig& c = m.config;
  std::printf(
      "import: GGUF %s (matrices %s, kept as stored): %d layers, d_model %d, %d heads, ffn %d, "
      "vocabulary %d (tokenizer %d) -> %s\n",
      m.architecture.c_str(), m.matrix_types().c_str(), c.layers, c.d_model, c.heads, c.ffn,
      c.vocab, m.tokenizer.vocab(), path.c_str());
}

}  // namespace

Command add_import(CLI::App& app) {
  auto dir = std::make_shared<std::string>();
  auto out = std::make_shared<std::string>();
  auto dtype = std::make_shared<std::string>("auto");
  CLI::App* ci = add_subcommand(
      app, "import",
      "a Hugging Face folder of an ALiBi family (" + architectures() +
          "; config.json, model.safetensors or its shards, tokenizer.json) or a GGUF file of "
          "llama.cpp's bloom or mpt architecture (any of its tensor types " +
          supported_ggml_names() + ") as an alibi checkpoint for eval, generate and bench");
  ci->add_option("model", *dir, "Hugging Face model folder, or a .gguf file")->required();
  ci->add_option("--out", *out, "new run folder; the checkpoint is OUT/ckpt-000000000.safetensors")
      ->required();
  ci->add_option("--dtype", *dtype,
                 "type of the checkpoint's weight matrices (a folder's; a GGUF file's keep "
                 "theirs): auto (the folder's when all its tensors are BF16 or F16, else fp32) | " +
                     weight_type_names() +
                     " (GGUF's block formats from q8_0 on, quantized byte for byte as "
                     "llama.cpp's reference quantisers do; rows must be whole blocks: 32 "
                     "elements, the K types 256)");
  return {ci, [=] {
            std::error_code ec;
            if (fs::exists(*out, ec) && !(fs::is_directory(*out, ec) && fs::is_empty(*out, ec)))
              usage_error("--out '", *out, "' already exists; expected a new or empty folder");
            if (fs::is_regular_file(*dir, ec)) return import_gguf_file(*dir, *out, *dtype);
            const bool automatic = *dtype == "auto";
            WeightType wt = automatic ? WeightType::fp32
                                      : parse_weight_type(*dtype, "--dtype");
            const HfImport m = import_hf(*dir);  // everything checked before anything is written
            if (automatic && m.dtype == "BF16") wt = WeightType::bf16;
            if (automatic && m.dtype == "F16") wt = WeightType::f16;
            const ParamLayout layout = make_param_layout(m.config);
            nlohmann::json train = {{"imported_from", fs::absolute(*dir).string()},
                                    {"architecture", m.architecture},
                                    {"dtype", m.dtype},
                                    {"weights", weight_type_name(wt)}};
            if (m.trained_len > 0) train["seq_len"] = m.trained_len;
            const std::string path =
                write_checkpoint_rows(*out, m.config, train, 0, m.tokenizer, layout,
                                      [&m](const TensorInfo& t, int64_t r0, int64_t n,
                                           float* dst) { m.read_rows(t, r0, n, dst); },
                                      1, wt);
            const ModelConfig& c = m.config;
            size_t count = 0;
            for (const TensorInfo& t : layout.tensors) count += t.numel;
            std::printf(
                "import: %s (%s weights, stored as %s): %d layers, d_model %d, %d heads, ffn %d, "
                "vocabulary %d (tokenizer %d), %zu parameters -> %s\n",
                m.architecture.c_str(), m.dtype.c_str(), weight_type_name(wt), c.layers, c.d_model,
                c.heads, c.ffn, c.vocab, m.tokenizer.vocab(), count, path.c_str());
          }};
}

Command add_export(CLI::App& app) {
  auto ckpt = std::make_shared<std::string>();
  auto dir = std::make_shared<std::string>();
  auto gguf = std::make_shared<std::string>();
  auto dtype = std::make_shared<std::string>("stored");
  auto family = std::make_shared<std::string>();
  auto max_seq_len = std::make_shared<int>(8192);
  CLI::App* ce = add_subcommand(
      app, "export",
      "a checkpoint whose architecture options are a Hugging Face family's (" + architectures() +
          ") as a folder that transformers loads with from_pretrained, or (bloom, mpt) as a GGUF "
          "file that llama.cpp loads");
  ce->add_option("checkpoint", *ckpt, "run folder (its latest checkpoint) or file")->required();
  ce->add_option("--to-hf", *dir, "new folder: config.json, model.safetensors, tokenizer.json");
  ce->add_option("--to-gguf", *gguf, "GGUF file to write instead (llama.cpp's bloom or mpt)");
  ce->add_option("--dtype", *dtype,
                 "--to-gguf's weight matrices: stored (each as the checkpoint holds it) | " +
                     weight_type_names() + " (quantized from fp32, as alibi import)");
  ce->add_option("--family", *family,
                 hf::family_names() + " (empty: the first whose options the model has)");
  ce->add_option("--max-seq-len", *max_seq_len,
                 "the training length config.json (or the GGUF context_length) gives, where the "
                 "family has the field (transformers cannot run some families past it)");
  return {ce, [=] {
            if (*max_seq_len < 1)
              usage_error("--max-seq-len ", *max_seq_len, " must be at least 1");
            if (dir->empty() == gguf->empty())
              usage_error("export needs one of --to-hf DIR and --to-gguf FILE");
            GgufExportType type;
            if (*dtype != "stored") {
              if (!gguf->empty()) {
                type.as_stored = false;
                type.type = parse_weight_type(*dtype, "--dtype");
              } else {
                usage_error("--dtype '", *dtype, "' applies to --to-gguf; --to-hf writes F32");
              }
            }
            const Checkpoint ck = read_checkpoint(*ckpt);
            const hf::Family& f = hf_family(ck.config, *family);
            if (!gguf->empty()) {
              std::error_code ec;
              if (fs::exists(*gguf, ec))
                usage_error("--to-gguf '", *gguf, "' already exists; expected a new file");
              export_gguf(ck, f, type, *max_seq_len, *gguf);
              std::printf("export: %s (step %lld) -> %s (GGUF %s, matrices %s)\n",
                          ck.path.c_str(), static_cast<long long>(ck.step), gguf->c_str(),
                          gguf_architecture(f).c_str(),
                          type.as_stored ? "as stored" : weight_type_name(type.type));
              return;
            }
            const ParamLayout layout = make_param_layout(ck.config);
            ParamSet set(layout);
            ck.load_params(set);
            export_hf(ck.config, set.to_host(), ck.tokenizer, f, *max_seq_len, *dir);
            std::printf("export: %s (step %lld) -> %s (%s)%s\n", ck.path.c_str(),
                        static_cast<long long>(ck.step), dir->c_str(), f.architecture,
                        ck.tokenizer.kind() == TokenizerKind::hf
                            ? ""
                            : "; no tokenizer.json: the checkpoint's tokenizer is not a Hugging "
                              "Face one");
          }};
}

}  // namespace alibi::cli
