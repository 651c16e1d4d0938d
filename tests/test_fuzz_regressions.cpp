// Inputs the fuzz targets (tests/fuzz, docs/reliability.md#fuzzing) found to break a loader,
// kept from tests/fuzz/regressions/<target>/: each must now be refused with a one-line
// UsageError naming the file and the value, under the normal build as under the fuzz build.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "cli.h"
#include "core/safetensors.h"
#include "data/tokenizer.h"
#include "model/checkpoint.h"
#include "model/hf_import.h"
#include "usage_error.h"

namespace alibi {
namespace {

std::string regression(const std::string& target, const std::string& name) {
  return std::string(ALIBI_SOURCE_DIR) + "/tests/fuzz/regressions/" + target + "/" + name;
}

// Two tokens with one id: the message quoted the first one through BpeModel::token(id), whose
// end offset was not set yet, and read far past the token text (ASan: heap-buffer-overflow).
TEST(FuzzRegressions, TokenizerVocabDuplicateId) {
  const std::string path = regression("tokenizer", "vocab-duplicate-id.json");
  test::expect_usage_error([&] { Tokenizer::from_path(path); },
                           {path, "model.vocab gives the id 1 to both 'a' and 'b'"});
}

// A tokenizer.json of a data folder (Tokenizer::load_dir) whose vocab is 1e30: get<int>()
// converted it with undefined behaviour (UBSan: float-cast-overflow).
TEST(FuzzRegressions, TokenizerDataVocabFloat) {
  test::TempDir dir("fuzz_tok");
  std::filesystem::copy_file(regression("tokenizer", "data-vocab-1e30.json"),
                             dir / "tokenizer.json");
  test::expect_usage_error([&] { Tokenizer::from_path(dir.path.string()); },
                           {dir / "tokenizer.json", "\"vocab\" is 1e+30; expected an integer"});
}

// Safetensors headers whose shape or data_offsets are no sizes: a float (1e30: undefined
// behaviour in get<>()), a product of dimensions that overflows int64 (UBSan:
// signed-integer-overflow), and negative dimensions whose product looked right.
TEST(FuzzRegressions, SafetensorsShapesAndOffsets) {
  for (const char* name : {"shape-1e30.safetensors", "offsets-1e30.safetensors",
                           "negative-shape.safetensors"}) {
    const std::string path = regression("safetensors", name);
    test::expect_usage_error([&] { Safetensors::read(path); },
                             {path, "expected arrays of non-negative integers"});
  }
  const std::string path = regression("safetensors", "shape-overflow.safetensors");
  test::expect_usage_error([&] { Safetensors::read(path); }, {path, "bytes for its shape"});
}

// Checkpoint configs: vocab 1e30 (float-cast-overflow in ModelConfig::from_json), and 10^8
// layers, whose parameter layout (800 MB of tensor entries) was built before any tensor was
// checked against the file's 232 bytes.
TEST(FuzzRegressions, CheckpointConfig) {
  std::string path = regression("checkpoint", "config-vocab-1e30.safetensors");
  test::expect_usage_error([&] { read_checkpoint(path); },
                           {path, "config vocab is 1e+30; expected an integer"});
  path = regression("checkpoint", "config-layers-1e8.safetensors");
  test::expect_usage_error([&] { read_checkpoint(path); },
                           {path, "config layers 100000000 but only 0 tensors"});
}

// Hugging Face config.json next to a golden model's weights and tokenizer: n_layer 1e30
// (float-cast-overflow), n_layer 10^8 (an 800 MB layout before any tensor was checked), MPT's
// attn_config.alibi as a string (nlohmann's type_error escaped import_hf) and expansion_ratio
// 1e300 (float-cast-overflow converting the FFN width).
TEST(FuzzRegressions, HfConfig) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"bloom-n_layer-1e30.json", "field 'n_layer' is 1e+30; expected an integer"},
      {"bloom-n_layer-1e8.json", "field 'n_layer' = 100000000 is more than the"},
      {"mpt-alibi-string.json", "field 'attn_config.alibi' = \"yes\" has the wrong type"},
      {"mpt-expansion_ratio-1e300.json", "field 'expansion_ratio' = 1e+300 times d_model"}};
  for (const auto& [name, needle] : cases) {
    test::TempDir dir("fuzz_hf");
    const std::string golden = std::string(ALIBI_SOURCE_DIR) + "/tests/golden/hf/" +
                               (name.starts_with("mpt") ? "mpt-f16/" : "bloom-bf16/");
    for (const char* f : {"model.safetensors", "tokenizer.json"})
      std::filesystem::copy_file(golden + f, dir / f);
    std::filesystem::copy_file(regression("hf_config", name), dir / "config.json");
    test::expect_usage_error([&] { import_hf(dir.path.string()); },
                             {dir / "config.json", needle});
  }
}

}  // namespace
}  // namespace alibi
