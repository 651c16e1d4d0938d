// libFuzzer target: the bodies `alibi serve` accepts (serve/request.h), arbitrary bytes parsed as
// a POST /v1/completions, /tokenize and /detokenize body. ApiError (answered as a 400 with
// OpenAI's error object) is the parsers' only way to refuse a body; anything else escaping, or a
// request that breaks the limits it was parsed under, is a finding.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "serve/request.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace alibi::serve;
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  RequestLimits lim;
  lim.vocab = 300;
  lim.max_tokens = 64;
  lim.max_sequences = 4;
  lim.max_prompt_bytes = 4096;
  try {
    const CompletionRequest r = parse_completion(body, lim);
    // What the engine relies on: at least one prompt, sequences and tokens within the limits,
    // token ids of the vocabulary.
    if (r.prompts.empty() || r.n < 1 ||
        r.prompts.size() * size_t(r.n) > size_t(lim.max_sequences) || r.max_tokens < 0 ||
        r.max_tokens > lim.max_tokens)
      std::abort();
    for (const Prompt& p : r.prompts)
      for (const int32_t id : p.ids)
        if (id < 0 || id >= lim.vocab) std::abort();
  } catch (const ApiError&) {
  }
  try {
    (void)parse_tokenize(body);
  } catch (const ApiError&) {
  }
  try {
    for (const int32_t id : parse_detokenize(body, lim.vocab))
      if (id < 0 || id >= lim.vocab) std::abort();
  } catch (const ApiError&) {
  }
  return 0;
}
