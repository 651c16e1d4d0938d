// libFuzzer target: Safetensors::read (core/safetensors.h) on any bytes.
#include <cstdint>

#include "core/safetensors.h"
#include "fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = alibi::fuzz::write_input("in.safetensors", data, size);
  return alibi::fuzz::swallow_usage_errors([&] {
    const alibi::Safetensors st = alibi::Safetensors::read(path);
    // Touch every byte a tensor claims: a view reaching past the mapping faults here.
    uint64_t sum = 0;
    for (const auto& [name, t] : st.tensors) {
      for (size_t i = 0; i < t.nbytes(); ++i) sum += t.bytes()[i];
      sum += uint64_t(t.numel());
    }
    volatile uint64_t sink = sum;
    (void)sink;
  });
}
