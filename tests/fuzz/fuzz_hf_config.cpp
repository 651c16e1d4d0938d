// libFuzzer target: import_hf (model/hf_import.h) with the fuzz input as config.json, next to the
// weights and tokenizer of a small real model of a registered family (tests/golden/hf/NAME):
// every config field reaches the shape checks against real tensors, and a config that matches
// them goes all the way through.
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "fuzz_util.h"
#include "model/hf/family.h"
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
  // The tensors of the first registered family the config mentions (the registry's first for
  // one that mentions none): every family's code paths then meet weights they can accept.
  static const std::vector<std::string> dirs = [] {
    std::vector<std::string> v;
    for (const alibi::hf::Family* f : alibi::hf::families()) v.push_back(model_folder(f->name));
    return v;
  }();
  const auto& families = alibi::hf::families();
  size_t i = 0;
  while (i < families.size() && !contains(data, size, families[i]->model_type) &&
         !contains(data, size, families[i]->architecture))
    ++i;
  const std::string& dir = dirs[i < families.size() ? i : 0];
  alibi::fuzz::write_input(fs::path(dir).filename().string() + "/config.json", data, size);
  return alibi::fuzz::swallow_usage_errors([&] { (void)alibi::import_hf(dir); });
}
