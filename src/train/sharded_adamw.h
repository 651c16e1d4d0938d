#pragma once
// Data-parallel AdamW with sharded moments (ZeRO-1), whose result does not depend on the number
// of ranks (docs/distributed.md):
// - micro-batch i of a step is computed by rank i % N in round i / N; after each round every rank
//   sends each owner the owner's part of its micro-batch gradient, and the owner adds the N parts
//   it receives in rank order, so its part of the step's gradient is ((g_0 + g_1) + g_2) + ...
//   in micro-batch order, as one rank accumulating them all would sum it;
// - the global norm is each tensor's sequential sum of squares (continued across a part boundary
//   from the previous rank's running sum), summed over tensors in order, as optim.cpp does;
// - each rank clips and updates its part with its part of the moments; the parameters are then
//   all-gathered.
// One rank with one micro-batch per step is exactly adamw_step + clip_grad_norm on model.grads.
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "core/memory_plan.h"
#include "dist/comm.h"
#include "model/params.h"
#include "train/optim.h"

namespace alibi {

struct Checkpoint;

class ShardedAdamW {
 public:
  // accum: micro-batches per rank per step (rounds).
  ShardedAdamW(const ParamLayout& layout, std::shared_ptr<Backend> be, Comm& comm, int accum);

  // What the optimizer of `total` parameters holds on rank `rank` of N with `accum` rounds, in
  // floats: each moment (whole on one rank, else this rank's part), the parts received per
  // round and the step's gradient part; and, for a moment (N > 1), the whole moments rank 0
  // gathers while it writes a checkpoint, and the one whole moment each rank reads on resuming.
  struct Sizes {
    size_t moment = 0, recv = 0, acc = 0, gathered = 0, loaded = 0;
    uint64_t bytes() const {
      return sat_mul(sat_add(sat_mul(2, moment), sat_add(recv, acc)), sizeof(float));
    }
  };
  static Sizes sizes(size_t total, int N, int rank, int accum);

  // After round k's backward: grads holds this rank's micro-batch gradient alone.
  void reduce(ParamSet& grads, int round);
  // Global norm before clipping (returned), clipping to max_norm, AdamW on this rank's part,
  // the parameters all-gathered. t is the 1-based step.
  float step(ParamSet& params, float lr, int64_t t, float max_norm, const AdamWConfig& c);

  // Loads this rank's part of the moments from a checkpoint.
  void load(const Checkpoint& ck);
  // Calls fn(m, v) with the whole moments on rank 0 (gathered) and (nullptr, nullptr) elsewhere;
  // every rank must call it.
  void with_moments(const std::function<void(const ParamSet*, const ParamSet*)>& fn);

  const Range& mine() const { return parts_[size_t(comm_.rank())]; }
  size_t total() const { return layout_.total; }
  size_t moment_bytes() const { return 2 * mine().size() * sizeof(float); }
  double comm_seconds() const { return comm_s_; }  // time spent in communication so far

 private:
  double norm_squared();
  float* grad() { return acc_ ? acc_ : grads_; }

  const ParamLayout& layout_;
  std::shared_ptr<Backend> be_;
  Comm& comm_;
  std::vector<Range> parts_;
  ParamSet m_full_, v_full_;            // one rank: the moments are whole
  DeviceArray<float> m_part_, v_part_;  // several ranks: this rank's part
  float* m_ = nullptr;
  float* v_ = nullptr;
  DeviceArray<float> acc_buf_, recv_;
  float* acc_ = nullptr;          // the step's gradient, this rank's part (null: grads itself)
  float* grads_ = nullptr;  // one rank, one micro-batch: model.grads
  std::vector<double> sums_;      // per tensor
  double comm_s_ = 0;
};

}  // namespace alibi
