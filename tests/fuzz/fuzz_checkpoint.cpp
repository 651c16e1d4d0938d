// libFuzzer target: read_checkpoint (model/checkpoint.h): the safetensors container, the
// metadata (format, config JSON through ModelConfig::from_json, train, step, tokenizer kind), the
// tokenizer bytes it carries (a SentencePiece model or a tokenizer.json) and every parameter's
// dtype and shape; then what eval does next: copy the weights and encode with the tokenizer.
#include <cstdint>

#include "fuzz_util.h"
#include "model/checkpoint.h"
#include "model/params.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = alibi::fuzz::write_input("ckpt-000000001.safetensors", data, size);
  return alibi::fuzz::swallow_usage_errors([&] {
    const alibi::Checkpoint ck = alibi::read_checkpoint(path);
    const alibi::ParamLayout layout = alibi::make_param_layout(ck.config);
    alibi::ParamSet params(layout);
    ck.load_params(params);
    const std::vector<int32_t> ids = ck.tokenizer.encode("Mr. Darcy, 1813 \xC3\xA9t\xC3\xA9\n");
    (void)ck.tokenizer.decode(ids);
  });
}
