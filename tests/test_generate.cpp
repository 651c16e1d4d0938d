// Generation: sampling (reproducible, top-k / top-p sets, greedy), UTF-8 streaming, cached
// generation against full forwards past the training length for every position method, the
// sliding window (exactness and flat memory), and `alibi generate` end to end.
#include <gtest/gtest.h>

#include <csignal>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <numeric>
#include <regex>
#include <set>

#include "cli.h"
#include "core/error.h"
#include "core/rng.h"
#include "generate/generate.h"
#include "model/checkpoint.h"
#include "model_util.h"
#include "positions.h"

namespace alibi {
namespace {

using test::TempDir;

using test::expect_logits_near;

std::vector<float> random_logits(int V, uint64_t seed, float scale) {
  Rng r(seed);
  std::vector<float> l(V);
  for (float& x : l) x = scale * r.normal();
  return l;
}

// ---------------------------------------------------------------------------------------------
// Sampling

TEST(Sampling, FixedSeedReproduces) {
  const int V = 97;
  for (SamplingOptions o :
       {SamplingOptions{1.0f, 0, 1.0f, 7}, SamplingOptions{0.7f, 10, 1.0f, 7},
        SamplingOptions{1.3f, 0, 0.9f, 7}, SamplingOptions{1.0f, 20, 0.8f, 7}}) {
    Sampler a(o, V), b(o, V);
    o.seed = 8;
    Sampler other(o, V);
    int differ = 0;
    for (int i = 0; i < 500; ++i) {
      const auto l = random_logits(V, 100 + i, 2.0f);
      const int32_t x = a.sample(l.data());
      EXPECT_EQ(x, b.sample(l.data())) << "draw " << i;
      differ += x != other.sample(l.data());
    }
    EXPECT_GT(differ, 50) << "another seed should draw other tokens";
  }
}

TEST(Sampling, GreedyIsArgmax) {
  const int V = 300;
  Sampler s(SamplingOptions{0.0f, 5, 0.5f, 3}, V);
  for (int i = 0; i < 200; ++i) {
    const auto l = random_logits(V, 7 + i, 3.0f);
    const int32_t best = int32_t(std::max_element(l.begin(), l.end()) - l.begin());
    EXPECT_EQ(s.sample(l.data()), best);
    EXPECT_EQ(argmax(l.data(), V), best);
  }
  // ties go to the first
  Sampler s4(SamplingOptions{0.0f, 0, 1.0f, 3}, 4);
  const std::vector<float> t = {0.f, 2.f, 1.f, 2.f};
  EXPECT_EQ(s4.sample(t.data()), 1);
}

// The allowed set, computed here from scratch: sort by logit, keep the k largest, then the
// shortest prefix whose softmax (at the temperature, renormalised over those k) reaches p.
std::set<int32_t> allowed_set(const std::vector<float>& l, float temperature, int k, float p) {
  std::vector<int32_t> id(l.size());
  std::iota(id.begin(), id.end(), 0);
  std::stable_sort(id.begin(), id.end(), [&](int32_t a, int32_t b) { return l[a] > l[b]; });
  if (k > 0 && k < int(id.size())) id.resize(k);
  std::vector<double> q(id.size());
  double z = 0;
  for (size_t i = 0; i < id.size(); ++i) z += q[i] = std::exp((l[id[i]] - l[id[0]]) / temperature);
  double cum = 0;
  size_t keep = 0;
  while (keep < id.size()) {
    cum += q[keep++] / z;
    if (cum >= p) break;
  }
  return {id.begin(), id.begin() + keep};
}

struct CutCase {
  float temperature;
  int top_k;
  float top_p;
};

TEST(Sampling, TopKAndTopPNeverLeaveTheAllowedSet) {
  const int V = 64;
  for (CutCase cc : {CutCase{1.0f, 1, 1.0f}, CutCase{1.0f, 5, 1.0f}, CutCase{2.0f, 20, 1.0f},
                     CutCase{1.0f, 0, 0.5f}, CutCase{0.5f, 0, 0.9f}, CutCase{3.0f, 0, 0.3f},
                     CutCase{1.0f, 10, 0.7f}, CutCase{1.5f, 30, 0.95f}}) {
    Sampler s(SamplingOptions{cc.temperature, cc.top_k, cc.top_p, 11}, V);
    std::set<int32_t> seen_any;
    for (int trial = 0; trial < 200; ++trial) {
      const auto l = random_logits(V, 1000 + trial, 1.0f + float(trial % 4));
      const auto allowed = allowed_set(l, cc.temperature, cc.top_k, cc.top_p);
      for (int d = 0; d < 20; ++d) {
        const int32_t x = s.sample(l.data());
        ASSERT_TRUE(allowed.count(x)) << "top-k " << cc.top_k << " top-p " << cc.top_p << " drew "
                                      << x << " outside a set of " << allowed.size();
        seen_any.insert(x);
      }
    }
    if (cc.top_k != 1) EXPECT_GT(seen_any.size(), 1u);
  }
}

TEST(Sampling, FrequenciesFollowTheSoftmax) {
  const std::vector<float> l = {0.0f, 1.0f, 2.0f, -1.0f};
  const float T = 0.8f;
  Sampler s(SamplingOptions{T, 0, 1.0f, 5}, 4);
  const int n = 40000;
  std::vector<int> count(4, 0);
  for (int i = 0; i < n; ++i) count[s.sample(l.data())]++;
  double z = 0;
  for (float x : l) z += std::exp(x / T);
  for (int i = 0; i < 4; ++i) {
    const double p = std::exp(l[i] / T) / z;
    // 5 standard deviations of a binomial proportion
    EXPECT_NEAR(count[i] / double(n), p, 5 * std::sqrt(p * (1 - p) / n)) << "token " << i;
  }
}

TEST(Sampling, BadOptionsAreUsageErrors) {
  EXPECT_THROW((SamplingOptions{-1.0f, 0, 1.0f, 0}.validate()), UsageError);
  EXPECT_THROW((SamplingOptions{NAN, 0, 1.0f, 0}.validate()), UsageError);
  EXPECT_THROW((SamplingOptions{1.0f, -2, 1.0f, 0}.validate()), UsageError);
  EXPECT_THROW((SamplingOptions{1.0f, 0, 0.0f, 0}.validate()), UsageError);
  EXPECT_THROW((SamplingOptions{1.0f, 0, 1.5f, 0}.validate()), UsageError);
}

TEST(Utf8Stream, HoldsBackIncompleteCharacters) {
  Utf8Stream s;
  EXPECT_EQ(s.push("a"), "a");
  EXPECT_EQ(s.push("\xC3"), "");  // first byte of 'é'
  EXPECT_EQ(s.push("\xA9"), "\xC3\xA9");
  EXPECT_EQ(s.push("x\xF0\x9F"), "x");  // an emoji split across tokens
  EXPECT_EQ(s.push("\x98"), "");
  EXPECT_EQ(s.push("\x80!"), "\xF0\x9F\x98\x80!");
  EXPECT_EQ(s.push("\xE2\x96"), "");
  EXPECT_EQ(s.push("\x81\xE2"), "\xE2\x96\x81");
  EXPECT_EQ(s.flush(), "\xE2");               // the end of the stream lets everything out
  EXPECT_EQ(s.push("\xFF\x80"), "\xFF\x80");  // never valid: passed through
  EXPECT_EQ(s.push("\xC3z"), "\xC3z");        // broken sequence: passed through
  EXPECT_EQ(s.flush(), "");
}

// ---------------------------------------------------------------------------------------------
// The generation loop against full forwards

using test::random_tokens;
using test::randomise;

ModelConfig small_config(PosKind pos, int layers) { return test::small_model(pos, layers, 29); }

class GenerateMethods : public ::testing::TestWithParam<PosKind> {};

// Two turns (as --interactive makes them) of prompt + sampled tokens run to 110 tokens, far past
// a nominal training length of 16 (a learned table covers them: it is the one method that cannot
// run past its table, tested through the CLI below). The logits every token is sampled from
// equal the last row of a full forward over the whole prefix; the chunked prefill (chunk 7), the
// cache growing between turns and the pending last token are all on that path.
TEST_P(GenerateMethods, CachedGenerationEqualsFullForwardPastTrainingLength) {
  const ModelConfig c = small_config(GetParam(), 2);
  const int V = c.vocab, chunk = 7, max_total = 128;
  Model dec(c, 1, chunk, false), full(c, 1, max_total, false);
  randomise(dec, 21);
  full.params.copy_from(dec.params);
  Generator gen(dec, GenerateOptions{SamplingOptions{1.0f, 0, 1.0f, 4}, 0});
  std::vector<int32_t> seq;
  int checked = 0;
  auto check = [&](int32_t tok, const float* lg) {
    full.forward(seq.data(), nullptr, 1, int(seq.size()));
    expect_logits_near(lg, full.logits() + (seq.size() - 1) * V, V,
                       "after " + std::to_string(seq.size()) + " tokens");
    seq.push_back(tok);
    ++checked;
  };
  const auto p1 = random_tokens(20, V, 1), p2 = random_tokens(9, V, 2);
  seq = p1;
  gen.generate(p1, 50, check);
  seq.insert(seq.end(), p2.begin(), p2.end());
  gen.generate(p2, 31, check);
  EXPECT_EQ(checked, 81);
  EXPECT_EQ(gen.length(), 110);
  EXPECT_EQ(gen.cache().pos, 109);  // the last sampled token waits for the next turn
}

INSTANTIATE_TEST_SUITE_P(AllMethods, GenerateMethods, ::testing::ValuesIn(all_positions()),
                         test::pos_param_name);

class WindowGenerate : public ::testing::TestWithParam<PosKind> {};

// A one-layer model with a sliding window of W: every token (from a 3W-token prompt prefilled in
// chunks, then 10W sampled ones) is drawn from logits equal to the last row of a full forward
// over exactly the last W tokens; the cache buffers never move or grow.
TEST_P(WindowGenerate, EqualsFullForwardOverTheLastWTokensWithFlatMemory) {
  const ModelConfig c = small_config(GetParam(), 1);
  const int V = c.vocab, W = 12, chunk = 5;
  Model dec(c, 1, chunk, false), full(c, 1, W, false);
  randomise(dec, 31);
  full.params.copy_from(dec.params);
  Generator gen(dec, GenerateOptions{SamplingOptions{1.0f, 0, 1.0f, 9}, W});
  const float* k0 = gen.cache().k.data();
  const size_t floats =
      gen.cache().k.size() + gen.cache().v.size() + gen.cache().workspace.size();
  std::vector<int32_t> seq = random_tokens(3 * W, V, 5);
  int checked = 0;
  gen.generate(seq, 10 * W, [&](int32_t tok, const float* lg) {
    const int n = std::min<int>(W, int(seq.size()));
    full.forward(seq.data() + seq.size() - n, nullptr, 1, n);
    expect_logits_near(lg, full.logits() + (n - 1) * V, V,
                       "after " + std::to_string(seq.size()) + " tokens");
    ASSERT_EQ(gen.cache().k.data(), k0);
    ASSERT_EQ(
        gen.cache().k.size() + gen.cache().v.size() + gen.cache().workspace.size(),
        floats);
    ASSERT_LE(gen.cache().len, W);
    seq.push_back(tok);
    ++checked;
  });
  EXPECT_EQ(checked, 10 * W);
  EXPECT_EQ(gen.cache().len, W);
  EXPECT_EQ(gen.cache().capacity, W);
}

// A sequence that starts with the tokenizer's BOS keeps it in view as the window slides (as
// llama.cpp keeps it through a context shift): every token is drawn from logits equal to the last
// row of a full forward over the BOS and the last W - 1 tokens. A method whose keys hold their
// position (rotary, xpos) slides over it as over any token: a forward over the last W.
TEST_P(WindowGenerate, KeepsTheBosInViewAsItSlides) {
  const ModelConfig c = small_config(GetParam(), 1);
  const int V = c.vocab, W = 12, chunk = 5;
  const int32_t bos = 3;
  const bool kept = !position_method(c.pos).keys_hold_position();
  Model dec(c, 1, chunk, false), full(c, 1, W, false);
  randomise(dec, 33);
  full.params.copy_from(dec.params);
  GenerateOptions go{SamplingOptions{1.0f, 0, 1.0f, 9}, W};
  go.bos = bos;
  Generator gen(dec, go);
  std::vector<int32_t> seq = random_tokens(3 * W, V, 7), view;
  seq[0] = bos;
  int checked = 0;
  gen.generate(seq, 4 * W, [&](int32_t tok, const float* lg) {
    const int n = std::min<int>(W, int(seq.size()));
    view.assign(seq.end() - n, seq.end());
    if (kept) view.front() = bos;
    full.forward(view.data(), nullptr, 1, n);
    expect_logits_near(lg, full.logits() + (n - 1) * V, V,
                       "after " + std::to_string(seq.size()) + " tokens");
    seq.push_back(tok);
    ++checked;
  });
  EXPECT_EQ(checked, 4 * W);
  EXPECT_EQ(gen.cache().keep, kept ? 1 : 0);
  EXPECT_EQ(gen.cache().len, W);
}

INSTANTIATE_TEST_SUITE_P(RelativeMethods, WindowGenerate,
                         ::testing::ValuesIn(test::relative_positions()), test::pos_param_name);

// An endless stream: a window whose absolute positions start past 2^31. Rotary keys were rotated
// once at their own position when cached and each query at its own (angles in fp64), so scores
// depend on the distance alone and still equal a forward over the window at positions 0..W-1.
TEST(Generate, WindowFarIntoAStreamEqualsAForwardAtPositionZero) {
  for (PosKind pos : test::relative_positions()) {
    const ModelConfig c = small_config(pos, 1);
    const int V = c.vocab, W = 10;
    Model dec(c, 1, 4, false), full(c, 1, W, false);
    randomise(dec, 41);
    full.params.copy_from(dec.params);
    KVCache kv = dec.make_cache(W, /*sliding=*/true);
    kv.pos = int64_t(3) << 30;
    const auto tok = random_tokens(3 * W, V, 6);
    for (int t = 0; t < 3 * W; ++t) {
      const float* lg = dec.forward_cached(&tok[t], 1, kv);
      const int n = std::min(W, t + 1);
      full.forward(&tok[t + 1 - n], nullptr, 1, n);
      expect_logits_near(
          lg, full.logits() + (n - 1) * V, V,
          std::string(pos_name(pos)) + " at stream position " + std::to_string(kv.pos - 1));
    }
  }
}

TEST(Generate, EmptyPromptWithoutContextIsAUsageError) {
  const ModelConfig c = small_config(PosKind::alibi, 1);
  Model m(c, 1, 4, false);
  randomise(m, 1);
  Generator gen(m, GenerateOptions{});
  EXPECT_THROW(gen.generate({}, 5), UsageError);
  gen.generate({1, 2}, 3);
  EXPECT_NO_THROW(gen.generate({}, 3));  // continues the text so far
  EXPECT_EQ(gen.length(), 8);
}

// ---------------------------------------------------------------------------------------------
// alibi generate through the CLI, on tiny byte-level checkpoints written here

using GenRun = test::CliResult;

class GenerateCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { dir_ = new TempDir("generate"); }
  static void TearDownTestSuite() { delete dir_; }
  static std::string path(const std::string& s) { return *dir_ / s; }

  // A random byte-level model stored as if trained at seq-len `train_len`.
  static std::string checkpoint(const std::string& name, PosKind pos, int train_len, int layers = 2,
                                int d_model = 32) {
    ModelConfig c;
    c.vocab = 256;
    c.layers = layers;
    c.d_model = d_model;
    c.heads = 4;
    c.ffn = 64;
    c.pos = pos;
    c.max_positions = pos == PosKind::learned ? train_len : 0;
    Model m(c, 1, 1, false);
    randomise(m, 77);
    const std::string run = path(name);
    write_checkpoint(run, c, nlohmann::json{{"seq_len", train_len}}, 1, Tokenizer::bytes(),
                     m.params, nullptr, nullptr, 1);
    return run;
  }

  static GenRun generate(const std::string& args, const std::string& stdin_path = "/dev/null") {
    // One thread: each decode step of these tiny models is microseconds of work, and OpenMP
    // barriers on a shared, oversubscribed machine would cost more than the work itself.
    return test::run_cli("--threads 1 generate " + args + " <" + stdin_path, path("err"));
  }

  static double peak_rss_mib(const GenRun& r) {
    std::smatch m;
    const bool found = std::regex_search(r.err, m, std::regex("peak RSS ([0-9.]+) MiB"));
    EXPECT_TRUE(found) << r.err;
    return found ? std::stod(m[1]) : 0.0;
  }

  static TempDir* dir_;
};
TempDir* GenerateCli::dir_ = nullptr;

// 2000 tokens from a model "trained" at 16: more than 100 times its training length.
TEST_F(GenerateCli, AlibiRuns2000TokensPastTrainingLength) {
  const std::string ck = checkpoint("alibi", PosKind::alibi, 16);
  const GenRun r = generate(ck + " --prompt 'Once upon a time' --max-new-tokens 2000 --seed 3");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out.size(), 2000u);  // bytes: one byte per token
  EXPECT_NE(r.err.find("trained at seq-len 16"), std::string::npos) << r.err;
  EXPECT_TRUE(std::regex_search(
      r.err, std::regex("prompt: 16 tokens .*tokens/s.*decode: 2000 tokens .*tokens/s")))
      << r.err;
}

// SIGINT after the first token (held in a test pause): the text so far, the statistics line and
// exit 128 + 2; in --interactive it ends the reply under way and the next line is answered.
TEST_F(GenerateCli, SigintEndsTheGenerationWithItsTextAndStatistics) {
  const std::string ck = checkpoint("alibi_int", PosKind::alibi, 16);
  test::BackgroundCli b = test::start_cli(
      "--threads 1 generate " + ck + " --prompt 'Once upon a time' --max-new-tokens 500",
      path("int.err"), "ALIBI_TEST_PAUSE_IN_DECODE=1");
  ASSERT_TRUE(b.wait_for("paused in decoding")) << test::read_text(path("int.err"));
  const test::CliResult r = b.finish(SIGINT);
  EXPECT_EQ(r.code, 128 + SIGINT) << r.err;
  EXPECT_EQ(r.out.size(), 1u);  // one byte token, then the stop before the second
  EXPECT_NE(r.err.find("decode: 1 tokens"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("alibi: stopped by SIGINT after 1 of 500 new tokens"), std::string::npos)
      << r.err;

  test::write_text(path("turns.txt"), "one\ntwo\n");
  test::BackgroundCli t = test::start_cli(
      "--threads 1 generate " + ck + " --interactive --max-new-tokens 40 <" + path("turns.txt"),
      path("turns.err"), "ALIBI_TEST_PAUSE_IN_DECODE=1");
  ASSERT_TRUE(t.wait_for("paused in decoding")) << test::read_text(path("turns.err"));
  ::kill(t.pid, SIGINT);
  const test::CliResult i = t.finish();
  EXPECT_EQ(i.code, 0) << i.err;
  EXPECT_NE(i.err.find("decode: 41 tokens"), std::string::npos) << i.err;  // 1 + 40
  EXPECT_EQ(i.out.size(), 1u + 1 + 40 + 1) << i.out;  // each reply and its newline
}

// How the CLI's OpenMP threads wait (core/threads.h): alibi re-executes itself with
// GOMP_SPINCOUNT=1000 unless the user set OMP_WAIT_POLICY or GOMP_SPINCOUNT, which it keeps.
// Read from the running process's environment (the re-exec keeps its pid).
TEST_F(GenerateCli, OpenMpThreadsSpinAThousandTimesUnlessTold) {
  const std::string ck = checkpoint("alibi_spin", PosKind::alibi, 16);
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"-u OMP_WAIT_POLICY -u GOMP_SPINCOUNT", "GOMP_SPINCOUNT=1000"},
      {"-u OMP_WAIT_POLICY GOMP_SPINCOUNT=7", "GOMP_SPINCOUNT=7"},
      {"-u GOMP_SPINCOUNT OMP_WAIT_POLICY=passive", "OMP_WAIT_POLICY=passive"}};
  for (const auto& [env, want] : cases) {
    const std::string err = path("spin-" + want + ".err");
    test::BackgroundCli b = test::start_cli(
        "--threads 1 generate " + ck + " --prompt 'Once' --max-new-tokens 50", err,
        env + " ALIBI_TEST_PAUSE_IN_DECODE=1");
    ASSERT_TRUE(b.wait_for("paused in decoding")) << test::read_text(err);
    std::ifstream f("/proc/" + std::to_string(b.pid) + "/environ", std::ios::binary);
    std::set<std::string> vars;
    for (std::string v; std::getline(f, v, '\0');) vars.insert(v);
    b.finish(SIGKILL);
    EXPECT_EQ(vars.count(want), 1u) << env;
    const bool spins = std::any_of(vars.begin(), vars.end(),
                                   [](const std::string& v) { return v.starts_with("GOMP_"); });
    EXPECT_EQ(spins, want.starts_with("GOMP_")) << env << ": a user's policy is left alone";
  }
}

TEST_F(GenerateCli, LearnedRefusesPastItsTableWithOneLine) {
  const std::string ck = checkpoint("learned", PosKind::learned, 16);
  const GenRun r = generate(ck + " --prompt 'Once upon a time' --max-new-tokens 2000");
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_TRUE(r.out.empty()) << "nothing is generated before the refusal";
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_NE(r.err.find("alibi: error: --max-new-tokens 2000"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("learned"), std::string::npos) << r.err;
  // within the table it generates
  const GenRun ok = generate(ck + " --prompt 'Once' --max-new-tokens 12");
  EXPECT_EQ(ok.code, 0) << ok.err;
  EXPECT_EQ(ok.out.size(), 12u);
}

TEST_F(GenerateCli, FixedSeedReproducesTheText) {
  const std::string ck = checkpoint("seed", PosKind::rotary, 16);
  const std::string args = ck + " --prompt 'abc' --max-new-tokens 200 --top-k 40 --top-p 0.9";
  const GenRun a = generate(args + " --seed 5"), b = generate(args + " --seed 5"),
               c = generate(args + " --seed 6");
  ASSERT_EQ(a.code, 0) << a.err;
  EXPECT_EQ(a.out, b.out);
  EXPECT_NE(a.out, c.out);
}

// Peak RSS of the process after W and after 10 W generated tokens: flat with --window W; the same
// runs without a window grow by the cache (9 W rows of L*2*C floats = 4.5 MiB), which shows the
// measurement would see a growing cache.
TEST_F(GenerateCli, WindowKeepsMemoryFlatOver10W) {
  const int W = 128;
  const std::string ck = checkpoint("window", PosKind::alibi, 16, /*layers=*/8, /*d_model=*/64);
  const std::string base = ck + " --prompt 'x' --chunk 64 --temperature 0.8 --max-new-tokens ";
  auto rss = [&](int n, const std::string& extra) {
    const GenRun r = generate(base + std::to_string(n) + extra);
    EXPECT_EQ(r.code, 0) << r.err;
    return peak_rss_mib(r);
  };
  const std::string win = " --window " + std::to_string(W);
  const double w1 = rss(W, win), w10 = rss(10 * W, win);
  const double f1 = rss(W, ""), f10 = rss(10 * W, "");
  EXPECT_LT(w10 - w1, 1.0) << "windowed peak RSS " << w1 << " -> " << w10 << " MiB";
  EXPECT_GT(f10 - f1, 3.0) << "full-cache peak RSS " << f1 << " -> " << f10 << " MiB";
}

// Two lines on stdin: the second turn continues the first (cache kept), so at temperature 0 it
// writes what a one-shot run writes for the prompt "abc" + turn 1 + "def".
TEST_F(GenerateCli, InteractiveKeepsTheContextBetweenTurns) {
  const std::string ck = checkpoint("interactive", PosKind::alibi, 16);
  test::write_text(path("stdin.txt"), "abc\ndef\n");
  const GenRun r =
      generate(ck + " --interactive --temperature 0 --max-new-tokens 20", path("stdin.txt"));
  ASSERT_EQ(r.code, 0) << r.err;
  ASSERT_EQ(r.out.size(), 42u);  // two turns of 20 bytes, each ended by a newline
  const std::string turn1 = r.out.substr(0, 20), turn2 = r.out.substr(21, 20);
  EXPECT_EQ(r.out[20], '\n');
  test::write_text(path("prompt.txt"), "abc" + turn1 + "def");
  const GenRun once = generate(ck + " --prompt-file " + path("prompt.txt") +
                               " --temperature 0 --max-new-tokens 20");
  ASSERT_EQ(once.code, 0) << once.err;
  EXPECT_EQ(once.out, turn2);
}

TEST_F(GenerateCli, BadInputExitsWithOneLine) {
  const std::string ck = checkpoint("bad", PosKind::alibi, 16);
  for (const std::string& args :
       {ck + " --prompt a --top-p 1.5", ck + " --prompt a --temperature -1",
        ck + " --prompt a --top-k -3", ck + " --prompt a --window -1",
        ck + " --prompt a --max-new-tokens -5", ck + " --prompt a --prompt-file " + ck,
        ck + " --prompt-file " + path("missing.txt"), ck, path("no_such_run") + " --prompt a"}) {
    const GenRun r = generate(args);
    EXPECT_EQ(r.code, 2) << args << "\n" << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << args << "\n" << r.err;
    EXPECT_TRUE(r.err.starts_with("alibi: error: ")) << r.err;
  }
}

}  // namespace
}  // namespace alibi
