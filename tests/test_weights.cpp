// Weights kept as stored (kernels/weights.h): the 16-bit conversions against the hardware's and
// an exact reference, the bf16/f16 products and lookups against fp32 ones on the widened
// values, and checkpoints whose matrices are bf16/f16 read in place by inference models.
#include <gtest/gtest.h>
#include <immintrin.h>
#include <omp.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "bf16_util.h"
#include "cli.h"
#include "core/half.h"
#include "core/rng.h"
#include "eval/eval.h"
#include "kernels/cpu/ops_cpu.h"
#include "model/checkpoint.h"
#include "model/model.h"
#include "model_util.h"
#include "usage_error.h"

namespace alibi {
namespace {

// bf16 rounding by its definition: the nearer of the two bf16 values around x, ties to the one
// with an even last bit (computed in double, exact for these values). Past the largest finite
// value the next step up is 2^128, which rounds to infinity.
uint16_t bf16_reference(float x) {
  const uint32_t u = std::bit_cast<uint32_t>(x);
  const uint16_t lo = uint16_t(u >> 16), hi = uint16_t(lo + 1);
  if ((u & 0xffffu) == 0) return lo;
  auto value = [](uint16_t h) {
    const float f = bf16_to_float(h);
    return std::isinf(f) ? std::copysign(std::ldexp(1.0, 128), double(f)) : double(f);
  };
  const double dlo = std::fabs(double(x) - value(lo));
  const double dhi = std::fabs(value(hi) - double(x));
  if (dlo != dhi) return dlo < dhi ? lo : hi;
  return (lo & 1) ? hi : lo;
}

std::vector<float> probe_floats() {
  std::vector<float> xs = {0.0f, -0.0f, 1.0f, -1.0f, 65504.0f, 65519.0f, 65520.0f, -65520.0f,
                           6.1035156e-05f, 5.9604645e-08f, 2.9802322e-08f, 2.9802326e-08f,
                           8.9406967e-08f, 1e-10f, 3.0e38f, INFINITY, -INFINITY, 1.00390625f,
                           1.01171875f, 3.3895314e38f};
  Rng r(7);
  for (int i = 0; i < 200000; ++i) {
    const uint32_t bits = uint32_t(r.below(1u << 31)) * 2u + uint32_t(r.below(2));
    const float x = std::bit_cast<float>(bits);
    if (!std::isnan(x)) xs.push_back(x);
  }
  for (int i = 0; i < 20000; ++i) xs.push_back(float(r.normal()) * 1e-5f);  // f16 subnormals
  return xs;
}

TEST(HalfConversion, F16MatchesTheHardwareBothWays) {
  for (float x : probe_floats())
    ASSERT_EQ(float_to_f16(x), uint16_t(_cvtss_sh(x, _MM_FROUND_TO_NEAREST_INT))) << x;
  for (uint32_t h = 0; h < 65536; ++h) {  // NaNs included: quiet, payload kept
    const float want = _cvtsh_ss(uint16_t(h)), got = f16_to_float(uint16_t(h));
    ASSERT_EQ(std::bit_cast<uint32_t>(got), std::bit_cast<uint32_t>(want)) << h;
    if (std::isnan(got)) ASSERT_EQ(float_to_f16(got), h | 0x200u) << "NaN stays NaN: " << h;
  }
}

TEST(HalfConversion, Bf16RoundsToNearestEven) {
  for (float x : probe_floats()) ASSERT_EQ(float_to_bf16(x), bf16_reference(x)) << x;
  for (uint32_t h = 0; h < 65536; ++h) {  // widening is exact: every value comes back
    const float x = bf16_to_float(uint16_t(h));
    if (!std::isnan(x)) ASSERT_EQ(float_to_bf16(x), h);
  }
}

// The vector widening of the kernels against the scalar one, for every 16-bit pattern and a
// length that leaves a tail.
TEST(HalfConversion, KernelWideningEqualsScalar) {
  std::vector<uint16_t> all(65536 + 5);
  for (size_t i = 0; i < all.size(); ++i) all[i] = uint16_t(i * 40503u);
  std::vector<float> got(all.size());
  for (WeightType t : {WeightType::bf16, WeightType::f16}) {
    cpu::widen(got.data(), all.data(), t, int64_t(all.size()));
    for (size_t i = 0; i < all.size(); ++i) {
      const float want = t == WeightType::bf16 ? bf16_to_float(all[i]) : f16_to_float(all[i]);
      ASSERT_EQ(std::bit_cast<uint32_t>(got[i]), std::bit_cast<uint32_t>(want)) << i;
    }
  }
}

std::vector<uint16_t> narrow(const std::vector<float>& x, WeightType t) {
  std::vector<uint16_t> h(x.size());
  for (size_t i = 0; i < x.size(); ++i)
    h[i] = t == WeightType::bf16 ? float_to_bf16(x[i]) : float_to_f16(x[i]);
  return h;
}

std::vector<float> widened(const std::vector<uint16_t>& h, WeightType t) {
  std::vector<float> x(h.size());
  cpu::widen(x.data(), h.data(), t, int64_t(h.size()));
  return x;
}

std::vector<float> normals(size_t n, uint64_t seed) {
  Rng r(seed);
  std::vector<float> x(n);
  for (float& v : x) v = r.normal();
  return x;
}

// A bf16/f16 product against the fp32 product of the widened matrix: the same terms summed in
// another order (dot products for a few rows, register tiles on widened panels for more), so
// within 1e-6 of sum |w x| per output, and bit-identical on 1 and 2 threads. A misread element
// (wrong shift, row or tail) is off by O(1).
TEST(HalfWeights, LinearEqualsFp32OnTheWidenedMatrix) {
  struct Shape {
    int64_t N, IC, OC;
  };
  // 1..4 rows stream (1 row: 8 at a time, so 19 rows leave 3); 5 and more go through panels of
  // 2^14 floats in tiles of 4 rows of W by 6 input rows: IC 37 leaves a tail of 5 lanes, N 33
  // a tile of 3 inputs, OC 19 a tile of 3 rows, and IC 256 x OC 20000 takes 313 panels.
  const Shape shapes[] = {{1, 37, 19}, {2, 64, 7}, {3, 37, 1}, {4, 130, 33},
                          {5, 37, 19}, {33, 64, 21}, {7, 256, 20000}, {64, 1040, 50}};
  for (WeightType t : {WeightType::bf16, WeightType::f16})
    for (const Shape& s : shapes)
      for (bool bias : {false, true}) {
        const std::vector<uint16_t> Wh = narrow(normals(size_t(s.OC * s.IC), 1), t);
        const std::vector<float> W = widened(Wh, t), x = normals(size_t(s.N * s.IC), 2),
                                 b = normals(size_t(s.OC), 3);
        std::vector<float> want(size_t(s.N * s.OC)), got(want.size());
        const CTensor bv = vec<const float*>(bias ? b.data() : nullptr, s.OC);
        cpu::linear_forward(MatmulPrecision::fp32,
                            {mat(want.data(), s.N, s.OC), mat(x.data(), s.N, s.IC),
                             mat(W.data(), s.OC, s.IC), bv});
        const LinearForward op{mat(got.data(), s.N, s.OC), mat(x.data(), s.N, s.IC),
                               mat(WeightView(Wh.data(), t), s.OC, s.IC), bv};
        default_backend()->run(op);
        std::vector<float> one(got.size());
        LinearForward op1 = op;
        op1.out = mat(one.data(), s.N, s.OC);
        const int threads = omp_get_max_threads();
        omp_set_num_threads(1);
        default_backend()->run(op1);
        omp_set_num_threads(threads);
        ASSERT_EQ(std::memcmp(one.data(), got.data(), got.size() * 4), 0)
            << weight_type_name(t) << " N=" << s.N << " IC=" << s.IC << " OC=" << s.OC;
        for (int64_t n = 0; n < s.N; ++n)
          for (int64_t o = 0; o < s.OC; ++o) {
            double mag = bias ? std::fabs(b[size_t(o)]) : 0.0;
            for (int64_t i = 0; i < s.IC; ++i)
              mag += std::fabs(double(W[size_t(o * s.IC + i)]) * x[size_t(n * s.IC + i)]);
            const size_t k = size_t(n * s.OC + o);
            ASSERT_NEAR(got[k], want[k], 1e-6 * mag)
                << weight_type_name(t) << " N=" << s.N << " IC=" << s.IC << " OC=" << s.OC
                << " row " << n << " out " << o;
          }
      }
}

// fp32 weights at 4-24 rows (a batched decoding step, a short prompt): panel_product on W where it
// lies, not sgemm, which packs W for those few rows (kernels/cpu/ops_cpu.cpp). The linear's output
// is panel_product's, bit for bit, on 1 and 2 threads; within 1e-6 of sum |w x| of a double
// product at every row count, sgemm's 3 and 25 rows too. IC 12 and 20 are the tiny models'
// widths (tails of 12 and 4 lanes), OC 300 at IC 256 takes several panels.
TEST(Fp32Weights, FourToTwentyFourRowsMultiplyOnThePanelsInPlace) {
  struct Shape {
    int64_t IC, OC;
  };
  for (const Shape& s : {Shape{12, 19}, Shape{20, 7}, Shape{37, 33}, Shape{256, 300}})
    for (int64_t N : {3, 4, 16, 24, 25}) {
      SCOPED_TRACE("N=" + std::to_string(N) + " IC=" + std::to_string(s.IC) +
                   " OC=" + std::to_string(s.OC));
      const std::vector<float> W = normals(size_t(s.OC * s.IC), 4),
                               x = normals(size_t(N * s.IC), 5);
      std::vector<float> got(size_t(N * s.OC)), one(got.size()), panels(got.size());
      const LinearForward op{
          mat(got.data(), N, s.OC), mat(x.data(), N, s.IC), mat(W.data(), s.OC, s.IC), {}};
      cpu::linear_forward(MatmulPrecision::fp32, op);
      if (N >= 4 && N <= 24) {
        cpu::panel_product(panels.data(), x.data(), WeightView(W.data()), N, s.IC, s.OC);
        ASSERT_EQ(std::memcmp(panels.data(), got.data(), got.size() * 4), 0);
        LinearForward op1 = op;
        op1.out = mat(one.data(), N, s.OC);
        const int threads = omp_get_max_threads();
        omp_set_num_threads(1);
        cpu::linear_forward(MatmulPrecision::fp32, op1);
        omp_set_num_threads(threads);
        ASSERT_EQ(std::memcmp(one.data(), got.data(), got.size() * 4), 0);
      }
      for (int64_t n = 0; n < N; ++n)
        for (int64_t o = 0; o < s.OC; ++o) {
          double want = 0.0, mag = 0.0;
          for (int64_t i = 0; i < s.IC; ++i) {
            const double t = double(W[size_t(o * s.IC + i)]) * x[size_t(n * s.IC + i)];
            want += t;
            mag += std::fabs(t);
          }
          ASSERT_NEAR(got[size_t(n * s.OC + o)], want, 1e-6 * mag) << "row " << n << " out " << o;
        }
    }
}

// In bf16 precision a bf16 matrix is multiplied as stored. From 5 rows on (cpu::linear_bf16) it
// is the same oneDNN bf16 product, on the same bytes, as the bf16 gemm of the matrix widened to
// fp32 (which rounds it back exactly), so the outputs are bit-identical. Up to 4 rows the rows
// are rounded to bf16 and W streams as in fp32: within fp32 accumulation's (IC + 1) 2^-24 sum
// |w x| of the double product of the rounded operands. Either way within bf16's rounding of the
// inputs (2^-8 relative, per output of sum |w x|) of the fp32 product.
TEST(HalfWeights, Bf16PrecisionMultipliesStoredBf16WeightsAsTheyAre) {
  if (!cpu_has_bf16()) GTEST_SKIP() << "bf16 products need AVX512-BF16, which this CPU lacks";
  const std::shared_ptr<Backend> be = make_backend("cpu", MatmulPrecision::bf16);
  struct Shape {
    int64_t N, IC, OC;
  };
  for (const Shape& s : {Shape{1, 37, 19}, Shape{2, 256, 64}, Shape{4, 130, 33}, Shape{33, 64, 21},
                         Shape{7, 256, 20000}}) {
    const std::vector<uint16_t> Wh = narrow(normals(size_t(s.OC * s.IC), 1), WeightType::bf16);
    const std::vector<float> W = widened(Wh, WeightType::bf16),
                             x = normals(size_t(s.N * s.IC), 2), b = normals(size_t(s.OC), 3);
    std::vector<float> want(size_t(s.N * s.OC)), exact(want.size()), got(want.size(), NAN);
    const CTensor xv = mat(x.data(), s.N, s.IC), bv = vec(b.data(), s.OC);
    const WTensor Wv = mat(W.data(), s.OC, s.IC);
    cpu::linear_forward(MatmulPrecision::bf16, {mat(want.data(), s.N, s.OC), xv, Wv, bv});
    cpu::linear_forward(MatmulPrecision::fp32, {mat(exact.data(), s.N, s.OC), xv, Wv, bv});
    be->run(LinearForward{mat(got.data(), s.N, s.OC), xv,
                          mat(WeightView(Wh.data(), WeightType::bf16), s.OC, s.IC), bv});
    for (int64_t n = 0; n < s.N; ++n)
      for (int64_t o = 0; o < s.OC; ++o) {
        const size_t k = size_t(n * s.OC + o);
        double mag = std::fabs(b[size_t(o)]), rounded = b[size_t(o)];
        for (int64_t i = 0; i < s.IC; ++i) {
          const double w = W[size_t(o * s.IC + i)], xi = x[size_t(n * s.IC + i)];
          mag += std::fabs(w * xi);
          rounded += w * double(test::round_bf16(float(xi)));
        }
        if (s.N > 4)
          ASSERT_EQ(std::bit_cast<uint32_t>(got[k]), std::bit_cast<uint32_t>(want[k]))
              << "N=" << s.N << " IC=" << s.IC << " OC=" << s.OC << " row " << n << " out " << o;
        else
          ASSERT_NEAR(got[k], rounded, double(s.IC + 1) * std::ldexp(mag, -24))
              << "N=" << s.N << " IC=" << s.IC << " OC=" << s.OC << " row " << n << " out " << o;
        ASSERT_NEAR(got[k], exact[k], std::ldexp(mag, -8)) << "row " << n << " out " << o;
      }
  }
}

TEST(HalfWeights, EmbeddingEqualsFp32OnTheWidenedTable) {
  const int64_t V = 11, C = 21, N = 9;
  const std::vector<int32_t> tokens = test::random_tokens(int(N), int(V), 4);
  for (WeightType t : {WeightType::bf16, WeightType::f16}) {
    const std::vector<uint16_t> Eh = narrow(normals(size_t(V * C), 5), t);
    const std::vector<float> E = widened(Eh, t);
    std::vector<float> want(size_t(N * C)), got(want.size());
    cpu::embedding_forward(want.data(), tokens.data(), E.data(), N, C, 1.7f);
    default_backend()->embedding_forward(got.data(), tokens.data(), WeightView(Eh.data(), t), N,
                                         C, 1.7f);
    EXPECT_EQ(got, want) << weight_type_name(t);
  }
}

// A model written with bf16/f16 matrices and run on the file in place, against the model holding
// the same (widened) values in fp32.
class StoredCheckpoint : public ::testing::TestWithParam<WeightType> {
 protected:
  void SetUp() override {
    cfg_ = test::small_model(PosKind::alibi, 2, 37);
    cfg_.tied_head = false;  // both wte and lm_head.w
    Model m(cfg_, 1, 8);
    test::randomise(m, 11);
    path_ = write_checkpoint(dir_ / "run", cfg_, {{"seq_len", 8}}, 3, Tokenizer::bytes(),
                             m.params, nullptr, nullptr, 1, GetParam());
  }
  test::TempDir dir_{"weights"};
  ModelConfig cfg_;
  std::string path_;
};

TEST_P(StoredCheckpoint, MatricesAreStoredNarrowAndTheRestFp32) {
  const Checkpoint ck = read_checkpoint(path_);
  EXPECT_EQ(ck.weights, GetParam());
  for (const TensorInfo& t : make_param_layout(cfg_).tensors)
    EXPECT_EQ(ck.st.at(t.name).dtype, t.matrix ? weight_dtype(GetParam()) : "F32") << t.name;
  // load_params widens: every matrix holds exactly the stored values.
  const ParamLayout layout = make_param_layout(cfg_);
  ParamSet set(layout);
  ck.load_params(set);
  const std::vector<float> host = set.to_host();
  const TensorInfo& wte = set.layout->at("wte");
  const uint8_t* raw = ck.st.at("wte").bytes();
  for (size_t i = 0; i < wte.numel; ++i) {
    uint16_t h;
    std::memcpy(&h, raw + 2 * i, 2);
    const float want = GetParam() == WeightType::bf16 ? bf16_to_float(h) : f16_to_float(h);
    ASSERT_EQ(host[wte.offset + i], want) << i;
  }
}

// Per-token losses and decoded logits: the same fp32 terms in other orders (1e-5 relative).
TEST_P(StoredCheckpoint, ModelOnTheFileEqualsTheWidenedModel) {
  const Checkpoint ck = read_checkpoint(path_);
  const int T = 8;
  Model wide(cfg_, 1, T, /*training=*/false);
  ck.load_params(wide.params);
  Model stored(cfg_, 1, T, ck.st);
  EXPECT_EQ(stored.weight_type(), GetParam());
  const std::vector<int32_t> ids = test::random_tokens(T + 1, cfg_.vocab, 12);
  const float lw = wide.forward(ids.data(), ids.data() + 1, 1, T);
  const float ls = stored.forward(ids.data(), ids.data() + 1, 1, T);
  EXPECT_NEAR(ls, lw, 1e-5f * lw);
  wide.forward(ids.data(), nullptr, 1, T);
  const std::vector<float> full(wide.logits(), wide.logits() + size_t(T) * cfg_.vocab);
  KVCache cache = stored.make_cache(T, false);
  for (int t = 0; t < T; ++t) {  // one token at a time: the streaming product
    const float* row = stored.forward_cached(ids.data() + t, 1, cache);
    const float scale = test::max_abs(full.data() + size_t(t) * cfg_.vocab, size_t(cfg_.vocab));
    for (int v = 0; v < cfg_.vocab; ++v)
      ASSERT_NEAR(row[v], full[size_t(t) * cfg_.vocab + size_t(v)], 1e-5f * scale) << t;
  }
}

// fp32 matrices on the file: where the backend packs them (the CPU, Backend::pack_weight), its
// products sum in another order than the parameters' sgemm, so the scored nats agree to fp32's
// rounding (measured 1e-7 relative here; 1e-5 allowed); where it packs none they are read in
// place and give exactly what the copied parameters give.
TEST(StoredCheckpointFp32, EvaluationOnTheFileEqualsTheParameters) {
  test::TempDir dir("weights32");
  const ModelConfig cfg = test::small_model(PosKind::t5, 2, 29);
  Model m(cfg, 1, 8);
  test::randomise(m, 5);
  const std::string path = write_checkpoint(dir / "run", cfg, {{"seq_len", 8}}, 1,
                                            Tokenizer::bytes(), m.params, nullptr, nullptr, 1);
  const Checkpoint ck = read_checkpoint(path);
  const ParamLayout layout = make_param_layout(cfg);
  ParamSet set(layout);
  ck.load_params(set);
  const std::vector<int32_t> ids = test::random_tokens(200, cfg.vocab, 6);
  EvalOptions o;
  o.length = 16;
  const EvalResult a = evaluate(cfg, set, ids, 0, o);
  const EvalResult b = evaluate(cfg, ck.st, default_backend(), ids, 0, o);
  if (default_backend()->packed_weight_bytes(3 * cfg.d_model, cfg.d_model) > 0)
    EXPECT_NEAR(a.nats, b.nats, 1e-5 * a.nats);
  else
    EXPECT_EQ(a.nats, b.nats);
}

TEST_P(StoredCheckpoint, ANarrowVectorIsRefusedByName) {
  const Safetensors& src = read_checkpoint(path_).st;
  Safetensors bad;
  bad.metadata = src.metadata;
  for (const auto& [name, t] : src.tensors) {
    if (name != "lnf.w") {
      bad.add(name, t.dtype, t.shape, t.bytes(), t.nbytes());
      continue;
    }
    const std::vector<uint16_t> h(size_t(t.numel()), 0x3f80);  // bf16 ones
    bad.add(name, "BF16", t.shape, h.data(), h.size() * 2);
  }
  bad.write_atomic(dir_ / "bad.safetensors");
  test::expect_usage_error([&] { read_checkpoint(dir_ / "bad.safetensors"); },
                           {"bad.safetensors", "'lnf.w'", "BF16", "expected F32"});
}

// `eval --dtype bf16` on a checkpoint of bf16 matrices: the bf16 products (the linear layers'
// bf16 weights as stored) give the fp32 run's loss within bf16's rounding of the activations
// (1% here), the JSON says which dtype ran, and an unknown dtype is refused by flag.
TEST(StoredCheckpointCli, EvalDtypeBf16RunsBf16Products) {
  if (!cpu_has_bf16()) GTEST_SKIP() << "--dtype bf16 needs AVX512-BF16, which this CPU lacks";
  test::TempDir dir("weights_cli");
  const ModelConfig cfg = test::small_model(PosKind::alibi, 2, 256);
  Model m(cfg, 1, 8);
  test::randomise(m, 4);
  const std::string path = write_checkpoint(dir / "run", cfg, {{"seq_len", 16}}, 1,
                                            Tokenizer::bytes(), m.params, nullptr, nullptr, 1,
                                            WeightType::bf16);
  test::write_text(dir / "text.txt", "It is a truth universally acknowledged, that a single "
                                     "man in possession of a good fortune, must be in want.\n");
  auto loss = [&](const std::string& dtype) {
    const test::CliResult r = test::run_cli("eval " + path + " --text " + (dir / "text.txt") +
                                                " --lengths 16 --json - --dtype " + dtype,
                                            dir / "err");
    EXPECT_EQ(r.code, 0) << r.err;
    const nlohmann::json j = nlohmann::json::parse(r.out);
    EXPECT_EQ(j.at("dtype"), dtype);
    return j.at("results").at(0).at("loss").get<double>();
  };
  const double fp32 = loss("fp32"), bf16 = loss("bf16");
  EXPECT_NE(fp32, bf16);  // the activations really were rounded
  EXPECT_NEAR(bf16, fp32, 1e-2 * fp32);
  test::expect_cli_error(test::run_cli("eval " + path + " --text " + (dir / "text.txt") +
                                           " --dtype fp16",
                                       dir / "err"),
                         "--dtype");
}

INSTANTIATE_TEST_SUITE_P(Types, StoredCheckpoint,
                         ::testing::Values(WeightType::bf16, WeightType::f16),
                         [](const auto& info) { return weight_type_name(info.param); });

}  // namespace
}  // namespace alibi
