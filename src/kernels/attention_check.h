#pragma once
// The argument checks of kernels/attention.h's contract, made by every implementation of it.
#include <algorithm>

#include "core/error.h"
#include "kernels/attention.h"

namespace alibi {

inline void check_attention_args(const AttnShape& s, const ScoreBias& bias,
                                 const AttnDropout& drop) {
  ALIBI_CHECK(s.B >= 0 && s.NH >= 0 && s.Tq >= 0 && s.Tk >= 0 && s.HS >= 0, "B=", s.B,
              " NH=", s.NH, " Tq=", s.Tq, " Tk=", s.Tk, " HS=", s.HS);
  ALIBI_CHECK(s.Tq <= s.Tk, "Tq=", s.Tq, " Tk=", s.Tk, ": queries sit at the last Tq positions");
  ALIBI_CHECK(s.kv_rows() >= s.Tk, "ldk=", s.ldk, " < Tk=", s.Tk);
  ALIBI_CHECK(drop.p >= 0.0f && drop.p < 1.0f, "dropout p=", drop.p);
  if (bias.kind == BiasKind::alibi)
    ALIBI_CHECK(bias.slopes != nullptr, "alibi bias without slopes");
  if (bias.kind == BiasKind::t5) {
    ALIBI_CHECK(bias.t5_table != nullptr && bias.num_buckets > 0 && bias.t5_max_distance >= 0,
                "t5 bias: table ", bias.t5_table, " num_buckets=", bias.num_buckets,
                " max_distance=", bias.t5_max_distance);
    ALIBI_CHECK(bias.t5_max_distance == 0 || bias.t5_bucket != nullptr, "t5 bias without buckets");
    ALIBI_CHECK(s.causal || (bias.num_buckets >= 2 && bias.num_buckets % 2 == 0),
                "bidirectional t5 needs an even bucket count (half per direction), not ",
                bias.num_buckets);
  }
  if (bias.kind == BiasKind::table || bias.kind == BiasKind::fire) {
    // every |d| of the call: up to Tk - 1, and Tq - 1 before the first query (bidirectional)
    const int need = s.causal ? s.Tk : std::max(s.Tk, s.Tq);
    ALIBI_CHECK(bias.table_len >= need, "a distance bias of ", bias.table_len,
                " distances for a call that spans ", need);
  }
  if (bias.kind == BiasKind::table) ALIBI_CHECK(bias.table != nullptr, "table bias without a table");
  if (bias.kind == BiasKind::fire) {
    const FireBias& f = bias.fire;
    ALIBI_CHECK(f.segments >= 1 && (f.segments == 1 || f.knots) && f.slope && f.icept && f.psi &&
                    f.dpsi && f.row_scale && f.row_dc && f.row_dthr,
                "fire bias with ", f.segments, " segments or a missing table");
  }
}

}  // namespace alibi
