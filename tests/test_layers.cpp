// Every dense layer's backward against central finite differences (tests/fd.h).
#include <gtest/gtest.h>

#include <algorithm>

#include "fd.h"
#include "kernels/cpu/ops_cpu.h"
#include "naive_ops.h"

namespace alibi {
namespace {

using namespace cpu;
using test::dot;
using test::expect_fd;
using test::randn;

TEST(Layers, LinearBackwardMatchesFiniteDifferences) {
  const int64_t N = 6, IC = 10, OC = 7;
  auto x = randn(N * IC, 1), W = randn(OC * IC, 2, 0.5f), b = randn(OC, 3), R = randn(N * OC, 4);
  std::vector<float> out(N * OC), dx(N * IC), dW(OC * IC, 0.f), db(OC, 0.f);
  auto loss = [&] {
    linear_forward(MatmulPrecision::fp32,
                   {mat(out.data(), N, OC), mat(x.data(), N, IC), mat(W.data(), OC, IC),
                    vec(b.data(), OC)});
    return dot(out.data(), R.data(), out.size());
  };
  linear_backward(MatmulPrecision::fp32,
                  {mat(dx.data(), N, IC), mat(dW.data(), OC, IC), vec(db.data(), OC),
                   mat(R.data(), N, OC), mat(x.data(), N, IC), mat(W.data(), OC, IC)});
  expect_fd("dx", loss, x.data(), x.size(), dx.data());
  expect_fd("dW", loss, W.data(), W.size(), dW.data());
  expect_fd("db", loss, b.data(), b.size(), db.data());
}

TEST(Layers, LayerNormBackwardMatchesFiniteDifferences) {
  const int64_t N = 5, C = 12;
  for (const bool bias : {true, false}) {  // with a bias at PyTorch's eps; without, BLOOM-like eps
    SCOPED_TRACE(bias ? "bias, eps 1e-5" : "no bias, eps 1e-3");
    const float eps = bias ? 1e-5f : 1e-3f;
    auto x = randn(N * C, 11), w = randn(C, 12), b = randn(C, 13), R = randn(N * C, 14);
    std::vector<float> out(N * C), mean(N), rstd(N), dx(N * C, 0.f), dw(C, 0.f), db(C, 0.f);
    auto loss = [&] {
      layernorm_forward({mat(out.data(), N, C), vec(mean.data(), N), vec(rstd.data(), N),
                         mat(x.data(), N, C), vec(w.data(), C), vec(bias ? b.data() : nullptr, C),
                         eps});
      return dot(out.data(), R.data(), out.size());
    };
    loss();
    layernorm_backward({mat(dx.data(), N, C), vec(dw.data(), C),
                        vec(bias ? db.data() : nullptr, C), mat(R.data(), N, C),
                        mat(x.data(), N, C), vec(w.data(), C), vec(mean.data(), N),
                        vec(rstd.data(), N)});
    expect_fd("dx", loss, x.data(), x.size(), dx.data());
    expect_fd("dw", loss, w.data(), w.size(), dw.data());
    if (bias) expect_fd("db", loss, b.data(), b.size(), db.data());
  }
}

TEST(Layers, GeluBackwardMatchesFiniteDifferences) {
  const int64_t n = 64;
  for (const Gelu g : {Gelu::tanh, Gelu::erf}) {
    SCOPED_TRACE(g == Gelu::tanh ? "tanh" : "erf");
    auto x = randn(n, 21, 2.0f), R = randn(n, 22);
    std::vector<float> out(n), dx(n);
    auto loss = [&] {
      gelu_forward(out.data(), x.data(), n, g);
      return dot(out.data(), R.data(), n);
    };
    gelu_backward(dx.data(), x.data(), R.data(), n, g);
    expect_fd("dx", loss, x.data(), n, dx.data(), n);
  }
}

TEST(Layers, EmbeddingAndPositionTableBackwardMatchFiniteDifferences) {
  const int64_t B = 2, T = 5, C = 4, V = 7;
  std::vector<int32_t> tok = {1, 3, 3, 6, 0, 2, 1, 1, 5, 3};
  auto wte = randn(V * C, 31), wpe = randn(T * C, 32), R = randn(B * T * C, 33);
  std::vector<float> x(B * T * C), dwte(V * C, 0.f), dwpe(T * C, 0.f);
  auto loss = [&] {
    embedding_forward(x.data(), tok.data(), wte.data(), B * T, C, 1.5f);
    posemb_forward(x.data(), wpe.data(), B, T, C, 0);
    return dot(x.data(), R.data(), x.size());
  };
  embedding_backward(dwte.data(), R.data(), tok.data(), B * T, C, V, 1.5f);
  posemb_backward(dwpe.data(), R.data(), B, T, C, 0);
  expect_fd("dwte", loss, wte.data(), wte.size(), dwte.data(), wte.size());
  expect_fd("dwpe", loss, wpe.data(), wpe.size(), dwpe.data(), wpe.size());
}

TEST(Layers, HeadSplitAndMergeBackwardMatchFiniteDifferences) {
  const int64_t B = 2, T = 3, NH = 3, HS = 2, C = NH * HS;
  auto qkv = randn(B * T * 3 * C, 41), Rq = randn(B * T * C, 42), Rk = randn(B * T * C, 43),
       Rv = randn(B * T * C, 44);
  std::vector<float> q(B * T * C), k(B * T * C), v(B * T * C), y(B * T * C),
      dqkv(B * T * 3 * C);
  auto loss = [&] {
    split_heads(q.data(), k.data(), v.data(), qkv.data(), B, T, NH, HS);
    merge_heads(y.data(), v.data(), B, T, NH, HS);  // v -> y exercises the merge path
    return dot(q.data(), Rq.data(), q.size()) + dot(k.data(), Rk.data(), k.size()) +
           dot(y.data(), Rv.data(), y.size());
  };
  std::vector<float> dv(B * T * C);
  merge_heads_backward(dv.data(), Rv.data(), B, T, NH, HS);
  split_heads_backward(dqkv.data(), Rq.data(), Rk.data(), dv.data(), B, T, NH, HS);
  expect_fd("dqkv", loss, qkv.data(), qkv.size(), dqkv.data(), qkv.size());
}

TEST(Layers, ResidualDropoutBackwardMatchesFiniteDifferences) {
  const int64_t N = 8, C = 16;
  auto base = randn(N * C, 51), br = randn(N * C, 52), R = randn(N * C, 53);
  std::vector<float> x(N * C), dbr(N * C);
  for (float p : {0.0f, 0.3f}) {
    auto loss = [&] {
      x = base;
      residual_forward(x.data(), br.data(), N, C, p, 99);
      return dot(x.data(), R.data(), x.size());
    };
    residual_backward(dbr.data(), R.data(), N, C, p, 99);
    expect_fd("dbranch", loss, br.data(), br.size(), dbr.data(), br.size());
  }
  // With p = 0.3 about 30% of the mask is zero: the mask is really applied.
  residual_backward(dbr.data(), std::vector<float>(N * C, 1.0f).data(), N, C, 0.3f, 99);
  const auto zeros = std::count(dbr.begin(), dbr.end(), 0.0f);
  EXPECT_GT(zeros, N * C / 6);
  EXPECT_LT(zeros, N * C / 2);
}

TEST(Layers, CrossEntropyBackwardMatchesFiniteDifferences) {
  const int64_t N = 4, V = 9;
  auto logits = randn(N * V, 61, 2.0f);
  std::vector<int32_t> tgt = {0, 8, 3, 3};
  std::vector<float> lse(N), d(N * V);
  auto loss = [&] {
    return double(crossentropy_forward(lse.data(), logits.data(), tgt.data(), N, V));
  };
  const float l = float(loss());
  // reference: mean of -log softmax at the target, in double
  double ref = 0.0;
  for (int64_t n = 0; n < N; ++n) {
    double s = 0.0;
    for (int64_t v = 0; v < V; ++v) s += std::exp(double(logits[n * V + v]));
    ref += std::log(s) - logits[n * V + tgt[n]];
  }
  EXPECT_NEAR(l, ref / N, 1e-5);
  d = logits;
  crossentropy_backward(d.data(), lse.data(), tgt.data(), N, V, 1.0f);
  expect_fd("dlogits", loss, logits.data(), logits.size(), d.data(), logits.size());
}

// Targets of -1 (kIgnoreTarget, a masked LM's unscored positions) add nothing: the loss, the
// kept rows' gradients and token losses are those of the kept rows alone, to the bit; ignored
// rows get zero gradient and zero loss; the vocabulary-blocked form agrees; finite differences
// of the loss with ignored rows match its backward.
TEST(Layers, CrossEntropyIgnoresNegativeTargets) {
  const int64_t N = 6, V = 11;
  const auto logits = randn(N * V, 62, 2.0f);
  const std::vector<int32_t> tgt = {3, -1, 10, -1, 0, 7};
  std::vector<float> kept_logits;
  std::vector<int32_t> kept_tgt;
  for (int64_t n = 0; n < N; ++n)
    if (tgt[n] >= 0) {
      kept_logits.insert(kept_logits.end(), logits.begin() + n * V, logits.begin() + (n + 1) * V);
      kept_tgt.push_back(tgt[n]);
    }
  const int64_t K = int64_t(kept_tgt.size());
  std::vector<float> lse(N), klse(K), d = logits, kd = kept_logits, tl(N), ktl(K);
  const float l = crossentropy_forward(lse.data(), logits.data(), tgt.data(), N, V);
  EXPECT_EQ(l, crossentropy_forward(klse.data(), kept_logits.data(), kept_tgt.data(), K, V));
  token_losses(tl.data(), logits.data(), lse.data(), tgt.data(), N, V);
  token_losses(ktl.data(), kept_logits.data(), klse.data(), kept_tgt.data(), K, V);
  crossentropy_backward(d.data(), lse.data(), tgt.data(), N, V, 0.5f);
  crossentropy_backward(kd.data(), klse.data(), kept_tgt.data(), K, V, 0.5f);
  for (int64_t n = 0, k = 0; n < N; ++n) {
    for (int64_t v = 0; v < V; ++v)
      EXPECT_EQ(d[n * V + v], tgt[n] < 0 ? 0.0f : kd[k * V + v]) << n << " " << v;
    EXPECT_EQ(tl[n], tgt[n] < 0 ? 0.0f : ktl[k]) << n;
    k += tgt[n] >= 0;
  }
  // Blocks of 4 vocabulary columns, in order, as the chunked head runs them.
  std::vector<float> state(3 * N), bl(N), block(N * 4);
  float lb = 0.0f;
  for (int64_t v0 = 0; v0 < V; v0 += 4) {
    const int64_t cols = std::min<int64_t>(4, V - v0);
    for (int64_t n = 0; n < N; ++n)
      std::copy(logits.begin() + n * V + v0, logits.begin() + n * V + v0 + cols,
                block.begin() + n * cols);
    lb = crossentropy_block(state.data(), bl.data(), block.data(), tgt.data(), N, cols, v0, V);
  }
  EXPECT_NEAR(lb, l, 1e-6);
  for (int64_t n = 0; n < N; ++n) EXPECT_NEAR(bl[n], tl[n], 1e-6) << n;
  std::vector<float> x = logits, d1 = logits;
  crossentropy_forward(lse.data(), x.data(), tgt.data(), N, V);
  crossentropy_backward(d1.data(), lse.data(), tgt.data(), N, V, 1.0f);
  auto loss = [&] { return double(crossentropy_forward(lse.data(), x.data(), tgt.data(), N, V)); };
  expect_fd("dlogits", loss, x.data(), x.size(), d1.data(), x.size());
  std::vector<int32_t> none(N, -1);
  EXPECT_EQ(crossentropy_forward(lse.data(), logits.data(), none.data(), N, V), 0.0f);
}

// The CPU kernel's backward (the inverse rotation, scaled the same) for q and k, every term on.
TEST(Layers, RotaryBackwardMatchesFiniteDifferences) {
  const int B = 1, NH = 2, T = 5, HS = 8;
  const RotaryTables tab = test::naive::every_rotary_term(HS);
  for (int power : {1, -1}) {
    SCOPED_TRACE(power);
    auto x = randn(B * NH * T * HS, 71), R = randn(B * NH * T * HS, 72);
    const Rotation r{tab.freq.data(), tab.decay.data(), float(tab.mscale), 3, 6, power, false};
    std::vector<float> y;
    auto loss = [&] {
      y = x;
      rotary(y.data(), B, NH, T, HS, r);
      return dot(y.data(), R.data(), y.size());
    };
    std::vector<float> dx = R;
    Rotation back = r;
    back.backward = true;
    rotary(dx.data(), B, NH, T, HS, back);
    expect_fd("dx", loss, x.data(), x.size(), dx.data(), x.size());
  }
}

}  // namespace
}  // namespace alibi
