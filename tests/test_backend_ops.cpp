// Every op of kernels/backend.h on every backend and precision of this build, through the
// interface only, against the double references of naive_ops.h (the tolerances of
// backend_harness.h) and against the CPU backend of the same precision.
#include <gtest/gtest.h>

#include <numeric>

#include "backend_harness.h"
#include "naive_ops.h"

namespace alibi::test {
namespace {

using Outs = std::vector<std::vector<float>>;
using Vec = naive::Vec;

class BackendOps : public BackendTest {
 protected:
  // Runs `op` (uploads, the op, downloads) on the backend under test and on the CPU backend of
  // the same precision. The CPU backend against itself must be bit-identical (deterministic);
  // another device is held to `cross_tol` of each output's scale.
  template <class Op>
  Outs run(const Op& op, double cross_tol) {
    const Outs got = op(be_), ref = op(cpu_);
    for (size_t i = 0; i < got.size(); ++i)
      EXPECT_LE(rel_err(got[i], ref[i]), is_cpu() ? 0.0 : cross_tol)
          << "output " << i << " against the CPU backend";
    return got;
  }
  // Operands of products: rounded to bf16 when the backend multiplies in bf16, so that the
  // products are exact and the double reference stays tight (backend_harness.h).
  std::vector<float> operand(size_t n, uint64_t seed) {
    std::vector<float> v = randn(n, seed);
    if (bf16()) round_to_bf16(v);
    return v;
  }
};

using Be = std::shared_ptr<Backend>;

TEST_P(BackendOps, MemoryIsZeroFilledAndRoundTripsExactly) {
  const std::vector<float> x = randn(1000, 1);
  DeviceArray<float> a(be_, x.size()), b(be_, x.size());
  EXPECT_EQ(to_host(be(), a), std::vector<float>(x.size(), 0.0f)) << "alloc is zero-filled";
  be().upload(a.data(), x.data(), x.size() * sizeof(float));
  be().copy(b.data(), a.data(), x.size() * sizeof(float));
  be().synchronize();
  EXPECT_EQ(to_host(be(), b), x);
  be().fill(b.data() + 10, 2.5f, 100);
  std::vector<float> want = x;
  std::fill(want.begin() + 10, want.begin() + 110, 2.5f);
  EXPECT_EQ(to_host(be(), b), want);
}

TEST_P(BackendOps, GemmEveryTransposeAgainstDouble) {
  uint64_t seed = 10;
  for (bool ta : {false, true})
    for (bool tb : {false, true})
      for (const auto& mnk : {std::tuple<int64_t, int64_t, int64_t>{1, 1, 1}, {7, 13, 5},
                              {33, 17, 65}, {64, 70, 130}}) {
        // Plain variables: clang 14 cannot capture structured bindings in a lambda.
        const int64_t M = std::get<0>(mnk), N = std::get<1>(mnk), K = std::get<2>(mnk);
        SCOPED_TRACE(testing::Message() << "ta " << ta << " tb " << tb << " M " << M << " N "
                                        << N << " K " << K);
        const int64_t lda = (ta ? M : K) + 3, ldb = (tb ? K : N) + 1, ldc = N + 2;
        const auto A = operand(size_t((ta ? K : M) * lda), seed++);
        const auto B = operand(size_t((tb ? N : K) * ldb), seed++);
        const auto C0 = randn(size_t(M * ldc), seed++);
        const float alpha = 0.5f, beta = -2.0f;
        const Outs got = run(
            [&](const Be& b) {
              auto dA = to_device(*b, A, b), dB = to_device(*b, B, b);
              auto dC = to_device(*b, C0, b);
              b->gemm(ta, tb, M, N, K, alpha, dA.data(), lda, dB.data(), ldb, beta, dC.data(),
                      ldc);
              return Outs{to_host(*b, dC)};
            },
            kProductTol);
        const Vec ref = naive::gemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C0, ldc);
        for (int64_t m = 0; m < M; ++m)
          for (int64_t n = 0; n < ldc; ++n) {
            const size_t i = size_t(m * ldc + n);
            if (n >= N) {  // the padding between rows of C is never written
              ASSERT_EQ(got[0][i], C0[i]);
              continue;
            }
            double scale = std::fabs(beta * C0[i]);
            for (int64_t k = 0; k < K; ++k)
              scale += std::fabs(alpha * (ta ? A[size_t(k * lda + m)] : A[size_t(m * lda + k)]) *
                                 (tb ? B[size_t(n * ldb + k)] : B[size_t(k * ldb + n)]));
            ASSERT_NEAR(got[0][i], ref[i], kProductTol * scale) << "at (" << m << "," << n << ")";
          }
      }
}

TEST_P(BackendOps, LinearForwardAndBackwardAgainstDouble) {
  const int64_t N = 7, IC = 33, OC = 20;
  const auto x = operand(N * IC, 21), W = operand(OC * IC, 22), dout = operand(N * OC, 23);
  const auto b = randn(OC, 24), dW0 = randn(OC * IC, 25), db0 = randn(OC, 26);
  const Outs got = run(
      [&](const Be& be) {
        auto dx = to_device(*be, x, be), dWt = to_device(*be, W, be), db = to_device(*be, b, be);
        auto dy = to_device(*be, dout, be), gW = to_device(*be, dW0, be);
        auto gb = to_device(*be, db0, be);
        DeviceArray<float> out(be, N * OC), out_nb(be, N * OC), gx(be, N * IC);
        const WTensor Wv = mat<const float*>(dWt.data(), OC, IC);
        be->run(LinearForward{mat(out.data(), N, OC), mat(dx.data(), N, IC), Wv, vec(db.data(), OC)});
        be->run(LinearForward{mat(out_nb.data(), N, OC), mat(dx.data(), N, IC), Wv, {}});
        be->run(LinearBackward{mat(gx.data(), N, IC), mat(gW.data(), OC, IC), vec(gb.data(), OC),
                               mat(dy.data(), N, OC), mat(dx.data(), N, IC),
                               mat(dWt.data(), OC, IC)});
        return Outs{to_host(*be, out), to_host(*be, out_nb), to_host(*be, gx), to_host(*be, gW),
                    to_host(*be, gb)};
      },
      kProductTol);
  EXPECT_REL(got[0], naive::linear(x, W, b, N, IC, OC), kProductTol);
  EXPECT_REL(got[1], naive::linear(x, W, {}, N, IC, OC), kProductTol);
  Vec gx(N * IC, 0.0), gW(dW0.begin(), dW0.end()), gb(db0.begin(), db0.end());
  for (int64_t n = 0; n < N; ++n)
    for (int64_t o = 0; o < OC; ++o) {
      const double g = dout[size_t(n * OC + o)];
      gb[size_t(o)] += g;
      for (int64_t i = 0; i < IC; ++i) {
        gx[size_t(n * IC + i)] += g * W[size_t(o * IC + i)];
        gW[size_t(o * IC + i)] += g * x[size_t(n * IC + i)];
      }
    }
  EXPECT_REL(got[2], gx, kProductTol);
  EXPECT_REL(got[3], gW, kProductTol);  // accumulated into the initial dW
  EXPECT_REL(got[4], gb, kElementTol * N);
}

// A caller that swaps two widths fails the op's one shape check, naming the op and the
// operands, whatever the device: the check runs before the device computes.
TEST_P(BackendOps, SwappedWidthsFailTheOpsShapeCheck) {
  const int64_t N = 4, IC = 6, OC = 10;
  const Be be = be_;
  DeviceArray<float> x(be, N * IC), W(be, OC * IC), dy(be, N * OC), gx(be, N * IC), gW(be, OC * IC),
      out(be, N * OC);
  auto message = [](const auto& f) {
    try {
      f();
    } catch (const std::logic_error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  // linear_backward(..., N, F, C) with F and C swapped: dW's shape disagrees with W's.
  const std::string bwd = message([&] {
    be->run(LinearBackward{mat(gx.data(), N, IC), mat(gW.data(), IC, OC), {},
                           mat(dy.data(), N, OC), mat(x.data(), N, IC), mat(W.data(), OC, IC)});
  });
  EXPECT_NE(bwd.find("linear_backward: dW is (6, 10), expected (10, 6)"), std::string::npos) << bwd;
  const std::string fwd = message([&] {
    be->run(LinearForward{mat(out.data(), N, OC), mat(x.data(), N, IC),
                          mat<const float*>(W.data(), IC, OC), {}});
  });
  EXPECT_NE(fwd.find("linear_forward: W is (6, 10), expected (6, 6)"), std::string::npos) << fwd;
}

TEST_P(BackendOps, LayerNormForwardAndBackwardAgainstDouble) {
  for (const bool bias : {true, false}) {  // with a bias at PyTorch's eps; without, a larger eps
    SCOPED_TRACE(bias ? "bias, eps 1e-5" : "no bias, eps 1e-3");
    const float eps = bias ? 1e-5f : 1e-3f;
    const int64_t N = 9, C = 100;
    const auto x = randn(N * C, 31, 2.0f), w = randn(C, 32), b0 = randn(C, 33);
    const auto b = bias ? b0 : decltype(b0){};
    const auto g = randn(N * C, 34), dx0 = randn(N * C, 35), dw0 = randn(C, 36);
    const Outs got = run(
        [&](const Be& be) {
          auto dx = to_device(*be, x, be), dw = to_device(*be, w, be), db = to_device(*be, b0, be);
          auto dg = to_device(*be, g, be), gx = to_device(*be, dx0, be);
          auto gw = to_device(*be, dw0, be), gb = to_device(*be, dw0, be);
          DeviceArray<float> out(be, N * C), mean(be, N), rstd(be, N);
          be->run(LayerNormForward{mat(out.data(), N, C), vec(mean.data(), N),
                                   vec(rstd.data(), N), mat(dx.data(), N, C), vec(dw.data(), C),
                                   vec(bias ? db.data() : nullptr, C), eps});
          be->run(LayerNormBackward{mat(gx.data(), N, C), vec(gw.data(), C),
                                    vec(bias ? gb.data() : nullptr, C), mat(dg.data(), N, C),
                                    mat(dx.data(), N, C), vec(dw.data(), C), vec(mean.data(), N),
                                    vec(rstd.data(), N)});
          return Outs{to_host(*be, out), to_host(*be, mean), to_host(*be, rstd),
                      to_host(*be, gx),  to_host(*be, gw),   to_host(*be, gb)};
        },
        kMathTol);
    const naive::LayerNorm ref = naive::layernorm(x, w, b, N, C, eps);
    EXPECT_REL(got[0], ref.out, kMathTol);
    EXPECT_REL(got[1], ref.mean, kMathTol);
    EXPECT_REL(got[2], ref.rstd, kMathTol);
    Vec gx(dx0.begin(), dx0.end()), gw(dw0.begin(), dw0.end()), gb(dw0.begin(), dw0.end());
    for (int64_t n = 0; n < N; ++n) {
      double sg = 0.0, sgx = 0.0;  // means of dnorm and of dnorm * xhat
      auto xhat = [&](int64_t c) { return (x[size_t(n * C + c)] - ref.mean[n]) * ref.rstd[n]; };
      for (int64_t c = 0; c < C; ++c) {
        const double dn = double(g[size_t(n * C + c)]) * w[size_t(c)];
        sg += dn / double(C);
        sgx += dn * xhat(c) / double(C);
        gw[size_t(c)] += g[size_t(n * C + c)] * xhat(c);
        gb[size_t(c)] += g[size_t(n * C + c)];
      }
      for (int64_t c = 0; c < C; ++c)
        gx[size_t(n * C + c)] +=
            (double(g[size_t(n * C + c)]) * w[size_t(c)] - sg - xhat(c) * sgx) * ref.rstd[n];
    }
    EXPECT_REL(got[3], gx, kMathTol);
    EXPECT_REL(got[4], gw, kMathTol);
    if (bias)
      EXPECT_REL(got[5], gb, kMathTol);
    else
      EXPECT_REL(got[5], Vec(dw0.begin(), dw0.end()), 0.0);  // no bias: its gradient untouched
  }
}

TEST_P(BackendOps, GeluForwardAndBackwardAgainstDouble) {
  for (const Gelu gk : {Gelu::tanh, Gelu::erf}) {
    SCOPED_TRACE(gk == Gelu::tanh ? "tanh" : "erf");
    const int64_t n = 5000;  // past the kernels' one-thread threshold
    const auto x = randn(n, 41, 3.0f), g = randn(n, 42);
    const Outs got = run(
        [&](const Be& be) {
          auto dx = to_device(*be, x, be), dg = to_device(*be, g, be);
          DeviceArray<float> out(be, n), gx(be, n);
          be->gelu_forward(out.data(), dx.data(), n, gk);
          be->gelu_backward(gx.data(), dx.data(), dg.data(), n, gk);
          return Outs{to_host(*be, out), to_host(*be, gx)};
        },
        kMathTol);
    Vec out(n), gx(n);
    for (int64_t i = 0; i < n; ++i) {
      out[size_t(i)] = naive::gelu(x[size_t(i)], gk);
      gx[size_t(i)] = naive::gelu_grad(x[size_t(i)], gk) * g[size_t(i)];
    }
    EXPECT_REL(got[0], out, kMathTol);
    EXPECT_REL(got[1], gx, kMathTol);
  }
}

TEST_P(BackendOps, EmbeddingGatherAndScatterAgainstDouble) {
  const int64_t N = 40, C = 24, V = 11;
  const float scale = 1.5f;
  std::vector<int32_t> tok(N);
  for (int64_t i = 0; i < N; ++i) tok[size_t(i)] = int32_t((i * 7) % V);  // repeats
  const auto wte = randn(V * C, 51), dx = randn(N * C, 52), dwte0 = randn(V * C, 53);
  const Outs got = run(
      [&](const Be& be) {
        auto dt = to_device(*be, tok, be);
        auto dw = to_device(*be, wte, be), dd = to_device(*be, dx, be),
             g = to_device(*be, dwte0, be);
        DeviceArray<float> x(be, N * C);
        be->embedding_forward(x.data(), dt.data(), dw.data(), N, C, scale);
        be->embedding_backward(g.data(), dd.data(), dt.data(), N, C, V, scale);
        return Outs{to_host(*be, x), to_host(*be, g)};
      },
      kElementTol);
  Vec x(N * C), g(dwte0.begin(), dwte0.end());
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < C; ++c) {
      x[size_t(n * C + c)] = double(scale) * wte[size_t(tok[size_t(n)] * C + c)];
      g[size_t(tok[size_t(n)] * C + c)] += double(scale) * dx[size_t(n * C + c)];
    }
  EXPECT_REL(got[0], x, kElementTol);      // one rounding of scale * wte
  EXPECT_REL(got[1], g, kElementTol * 4);  // up to 4 rows per token id, summed in fp32
}

TEST_P(BackendOps, HeadsSplitAndMergeExactly) {
  const int64_t B = 2, T = 5, NH = 3, HS = 4, C = NH * HS;
  const auto qkv = randn(B * T * 3 * C, 61), o = randn(B * T * C, 62);
  const Outs got = run(
      [&](const Be& be) {
        auto dqkv = to_device(*be, qkv, be), dout = to_device(*be, o, be);
        DeviceArray<float> q(be, B * T * C), k(be, B * T * C), v(be, B * T * C);
        DeviceArray<float> y(be, B * T * C), back(be, B * T * 3 * C), ob(be, B * T * C);
        be->split_heads(q.data(), k.data(), v.data(), dqkv.data(), B, T, NH, HS);
        be->split_heads_backward(back.data(), q.data(), k.data(), v.data(), B, T, NH, HS);
        be->merge_heads(y.data(), dout.data(), B, T, NH, HS);
        be->merge_heads_backward(ob.data(), y.data(), B, T, NH, HS);
        return Outs{to_host(*be, q), to_host(*be, v), to_host(*be, back), to_host(*be, y),
                    to_host(*be, ob)};
      },
      kExactTol);
  std::vector<float> q(B * T * C), v(B * T * C), y(B * T * C);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t)
      for (int64_t h = 0; h < NH; ++h)
        for (int64_t d = 0; d < HS; ++d) {
          const size_t bhtd = size_t(((b * NH + h) * T + t) * HS + d);
          const size_t row = size_t((b * T + t) * 3 * C + h * HS + d);
          q[bhtd] = qkv[row];
          v[bhtd] = qkv[row + 2 * C];
          y[size_t((b * T + t) * C + h * HS + d)] = o[bhtd];
        }
  EXPECT_EQ(got[0], q);
  EXPECT_EQ(got[1], v);
  EXPECT_EQ(got[2], qkv) << "split then its backward is the identity";
  EXPECT_EQ(got[3], y);
  EXPECT_EQ(got[4], o) << "merge then its backward is the identity";
}

TEST_P(BackendOps, ResidualWithDropoutAgainstDouble) {
  const int64_t N = 64, C = 600;  // past the one-thread threshold
  const auto x0 = randn(N * C, 71), br = randn(N * C, 72);
  for (float p : {0.0f, 0.3f}) {
    SCOPED_TRACE(p);
    const Outs got = run(
        [&](const Be& be) {
          auto x = to_device(*be, x0, be), dbr = to_device(*be, br, be);
          DeviceArray<float> back(be, N * C);
          be->residual_forward(x.data(), dbr.data(), N, C, p, 99);
          be->residual_backward(back.data(), dbr.data(), N, C, p, 99);
          return Outs{to_host(*be, x), to_host(*be, back)};
        },
        kElementTol);
    Vec x(N * C), back(N * C);
    for (int64_t n = 0; n < N; ++n)
      for (int64_t c = 0; c < C; ++c) {
        const size_t i = size_t(n * C + c);
        x[i] = x0[i] + br[i] * naive::keep(99, n, c, p);
        back[i] = br[i] * naive::keep(99, n, c, p);
      }
    EXPECT_REL(got[0], x, kElementTol);
    EXPECT_REL(got[1], back, kElementTol);
  }
}

TEST_P(BackendOps, CrossEntropyLossGradientAndTokenLossesAgainstDouble) {
  const int64_t N = 12, V = 300;
  const auto logits = randn(N * V, 81, 3.0f);
  std::vector<int32_t> tgt(N);
  for (int64_t n = 0; n < N; ++n) tgt[size_t(n)] = int32_t((n * 37) % V);
  std::vector<float> loss;
  const Outs got = run(
      [&](const Be& be) {
        auto dl = to_device(*be, logits, be);
        auto dt = to_device(*be, tgt, be);
        DeviceArray<float> lse(be, N), losses(be, N);
        loss.push_back(be->crossentropy_forward(lse.data(), dl.data(), dt.data(), N, V));
        be->token_losses(losses.data(), dl.data(), lse.data(), dt.data(), N, V);
        be->crossentropy_backward(dl.data(), lse.data(), dt.data(), N, V, 0.5f);
        return Outs{to_host(*be, lse), to_host(*be, losses), to_host(*be, dl)};
      },
      kMathTol);
  const Vec lse = naive::lse(logits, N, V);
  Vec losses(N), grad(N * V);
  double mean = 0.0;
  for (int64_t n = 0; n < N; ++n) {
    losses[size_t(n)] = lse[size_t(n)] - logits[size_t(n * V + tgt[size_t(n)])];
    mean += losses[size_t(n)] / double(N);
    for (int64_t v = 0; v < V; ++v)
      grad[size_t(n * V + v)] = 0.5 / double(N) *
                                (std::exp(logits[size_t(n * V + v)] - lse[size_t(n)]) -
                                 (v == tgt[size_t(n)] ? 1.0 : 0.0));
  }
  EXPECT_NEAR(loss[0], mean, kMathTol * mean);
  EXPECT_REL(got[0], lse, kMathTol);
  EXPECT_REL(got[1], losses, kMathTol);
  EXPECT_REL(got[2], grad, kMathTol);
}

TEST_P(BackendOps, PositionKernelsAgainstDouble) {
  const int B = 2, T = 20, C = 16, NH = 2, HS = 8;
  const int64_t pos0 = 1000003;  // absolute positions far into a stream
  const auto x0 = randn(size_t(B) * T * C, 91), wpe = randn(size_t(T + 5) * C, 92);
  const auto dwpe0 = randn(wpe.size(), 93), r0 = randn(size_t(B) * NH * T * HS, 94);
  // The rotary family with every term: q forward, k backward, about a mid-window anchor.
  const RotaryTables tab = naive::every_rotary_term(HS);
  const int64_t anchor = pos0 + T / 2;
  const Outs got = run(
      [&](const Be& be) {
        auto x = to_device(*be, x0, be), s = to_device(*be, x0, be), w = to_device(*be, wpe, be);
        auto g = to_device(*be, dwpe0, be), r = to_device(*be, r0, be), rb = to_device(*be, r0, be);
        auto freq = to_device(*be, tab.freq, be), decay = to_device(*be, tab.decay, be);
        be->posemb_forward(x.data(), w.data(), B, T, C, 5);
        be->posemb_backward(g.data(), s.data(), B, T, C, 5);  // dx = x0
        be->sinusoidal_add(s.data(), B, T, C, pos0);
        const Rotation q{freq.data(), decay.data(), float(tab.mscale), pos0, anchor, 1, false};
        Rotation dk = q;
        dk.power = -1;
        dk.backward = true;
        be->rotary(r.data(), B, NH, T, HS, q);
        be->rotary(rb.data(), B, NH, T, HS, dk);
        return Outs{to_host(*be, x), to_host(*be, g), to_host(*be, s), to_host(*be, r),
                    to_host(*be, rb)};
      },
      kElementTol);
  Vec x(x0.size()), g(dwpe0.begin(), dwpe0.end()), s(x0.size()), r(r0.size()), rb(r0.size());
  for (int b = 0; b < B; ++b)
    for (int t = 0; t < T; ++t)
      for (int c = 0; c < C; ++c) {
        const size_t i = (size_t(b) * T + t) * C + c;
        x[i] = double(x0[i]) + wpe[size_t(5 + t) * C + c];
        g[size_t(5 + t) * C + c] += x0[i];
        s[i] = double(x0[i]) + naive::sinusoid(pos0 + t, c, C);
      }
  for (size_t row = 0; row < r0.size() / HS; ++row) {
    const int64_t p = pos0 + int64_t(row % T);
    const Vec f = naive::rotate(&r0[row * HS], HS, p, 1.0, tab, 1, anchor),
              i = naive::rotate(&r0[row * HS], HS, p, -1.0, tab, -1, anchor);
    std::copy(f.begin(), f.end(), r.begin() + row * HS);
    std::copy(i.begin(), i.end(), rb.begin() + row * HS);
  }
  EXPECT_REL(got[0], x, kElementTol);
  EXPECT_REL(got[1], g, kElementTol);
  // The sinusoids and rotary angles (with their scale) are evaluated in double and rounded to
  // fp32 before the add or the rotation: one more rounding than the reference.
  EXPECT_REL(got[2], s, kElementTol);
  EXPECT_REL(got[3], r, kElementTol);
  EXPECT_REL(got[4], rb, kElementTol);
}

TEST_P(BackendOps, KvAppendAndMoveRowsExactly) {
  const int NH = 3, T = 4, HS = 5;
  const int64_t rows = 10, blocks = 2 * NH;  // two layers
  const auto cache0 = randn(size_t(blocks * rows * HS), 101), x = randn(size_t(NH) * T * HS, 102);
  const Outs got = run(
      [&](const Be& be) {
        auto c = to_device(*be, cache0, be), dx = to_device(*be, x, be);
        DeviceArray<float> big(be, size_t(blocks) * 16 * HS);
        be->kv_append(c.data() + size_t(NH) * rows * HS, rows, 3, dx.data(), NH, T, HS);
        be->kv_move(big.data(), 16, c.data(), rows, 2, 6, blocks, HS);  // to another cache
        be->kv_move(c.data(), rows, c.data(), rows, 2, 6, blocks, HS);  // compaction in place
        return Outs{to_host(*be, c), to_host(*be, big)};
      },
      kExactTol);
  std::vector<float> c = cache0, big(size_t(blocks) * 16 * HS, 0.0f);
  for (int h = 0; h < NH; ++h)  // layer 1, rows 3..6 of each head
    std::copy_n(&x[size_t(h) * T * HS], T * HS, &c[size_t((NH + h) * rows + 3) * HS]);
  for (int64_t b = 0; b < blocks; ++b) {
    std::copy_n(&c[size_t(b * rows + 2) * HS], 6 * HS, &big[size_t(b) * 16 * HS]);
    std::vector<float> live(&c[size_t(b * rows + 2) * HS], &c[size_t(b * rows + 8) * HS]);
    std::copy(live.begin(), live.end(), &c[size_t(b * rows) * HS]);
  }
  EXPECT_EQ(got[0], c);
  EXPECT_EQ(got[1], big);
}

TEST_P(BackendOps, OptimizerAgainstDouble) {
  const int64_t n = 5000;
  const auto p0 = randn(n, 111), g = randn(n, 112), m0 = randn(n, 113, 0.1f);
  std::vector<float> v0 = randn(n, 114, 0.1f);
  for (float& e : v0) e = e * e;
  const AdamWUpdate u{0.9f, 0.95f, 1e-8f, 0.999f, 1e-3f / 0.1f, std::sqrt(1.0f - 0.95f)};
  std::vector<double> norms;
  const Outs got = run(
      [&](const Be& be) {
        auto p = to_device(*be, p0, be), dg = to_device(*be, g, be), m = to_device(*be, m0, be);
        auto v = to_device(*be, v0, be);
        be->adamw_update(p.data(), dg.data(), m.data(), v.data(), n, u);
        norms.push_back(be->sum_squares(dg.data(), n, 0.0));
        be->scale(dg.data(), 0.25f, n);
        return Outs{to_host(*be, p), to_host(*be, m), to_host(*be, v), to_host(*be, dg)};
      },
      kElementTol);
  Vec p(n), m(n), v(n), gs(n);
  double ss = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    const size_t k = size_t(i);
    m[k] = 0.9 * m0[k] + 0.1 * g[k];
    v[k] = 0.95 * v0[k] + 0.05 * double(g[k]) * g[k];
    p[k] = p0[k] * double(u.decay) -
           double(u.step_size) * m[k] / (std::sqrt(v[k]) / u.bc2_sqrt + 1e-8);
    gs[k] = 0.25 * g[k];
    ss += double(g[k]) * g[k];
  }
  EXPECT_REL(got[0], p, kElementTol);
  EXPECT_REL(got[1], m, kElementTol);
  EXPECT_REL(got[2], v, kElementTol);
  EXPECT_REL(got[3], gs, kExactTol);
  EXPECT_NEAR(norms[0], ss, 1e-12 * ss);
}

INSTANTIATE_TEST_SUITE_P(AllBackends, BackendOps, ::testing::ValuesIn(all_backends()),
                         backend_name);

}  // namespace
}  // namespace alibi::test
