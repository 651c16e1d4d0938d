// fp32 weights packed at load for inference (Backend::pack_weight; kernels/cpu/packed_cpu.cpp), in
// fp32 and in bf16 precision (rounded to bf16 as they are packed): products against a
// double-precision reference and against the same matrix unpacked, the same on one thread as on
// two, and a model on a checkpoint file (its layers' matrices packed) against the same weights in
// memory (not packed), through a full forward and a batched step.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <string>
#include <vector>

#include "bf16_util.h"
#include "cli.h"
#include "core/rng.h"
#include "data/tokenizer.h"
#include "kernels/backend.h"
#include "model/checkpoint.h"
#include "model/model.h"
#include "model_util.h"

namespace alibi {
namespace {

struct Problem {
  int64_t OC, IC;
  std::vector<float> w, b, x;  // (OC, IC), (OC), (N, IC) for the largest N
};

Problem problem(int64_t OC, int64_t IC, int64_t N, uint64_t seed) {
  Rng r(seed);
  Problem p{OC, IC, {}, {}, {}};
  for (int64_t i = 0; i < OC * IC; ++i) p.w.push_back(r.normal());
  for (int64_t i = 0; i < OC; ++i) p.b.push_back(r.normal());
  for (int64_t i = 0; i < N * IC; ++i) p.x.push_back(r.normal());
  return p;
}

// out (N, OC) through Backend::run, with W packed or as it is.
std::vector<float> product(Backend& be, const Problem& p, int64_t N, bool bias, bool packed) {
  WeightView view(p.w.data());
  std::vector<float> store;
  if (packed) {
    store.resize(be.packed_weight_bytes(p.OC, p.IC) / sizeof(float));
    view = be.pack_weight(store.data(), p.w.data(), p.OC, p.IC);
  }
  std::vector<float> out(size_t(N * p.OC), 0.0f);
  be.run(LinearForward{Tensor(out.data(), {N, p.OC}), CTensor(p.x.data(), {N, p.IC}),
                       WTensor(view, {p.OC, p.IC}),
                       bias ? CTensor(p.b.data(), {p.OC}) : CTensor()});
  return out;
}

// fp32 accumulation over IC terms: each output within IC * 2^-24 of sum |x w| of its double
// value, twice that (the bound of either) between two fp32 sums in different orders. In bf16
// precision the reference multiplies x and w rounded to bf16 (their products are exact in fp32).
void expect_near_double(const std::vector<float>& got, const Problem& p, int64_t N, bool bias,
                        MatmulPrecision prec, const std::string& what) {
  const double u = std::ldexp(1.0, -24);
  auto operand = [&](float v) {
    return prec == MatmulPrecision::bf16 ? double(test::round_bf16(v)) : double(v);
  };
  for (int64_t n = 0; n < N; ++n)
    for (int64_t o = 0; o < p.OC; ++o) {
      double ref = bias ? p.b[size_t(o)] : 0.0, mag = std::abs(ref);
      for (int64_t i = 0; i < p.IC; ++i) {
        const double t = operand(p.x[size_t(n * p.IC + i)]) * operand(p.w[size_t(o * p.IC + i)]);
        ref += t;
        mag += std::abs(t);
      }
      ASSERT_NEAR(got[size_t(n * p.OC + o)], ref, double(p.IC + 1) * u * mag)
          << what << ", row " << n << ", column " << o;
    }
}

const std::vector<std::pair<int64_t, int64_t>> kShapes = {
    {768, 256}, {256, 1024}, {100, 37}, {64, 16}};
const std::vector<int64_t> kRows = {1, 2, 5, 16, 17, 64, 130};

// Each test runs in fp32 and in bf16 precision (where the CPU has AVX512-BF16).
class PackedWeights : public ::testing::TestWithParam<MatmulPrecision> {
 protected:
  std::shared_ptr<Backend> backend() const {
    if (GetParam() == MatmulPrecision::bf16 && !cpu_has_bf16()) return nullptr;
    auto be = make_backend("cpu", GetParam());
    return be->packed_weight_bytes(768, 256) > 0 ? be : nullptr;
  }
};
#define SKIP_WITHOUT_PACKING(be) \
  if (!(be)) GTEST_SKIP() << "this CPU packs no " << precision_name(GetParam()) << " layout"

TEST_P(PackedWeights, ProductsMatchTheDoubleReferenceAndTheUnpackedMatrix) {
  const auto be = backend();
  SKIP_WITHOUT_PACKING(be);
  for (const auto& [OC, IC] : kShapes) {
    if (be->packed_weight_bytes(OC, IC) == 0) continue;  // no layout for every row count
    const Problem p = problem(OC, IC, kRows.back(), uint64_t(OC * IC));
    for (const int64_t N : kRows)
      for (const bool bias : {false, true}) {
        const std::string what = std::to_string(N) + " x " + std::to_string(IC) + " by " +
                                 std::to_string(IC) + " x " + std::to_string(OC) +
                                 (bias ? " + b" : "");
        const std::vector<float> got = product(*be, p, N, bias, true);
        expect_near_double(got, p, N, bias, GetParam(), what);
        const std::vector<float> plain = product(*be, p, N, bias, false);
        for (size_t i = 0; i < got.size(); ++i) ASSERT_NEAR(got[i], plain[i], 1e-3f) << what;
      }
  }
}

TEST_P(PackedWeights, OneThreadGivesWhatTwoGive) {
  const auto be = backend();
  SKIP_WITHOUT_PACKING(be);
  const int threads = omp_get_max_threads();
  for (const auto& [OC, IC] : kShapes) {
    if (be->packed_weight_bytes(OC, IC) == 0) continue;
    const Problem p = problem(OC, IC, kRows.back(), 7);
    for (const int64_t N : kRows) {
      omp_set_num_threads(2);
      const std::vector<float> two = product(*be, p, N, true, true);
      omp_set_num_threads(1);
      const std::vector<float> one = product(*be, p, N, true, true);
      omp_set_num_threads(threads);
      ASSERT_EQ(one, two) << N << " rows of " << OC << " x " << IC;
    }
  }
}

// A checkpoint's model: the layers' fp32 matrices packed at load; the same weights in memory.
TEST_P(PackedWeights, AModelOnAFileGivesTheLogitsOfItsWeightsInMemory) {
  const auto be = backend();
  SKIP_WITHOUT_PACKING(be);
  test::TempDir dir("packed_model");
  ModelConfig c = test::small_model(PosKind::alibi, 2, 40);
  c.d_model = 64;
  c.heads = 4;
  c.ffn = 256;
  const int T = 24, V = c.vocab;
  Model mem(c, 1, T, false, be);
  mem.init_weights(5);
  const std::string path = write_checkpoint(dir / "ck", c, nlohmann::json{}, 1, Tokenizer::bytes(),
                                            mem.params, nullptr, nullptr, 1, WeightType::fp32);
  const Safetensors st = Safetensors::read(path);
  Model file(c, 1, T, st, be);
  const auto tok = test::random_tokens(T, V, 3);
  mem.forward(tok.data(), nullptr, 1, T);
  file.forward(tok.data(), nullptr, 1, T);
  for (int t = 0; t < T; ++t)
    test::expect_logits_near(file.logits() + t * V, mem.logits() + t * V, V,
                             "full forward, row " + std::to_string(t));
  // A batched step: two sequences' prompts, then a token each.
  KVCache a0 = mem.make_cache(T, false), a1 = mem.make_cache(T, false);
  KVCache b0 = file.make_cache(T, false), b1 = file.make_cache(T, false);
  mem.forward_batch(std::vector<CachedChunk>{{tok.data(), 9, &a0}, {tok.data() + 9, 5, &a1}});
  const float* m = mem.forward_batch(
      std::vector<CachedChunk>{{tok.data() + 14, 1, &a0}, {tok.data() + 15, 1, &a1}});
  const std::vector<float> want(m, m + 2 * V);
  file.forward_batch(std::vector<CachedChunk>{{tok.data(), 9, &b0}, {tok.data() + 9, 5, &b1}});
  const float* f = file.forward_batch(
      std::vector<CachedChunk>{{tok.data() + 14, 1, &b0}, {tok.data() + 15, 1, &b1}});
  test::expect_logits_near(f, want.data(), V, "batched step, sequence 0");
  test::expect_logits_near(f + V, want.data() + V, V, "batched step, sequence 1");
}

INSTANTIATE_TEST_SUITE_P(Precisions, PackedWeights,
                         ::testing::Values(MatmulPrecision::fp32, MatmulPrecision::bf16),
                         [](const auto& info) { return std::string(precision_name(info.param)); });

}  // namespace
}  // namespace alibi
