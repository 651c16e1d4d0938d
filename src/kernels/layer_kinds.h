#pragma once
// Forms of a layer that a checkpoint names (model/config.h) and a backend computes.

namespace alibi {

// GELU: the tanh approximation (GPT-2, BLOOM) or the exact x Phi(x) with erf (MPT; torch's
// nn.GELU default).
enum class Gelu { tanh, erf };

}  // namespace alibi
