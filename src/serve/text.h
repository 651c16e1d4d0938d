#pragma once
// A sequence's text as it is sent: stop strings and log-probabilities (OpenAI's completions).
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "generate/generate.h"

namespace alibi::serve {

// Turns the bytes of a sequence's tokens into what may be sent now: never half a UTF-8
// character (Utf8Stream), never the start of what may become a stop string, and nothing from the
// first stop string on (OpenAI's `stop`: the stop string itself is not part of the text).
class StopText {
 public:
  explicit StopText(std::vector<std::string> stops = {});
  // Appends one token's bytes; returns the bytes that can be sent now.
  std::string push(std::string_view bytes);
  // At the end of the sequence: everything still held back (nothing once stopped).
  std::string flush();
  bool stopped() const { return stopped_; }

 private:
  std::vector<std::string> stops_;
  Utf8Stream utf8_;
  std::string held_;  // complete characters that may be the start of a stop string
  bool stopped_ = false;
};

// log p(token) under softmax(logits[0..V)) and the `top` most likely tokens with theirs, most
// likely first (ties to the smaller id). fp64 log-sum-exp; no allocation but `top`'s.
struct TokenLogprob {
  int32_t token = 0;
  float logprob = 0;
  std::vector<std::pair<int32_t, float>> top;
};
TokenLogprob token_logprob(const float* logits, int V, int32_t token, int top);

}  // namespace alibi::serve
