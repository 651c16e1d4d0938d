#pragma once
// The op harness (in the spirit of ggml's test-backend-ops): every op of kernels/backend.h runs
// on every backend this build has, in every precision, through the interface only (device
// buffers in, downloads out), against the CPU backend in the same precision and against the
// double references of naive_ops.h. A precision a backend cannot do on this machine (bf16 on a
// CPU without AVX512-BF16) is reported as skipped, by name.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "bf16_util.h"
#include "core/error.h"
#include "core/rng.h"
#include "fd.h"  // randn
#include "kernels/backend.h"
#include "kernels/device_array.h"

namespace alibi::test {

// ---- tolerances, each relative to the largest |reference| of the tensor -------------------------
// Copies, gathers, head splits, KV rows: no arithmetic, so no error.
constexpr double kExactTol = 0.0;
// One to a few fp32 roundings per element (residual adds, table adds, scaling, AdamW): ~1e-7.
constexpr double kElementTol = 1e-6;
// Transcendentals through the polynomial exp/tanh of vec_math.h (abs. error ~2e-7 per call) and
// row reductions of a few hundred fp32 terms (LayerNorm, cross-entropy): measured <= ~2e-6.
constexpr double kMathTol = 1e-5;
// Products: fp32 sums of K terms in a blocked order, per element relative to sum_k |a_k b_k|
// (the scale a rounding error can reach): ~K * 2^-24 at worst, ~1e-7 in practice. bf16 runs the
// same comparison on operands already rounded to bf16, whose products are exact in fp32, so
// what is left is again fp32 accumulation.
constexpr double kProductTol = 1e-5;
// Fused attention against the double naive kernel (tests/test_attention.cpp measured <= ~1e-6
// forward, ~3e-6 for the gradients, which sum Tq products of rounded factors).
constexpr double kAttnFwdTol = 1e-5;
constexpr double kAttnBwdTol = 3e-5;
// Two implementations of the bf16 attention each round P and dS to bf16 (relative 2^-9) before
// their products, possibly in another order: they may differ by two roundings. The double
// reference for bf16 attention is in tests/test_attention.cpp (per-element rounding bounds).
constexpr double kBf16AttnCrossTol = 2.0 * kBf16Unit;

struct BackendParam {
  std::string device;
  MatmulPrecision precision;
};

// How gtest prints the parameter in its messages (otherwise as raw bytes).
inline void PrintTo(const BackendParam& p, std::ostream* os) {
  *os << p.device << "/" << precision_name(p.precision);
}

// Every device of this build (kernels/backend.cpp) in fp32 and bf16.
inline std::vector<BackendParam> all_backends() {
  std::vector<BackendParam> v;
  std::stringstream ss(device_names());
  for (std::string d; std::getline(ss, d, '|');)
    for (MatmulPrecision p : {MatmulPrecision::fp32, MatmulPrecision::bf16}) v.push_back({d, p});
  return v;
}

inline std::string backend_name(const ::testing::TestParamInfo<BackendParam>& info) {
  return info.param.device + "_" + precision_name(info.param.precision);
}

// A fixture holding the backend under test and the CPU backend of the same precision (the
// reference every other device is held to).
class BackendTest : public ::testing::TestWithParam<BackendParam> {
 protected:
  void SetUp() override {
    try {
      be_ = make_backend(GetParam().device, GetParam().precision);
      cpu_ = make_backend("cpu", GetParam().precision);
    } catch (const UsageError& e) {
      GTEST_SKIP() << e.what();
    }
  }
  Backend& be() { return *be_; }
  Backend& cpu() { return *cpu_; }
  bool bf16() const { return GetParam().precision == MatmulPrecision::bf16; }
  bool is_cpu() const { return GetParam().device == "cpu"; }

  std::shared_ptr<Backend> be_, cpu_;
};

// Views of attention operands of shape s (kernels/layer_ops.h): q and the output (B,NH,Tq,HS),
// k and v (B,NH,kv_rows,HS), lse (B,NH,Tq), and the gradient of a bias (ScoreBias::grad_shape).
template <class P>
View<P> q_of(const AttnShape& s, P p) {
  return {p, {s.B, s.NH, s.Tq, s.HS}};
}
template <class P>
View<P> kv_of(const AttnShape& s, P p) {
  return {p, {s.B, s.NH, s.kv_rows(), s.HS}};
}
template <class P>
View<P> lse_of(const AttnShape& s, P p) {
  return {p, {s.B, s.NH, s.Tq}};
}
inline Tensor dbias_of(const AttnShape& s, const ScoreBias& bias, float* p) {
  if (bias.kind == BiasKind::none) return {};
  return {p, bias.grad_shape(s.NH)};
}

// A host vector's copy in a backend's memory.
template <class T>
DeviceArray<T> to_device(Backend& be, const std::vector<T>& host,
                         const std::shared_ptr<Backend>& owner) {
  DeviceArray<T> d(owner, host.size());
  if (!host.empty()) be.upload(d.data(), host.data(), host.size() * sizeof(T));
  return d;
}
template <class T>
std::vector<T> to_host(Backend& be, const DeviceArray<T>& d) {
  std::vector<T> h(d.size());
  if (!h.empty()) be.download(h.data(), d.data(), h.size() * sizeof(T));
  return h;
}

inline void round_to_bf16(std::vector<float>& v) {
  for (float& x : v) x = round_bf16(x);
}

// max |got - ref| / max |ref| (absolute when ref is all zero); infinite for a non-finite got.
template <class R>
double rel_err(const std::vector<float>& got, const std::vector<R>& ref) {
  EXPECT_EQ(got.size(), ref.size());
  double e = 0.0, m = 0.0;
  for (size_t i = 0; i < std::min(got.size(), ref.size()); ++i) {
    if (!std::isfinite(got[i])) return INFINITY;
    e = std::max(e, std::fabs(double(got[i]) - double(ref[i])));
    m = std::max(m, std::fabs(double(ref[i])));
  }
  return m > 0.0 ? e / m : e;
}

#define EXPECT_REL(got, ref, tol) EXPECT_LE(::alibi::test::rel_err(got, ref), tol) << #got

}  // namespace alibi::test
