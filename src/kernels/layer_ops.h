#pragma once
// The dense layers' and the attention's ops, each one struct of views (kernels/tensor.h): its
// parameter list, written once for every backend, and check(), the one place its shapes are
// checked against each other (Backend::run calls it before the device computes). A width
// swapped by a caller fails there, naming the op and both shapes, whichever device runs it.
// N = B*T rows, C channels, IC/OC a linear's input and output widths.
#include "kernels/attention.h"
#include "kernels/tensor.h"

namespace alibi {

// out (N,OC) = inp (N,IC) W^T + b; W (OC,IC) fp32, bf16 or f16; b (OC) or not given.
struct LinearForward {
  Tensor out;
  CTensor inp;
  WTensor W;
  CTensor b;
  void check() const;
};

// dinp (N,IC) = dout W (when given); dW (OC,IC) += dout^T inp; db (OC) += colsum(dout) (when
// given). W fp32.
struct LinearBackward {
  Tensor dinp, dW, db;
  CTensor dout, inp, W;
  void check() const;
};

// out (N,C) = (inp - mean) rstd w + b, rstd = 1 / sqrt(var + eps), saving mean and rstd (N);
// b (C) or not given.
struct LayerNormForward {
  Tensor out, mean, rstd;
  CTensor inp, w, b;
  float eps = 0;
  void check() const;
};

// dinp (N,C) +=; dw (C) +=; db (C) += when given.
struct LayerNormBackward {
  Tensor dinp, dw, db;
  CTensor dout, inp, w, mean, rstd;
  void check() const;
};

// kernels/attention.h's maths: q (B,NH,Tq,HS); k, v (B,NH,ldk,HS) of which the first Tk rows
// are used; out (B,NH,Tq,HS) and lse (B,NH,Tq) overwritten.
struct AttentionForward {
  AttnShape s;
  CTensor q, k, v;  // k, v: s.kv f32
  ScoreBias bias;
  AttnDropout drop;
  Tensor out, lse;
  AttnWorkspace ws;
  View<const uint16_t*> k16, v16;  // s.kv f16: the keys and values, IEEE binary16
  void check() const;
};

// dq, dk, dv (the shapes of q, k, v) overwritten; dbias += when given: the t5 table's
// (num_buckets, NH) or the alibi slopes' (NH) gradient.
struct AttentionBackward {
  AttnShape s;
  CTensor q, k, v, out, lse, dout;
  ScoreBias bias;
  AttnDropout drop;
  Tensor dq, dk, dv, dbias;
  AttnWorkspace ws;
  void check() const;
};

}  // namespace alibi
