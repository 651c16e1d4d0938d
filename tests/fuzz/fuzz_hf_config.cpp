// libFuzzer target: import_hf (model/hf_import.h) with the fuzz input as config.json, next to the
// weights and tokenizer of a small real model (tests/golden/hf): every config field reaches the
// shape checks against real tensors, and a config that matches them goes all the way through.
#include <cstdint>
#include <cstring>
#include <filesystem>

#include "fuzz_util.h"
#include "model/hf_import.h"

namespace {

namespace fs = std::filesystem;

// A model folder whose config.json is a fuzz input; the rest links to a golden model.
std::string model_folder(const char* golden) {
  const fs::path dir = fs::path(alibi::fuzz::scratch_dir()) / golden;
  fs::create_directories(dir);
  const fs::path src = fs::path(ALIBI_SOURCE_DIR) / "tests/golden/hf" / golden;
  for (const char* f : {"model.safetensors", "tokenizer.json"})
    if (!fs::exists(dir / f)) fs::create_symlink(src / f, dir / f);
  return dir.string();
}

bool contains(const uint8_t* data, size_t size, const char* needle) {
  return ::memmem(data, size, needle, std::strlen(needle)) != nullptr;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // MPT's tensors for a config that mentions MPT, BLOOM's for the rest: both families' code
  // paths then meet weights they can accept.
  const bool mpt = contains(data, size, "Mpt") || contains(data, size, "mpt");
  static const std::string bloom_dir = model_folder("bloom-bf16");
  static const std::string mpt_dir = model_folder("mpt-f16");
  const std::string& dir = mpt ? mpt_dir : bloom_dir;
  alibi::fuzz::write_input(fs::path(dir).filename().string() + "/config.json", data, size);
  return alibi::fuzz::swallow_usage_errors([&] { (void)alibi::import_hf(dir); });
}
