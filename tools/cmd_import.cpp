// alibi import: a Hugging Face BLOOM or MPT folder as an alibi checkpoint (docs/hf.md).
#include <cstdio>
#include <filesystem>
#include <string>

#include "core/error.h"
#include "model/checkpoint.h"
#include "model/hf_import.h"
#include "commands.h"

namespace fs = std::filesystem;
namespace alibi::cli {

Command add_import(CLI::App& app) {
  auto dir = std::make_shared<std::string>();
  auto out = std::make_shared<std::string>();
  CLI::App* ci = add_subcommand(
      app, "import",
      "a Hugging Face BloomForCausalLM or MptForCausalLM folder (config.json, model.safetensors "
      "or its shards, tokenizer.json) as an alibi checkpoint for eval, generate and bench");
  ci->add_option("hf_dir", *dir, "Hugging Face model folder")->required();
  ci->add_option("--out", *out, "new run folder; the checkpoint is OUT/ckpt-000000000.safetensors")
      ->required();
  return {ci, [=] {
            std::error_code ec;
            if (fs::exists(*out, ec) && !(fs::is_directory(*out, ec) && fs::is_empty(*out, ec)))
              usage_error("--out '", *out, "' already exists; expected a new or empty folder");
            const HfImport m = import_hf(*dir);  // everything checked before anything is written
            const ParamLayout layout = make_param_layout(m.config);
            ParamSet set(layout);
            set.from_host(m.params);
            nlohmann::json train = {{"imported_from", fs::absolute(*dir).string()},
                                    {"architecture", m.architecture},
                                    {"dtype", m.dtype}};
            if (m.trained_len > 0) train["seq_len"] = m.trained_len;
            const std::string path = write_checkpoint(*out, m.config, train, 0, m.tokenizer, set,
                                                      nullptr, nullptr, 1);
            const ModelConfig& c = m.config;
            size_t count = 0;
            for (const TensorInfo& t : layout.tensors) count += t.numel;
            std::printf("import: %s (%s weights): %d layers, d_model %d, %d heads, ffn %d, "
                        "vocabulary %d (tokenizer %d), %zu parameters -> %s\n",
                        m.architecture.c_str(), m.dtype.c_str(), c.layers, c.d_model, c.heads,
                        c.ffn, c.vocab, m.tokenizer.vocab(), count, path.c_str());
          }};
}

}  // namespace alibi::cli
