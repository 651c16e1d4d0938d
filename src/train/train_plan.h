#pragma once
// The memory of a training run, added up before any of it is allocated (core/memory_plan.h,
// docs/memory.md), and the validation window a valid split can fill.
#include "core/memory_plan.h"
#include "data/dataset.h"
#include "dist/comm.h"
#include "kernels/backend.h"
#include "train/train.h"

namespace alibi {

// What rank `rank` of `ranks` holds while training cfg with o's --batch, --seq-len and
// --grad-accum on `be`: what it holds now, the weights, their gradients, the AdamW state, the
// activations (with the attention scratch and the batch on the host), and what a checkpoint
// write or a resume holds for a moment. Sized by the planners the allocations use.
MemoryPlan training_memory(const TrainOptions& o, const ModelConfig& cfg, const Backend& be,
                           int rank, int ranks);

// Rank 0 prints the plan; a plan over the budget on any rank is refused in one line naming
// --batch and --seq-len, what they need and what would fit. Returns false for --dry-run (the
// plan printed, on stdout, and nothing more to do).
bool check_training_memory(const TrainOptions& o, const ModelConfig& cfg, const Backend& be,
                           Comm& comm, const MemoryOptions& mem);

// The window validation scores: --seq-len T, or, where the valid split is shorter than a window
// and the token after it (validation's windows start every T tokens and keep one for the next
// target), the longest window it fills. 0 where it cannot fill a window of one token.
int validation_length(const TokenSplit& valid, int T);

}  // namespace alibi
