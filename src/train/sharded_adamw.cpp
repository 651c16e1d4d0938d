#include "train/sharded_adamw.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <string>

#include "core/error.h"
#include "model/checkpoint.h"

namespace alibi {
namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

ShardedAdamW::ShardedAdamW(const ParamLayout& layout, std::shared_ptr<Backend> be, Comm& comm,
                           int accum)
    : layout_(layout), be_(std::move(be)), comm_(comm),
      parts_(split_ranges(layout.total, comm.size())), sums_(layout.tensors.size()) {
  const int N = comm_.size();
  const Sizes sz = sizes(layout.total, N, comm_.rank(), accum);
  if (N > 1) {
    ALIBI_CHECK(be_->host_memory(), "training on several ranks needs a host-memory backend");
    for (const Range& r : parts_)
      if (r.size() == 0)
        usage_error("the model's ", layout.total, " parameters are too few to split among ", N,
                    " ranks (16 floats at least each); use fewer ranks");
    m_part_ = DeviceArray<float>(be_, sz.moment);
    v_part_ = DeviceArray<float>(be_, sz.moment);
    m_ = m_part_.data();
    v_ = v_part_.data();
    recv_ = DeviceArray<float>(be_, sz.recv);
  } else {
    m_full_ = ParamSet(layout, be_);
    v_full_ = ParamSet(layout, be_);
    m_ = m_full_.data.data();
    v_ = v_full_.data.data();
  }
  if (sz.acc > 0) {
    acc_buf_ = DeviceArray<float>(be_, sz.acc);
    acc_ = acc_buf_.data();
  }
}

ShardedAdamW::Sizes ShardedAdamW::sizes(size_t total, int N, int rank, int accum) {
  const size_t part = split_ranges(total, N)[size_t(rank)].size();
  Sizes s;
  s.moment = N > 1 ? part : total;
  s.recv = N > 1 ? part * size_t(N) : 0;
  s.acc = N > 1 || accum > 1 ? part : 0;
  s.gathered = N > 1 && rank == 0 ? 2 * total : 0;
  s.loaded = N > 1 ? total : 0;
  return s;
}

void ShardedAdamW::reduce(ParamSet& grads, int round) {
  const int N = comm_.size();
  const size_t n = mine().size();
  if (!acc_) {  // one rank, one micro-batch: the gradient is model.grads itself
    grads_ = grads.data.data();
    return;
  }
  const float* src = grads.data.data() + mine().begin;
  if (N > 1) {
    const auto t0 = std::chrono::steady_clock::now();
    comm_.alltoall_parts(grads.data.data(), parts_, recv_.data());
    comm_s_ += seconds_since(t0);
    src = recv_.data();
  }
  // Micro-batch round * N + r is part r of what arrived: summed in micro-batch order.
  for (int r = 0; r < N; ++r) {
    const float* part = src + size_t(r) * n;
    if (round == 0 && r == 0)
      be_->copy(acc_, part, n * sizeof(float));
    else
      be_->accumulate(acc_, part, int64_t(n));
  }
}

double ShardedAdamW::norm_squared() {
  const int rank = comm_.rank(), N = comm_.size();
  const Range me = mine();
  const float* g = grad();
  std::fill(sums_.begin(), sums_.end(), 0.0);
  // Tensor t's sum runs left to right over its elements; a part boundary inside t hands the
  // running sum to the next rank. Tensors that start before this part ("head") wait for it.
  int head = -1, tail = -1;
  for (size_t t = 0; t < layout_.tensors.size(); ++t) {
    const TensorInfo& ti = layout_.tensors[t];
    const size_t a = std::max(ti.offset, me.begin), b = std::min(ti.offset + ti.numel, me.end);
    if (a >= b) continue;
    if (ti.offset < me.begin) head = int(t);
    if (ti.offset + ti.numel > me.end) tail = int(t);
  }
  const auto part_sum = [&](int t, double start) {
    const TensorInfo& ti = layout_.tensors[size_t(t)];
    const size_t a = std::max(ti.offset, me.begin), b = std::min(ti.offset + ti.numel, me.end);
    return be_->sum_squares(g + (a - me.begin), int64_t(b - a), start);
  };
  double wait = 0;
  if (tail >= 0 && tail != head) {
    const double s = part_sum(tail, 0.0);
    const auto w = std::chrono::steady_clock::now();
    comm_.send(s, rank + 1);
    wait += seconds_since(w);
  }
  for (size_t t = 0; t < layout_.tensors.size(); ++t) {
    const TensorInfo& ti = layout_.tensors[t];
    if (int(t) == head || int(t) == tail || ti.numel == 0) continue;
    if (ti.offset >= me.begin && ti.offset + ti.numel <= me.end) sums_[t] = part_sum(int(t), 0.0);
  }
  if (head >= 0) {
    double carry = 0;
    const auto w = std::chrono::steady_clock::now();
    comm_.recv(carry, rank - 1);
    wait += seconds_since(w);
    const double s = part_sum(head, carry);
    if (head == tail)
      comm_.send(s, rank + 1);
    else
      sums_[size_t(head)] = s;
  }
  if (N > 1) {
    const auto w = std::chrono::steady_clock::now();
    comm_.allreduce_sum(sums_.data(), int(sums_.size()));  // one rank holds each tensor's sum
    wait += seconds_since(w);
  }
  comm_s_ += wait;
  double total = 0.0;
  for (double s : sums_) total += s;
  return total;
}

float ShardedAdamW::step(ParamSet& params, float lr, int64_t t, float max_norm,
                         const AdamWConfig& c) {
  const Range me = mine();
  float* g = grad();
  // As clip_grad_norm and adamw_step (optim.cpp), on this rank's part.
  const float norm = float(std::sqrt(norm_squared()));
  const float coef = std::min(1.0f, max_norm / (norm + 1e-6f));
  if (coef < 1.0f) be_->scale(g, coef, int64_t(me.size()));
  AdamWUpdate u{c.beta1, c.beta2, c.eps, 1.0f, 0.0f, 0.0f};
  const float bc1 = 1.0f - std::pow(c.beta1, float(t));
  u.bc2_sqrt = std::sqrt(1.0f - std::pow(c.beta2, float(t)));
  for (const TensorInfo& ti : layout_.tensors) {
    const size_t a = std::max(ti.offset, me.begin), b = std::min(ti.offset + ti.numel, me.end);
    if (a >= b) continue;
    const float tlr = lr * ti.lr_scale;
    u.step_size = tlr / bc1;
    u.decay = ti.decay ? 1.0f - tlr * c.weight_decay : 1.0f;
    const size_t k = a - me.begin;
    be_->adamw_update(params.data.data() + a, g + k, m_ + k, v_ + k, int64_t(b - a), u);
  }
  if (comm_.size() > 1) {
    const auto t0 = std::chrono::steady_clock::now();
    comm_.allgather_parts(params.data.data(), parts_);
    comm_s_ += seconds_since(t0);
  }
  return norm;
}

void ShardedAdamW::load(const Checkpoint& ck) {
  if (comm_.size() == 1) {
    ck.load_params(m_full_, "adam.m.");
    ck.load_params(v_full_, "adam.v.");
    return;
  }
  ParamSet whole(layout_, be_);
  const Range me = mine();
  ck.load_params(whole, "adam.m.");
  be_->copy(m_, whole.data.data() + me.begin, me.size() * sizeof(float));
  ck.load_params(whole, "adam.v.");
  be_->copy(v_, whole.data.data() + me.begin, me.size() * sizeof(float));
}

void ShardedAdamW::with_moments(const std::function<void(const ParamSet*, const ParamSet*)>& fn) {
  if (comm_.size() == 1) return fn(&m_full_, &v_full_);
  // Gathered for the checkpoint only: rank 0 holds the whole moments while it writes.
  ParamSet m, v;
  if (comm_.root()) {
    m = ParamSet(layout_, be_);
    v = ParamSet(layout_, be_);
  }
  const auto t0 = std::chrono::steady_clock::now();
  comm_.gather_parts(m_, parts_, comm_.root() ? m.data.data() : nullptr);
  comm_.gather_parts(v_, parts_, comm_.root() ? v.data.data() : nullptr);
  comm_s_ += seconds_since(t0);
  if (comm_.root())
    fn(&m, &v);
  else
    fn(nullptr, nullptr);
}

}  // namespace alibi
