// The finite-difference mode of the op harness: every op of kernels/backend.h that has a
// backward, on every backend of this build, through the interface only: the backward's
// gradients against central differences of loss = sum(forward outputs * R) (tests/fd.h). fp32
// only: in bf16 the operands' rounding (2^-8 relative) swamps a difference quotient.
#include <gtest/gtest.h>

#include <functional>

#include "backend_harness.h"
#include "naive_ops.h"
#include "position/position.h"

namespace alibi::test {
namespace {

using Be = std::shared_ptr<Backend>;

class BackendGrads : public BackendTest {
 protected:
  void SetUp() override {
    BackendTest::SetUp();
    if (IsSkipped()) return;
    if (bf16()) GTEST_SKIP() << "finite differences need fp32 forwards (bf16 rounding swamps them)";
  }
  // loss(x) for a forward that maps device inputs to one device output, with weights R.
  std::function<double()> loss_of(const std::function<std::vector<float>()>& forward,
                                  const std::vector<float>& R) {
    return [forward, &R] {
      const std::vector<float> out = forward();
      return dot(out.data(), R.data(), out.size());
    };
  }
};

TEST_P(BackendGrads, Linear) {
  const int64_t N = 6, IC = 10, OC = 7;
  auto x = randn(N * IC, 1), W = randn(OC * IC, 2, 0.5f), b = randn(OC, 3);
  const auto R = randn(N * OC, 4);
  auto fwd = [&] {
    auto dx = to_device(be(), x, be_), dW = to_device(be(), W, be_), db = to_device(be(), b, be_);
    DeviceArray<float> out(be_, N * OC);
    be().run(LinearForward{mat(out.data(), N, OC), mat(dx.data(), N, IC),
                           mat<const float*>(dW.data(), OC, IC), vec(db.data(), OC)});
    return to_host(be(), out);
  };
  auto dx = to_device(be(), x, be_), dW = to_device(be(), W, be_), dR = to_device(be(), R, be_);
  DeviceArray<float> gx(be_, N * IC), gW(be_, OC * IC), gb(be_, OC);
  be().run(LinearBackward{mat(gx.data(), N, IC), mat(gW.data(), OC, IC), vec(gb.data(), OC),
                         mat(dR.data(), N, OC), mat(dx.data(), N, IC), mat(dW.data(), OC, IC)});
  const auto loss = loss_of(fwd, R);
  expect_fd("dx", loss, x.data(), x.size(), to_host(be(), gx).data());
  expect_fd("dW", loss, W.data(), W.size(), to_host(be(), gW).data());
  expect_fd("db", loss, b.data(), b.size(), to_host(be(), gb).data());
}

TEST_P(BackendGrads, LayerNorm) {
  const int64_t N = 5, C = 12;
  for (const bool bias : {true, false}) {
    SCOPED_TRACE(bias ? "bias, eps 1e-5" : "no bias, eps 1e-3");
    const float eps = bias ? 1e-5f : 1e-3f;
    auto x = randn(N * C, 11), w = randn(C, 12), b = randn(C, 13);
    const auto R = randn(N * C, 14);
    DeviceArray<float> mean(be_, N), rstd(be_, N);
    auto fwd = [&] {
      auto dx = to_device(be(), x, be_), dw = to_device(be(), w, be_), db = to_device(be(), b, be_);
      DeviceArray<float> out(be_, N * C);
      be().run(LayerNormForward{mat(out.data(), N, C), vec(mean.data(), N), vec(rstd.data(), N),
                                mat(dx.data(), N, C), vec(dw.data(), C),
                                vec(bias ? db.data() : nullptr, C), eps});
      return to_host(be(), out);
    };
    fwd();  // saves mean and rstd for the backward
    auto dx = to_device(be(), x, be_), dw = to_device(be(), w, be_), dR = to_device(be(), R, be_);
    DeviceArray<float> gx(be_, N * C), gw(be_, C), gb(be_, C);
    be().run(LayerNormBackward{mat(gx.data(), N, C), vec(gw.data(), C),
                               vec(bias ? gb.data() : nullptr, C), mat(dR.data(), N, C),
                               mat(dx.data(), N, C), vec(dw.data(), C), vec(mean.data(), N),
                               vec(rstd.data(), N)});
    const auto loss = loss_of(fwd, R);
    expect_fd("dx", loss, x.data(), x.size(), to_host(be(), gx).data());
    expect_fd("dw", loss, w.data(), w.size(), to_host(be(), gw).data());
    if (bias) expect_fd("db", loss, b.data(), b.size(), to_host(be(), gb).data());
  }
}

TEST_P(BackendGrads, Gelu) {
  const int64_t n = 64;
  for (const Gelu g : {Gelu::tanh, Gelu::erf}) {
    SCOPED_TRACE(g == Gelu::tanh ? "tanh" : "erf");
    auto x = randn(n, 21, 2.0f);
    const auto R = randn(n, 22);
    auto fwd = [&] {
      auto dx = to_device(be(), x, be_);
      DeviceArray<float> out(be_, n);
      be().gelu_forward(out.data(), dx.data(), n, g);
      return to_host(be(), out);
    };
    auto dx = to_device(be(), x, be_), dR = to_device(be(), R, be_);
    DeviceArray<float> gx(be_, n);
    be().gelu_backward(gx.data(), dx.data(), dR.data(), n, g);
    expect_fd("dx", loss_of(fwd, R), x.data(), n, to_host(be(), gx).data(), n);
  }
}

TEST_P(BackendGrads, EmbeddingAndLearnedPositions) {
  const int64_t B = 2, T = 5, C = 4, V = 7;
  const std::vector<int32_t> tok = {1, 3, 3, 6, 0, 2, 1, 1, 5, 3};
  auto wte = randn(V * C, 31), wpe = randn((T + 2) * C, 32);
  const auto R = randn(B * T * C, 33);
  auto fwd = [&] {
    auto dt = to_device(be(), tok, be_);
    auto dw = to_device(be(), wte, be_), dp = to_device(be(), wpe, be_);
    DeviceArray<float> x(be_, B * T * C);
    be().embedding_forward(x.data(), dt.data(), dw.data(), B * T, C, 1.5f);
    be().posemb_forward(x.data(), dp.data(), B, T, C, 2);
    return to_host(be(), x);
  };
  auto dt = to_device(be(), tok, be_);
  auto dR = to_device(be(), R, be_);
  DeviceArray<float> gw(be_, V * C), gp(be_, (T + 2) * C);
  be().embedding_backward(gw.data(), dR.data(), dt.data(), B * T, C, V, 1.5f);
  be().posemb_backward(gp.data(), dR.data(), B, T, C, 2);
  const auto loss = loss_of(fwd, R);
  expect_fd("dwte", loss, wte.data(), wte.size(), to_host(be(), gw).data(), wte.size());
  expect_fd("dwpe", loss, wpe.data(), wpe.size(), to_host(be(), gp).data(), wpe.size());
}

TEST_P(BackendGrads, HeadSplitAndMerge) {
  const int64_t B = 2, T = 3, NH = 3, HS = 2, C = NH * HS;
  auto qkv = randn(B * T * 3 * C, 41);
  const auto Rq = randn(B * T * C, 42), Rk = randn(B * T * C, 43), Rv = randn(B * T * C, 44);
  auto fwd = [&] {  // q and k as they are, v merged back to (B,T,C): one output of 3 parts
    auto d = to_device(be(), qkv, be_);
    DeviceArray<float> q(be_, B * T * C), k(be_, B * T * C), v(be_, B * T * C), y(be_, B * T * C);
    be().split_heads(q.data(), k.data(), v.data(), d.data(), B, T, NH, HS);
    be().merge_heads(y.data(), v.data(), B, T, NH, HS);
    std::vector<float> out = to_host(be(), q), ks = to_host(be(), k), ys = to_host(be(), y);
    out.insert(out.end(), ks.begin(), ks.end());
    out.insert(out.end(), ys.begin(), ys.end());
    return out;
  };
  std::vector<float> R = Rq;
  R.insert(R.end(), Rk.begin(), Rk.end());
  R.insert(R.end(), Rv.begin(), Rv.end());
  auto dq = to_device(be(), Rq, be_), dk = to_device(be(), Rk, be_), dy = to_device(be(), Rv, be_);
  DeviceArray<float> dv(be_, B * T * C), g(be_, B * T * 3 * C);
  be().merge_heads_backward(dv.data(), dy.data(), B, T, NH, HS);
  be().split_heads_backward(g.data(), dq.data(), dk.data(), dv.data(), B, T, NH, HS);
  expect_fd("dqkv", loss_of(fwd, R), qkv.data(), qkv.size(), to_host(be(), g).data(), qkv.size());
}

TEST_P(BackendGrads, ResidualWithDropout) {
  const int64_t N = 8, C = 16;
  const auto base = randn(N * C, 51), R = randn(N * C, 53);
  auto br = randn(N * C, 52);
  for (float p : {0.0f, 0.3f}) {
    SCOPED_TRACE(p);
    auto fwd = [&] {
      auto x = to_device(be(), base, be_), d = to_device(be(), br, be_);
      be().residual_forward(x.data(), d.data(), N, C, p, 99);
      return to_host(be(), x);
    };
    auto dR = to_device(be(), R, be_);
    DeviceArray<float> g(be_, N * C);
    be().residual_backward(g.data(), dR.data(), N, C, p, 99);
    expect_fd("dbranch", loss_of(fwd, R), br.data(), br.size(), to_host(be(), g).data(),
              br.size());
  }
}

TEST_P(BackendGrads, CrossEntropy) {
  const int64_t N = 4, V = 9;
  auto logits = randn(N * V, 61, 2.0f);
  const std::vector<int32_t> tgt = {0, 8, 3, 3};
  auto dt = to_device(be(), tgt, be_);
  DeviceArray<float> lse(be_, N);
  auto loss = [&] {
    auto dl = to_device(be(), logits, be_);
    return double(be().crossentropy_forward(lse.data(), dl.data(), dt.data(), N, V));
  };
  loss();
  auto dl = to_device(be(), logits, be_);
  be().crossentropy_backward(dl.data(), lse.data(), dt.data(), N, V, 1.0f);
  expect_fd("dlogits", loss, logits.data(), logits.size(), to_host(be(), dl).data(),
            logits.size());
}

// The rotary family's op with every term (rotation, xpos' decay on q and on k, temperature).
TEST_P(BackendGrads, Rotary) {
  const int B = 1, NH = 2, T = 5, HS = 8;
  const RotaryTables tab = naive::every_rotary_term(HS);
  auto freq = to_device(be(), tab.freq, be_), decay = to_device(be(), tab.decay, be_);
  for (int power : {1, -1}) {
    SCOPED_TRACE(power);
    auto x = randn(size_t(B) * NH * T * HS, 71);
    const auto R = randn(x.size(), 72);
    Rotation r{freq.data(), decay.data(), float(tab.mscale), 3, 6, power, false};
    auto fwd = [&] {
      auto d = to_device(be(), x, be_);
      be().rotary(d.data(), B, NH, T, HS, r);
      return to_host(be(), d);
    };
    auto dR = to_device(be(), R, be_);
    Rotation back = r;
    back.backward = true;
    be().rotary(dR.data(), B, NH, T, HS, back);
    expect_fd("dx", loss_of(fwd, R), x.data(), x.size(), to_host(be(), dR).data(), x.size());
  }
}

// dq, dk, dv and the t5 table's gradient, with dropout, Tq < Tk and padded key rows.
TEST_P(BackendGrads, Attention) {
  for (BiasKind kind : {BiasKind::alibi, BiasKind::t5}) {
    SCOPED_TRACE(int(kind));
    const AttnShape s{2, 2, 4, 6, 4, 7, MatmulPrecision::fp32};
    const size_t nq = size_t(s.B) * s.NH * s.Tq * s.HS, nk = size_t(s.B) * s.NH * 7 * s.HS;
    auto q = randn(nq, 81, 1.5f), k = randn(nk, 82), v = randn(nk, 83), table = randn(4 * 2, 84);
    const auto R = randn(nq, 85);
    const std::vector<float> slopes = alibi_slopes(s.NH);
    const std::vector<int32_t> buckets = t5_bucket_table(4, 3);
    const AttnDropout drop{0.2f, 17};
    AttnWorkspace ws = be().plan_attention(s);
    DeviceArray<float> scratch(be_, ws.floats), out(be_, nq), lse(be_, nq / s.HS);
    ws.data = scratch.data();
    auto dsl = to_device(be(), slopes, be_);
    auto dbk = to_device(be(), buckets, be_);
    struct Dev {
      DeviceArray<float> q, k, v, table;
    };
    auto upload = [&] {
      return Dev{to_device(be(), q, be_), to_device(be(), k, be_), to_device(be(), v, be_),
                 to_device(be(), table, be_)};
    };
    auto bias_of = [&](const Dev& d) {  // t5: distances 3..5 saturate into the last bucket
      return kind == BiasKind::alibi ? ScoreBias::alibi(dsl.data())
                                     : ScoreBias::t5(d.table.data(), dbk.data(), 4, 3);
    };
    auto fwd = [&] {
      const Dev d = upload();
      be().run(AttentionForward{s, q_of(s, d.q.data()), kv_of(s, d.k.data()),
                                kv_of(s, d.v.data()), bias_of(d), drop, q_of(s, out.data()),
                                lse_of(s, lse.data()), ws});
      return to_host(be(), out);
    };
    fwd();
    const Dev d = upload();
    auto dR = to_device(be(), R, be_);
    DeviceArray<float> gq(be_, nq), gk(be_, nk), gv(be_, nk), gt(be_, table.size());
    be().run(AttentionBackward{s, q_of(s, d.q.data()), kv_of(s, d.k.data()),
                               kv_of(s, d.v.data()), q_of(s, out.data()), lse_of(s, lse.data()),
                               q_of(s, dR.data()), bias_of(d), drop, q_of(s, gq.data()),
                               kv_of(s, gk.data()), kv_of(s, gv.data()),
                               dbias_of(s, bias_of(d), gt.data()), ws});
    const auto loss = loss_of(fwd, R);
    expect_fd("dq", loss, q.data(), nq, to_host(be(), gq).data());
    expect_fd("dk", loss, k.data(), nk, to_host(be(), gk).data());
    expect_fd("dv", loss, v.data(), nk, to_host(be(), gv).data());
    if (kind == BiasKind::t5)
      expect_fd("dt5", loss, table.data(), table.size(), to_host(be(), gt).data(), table.size());
  }
}

INSTANTIATE_TEST_SUITE_P(AllBackends, BackendGrads, ::testing::ValuesIn(all_backends()),
                         backend_name);

}  // namespace
}  // namespace alibi::test
