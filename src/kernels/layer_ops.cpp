#include "kernels/layer_ops.h"

#include "core/error.h"
#include "kernels/attention_check.h"

namespace alibi {
namespace {

// Each operand's shape from those the op's sizes are read from: an internal error naming the op,
// the operand, its shape and the one expected.
template <class P>
void expect(const char* op, const char* name, const View<P>& t, const Shape& want) {
  ALIBI_CHECK(t.shape == want, op, ": ", name, " is ", t.shape.str(), ", expected ", want.str());
}

template <class P>
void expect_rank(const char* op, const char* name, const View<P>& t, int rank) {
  ALIBI_CHECK(t.shape.rank == rank, op, ": ", name, " is ", t.shape.str(), ", expected ", rank,
              " dimensions");
}

void expect_data(const char* op, const char* name, const void* p) {
  ALIBI_CHECK(p != nullptr, op, ": ", name, " is missing");
}

}  // namespace

void LinearForward::check() const {
  constexpr const char* op = "linear_forward";
  expect_rank(op, "inp", inp, 2);
  expect_rank(op, "W", W, 2);
  const int64_t N = inp[0], IC = inp[1], OC = W[0];
  expect(op, "W", W, {OC, IC});
  expect(op, "out", out, {N, OC});
  if (given(b)) expect(op, "b", b, {OC});
  for (const void* p : {static_cast<const void*>(out.data), static_cast<const void*>(inp.data),
                        W.data.data})
    expect_data(op, "an operand", p);
}

void LinearBackward::check() const {
  constexpr const char* op = "linear_backward";
  expect_rank(op, "inp", inp, 2);
  expect_rank(op, "W", W, 2);
  const int64_t N = inp[0], IC = inp[1], OC = W[0];
  expect(op, "W", W, {OC, IC});
  expect(op, "dout", dout, {N, OC});
  expect(op, "dW", dW, {OC, IC});
  if (given(dinp)) expect(op, "dinp", dinp, {N, IC});
  if (given(db)) expect(op, "db", db, {OC});
  for (const void* p : {static_cast<const void*>(dW.data), static_cast<const void*>(dout.data),
                        static_cast<const void*>(inp.data), static_cast<const void*>(W.data)})
    expect_data(op, "an operand", p);
}

void LayerNormForward::check() const {
  constexpr const char* op = "layernorm_forward";
  expect_rank(op, "inp", inp, 2);
  const int64_t N = inp[0], C = inp[1];
  expect(op, "out", out, {N, C});
  expect(op, "mean", mean, {N});
  expect(op, "rstd", rstd, {N});
  expect(op, "w", w, {C});
  if (given(b)) expect(op, "b", b, {C});
  ALIBI_CHECK(eps > 0, op, ": eps ", eps);
}

void LayerNormBackward::check() const {
  constexpr const char* op = "layernorm_backward";
  expect_rank(op, "inp", inp, 2);
  const int64_t N = inp[0], C = inp[1];
  expect(op, "dinp", dinp, {N, C});
  expect(op, "dout", dout, {N, C});
  expect(op, "dw", dw, {C});
  if (given(db)) expect(op, "db", db, {C});
  expect(op, "w", w, {C});
  expect(op, "mean", mean, {N});
  expect(op, "rstd", rstd, {N});
}

void AttentionForward::check() const {
  constexpr const char* op = "attention_forward";
  check_attention_args(s, bias, drop);
  expect(op, "q", q, {s.B, s.NH, s.Tq, s.HS});
  const Shape kv{s.B, s.NH, s.kv_rows(), s.HS};
  if (s.kv == KvType::f16) {
    expect(op, "k16", k16, kv);
    expect(op, "v16", v16, kv);
  } else {
    expect(op, "k", k, kv);
    expect(op, "v", v, kv);
  }
  expect(op, "out", out, {s.B, s.NH, s.Tq, s.HS});
  expect(op, "lse", lse, {s.B, s.NH, s.Tq});
}

void AttentionBackward::check() const {
  constexpr const char* op = "attention_backward";
  check_attention_args(s, bias, drop);
  const Shape qs{s.B, s.NH, s.Tq, s.HS}, ks{s.B, s.NH, s.kv_rows(), s.HS};
  expect(op, "q", q, qs);
  expect(op, "k", k, ks);
  expect(op, "v", v, ks);
  expect(op, "out", out, qs);
  expect(op, "lse", lse, {s.B, s.NH, s.Tq});
  expect(op, "dout", dout, qs);
  expect(op, "dq", dq, qs);
  expect(op, "dk", dk, ks);
  expect(op, "dv", dv, ks);
  if (given(dbias)) {
    ALIBI_CHECK(bias.kind != BiasKind::none, op, ": dbias given for no bias");
    expect(op, "dbias", dbias, bias.grad_shape(s.NH));
  }
}

Shape ScoreBias::grad_shape(int NH) const {
  switch (kind) {
    case BiasKind::alibi: return {NH};
    case BiasKind::t5: return {num_buckets, NH};
    case BiasKind::table: return {NH, table_len};
    case BiasKind::fire: return {NH, fire.segments, kFireStats};
    case BiasKind::none: break;
  }
  return {};
}

}  // namespace alibi
