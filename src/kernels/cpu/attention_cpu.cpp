// The CPU's fused attention (causal or bidirectional): the two passes, their workspace and
// their task schedule.
// The tile loops are in attention_tiles.h, shared by the fp32 products (attention_fp32.h) and
// the bf16 ones (attention_bf16.h, AVX512-BF16), each a tile policy of the same skeletons.
//
// Workspace: one slice of per-thread scratch per OpenMP thread (the larger of the forward's and
// the backward's layout), then a region shared by the threads: the forward's packed heads
// (bf16) or the backward's sums of dS per (b,h, distance), for the bias's gradient.
//
// Determinism: every task writes its own rows (forward: one query tile; backward: one (b,h)),
// scratch is per thread, and the bias's gradient (t5 table, alibi slopes) is summed per
// (b,h, distance) and reduced in a
// fixed order after the parallel loop, so the results do not depend on the thread count.
#include "kernels/cpu/attention_cpu.h"

#include <omp.h>

#include <algorithm>
#include <cstdint>

#include "core/error.h"
#include "kernels/attention_check.h"
#include "kernels/cpu/attention_bf16.h"
#include "kernels/cpu/attention_fp32.h"
#include "kernels/cpu/attention_tiles.h"

namespace alibi::cpu {
namespace {

using attention_detail::backward_head;
using attention_detail::BackwardScratch;
using attention_detail::Bf16Tiles;
using attention_detail::forward_tile;
using attention_detail::ForwardScratch;
using attention_detail::Fp16KvTiles;
using attention_detail::Fp32Tiles;
using attention_detail::kAlignFloats;
using attention_detail::kBr;
using attention_detail::layout_floats;
using attention_detail::padded;
using attention_detail::t5_bucket_of;

template <class P>
size_t per_thread_floats(const AttnShape& s) {
  return std::max(layout_floats<ForwardScratch<P>>(s), layout_floats<BackwardScratch<P>>(s));
}
// fire's gradient statistics of one (b,h), in doubles: at most one segment per hidden unit and
// the one below them all (position/fire.cpp plans its MLP within this).
constexpr size_t kMaxFireSegments = 257;

template <class P>
size_t shared_floats(const AttnShape& s) {
  // backward: the bias's gradient, as sums of dS per (b,h, distance) or fire's statistics
  const size_t dist = padded(size_t(s.B) * s.NH *
                             std::max(size_t(s.distances()), 2 * kMaxFireSegments * kFireStats));
  return std::max(dist, size_t(s.B) * s.NH * layout_floats<typename P::ForwardPack>(s));
}
template <class P>
size_t workspace_floats(const AttnShape& s, int threads) {
  return kAlignFloats + size_t(std::max(threads, 1)) * per_thread_floats<P>(s) +
         shared_floats<P>(s);
}

// Workspace start rounded up to 64 bytes (workspace_floats reserves the slack).
float* aligned_base(float* ws) {
  auto p = reinterpret_cast<uintptr_t>(ws);
  p = (p + 63) & ~uintptr_t(63);
  return reinterpret_cast<float*>(p);
}

void check_call(const AttnShape& s, const ScoreBias& bias, const AttnDropout& drop,
                const AttnWorkspace& ws) {
  check_attention_args(s, bias, drop);
  ALIBI_CHECK(s.precision != MatmulPrecision::bf16 || cpu_has_bf16(),
              "bf16 attention needs AVX512-BF16, which this CPU lacks");
  const int threads = omp_get_max_threads();
  ALIBI_CHECK(threads <= ws.threads, "the attention workspace was planned for ", ws.threads,
              " OpenMP threads and this call runs ", threads,
              ": plan it after setting the thread count");
  const size_t need = attention_workspace_floats(s, threads);
  ALIBI_CHECK(ws.floats >= need && ws.data != nullptr, "the attention workspace has ", ws.floats,
              " floats at ", ws.data, "; B=", s.B, " NH=", s.NH, " Tq=", s.Tq, " Tk=", s.Tk,
              " HS=", s.HS, " on ", threads, " threads needs ", need);
}

// One (b,h)'s share of the bias's gradient, added into dbias: from the sums of dS per distance
// (dist, slot Tk - 1 - d).
void reduce_bias_grad(const AttnShape& s, const ScoreBias& bias, int h, const float* dist,
                      float* dbias) {
  const int d_min = s.Tk - s.distances();  // 1 - Tq bidirectional, 0 causal; slot Tk - 1 - d
  switch (bias.kind) {
    case BiasKind::t5: {
      auto add = [&](int d) {
        dbias[size_t(t5_bucket_of(bias, d, s.causal)) * s.NH + h] += dist[s.Tk - 1 - d];
      };
      for (int d = 0; d < s.Tk; ++d) add(d);  // the causal order first, then keys after
      for (int d = -1; d >= d_min; --d) add(d);
      break;
    }
    case BiasKind::table: {  // the table's entry at |d|: the causal order, then keys after
      float* row = dbias + size_t(h) * bias.table_len;
      for (int d = 0; d < s.Tk; ++d) row[d] += dist[s.Tk - 1 - d];
      for (int d = -1; d >= d_min; --d) row[-d] += dist[s.Tk - 1 - d];
      break;
    }
    case BiasKind::alibi: {  // d(bias)/d(m_h) = -|d|, so dm_h = -sum_d |d| (sum of dS at d)
      double acc = 0.0;
      for (int d = 1; d < s.Tk; ++d) acc += double(d) * double(dist[s.Tk - 1 - d]);
      for (int d = -1; d >= d_min; --d) acc -= double(d) * double(dist[s.Tk - 1 - d]);
      dbias[h] -= float(acc);
      break;
    }
    case BiasKind::fire:  // summed over the batch in double first: backward_pass
    case BiasKind::none: break;
  }
}

// One call's forward as worksharing loops of the team that runs it: the heads packed (bf16),
// then the query tiles, without a barrier after them (the team's region ends in one). `threads`
// is the team's size, which places the packed heads after the per-thread scratch.
template <class P>
void forward_work(const AttnShape& s, const float* q, const typename P::Kv* k,
                  const typename P::Kv* v, const ScoreBias& bias, const AttnDropout& drop,
                  float* out, float* lse, float* base, int threads) {
  const size_t per_thread = per_thread_floats<P>(s);
  float* packed = base + size_t(threads) * per_thread;  // the heads' ForwardPacks
  const size_t per_head = layout_floats<typename P::ForwardPack>(s);
  const int tiles = (s.Tq + kBr - 1) / kBr;
  const int tasks = s.B * s.NH * tiles;
  float* ws = base + size_t(omp_get_thread_num()) * per_thread;
  if constexpr (P::kPacksForwardHeads) {
    if (P::packs_forward_head(s)) {
#pragma omp for schedule(static)
      for (int bh = 0; bh < s.B * s.NH; ++bh)
        P::pack_forward_head(s, bh, q, k, v, packed + size_t(bh) * per_head, ws);
    }
  }
  // Within a head, tasks alternate the costliest and the cheapest remaining tile (causal
  // cost grows with the tile index), and chunks of two keep each thread's share even.
#pragma omp for schedule(static, 2) nowait
  for (int t = 0; t < tasks; ++t) {
    const int bh = t / tiles, r = t % tiles;
    const int tile = (r % 2 == 0) ? tiles - 1 - r / 2 : r / 2;
    forward_tile<P>(s, bh, tile * kBr, q, k, v, bias, drop, out, lse,
                    packed + size_t(bh) * per_head, ws);
  }
}

// One call, in its shape's precision, by the team that runs it (of `threads`); k16, v16 for an
// f16 KV cache (s.kv).
void forward_call(const AttnShape& s, const float* q, const float* k, const float* v,
                  const uint16_t* k16, const uint16_t* v16, const ScoreBias& bias,
                  const AttnDropout& drop, float* out, float* lse, const AttnWorkspace& ws,
                  int threads) {
  if (s.B == 0 || s.NH == 0 || s.Tq == 0 || s.HS == 0) return;
  float* base = aligned_base(ws.data);
  if (s.kv == KvType::f16)
    forward_work<Fp16KvTiles>(s, q, k16, v16, bias, drop, out, lse, base, threads);
  else if (s.precision == MatmulPrecision::bf16)
    forward_work<Bf16Tiles>(s, q, k, v, bias, drop, out, lse, base, threads);
  else
    forward_work<Fp32Tiles>(s, q, k, v, bias, drop, out, lse, base, threads);
}

template <class P>
void backward_pass(const AttnShape& s, const float* q, const float* k, const float* v,
                   const float* out, const float* lse, const float* dout, const ScoreBias& bias,
                   const AttnDropout& drop, float* dq, float* dk, float* dv, float* dbias,
                   float* base) {
  const size_t per_thread = per_thread_floats<P>(s);
  const int nbh = s.B * s.NH;
  const bool bias_grad = bias.kind != BiasKind::none && dbias != nullptr;
  const bool fire = bias.kind == BiasKind::fire;
  const size_t nd = size_t(s.distances());
  const size_t nf = size_t(bias.fire.segments) * kFireStats;  // fire: doubles per (b,h)
  ALIBI_CHECK(!fire || bias.fire.segments <= int(kMaxFireSegments), "fire with ",
              bias.fire.segments, " segments");
  float* dist_all = base + size_t(omp_get_max_threads()) * per_thread;  // (B*NH, nd)
  double* fire_all = reinterpret_cast<double*>(dist_all);               // (B*NH, nf)
#pragma omp parallel for schedule(static)
  for (int bh = 0; bh < nbh; ++bh) {
    float* dist = bias_grad && !fire ? dist_all + size_t(bh) * nd : nullptr;
    double* fstats = bias_grad && fire ? fire_all + size_t(bh) * nf : nullptr;
    float* ws = base + size_t(omp_get_thread_num()) * per_thread;
    backward_head<P>(s, bh, q, k, v, out, lse, dout, bias, drop, dq, dk, dv, dist, fstats, ws);
  }
  if (!bias_grad) return;
  if (fire) {  // per head, the batch's statistics in double, b in order, then added to dbias
    for (int h = 0; h < s.NH; ++h)
      for (size_t i = 0; i < nf; ++i) {
        double acc = 0.0;
        for (int b = 0; b < s.B; ++b) acc += fire_all[size_t(b * s.NH + h) * nf + i];
        dbias[size_t(h) * nf + i] += float(acc);
      }
    return;
  }
  for (int bh = 0; bh < nbh; ++bh)  // fixed order: bit-identical for any thread count
    reduce_bias_grad(s, bias, bh % s.NH, dist_all + size_t(bh) * nd, dbias);
}

}  // namespace

size_t attention_workspace_floats(const AttnShape& s, int threads) {
  if (s.kv == KvType::f16) return workspace_floats<Fp16KvTiles>(s, threads);
  return s.precision == MatmulPrecision::bf16 ? workspace_floats<Bf16Tiles>(s, threads)
                                              : workspace_floats<Fp32Tiles>(s, threads);
}

void attention_forward(const AttnShape& s, const float* q, const float* k, const float* v,
                       const ScoreBias& bias, const AttnDropout& drop, float* out, float* lse,
                       const AttnWorkspace& ws) {
  check_call(s, bias, drop, ws);
  ALIBI_CHECK(s.kv == KvType::f32, "an f16 KV cache is read by attention_forward_all only");
  const int threads = omp_get_max_threads();
#pragma omp parallel
  forward_call(s, q, k, v, nullptr, nullptr, bias, drop, out, lse, ws, threads);
}

void attention_forward_all(std::span<const AttentionForward> calls, MatmulPrecision p) {
  auto shape = [p](AttnShape s) {
    s.precision = p;
    return s;
  };
  for (const AttentionForward& c : calls) check_call(shape(c.s), c.bias, c.drop, c.ws);
  const int threads = omp_get_max_threads();
  // Every thread meets the calls' loops in the same order; one moves on to the next call's
  // tiles as soon as its share of this one's is done.
#pragma omp parallel
  for (const AttentionForward& c : calls)
    forward_call(shape(c.s), c.q.data, c.k.data, c.v.data, c.k16.data, c.v16.data, c.bias, c.drop,
                 c.out.data, c.lse.data, c.ws, threads);
}

void attention_backward(const AttnShape& s, const float* q, const float* k, const float* v,
                        const float* out, const float* lse, const float* dout,
                        const ScoreBias& bias, const AttnDropout& drop, float* dq, float* dk,
                        float* dv, float* dbias, const AttnWorkspace& ws) {
  check_call(s, bias, drop, ws);
  ALIBI_CHECK(s.kv == KvType::f32, "an f16 KV cache has no backward");
  if (s.B == 0 || s.NH == 0 || s.HS == 0) return;  // Tq == 0 still zeroes dk, dv
  float* base = aligned_base(ws.data);
  if (s.precision == MatmulPrecision::bf16)
    backward_pass<Bf16Tiles>(s, q, k, v, out, lse, dout, bias, drop, dq, dk, dv, dbias,
                             base);
  else
    backward_pass<Fp32Tiles>(s, q, k, v, out, lse, dout, bias, drop, dq, dk, dv, dbias,
                             base);
}

}  // namespace alibi::cpu
