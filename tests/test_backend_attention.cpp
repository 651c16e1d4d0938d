// The fused attention of every backend and precision, through the interface: against the double
// naive kernel (src/kernels/reference, which computes its bias on its own) over bias kinds,
// dropout and shapes, against the CPU backend of the same precision, and one ALiBi decode step
// against 2^20 cached keys.
#include <gtest/gtest.h>

#include <tuple>

#include "backend_harness.h"
#include "kernels/reference/attention_ref.h"
#include "position/position.h"

namespace alibi::test {
namespace {

constexpr int kNumBuckets = 8, kT5MaxDistance = 24;

struct AttnCase {
  BiasKind kind;
  int B, NH, Tq, Tk, HS, ldk;
  float p;
};

struct AttnOut {
  std::vector<float> out, lse, dq, dk, dv, dt5;
};

// FIRE's tables of a case (kernels/attention.h, FireBias): kFireKnots ascending knots, random
// segment lines per head, psi(|d|) = log(c |d| + 1) and random positive row scales, so that x
// spans the knots.
constexpr int kFireKnots = 6;
constexpr float kFireC = 0.1f;

// Inputs of one case, on the host; the bias tables point into them.
struct AttnInputs {
  AttnShape s;
  std::vector<float> q, k, v, dout, slopes, table, dist_table;
  std::vector<int32_t> buckets;
  // fire: knots, slope, icept, psi, dpsi, row_scale, row_dc, row_dthr
  std::vector<float> fire[8];
  int len = 0;  // distances the table and fire biases cover
  AttnDropout drop;
  explicit AttnInputs(const AttnCase& c, uint64_t seed) {
    s = AttnShape{c.B, c.NH, c.Tq, c.Tk, c.HS, c.ldk, MatmulPrecision::fp32};
    const size_t nq = size_t(c.B) * c.NH * c.Tq * c.HS,
                 nk = size_t(c.B) * c.NH * s.kv_rows() * c.HS;
    q = randn(nq, seed, 1.5f);  // sd 1.5: some softmax rows peaked, others flat
    k = randn(nk, seed + 1);
    v = randn(nk, seed + 2);
    dout = randn(nq, seed + 3);
    slopes = alibi_slopes(c.NH);
    table = randn(size_t(kNumBuckets) * c.NH, seed + 4, 0.5f);
    buckets = t5_bucket_table(kNumBuckets, kT5MaxDistance);
    len = std::max(c.Tk, c.Tq) + 3;  // a table may be longer than the call needs
    dist_table = randn(size_t(c.NH) * len, seed + 5, 0.5f);
    make_fire(seed + 6);
    drop = AttnDropout{c.p, seed * 31 + 5};
  }
  void make_fire(uint64_t seed) {
    const int S = kFireKnots + 1, NH = s.NH;
    std::vector<float>& knots = fire[0];
    for (int k = 0; k < kFireKnots; ++k) knots.push_back(0.15f * float(k + 1));  // 0.15 .. 0.9
    fire[1] = randn(size_t(NH) * S, seed, 1.0f);
    fire[2] = randn(size_t(NH) * S, seed + 1, 0.3f);
    for (int d = 0; d < len; ++d) {
      fire[3].push_back(std::log(kFireC * float(d) + 1.0f));
      fire[4].push_back(float(d) / (kFireC * float(d) + 1.0f));
    }
    const std::vector<float> u = randn(size_t(s.Tq), seed + 2, 0.2f);
    for (int i = 0; i < s.Tq; ++i) {
      const float r = 0.3f + std::fabs(u[size_t(i)]);  // x up to psi(len) r: across the knots
      fire[5].push_back(r);
      fire[6].push_back(0.5f * r * r);
      fire[7].push_back(i % 3 == 0 ? 0.2f * r : 0.0f);
    }
  }
};

// The bias of `kind` on the tables at `t` (device or host copies of AttnInputs' vectors, in the
// order slopes, t5 table, buckets, distance table, fire[0..7]).
struct BiasTables {
  const float* slopes;
  const float* t5;
  const int32_t* buckets;
  const float* dist;
  const float* fire[8];
};
ScoreBias bias_of(BiasKind kind, const BiasTables& t, const AttnInputs& in) {
  switch (kind) {
    case BiasKind::alibi: return ScoreBias::alibi(t.slopes);
    case BiasKind::t5: return ScoreBias::t5(t.t5, t.buckets, kNumBuckets, kT5MaxDistance);
    case BiasKind::table: return ScoreBias::distance_table(t.dist, in.len);
    case BiasKind::fire: {
      FireBias f;
      f.segments = kFireKnots + 1;
      f.knots = t.fire[0], f.slope = t.fire[1], f.icept = t.fire[2], f.psi = t.fire[3];
      f.dpsi = t.fire[4], f.row_scale = t.fire[5], f.row_dc = t.fire[6], f.row_dthr = t.fire[7];
      return ScoreBias::fire_bias(f, in.len);
    }
    case BiasKind::none: break;
  }
  return {};
}

// Uploads the inputs, runs forward (and backward) on `be` and downloads everything. The bias's
// gradient starts at 0.25 to show it is accumulated into.
AttnOut run_attention(const std::shared_ptr<Backend>& be, const AttnInputs& in, BiasKind kind,
                      bool backward = true) {
  Backend& b = *be;
  auto q = to_device(b, in.q, be), k = to_device(b, in.k, be), v = to_device(b, in.v, be);
  auto dout = to_device(b, in.dout, be), slopes = to_device(b, in.slopes, be);
  auto table = to_device(b, in.table, be), dist = to_device(b, in.dist_table, be);
  auto buckets = to_device(b, in.buckets, be);
  std::vector<DeviceArray<float>> fire;
  for (const auto& f : in.fire) fire.push_back(to_device(b, f, be));
  BiasTables t{slopes.data(), table.data(), buckets.data(), dist.data(), {}};
  for (int i = 0; i < 8; ++i) t.fire[i] = fire[size_t(i)].data();
  const ScoreBias bias = bias_of(kind, t, in);
  const size_t nq = in.q.size(), nk = in.k.size(), nl = nq / size_t(in.s.HS);
  auto dbias = to_device(b, std::vector<float>(size_t(bias.grad_shape(in.s.NH).numel()), 0.25f), be);
  DeviceArray<float> out(be, nq), lse(be, nl), dq(be, nq), dk(be, nk), dv(be, nk);
  AttnWorkspace ws = b.plan_attention(in.s);
  DeviceArray<float> scratch(be, ws.floats);
  ws.data = scratch.data();
  const AttnShape& s = in.s;
  b.run(AttentionForward{s, q_of(s, q.data()), kv_of(s, k.data()), kv_of(s, v.data()), bias,
                         in.drop, q_of(s, out.data()), lse_of(s, lse.data()), ws});
  if (!backward) return {to_host(b, out), to_host(b, lse), {}, {}, {}, {}};
  b.run(AttentionBackward{s, q_of(s, q.data()), kv_of(s, k.data()), kv_of(s, v.data()),
                          q_of(s, out.data()), lse_of(s, lse.data()), q_of(s, dout.data()), bias,
                          in.drop, q_of(s, dq.data()), kv_of(s, dk.data()), kv_of(s, dv.data()),
                          dbias_of(s, bias, dbias.data()), ws});
  return {to_host(b, out), to_host(b, lse), to_host(b, dq), to_host(b, dk), to_host(b, dv),
          to_host(b, dbias)};
}

AttnOut run_naive(const AttnInputs& in, BiasKind kind, bool backward = true) {
  BiasTables t{in.slopes.data(), in.table.data(), in.buckets.data(), in.dist_table.data(), {}};
  for (int i = 0; i < 8; ++i) t.fire[i] = in.fire[i].data();
  const ScoreBias bias = bias_of(kind, t, in);
  AttnOut r{std::vector<float>(in.q.size()), std::vector<float>(in.q.size() / in.s.HS),
            std::vector<float>(in.q.size()), std::vector<float>(in.k.size()),
            std::vector<float>(in.k.size()),
            std::vector<float>(size_t(bias.grad_shape(in.s.NH).numel()), 0.25f)};
  ref::attention_forward_naive(in.s, in.q.data(), in.k.data(), in.v.data(), bias, in.drop,
                               r.out.data(), r.lse.data());
  if (!backward) return r;
  ref::attention_backward_naive(in.s, in.q.data(), in.k.data(), in.v.data(), r.out.data(),
                                r.lse.data(), in.dout.data(), bias, in.drop, r.dq.data(),
                                r.dk.data(), r.dv.data(), r.dt5.data());
  return r;
}

// lse as an absolute error scaled by max(1, max |lse|).
double lse_err(const std::vector<float>& got, const std::vector<float>& ref) {
  double e = 0.0, m = 1.0;
  for (size_t i = 0; i < got.size(); ++i) {
    e = std::max(e, std::fabs(double(got[i]) - ref[i]));
    m = std::max(m, std::fabs(double(ref[i])));
  }
  return e / m;
}

void expect_close(const AttnOut& got, const AttnOut& ref, double fwd_tol, double bwd_tol,
                  const char* against) {
  SCOPED_TRACE(against);
  EXPECT_LE(rel_err(got.out, ref.out), fwd_tol) << "out";
  EXPECT_LE(lse_err(got.lse, ref.lse), kAttnFwdTol) << "lse";  // fp32 scores in both precisions
  EXPECT_LE(rel_err(got.dq, ref.dq), bwd_tol) << "dq";
  EXPECT_LE(rel_err(got.dk, ref.dk), bwd_tol) << "dk";
  EXPECT_LE(rel_err(got.dv, ref.dv), bwd_tol) << "dv";
  std::vector<float> a = got.dt5, b = ref.dt5;  // compare the increments
  for (size_t i = 0; i < a.size(); ++i) a[i] -= 0.25f, b[i] -= 0.25f;
  EXPECT_LE(rel_err(a, b), bwd_tol) << "dt5";
}

using BackendAttention = BackendTest;

TEST_P(BackendAttention, FusedAgainstNaiveAndCpu) {
  const std::vector<AttnCase> cases = {
      {BiasKind::none, 2, 3, 7, 7, 32, 0, 0.0f},    {BiasKind::alibi, 2, 3, 64, 64, 32, 0, 0.1f},
      {BiasKind::alibi, 1, 3, 130, 130, 80, 0, 0.0f}, {BiasKind::t5, 2, 3, 100, 100, 32, 0, 0.1f},
      {BiasKind::t5, 1, 2, 1, 130, 64, 0, 0.0f},    {BiasKind::alibi, 2, 3, 37, 200, 64, 203, 0.1f},
      {BiasKind::t5, 2, 3, 37, 200, 64, 203, 0.0f}, {BiasKind::alibi, 1, 2, 1, 1, 32, 0, 0.0f},
      {BiasKind::table, 2, 3, 100, 100, 32, 0, 0.1f}, {BiasKind::table, 2, 3, 37, 200, 64, 203, 0.0f},
      {BiasKind::fire, 2, 3, 100, 100, 32, 0, 0.1f}, {BiasKind::fire, 1, 2, 37, 200, 64, 203, 0.0f},
      {BiasKind::fire, 1, 2, 1, 130, 32, 0, 0.0f},
  };
  uint64_t seed = 1;
  for (const AttnCase& c : cases) {
    SCOPED_TRACE(testing::Message() << "bias " << int(c.kind) << " B " << c.B << " NH " << c.NH
                                    << " Tq " << c.Tq << " Tk " << c.Tk << " HS " << c.HS
                                    << " ldk " << c.ldk << " p " << c.p);
    AttnInputs in(c, seed += 10);
    if (bf16())
      for (auto* x : {&in.q, &in.k, &in.v, &in.dout}) round_to_bf16(*x);
    if (!is_cpu() && (c.kind == BiasKind::table || c.kind == BiasKind::fire)) continue;  // CPU only
    const AttnOut got = run_attention(be_, in, c.kind);
    const AttnOut on_cpu = run_attention(cpu_, in, c.kind);
    const double cross = is_cpu() ? 0.0 : bf16() ? kBf16AttnCrossTol : kAttnBwdTol;
    expect_close(got, on_cpu, cross, cross, "the CPU backend");
    if (!bf16()) expect_close(got, run_naive(in, c.kind), kAttnFwdTol, kAttnBwdTol, "naive");
  }
}

// One decode step (Tq = 1) against 2^20 cached keys: every distance from 0 to 2^20 - 1 is in the
// scores. Head 1's slope is small enough (2^-20) that the farthest keys still carry weight
// e^-1, so an error in the bias anywhere along the range moves the output. The fp32 online
// softmax sums 2^20 terms in 2^14 tiles: relative rounding ~sqrt(2^14) * 2^-24 ~ 1e-5 (measured:
// see the test's output), hence a tolerance of 1e-4; a 1% error in the slopes moves the output
// by ~1e-2, which the check also shows it would catch.
constexpr int kLongKeys = 1 << 20;
constexpr double kLongRangeTol = 1e-4;

TEST_P(BackendAttention, AlibiDecodeStepAgainst2To20Keys) {
  if (bf16()) GTEST_SKIP() << "the long-range bias check runs in fp32 (the bias is fp32 in both)";
  AttnInputs in(AttnCase{BiasKind::alibi, 1, 2, 1, kLongKeys, 32, 0, 0.0f}, 77);
  in.slopes = {1.0f / 256.0f, 1.0f / float(kLongKeys)};
  in.q = randn(in.q.size(), 78, 0.3f);  // scores of order 1: the bias decides the weights
  const AttnOut got = run_attention(be_, in, BiasKind::alibi, /*backward=*/false);
  const AttnOut ref = run_naive(in, BiasKind::alibi, /*backward=*/false);
  const double err = rel_err(got.out, ref.out);
  std::cout << "[ long     ] 2^20 keys: out error/scale " << err << ", lse error "
            << lse_err(got.lse, ref.lse) << "\n";
  EXPECT_LE(err, kLongRangeTol);
  EXPECT_LE(lse_err(got.lse, ref.lse), kLongRangeTol);
  AttnInputs off = in;
  for (float& m : off.slopes) m *= 1.01f;
  EXPECT_GT(rel_err(got.out, run_naive(off, BiasKind::alibi, false).out), 10 * kLongRangeTol)
      << "a 1% error in the slopes must fail the check";
}

INSTANTIATE_TEST_SUITE_P(AllBackends, BackendAttention, ::testing::ValuesIn(all_backends()),
                         backend_name);

}  // namespace
}  // namespace alibi::test
