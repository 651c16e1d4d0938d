#pragma once
// BERT's corruption for masked-LM training and evaluation (Devlin et al. 2019, section 3.1):
// each position is chosen with probability `rate`; a chosen position becomes the target of its
// own token and its input is the mask token (80%), a random token of the text's vocabulary (10%)
// or left as it is (10%). Positions not chosen have target kIgnoreTarget and keep their token.
//
// Every draw is a pure function of (seed, position): the same position of a text is corrupted
// the same way whatever window holds it, so evaluations at different lengths score the same
// tokens, and a resumed run draws what an uninterrupted one draws.
#include <cstdint>

namespace alibi {

// The seed of the fixed masking that validation and `alibi eval` score (--mask-seed).
constexpr uint64_t kEvalMaskSeed = 1234;

struct MaskSpec {
  float rate = 0.15f;      // share of positions chosen, in (0, 1)
  int32_t mask_token = 0;  // the mask id; the text's tokens are 0..mask_token-1
};

// Corrupts tokens[0, n) in place and writes targets[0, n); position i is keyed by pos0 + i.
void mask_tokens(int32_t* tokens, int32_t* targets, int64_t n, const MaskSpec& spec,
                 uint64_t seed, int64_t pos0);

// Throws UsageError naming `flag` unless 0 < rate < 1.
void check_mask_rate(float rate, const char* flag = "--mask-rate");

}  // namespace alibi
