// libFuzzer target: GGUF files (core/gguf.h) on any bytes, then alibi import's reading of them
// (model/gguf_import.h: the architecture's metadata, the tensors, the rebuilt tokenizer).
#include <cstdint>

#include "core/gguf.h"
#include "fuzz_util.h"
#include "model/gguf_import.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return alibi::fuzz::swallow_usage_errors([&] {
    const alibi::Gguf g = alibi::Gguf::parse(data, size, "in.gguf");
    // Touch every byte a tensor claims: a view reaching past the input faults here.
    uint64_t sum = 0;
    for (const alibi::GgufTensor& t : g.tensors()) {
      for (size_t i = 0; i < t.bytes; ++i) sum += t.data[i];
      sum += uint64_t(t.numel());
    }
    for (const auto& [key, v] : g.metadata())
      if (v.type == alibi::GgufValue::array && v.elem != alibi::GgufValue::string &&
          alibi::GgufValue::is_integer(v.elem))
        sum += g.get_ints(key).size();
    volatile uint64_t sink = sum;
    (void)sink;
    const std::string path = alibi::fuzz::write_input("in.gguf", data, size);
    const alibi::GgufImport m = alibi::import_gguf(path);
    sink = uint64_t(m.tokenizer.encode("Hello, fuzz 123").size());
  });
}
