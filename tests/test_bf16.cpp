// bf16 matrix products (MatmulPrecision::bf16): gemm against the fp32 gemm for every transpose
// combination, and a few training steps of a tiny model against the same steps in fp32.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <string>
#include <vector>

#include "backend_harness.h"
#include "bf16_util.h"
#include "cli.h"
#include "core/rng.h"
#include "kernels/cpu/attention_cpu.h"
#include "kernels/cpu/ops_cpu.h"
#include "model/checkpoint.h"
#include "model/model.h"
#include "train/optim.h"

namespace alibi {
namespace {

using test::kBf16Unit;
using test::round_bf16;

// Rounding one operand to bf16 moves it by at most 2^-9 relatively (bf16_util.h). A product of K
// terms whose operands were both rounded then errs by a random walk of K steps: std ~ 0.4 * 2^-8 *
// sqrt(K) * rms_k|a_ik b_kj|. The bound below is about ten of those standard deviations, so it
// holds for every element of the matrices tested, yet a wrong transpose or stride (errors of order
// |C| itself) fails it by far.
constexpr double kGemmTolFactor = 4.0;

// fp32 accumulation of exactly-representable bf16 products differs from fp32 sgemm of the same
// rounded inputs only by fp32 rounding: relative 1e-5 of the term scale leaves a wide margin.
constexpr double kSameInputsTol = 1e-5;

// The losses of a bf16 run track the fp32 run: after a few steps of a tiny model the difference
// comes from bf16 rounding of activations and weights in each product (~2^-8 relative per
// product, mostly averaging out in the mean loss). Observed: under 0.05% over the 20 steps (and
// under 0.1% over 60); the tolerance is ten times that.
constexpr double kLossRelTol = 0.005;

struct GemmCase {
  bool ta, tb;
  int64_t M, N, K;
};

// Stored operands with padded leading dimensions, so strides are exercised too.
struct Operands {
  int64_t lda, ldb, ldc;
  std::vector<float> A, B, C0;
};

Operands make_operands(const GemmCase& g, uint64_t seed) {
  Operands o;
  const int64_t a_rows = g.ta ? g.K : g.M, a_cols = g.ta ? g.M : g.K;
  const int64_t b_rows = g.tb ? g.N : g.K, b_cols = g.tb ? g.K : g.N;
  o.lda = a_cols + 3, o.ldb = b_cols + 1, o.ldc = g.N + 2;
  o.A.resize(size_t(a_rows * o.lda));
  o.B.resize(size_t(b_rows * o.ldb));
  o.C0.resize(size_t(g.M * o.ldc));
  Rng r(seed);
  for (float& x : o.A) x = r.normal();
  for (float& x : o.B) x = r.normal();
  for (float& x : o.C0) x = r.normal();
  return o;
}

double a_at(const GemmCase& g, const Operands& o, int64_t m, int64_t k) {
  return g.ta ? o.A[size_t(k * o.lda + m)] : o.A[size_t(m * o.lda + k)];
}
double b_at(const GemmCase& g, const Operands& o, int64_t k, int64_t n) {
  return g.tb ? o.B[size_t(n * o.ldb + k)] : o.B[size_t(k * o.ldb + n)];
}

std::vector<float> run_gemm(MatmulPrecision p, const GemmCase& g, const Operands& o, float alpha,
                            float beta) {
  std::vector<float> C = o.C0;
  cpu::gemm(p, g.ta, g.tb, g.M, g.N, g.K, alpha, o.A.data(), o.lda, o.B.data(), o.ldb, beta,
            C.data(), o.ldc);
  return C;
}

std::vector<GemmCase> cases() {
  std::vector<GemmCase> v;
  for (bool ta : {false, true})
    for (bool tb : {false, true})
      for (auto [M, N, K] : {std::tuple<int64_t, int64_t, int64_t>{1, 1, 1}, {7, 13, 5},
                             {33, 17, 65}, {129, 70, 257}, {64, 300, 31}})
        v.push_back({ta, tb, M, N, K});
  return v;
}

class Bf16 : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!cpu_has_bf16()) GTEST_SKIP() << "this CPU has no AVX512-BF16";
  }
};

TEST_F(Bf16, GemmTracksFp32WithinBf16Rounding) {
  uint64_t seed = 1;
  for (const GemmCase& g : cases())
    for (auto [alpha, beta] : {std::pair{1.0f, 0.0f}, {1.0f, 1.0f}, {0.5f, -2.0f}}) {
      const Operands o = make_operands(g, seed++);
      const std::vector<float> c32 = run_gemm(MatmulPrecision::fp32, g, o, alpha, beta);
      const std::vector<float> c16 = run_gemm(MatmulPrecision::bf16, g, o, alpha, beta);
      double worst = 0;  // largest error in units of the bound
      for (int64_t m = 0; m < g.M; ++m)
        for (int64_t n = 0; n < g.N; ++n) {
          double ss = 0;  // sum over k of (a b)^2 = K * rms^2
          for (int64_t k = 0; k < g.K; ++k) ss += std::pow(a_at(g, o, m, k) * b_at(g, o, k, n), 2);
          const double bound = kGemmTolFactor * kBf16Unit * std::abs(alpha) * std::sqrt(ss);
          const size_t i = size_t(m * o.ldc + n);
          worst = std::max(worst, std::abs(double(c16[i]) - c32[i]) / bound);
        }
      EXPECT_LE(worst, 1.0) << "ta " << g.ta << " tb " << g.tb << " M " << g.M << " N " << g.N
                            << " K " << g.K << " alpha " << alpha << " beta " << beta;
      // The padding between rows of C is never written.
      for (int64_t m = 0; m < g.M; ++m)
        for (int64_t n = g.N; n < o.ldc; ++n)
          ASSERT_EQ(c16[size_t(m * o.ldc + n)], o.C0[size_t(m * o.ldc + n)]);
    }
}

// With operands already representable in bf16, the bf16 path is exact products accumulated in
// fp32: it must agree with sgemm to fp32 rounding. This pins down transposes and strides far more
// tightly than the bound above.
TEST_F(Bf16, GemmIsExactOnBf16RepresentableInputs) {
  uint64_t seed = 100;
  for (const GemmCase& g : cases()) {
    Operands o = make_operands(g, seed++);
    for (float& x : o.A) x = round_bf16(x);
    for (float& x : o.B) x = round_bf16(x);
    const std::vector<float> c32 = run_gemm(MatmulPrecision::fp32, g, o, 1.0f, 1.0f);
    const std::vector<float> c16 = run_gemm(MatmulPrecision::bf16, g, o, 1.0f, 1.0f);
    for (int64_t m = 0; m < g.M; ++m)
      for (int64_t n = 0; n < g.N; ++n) {
        double sa = std::abs(o.C0[size_t(m * o.ldc + n)]);
        for (int64_t k = 0; k < g.K; ++k) sa += std::abs(a_at(g, o, m, k) * b_at(g, o, k, n));
        const size_t i = size_t(m * o.ldc + n);
        ASSERT_NEAR(c16[i], c32[i], kSameInputsTol * sa)
            << "ta " << g.ta << " tb " << g.tb << " M " << g.M << " N " << g.N << " K " << g.K
            << " at (" << m << "," << n << ")";
      }
  }
}

// And the bf16 path really rounds: on generic inputs it differs from fp32.
TEST_F(Bf16, GemmRoundsTheOperands) {
  const GemmCase g{false, true, 16, 16, 64};
  const Operands o = make_operands(g, 7);
  EXPECT_NE(run_gemm(MatmulPrecision::fp32, g, o, 1.0f, 0.0f),
            run_gemm(MatmulPrecision::bf16, g, o, 1.0f, 0.0f));
}

// Losses of `steps` AdamW steps of a tiny alibi model on a learnable byte sequence.
std::vector<float> train_losses(MatmulPrecision p, int steps) {
  ModelConfig cfg;
  cfg.vocab = 64, cfg.layers = 2, cfg.d_model = 64, cfg.heads = 4, cfg.ffn = 128;
  const int B = 4, T = 32;
  Model model(cfg, B, T, true, make_backend("cpu", p));
  model.init_weights(3);
  ParamSet m(model.layout), v(model.layout);
  std::vector<int32_t> tok(size_t(B) * T), tgt(tok.size());
  Rng r(11);
  std::vector<float> losses;
  for (int s = 0; s < steps; ++s) {
    // Each window counts up by a stride from a random start: predictable after a few steps.
    for (int b = 0; b < B; ++b) {
      const int start = int(r.below(cfg.vocab)), stride = 1 + int(r.below(3));
      for (int t = 0; t <= T; ++t) {
        const int32_t x = int32_t((start + stride * t) % cfg.vocab);
        if (t < T) tok[size_t(b * T + t)] = x;
        if (t > 0) tgt[size_t(b * T + t - 1)] = x;
      }
    }
    model.grads.zero();
    losses.push_back(model.forward(tok.data(), tgt.data(), B, T, true, 0));
    model.backward();
    clip_grad_norm(model.grads, 1.0f);
    adamw_step(model.params, model.grads, m, v, 3e-3f, s + 1, AdamWConfig{});
  }
  return losses;
}

TEST_F(Bf16, TrainingStepsTrackFp32) {
  constexpr int kSteps = 20;
  const std::vector<float> l32 = train_losses(MatmulPrecision::fp32, kSteps);
  const std::vector<float> l16 = train_losses(MatmulPrecision::bf16, kSteps);
  EXPECT_LT(l32.back(), 0.9f * l32.front()) << "the tiny model should learn the sequence";
  for (int s = 0; s < kSteps; ++s)
    EXPECT_NEAR(l16[size_t(s)], l32[size_t(s)], kLossRelTol * l32[size_t(s)]) << "step " << s;
}

// The precision belongs to the backend: a bf16 backend plans and runs the bf16 attention (whatever
// AttnShape::precision its caller left), so a model built on it runs bf16 attention. Its result
// is the bf16 kernel's, bit for bit, and differs from the fp32 backend's on the same inputs.
TEST_F(Bf16, BackendPrecisionSelectsTheAttentionPath) {
  const AttnShape s{2, 3, 96, 96, 32, 0, MatmulPrecision::fp32};
  const size_t n = size_t(s.B) * s.NH * s.Tq * s.HS, nl = size_t(s.B) * s.NH * s.Tq;
  Rng r(5);
  std::vector<float> q(n), k(n), v(n);
  for (auto* x : {&q, &k, &v})
    for (float& e : *x) e = r.normal();
  const std::vector<float> slopes = {0.5f, 0.25f, 0.125f};
  ScoreBias bias;
  bias.kind = BiasKind::alibi;
  bias.slopes = slopes.data();
  auto run = [&](Backend& be) {  // the CPU backend's memory is host memory
    AttnWorkspace ws = be.plan_attention(s);
    std::vector<float> scratch(ws.floats), out(n), lse(nl);
    ws.data = scratch.data();
    be.run(AttentionForward{s, test::q_of(s, q.data()), test::kv_of(s, k.data()),
                            test::kv_of(s, v.data()), bias, AttnDropout{}, test::q_of(s, out.data()),
                            test::lse_of(s, lse.data()), ws});
    return out;
  };
  const auto be16 = make_backend("cpu", MatmulPrecision::bf16);
  const auto be32 = make_backend("cpu", MatmulPrecision::fp32);
  AttnShape s16 = s;
  s16.precision = MatmulPrecision::bf16;
  const int threads = omp_get_max_threads();
  EXPECT_EQ(be16->plan_attention(s).floats, cpu::attention_workspace_floats(s16, threads));
  std::vector<float> scratch(cpu::attention_workspace_floats(s16, threads)), ref(n), lse(nl);
  cpu::attention_forward(s16, q.data(), k.data(), v.data(), bias, AttnDropout{}, ref.data(),
                         lse.data(), AttnWorkspace{scratch.data(), scratch.size(), threads});
  const std::vector<float> out16 = run(*be16), out32 = run(*be32);
  EXPECT_EQ(out16, ref);
  double diff = 0, scale = 0;
  for (size_t i = 0; i < n; ++i) {
    diff = std::max(diff, double(std::abs(out16[i] - out32[i])));
    scale = std::max(scale, double(std::abs(out32[i])));
  }
  EXPECT_GT(diff, 1e-5 * scale);  // bf16 rounding of P is visible
}

TEST(Bf16Cli, DtypeIsCheckedAndStoredInTheCheckpoint) {
  test::TempDir dir("bf16");
  auto r = test::run_cli("train --data " + dir / "none" + " --out " + dir / "run" +
                             " --dtype fp16",
                         dir / "a.err");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("--dtype 'fp16'"), std::string::npos) << r.err;
  // int8 is an inference precision (quantized weights); training refuses it by name.
  test::expect_cli_error(test::run_cli("train --data " + dir / "none" + " --out " + dir / "run" +
                                           " --dtype int8",
                                       dir / "b.err"),
                         "--dtype int8 rounds activations");
  if (!cpu_has_bf16()) GTEST_SKIP() << "this CPU has no AVX512-BF16";

  constexpr size_t kCorpusBytes = 20000;  // a few 16-token windows in every split
  test::prepare_bundled(dir, kCorpusBytes);
  r = test::run_cli("train --data " + dir / "data" + " --out " + dir / "run" +
                        " --layers 1 --d-model 32 --heads 2 --ffn 64 --seq-len 16 --batch 2"
                        " --steps 2 --eval-windows 2 --dtype bf16",
                    dir / "c.err");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(read_checkpoint(dir / "run").train.at("dtype"), "bf16");
  // A resumed run keeps the checkpoint's dtype and refuses another one.
  r = test::run_cli("train --resume " + dir / "run" + " --steps 3 --dtype fp32", dir / "d.err");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("--dtype \"fp32\" contradicts"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace alibi
