// libFuzzer target: load_split (data/dataset.h), the prepared .tok token files. (prepare.json is
// written for people and scripts; alibi itself never reads it back.)
#include <cstdint>

#include "data/dataset.h"
#include "fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  alibi::fuzz::write_input("data/train.tok", data, size);
  return alibi::fuzz::swallow_usage_errors([&] {
    const alibi::TokenSplit s = alibi::load_split(alibi::fuzz::scratch_dir() + "/data", "train");
    // The ids were checked against the vocab: a batch may index an embedding table with them.
    for (int32_t id : s.tokens)
      if (id < 0 || id >= s.vocab) __builtin_trap();
  });
}
