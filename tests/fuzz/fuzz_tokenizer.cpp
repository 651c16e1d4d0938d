// libFuzzer target: a tokenizer.json as Tokenizer::from_path reads a folder holding one: a Hugging
// Face tokenizer.json (data/hf_tokenizer.h, hf_pipeline.h) or, when it does not look like one,
// the {"kind", "vocab"} file of a prepared data folder (Tokenizer::load_dir). Then the loaded
// tokenizer encodes and decodes a fixed text that reaches its normalizers, pre-tokenizers, added
// tokens and byte fallback.
#include <cstdint>
#include <string_view>

#include "data/tokenizer.h"
#include "fuzz_util.h"

namespace {

constexpr std::string_view kText =
    "It is a truth universally acknowledged, that a single man in possession of a good fortune "
    "must be in want of a wife.\n\n  Mr. Bennet's 2 daughters: caf\xC3\xA9 \xE2\x80\x94 "
    "\xF0\x9F\x98\x80 <|endoftext|><s></s>[MASK]\t\xEF\xBC\xA1 \xC3\x85ngstr\xC3\xB6m 12345";

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  alibi::fuzz::write_input("tok/tokenizer.json", data, size);
  return alibi::fuzz::swallow_usage_errors([&] {
    const auto tok = alibi::Tokenizer::from_path(alibi::fuzz::scratch_dir() + "/tok");
    if (!tok) return;  // not a tokenizer folder: load_tokenizer would try a run folder next
    const std::vector<int32_t> ids = tok->encode(kText, /*add_special=*/true);
    for (int32_t id : ids)
      if (id < 0 || id >= tok->vocab()) __builtin_trap();  // every id must index the embedding
    (void)tok->decode(ids);
    for (int32_t id : ids) (void)tok->piece(id), (void)tok->decode_one(id);
    (void)tok->cut_at_or_after(kText, kText.size() / 2);
  });
}
