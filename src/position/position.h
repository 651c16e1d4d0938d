#pragma once
// The position methods, behind one enum and one set of hooks. The model calls the hooks at three
// places; each method acts at the places it needs and nowhere else:
//   embeddings   sinusoidal (fixed table) and learned (wpe) add to x            (B,T,C)
//   q and k      rotary rotates them in place after the qkv projection          (B,NH,T,HS)
//   scores       alibi and t5 hand the attention kernel a ScoreBias
// Positions are absolute: the hooks take pos0, the position of the first row, so a KV cache or
// a window that starts later in a stream gets the same numbers as a full forward.
#include <cstdint>
#include <string>
#include <vector>

#include "kernels/attention.h"

namespace alibi {

enum class PosKind { none, alibi, sinusoidal, learned, rotary, t5 };

// Throws UsageError naming `flag` for an unknown name.
PosKind parse_pos(const std::string& name, const std::string& flag = "--pos");
const char* pos_name(PosKind kind);
std::string pos_names();  // "alibi|sinusoidal|learned|rotary|t5|none"

// ALiBi slopes m_h for any head count, in head order (paper.md).
std::vector<float> alibi_slopes(int NH);

// Causal T5 bucket of relative distance d >= 0.
int t5_bucket(int d, int num_buckets, int max_distance);
// t5_bucket(d) for d = 0..max_distance-1 (the attention kernel saturates past it).
std::vector<int32_t> t5_bucket_table(int num_buckets, int max_distance);

// x (B,T,C) += PE(pos0 + t).
void sinusoidal_add(float* x, int B, int T, int C, int64_t pos0);

// Rotary on (B,NH,T,HS) in place, rows at positions pos0 + t. The backward is the inverse
// rotation (the rotation is orthogonal), applied in place to the gradient.
void rotary_forward(float* x, int B, int NH, int T, int HS, int64_t pos0);
void rotary_backward(float* dx, int B, int NH, int T, int HS, int64_t pos0);

}  // namespace alibi
