// alibi eval: perplexity against an independent computation from full-forward logits (every
// mode, library and CLI; second-half against llama-perplexity's protocol written out), sliding
// with stride == length against nonoverlapping, per-position curves, every position method past
// the training length, prepare --tokenizer-from, --text, and the bad input that must exit 2 with
// one line.
#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli.h"
#include "core/error.h"
#include "core/rng.h"
#include "data/dataset.h"
#include "eval/eval.h"
#include "model/checkpoint.h"
#include "model/model.h"
#include "positions.h"
#include "usage_error.h"

namespace alibi {
namespace {

namespace fs = std::filesystem;
using test::run_cli;
using test::TempDir;

constexpr int kTrainLen = 16;  // the checkpoints' training length (learned: its table size)
constexpr int kLen = 40;       // an evaluation length past it that does not divide the split
constexpr int kStride = 12;
// The eval path sums fp32 per-token losses (from the fp32 log-sum-exp of the model) in double;
// the reference takes a double log-softmax of the same fp32 logits. Their means agree to ~1e-7
// relative; a wrong window, row or target moves them by far more than 1e-5.
constexpr double kLossRelTol = 1e-5;

ModelConfig tiny(PosKind pos, int vocab = 256) {
  ModelConfig c;
  c.vocab = vocab;
  c.layers = 2;
  c.d_model = 32;
  c.heads = 4;
  c.ffn = 64;
  c.pos = pos;
  c.max_positions = kTrainLen;
  c.t5_buckets = 8;
  c.t5_max_distance = 20;
  return c;
}

// Initialised weights plus noise, so that every parameter (t5_bias included) matters.
std::vector<float> random_params(const ModelConfig& c, uint64_t seed) {
  Model m(c, 1, 1, false);
  m.init_weights(seed);
  Rng r(seed + 1);
  std::vector<float> w = m.params.to_host();
  for (float& x : w) x += 0.1f * r.normal();
  m.params.from_host(w);
  m.project_params();  // back into each method's range (KERPLE's r >= 0.01), as training keeps it
  return m.params.to_host();
}

// The first `bytes` of the bundled corpus from `offset`, cut at line ends.
std::string corpus_part(size_t offset, size_t bytes) {
  const std::string s = test::bundled_text();
  const size_t a = s.find('\n', offset) + 1;
  return s.substr(a, s.rfind('\n', a + bytes) + 1 - a);
}

// Sum of -log p(target) over rows [from, to) (to < 0: len) of the window tokens[start,
// start + len), from the logits of one full forward, with a double log-softmax.
double window_nats(Model& m, const std::vector<int32_t>& toks, int64_t start, int len,
                   int from, int to = -1) {
  m.forward(toks.data() + start, nullptr, 1, len);
  const int V = m.cfg.vocab;
  double nats = 0;
  for (int t = from; t < (to < 0 ? len : to); ++t) {
    const float* row = m.logits() + size_t(t) * V;
    double mx = row[0];
    for (int v = 1; v < V; ++v) mx = std::max(mx, double(row[v]));
    double z = 0;
    for (int v = 0; v < V; ++v) z += std::exp(double(row[v]) - mx);
    nats += mx + std::log(z) - double(row[toks[size_t(start + t + 1)]]);
  }
  return nats;
}

// Mean loss by the protocols of paper.md, written out here from scratch: nonoverlapping chunks
// of L (stride 0), or windows [kS, kS + L) scoring their last S targets (the first all of its).
double reference_loss(const ModelConfig& c, const std::vector<float>& params,
                      const std::vector<int32_t>& toks, int L, int S) {
  Model m(c, 1, L, false);
  m.params.from_host(params);
  const int64_t M = int64_t(toks.size()) - 1;  // targets
  double nats = 0;
  int64_t scored = 0;
  if (S == 0) {
    for (int64_t s = 0; s < M; s += L) {
      const int len = int(std::min<int64_t>(L, M - s));
      nats += window_nats(m, toks, s, len, 0);
      scored += len;
    }
  } else {
    nats += window_nats(m, toks, 0, L, 0);
    scored += L;
    for (int64_t s = S; s + L - S < M; s += S) {
      const int len = int(std::min<int64_t>(L, M - s));
      nats += window_nats(m, toks, s, len, L - S);
      scored += len - (L - S);
    }
  }
  EXPECT_EQ(scored, M);
  return nats / double(M);
}

// llama-perplexity's protocol (tools/perplexity/perplexity.cpp, no BOS), written out here: the
// floor(n / L) whole chunks of L tokens, each scoring the targets of rows L/2 .. L - 2.
double reference_second_half(const ModelConfig& c, const std::vector<float>& params,
                             const std::vector<int32_t>& toks, int L) {
  Model m(c, 1, L, false);
  m.params.from_host(params);
  double nats = 0;
  int64_t scored = 0;
  for (int64_t s = 0; s + L <= int64_t(toks.size()); s += L) {
    nats += window_nats(m, toks, s, L, L / 2, L - 1);
    scored += L - 1 - L / 2;
  }
  return nats / double(scored);
}

std::string pos_tag(PosKind p) { return pos_name(p); }

const std::string kOneThread = "--threads 1 ";  // see EvalTest::SetUp

class EvalTest : public ::testing::Test {
 protected:
  // A bytes data folder from train/valid/test files, a bpe one from the same files, and a
  // checkpoint per position method (bytes) plus one with the bpe tokenizer.
  static void SetUpTestSuite() {
    dir_ = new TempDir("eval");
    fs::create_directories(*dir_ / "text");
    test::write_text(*dir_ / "text/train.txt", corpus_part(0, 60000));
    test::write_text(*dir_ / "text/valid.txt", corpus_part(100000, 3000));
    test::write_text(*dir_ / "text/test.txt", corpus_part(200000, 3000));
    PrepareOptions po;
    po.input = *dir_ / "text";
    po.out = *dir_ / "data";
    po.threads = 1;
    prepare(po);
    po.out = *dir_ / "data_bpe";
    po.tokenizer = "bpe";
    po.vocab = 400;
    prepare(po);

    const nlohmann::json train = {{"seq_len", kTrainLen}};
    for (PosKind p : all_positions()) {
      const ModelConfig c = tiny(p);
      const ParamLayout layout = make_param_layout(c);
      ParamSet ps(layout);
      ps.from_host(random_params(c, 7));
      write_checkpoint(*dir_ / ("run_" + pos_tag(p)), c, train, 1, Tokenizer::bytes(), ps,
                       nullptr, nullptr, 1);
    }
    const Tokenizer bpe = Tokenizer::load_dir(*dir_ / "data_bpe");
    const ModelConfig c = tiny(PosKind::alibi, bpe.vocab());
    const ParamLayout layout = make_param_layout(c);
    ParamSet ps(layout);
    ps.from_host(random_params(c, 8));
    write_checkpoint(*dir_ / "run_bpe", c, train, 1, bpe, ps, nullptr, nullptr, 1);
  }
  static void TearDownTestSuite() { delete dir_; }
  // The models are tiny: one thread beats two, whose synchronisation dominates on a busy machine.
  void SetUp() override {
    threads_ = omp_get_max_threads();
    omp_set_num_threads(1);
  }
  void TearDown() override { omp_set_num_threads(threads_); }
  int threads_ = 1;

  static std::string path(const std::string& s) { return *dir_ / s; }
  static std::string run(PosKind p) { return path("run_" + pos_tag(p)); }

  // Runs `alibi eval ARGS --json FILE` and returns the JSON (exit code checked).
  static nlohmann::json eval_json(const std::string& args) {
    const std::string json = path("out.json");
    fs::remove(json);
    const auto r = run_cli(kOneThread + "eval " + args + " --json " + json, path("eval.err"));
    EXPECT_EQ(r.code, 0) << args << "\n" << r.err;
    if (r.code != 0) return nlohmann::json::object();
    return nlohmann::json::parse(test::read_text(json));
  }

  // The checkpoint's config and weights, and the valid split's tokens.
  struct Loaded {
    ModelConfig cfg;
    std::vector<float> params;
    std::vector<int32_t> tokens;
    uint64_t bytes = 0;
  };
  static Loaded load(PosKind p) {
    const Checkpoint ck = read_checkpoint(run(p));
    Loaded l;
    l.cfg = ck.config;
    const ParamLayout layout = make_param_layout(l.cfg);
    ParamSet ps(layout);
    ck.load_params(ps);
    l.params = ps.to_host();
    const TokenSplit s = load_split(path("data"), "valid");
    l.tokens = s.tokens;
    l.bytes = s.source_bytes;
    return l;
  }

  static EvalResult lib_eval(const Loaded& l, int L, EvalMode mode, int stride, int batch = 0,
                             bool per_position = false) {
    const ParamLayout layout = make_param_layout(l.cfg);
    ParamSet ps(layout);
    ps.from_host(l.params);
    EvalOptions o;
    o.length = L;
    o.mode = mode;
    o.stride = stride;
    o.batch = batch;
    o.per_position = per_position;
    return evaluate(l.cfg, ps, l.tokens, l.bytes, o);
  }

  static TempDir* dir_;
};
TempDir* EvalTest::dir_ = nullptr;

TEST_F(EvalTest, CliPerplexityEqualsIndependentComputation) {
  const Loaded l = load(PosKind::alibi);
  const int64_t M = int64_t(l.tokens.size()) - 1;
  ASSERT_NE(M % kLen, 0) << "the last chunk should be shorter";
  for (int S : {0, kStride}) {
    const double ref = reference_loss(l.cfg, l.params, l.tokens, kLen, S);
    const std::string mode =
        S == 0 ? "" : " --mode sliding --stride " + std::to_string(S);
    const auto j = eval_json(run(PosKind::alibi) + " --data " + path("data") + " --lengths " +
                             std::to_string(kLen) + mode);
    ASSERT_EQ(j["results"].size(), 1u);
    const auto& r = j["results"][0];
    EXPECT_EQ(r["tokens_scored"].get<int64_t>(), M);
    EXPECT_NEAR(r["loss"].get<double>(), ref, kLossRelTol * ref) << "stride " << S;
    EXPECT_NEAR(r["ppl"].get<double>(), std::exp(ref), kLossRelTol * std::exp(ref));
    // Byte tokens: bits per byte is bits per token.
    EXPECT_NEAR(r["bits_per_byte"].get<double>(), r["bits_per_token"].get<double>(), 1e-9);
  }
}

// SIGINT while the second of three lengths runs (held in a test pause): eval exits 128 + 2 after
// the first length's row, CSV and JSON, and the JSON says where it stopped.
TEST_F(EvalTest, SigintKeepsTheLengthsFinished) {
  const std::string json = path("int.json"), csv = path("int.csv");
  test::BackgroundCli b = test::start_cli(
      kOneThread + "eval " + run(PosKind::alibi) + " --data " + path("data") +
          " --lengths 16,32,64 --json " + json + " --per-position " + csv,
      path("int.err"), "ALIBI_TEST_PAUSE_IN_EVAL=1");
  ASSERT_TRUE(b.wait_for("paused in eval at length 32")) << test::read_text(path("int.err"));
  const test::CliResult r = b.finish(SIGINT);
  EXPECT_EQ(r.code, 128 + SIGINT) << r.err;
  EXPECT_NE(r.err.find("alibi: stopped by SIGINT during length 32 after 0 of"), std::string::npos)
      << r.err;
  const nlohmann::json j = nlohmann::json::parse(test::read_text(json));
  ASSERT_EQ(j["results"].size(), 1u);
  EXPECT_EQ(j["results"][0]["length"], 16);
  EXPECT_EQ(j["interrupted"]["signal"], SIGINT);
  const std::string rows = test::read_text(csv);
  EXPECT_NE(rows.find("\n16,15,"), std::string::npos) << rows;
  EXPECT_EQ(rows.find("\n32,"), std::string::npos) << rows;
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 3) << r.out;  // header, columns, 16
}

TEST_F(EvalTest, LibraryEqualsIndependentComputationForEveryMethod) {
  for (PosKind p : all_positions()) {
    const Loaded l = load(p);
    const int L = test::runs_any_length(p) ? kLen : kTrainLen;  // a table ends at kTrainLen
    for (int S : {0, 5}) {
      const double ref = reference_loss(l.cfg, l.params, l.tokens, L, S);
      const EvalResult r =
          lib_eval(l, L, S == 0 ? EvalMode::nonoverlapping : EvalMode::sliding, S);
      EXPECT_NEAR(r.loss, ref, kLossRelTol * ref) << pos_name(p) << " stride " << S;
    }
  }
}

// Also where the text is whole chunks exactly, so the last chunk's last row has no target.
TEST_F(EvalTest, SecondHalfIsLlamaPerplexitysProtocol) {
  for (PosKind p : {PosKind::alibi, PosKind::rotary, PosKind::learned}) {
    Loaded l = load(p);
    const int L = p == PosKind::learned ? kTrainLen : kLen;
    for (const bool whole : {false, true}) {
      if (whole) l.tokens.resize(l.tokens.size() / size_t(L) * size_t(L));
      const int64_t chunks = int64_t(l.tokens.size()) / L;
      ASSERT_EQ(whole, int64_t(l.tokens.size()) == chunks * L);
      const double ref = reference_second_half(l.cfg, l.params, l.tokens, L);
      for (int batch : {1, 0}) {
        const EvalResult r = lib_eval(l, L, EvalMode::second_half, 0, batch, true);
        EXPECT_EQ(r.windows, chunks);
        EXPECT_EQ(r.tokens_scored, chunks * (L - 1 - L / 2));
        EXPECT_EQ(r.tokens_forwarded, chunks * L);
        EXPECT_NEAR(r.loss, ref, kLossRelTol * ref) << pos_name(p) << " batch " << batch;
        EXPECT_EQ(r.position_count[size_t(L / 2 - 1)], 0);
        EXPECT_EQ(r.position_count[size_t(L / 2)], chunks);
        EXPECT_EQ(r.position_count[size_t(L - 1)], 0);
      }
    }
  }
}

// A chunk BOS (a vocabulary that adds one, as llama-perplexity runs it): each chunk's first
// input is the BOS, its targets the stream's. Only second-half takes one.
TEST_F(EvalTest, SecondHalfChunkBosReplacesEachChunksFirstInput) {
  const Loaded l = load(PosKind::alibi);
  std::vector<int32_t> with = l.tokens;
  for (size_t s = 0; s + kLen <= with.size(); s += kLen) with[s] = 7;
  const double ref = reference_second_half(l.cfg, l.params, with, kLen);
  const ParamLayout layout = make_param_layout(l.cfg);
  ParamSet ps(layout);
  ps.from_host(l.params);
  EvalOptions o{.length = kLen, .mode = EvalMode::second_half, .chunk_bos = 7};
  const EvalResult r = evaluate(l.cfg, ps, l.tokens, l.bytes, o);
  EXPECT_NEAR(r.loss, ref, kLossRelTol * ref);
  const double plain = reference_second_half(l.cfg, l.params, l.tokens, kLen);
  EXPECT_GT(std::fabs(plain - ref), 10 * kLossRelTol * ref) << "the BOS changes nothing here";
  o.mode = EvalMode::nonoverlapping;
  test::expect_usage_error([&] { evaluate(l.cfg, ps, l.tokens, l.bytes, o); },
                           {"chunk BOS", "second-half only"});
}

TEST_F(EvalTest, SlidingWithStrideEqualToLengthIsNonoverlapping) {
  const Loaded l = load(PosKind::t5);
  for (int L : {kTrainLen, kLen, 97}) {
    const EvalResult a = lib_eval(l, L, EvalMode::nonoverlapping, 0, 0, true);
    const EvalResult b = lib_eval(l, L, EvalMode::sliding, L, 0, true);
    EXPECT_EQ(a.windows, b.windows);
    EXPECT_EQ(a.tokens_scored, b.tokens_scored);
    EXPECT_EQ(a.tokens_forwarded, b.tokens_forwarded);
    EXPECT_EQ(a.loss, b.loss) << "L " << L;  // the same windows in the same batches
    EXPECT_EQ(a.position_count, b.position_count);
  }
}

TEST_F(EvalTest, BatchingChangesNothingScored) {
  const Loaded l = load(PosKind::rotary);
  for (int S : {0, 7}) {
    const EvalMode mode = S == 0 ? EvalMode::nonoverlapping : EvalMode::sliding;
    const EvalResult one = lib_eval(l, kLen, mode, S, 1);
    for (int batch : {3, 64, 0}) {
      const EvalResult r = lib_eval(l, kLen, mode, S, batch);
      EXPECT_EQ(r.tokens_scored, one.tokens_scored);
      EXPECT_EQ(r.tokens_scored, int64_t(l.tokens.size()) - 1);
      EXPECT_EQ(r.windows, one.windows);
      EXPECT_NEAR(r.loss, one.loss, kLossRelTol * one.loss) << "batch " << batch;
    }
  }
}

TEST_F(EvalTest, PerPositionCurvesAverageToTheLoss) {
  const Loaded l = load(PosKind::alibi);
  for (int S : {0, kStride}) {
    const EvalResult r = lib_eval(l, kLen, S == 0 ? EvalMode::nonoverlapping : EvalMode::sliding,
                                  S, 0, true);
    ASSERT_EQ(r.position_count.size(), size_t(kLen));
    double nats = 0;
    int64_t count = 0;
    for (int t = 0; t < kLen; ++t) {
      nats += r.position_nats[size_t(t)];
      count += r.position_count[size_t(t)];
    }
    EXPECT_EQ(count, r.tokens_scored);
    EXPECT_NEAR(nats / double(count), r.loss, 1e-12 * r.loss);
    if (S != 0)  // past the first window, only the last S rows are scored
      EXPECT_EQ(r.position_count[0], 1);
  }
  // The CLI's CSV: count-weighted mean of the curve is the reported loss.
  const std::string csv = path("pos.csv");
  const auto j = eval_json(run(PosKind::alibi) + " --data " + path("data") + " --lengths " +
                           std::to_string(kTrainLen) + "," + std::to_string(kLen) +
                           " --per-position " + csv);
  std::ifstream f(csv);
  std::string line;
  std::getline(f, line);
  EXPECT_EQ(line, "length,position,count,mean_loss");
  std::map<int, std::pair<double, int64_t>> sums;  // length -> (nats, count)
  for (int rows = 0; std::getline(f, line); ++rows) {
    int L = 0, t = 0;
    long long c = 0;
    double mean = 0;
    ASSERT_EQ(std::sscanf(line.c_str(), "%d,%d,%lld,%lf", &L, &t, &c, &mean), 4) << line;
    sums[L].first += mean * double(c);
    sums[L].second += c;
  }
  ASSERT_EQ(sums.size(), 2u);
  for (const auto& r : j["results"]) {
    const auto& [nats, count] = sums[r["length"].get<int>()];
    EXPECT_EQ(count, r["tokens_scored"].get<int64_t>());
    EXPECT_NEAR(nats / double(count), r["loss"].get<double>(), 1e-6);
  }
}

TEST_F(EvalTest, PastTheTrainingLengthEveryMethodButLearnedRuns) {
  const std::string lengths = " --lengths " + std::to_string(kTrainLen) + "," +
                              std::to_string(4 * kTrainLen) + "," + std::to_string(32 * kTrainLen);
  for (PosKind p : test::positions_where(test::runs_any_length)) {
    const auto j = eval_json(run(p) + " --data " + path("data") + lengths);
    ASSERT_EQ(j["results"].size(), 3u) << pos_name(p);
    for (const auto& r : j["results"]) EXPECT_TRUE(std::isfinite(r["ppl"].get<double>()));
  }
  // A method with a table (learned) is refused past it, by name, in one line.
  for (PosKind p : test::positions_where([](PosKind p) { return !test::runs_any_length(p); })) {
    const auto r = run_cli(kOneThread + "eval " + run(p) + " --data " + path("data") + lengths,
                           path("table.err"));
    EXPECT_EQ(r.code, 2) << r.err;
    EXPECT_NE(r.err.find(pos_name(p)), std::string::npos) << r.err;
    EXPECT_NE(r.err.find(std::to_string(4 * kTrainLen)), std::string::npos) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    // The library refuses too, before any work.
    const Loaded l = load(p);
    EXPECT_THROW(lib_eval(l, kTrainLen + 1, EvalMode::nonoverlapping, 0), UsageError);
    EXPECT_EQ(lib_eval(l, kTrainLen, EvalMode::nonoverlapping, 0).tokens_scored,
              int64_t(l.tokens.size()) - 1);
  }
}

TEST_F(EvalTest, TextFileScoresLikeThePreparedSplit) {
  const std::string args = run(PosKind::alibi) + " --lengths " + std::to_string(kLen);
  const auto a = eval_json(args + " --data " + path("data") + " --split valid");
  const auto b = eval_json(args + " --text " + path("text/valid.txt"));
  EXPECT_EQ(a["tokens"], b["tokens"]);
  EXPECT_EQ(a["results"][0]["loss"].get<double>(), b["results"][0]["loss"].get<double>());
  EXPECT_EQ(a["results"][0]["bits_per_byte"].get<double>(),
            b["results"][0]["bits_per_byte"].get<double>());
}

TEST_F(EvalTest, PrepareWithTheCheckpointsTokenizer) {
  const auto r = run_cli("prepare --input " + path("text") + " --out " + path("data_from") +
                             " --tokenizer-from " + path("run_bpe"),
                         path("prep.err"));
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(Tokenizer::load_dir(path("data_from")).fingerprint(),
            read_checkpoint(path("run_bpe")).tokenizer.fingerprint());
  const auto j = eval_json(path("run_bpe") + " --data " + path("data_from") + " --lengths 32");
  EXPECT_EQ(j["results"][0]["tokens_scored"].get<int64_t>(),
            int64_t(load_split(path("data_from"), "valid").tokens.size()) - 1);
  // --tokenizer-from brings its own tokenizer: --tokenizer alongside it is a contradiction.
  const auto bad = run_cli("prepare --input " + path("text") + " --out " + path("data_from2") +
                               " --tokenizer-from " + path("run_bpe") + " --tokenizer bytes",
                           path("prep2.err"));
  EXPECT_EQ(bad.code, 2) << bad.err;
  EXPECT_NE(bad.err.find("--tokenizer-from"), std::string::npos) << bad.err;
}

TEST_F(EvalTest, BadInputIsOneLineAndExitCode2) {
  const std::string ck = run(PosKind::alibi), data = " --data " + path("data");
  struct Case {
    std::string args;
    std::vector<std::string> needles;  // the message must name these
  };
  const std::vector<Case> cases = {
      {ck + " --data " + path("data_bpe"), {"tokenizer", "data_bpe", "--tokenizer-from"}},
      {path("run_bpe") + data, {"tokenizer", "bytes", "bpe"}},
      {ck + data + " --lengths 0", {"--lengths", "0"}},
      {ck + data + " --lengths 64,abc", {"--lengths", "abc"}},
      {ck + data + " --lengths 1000000", {"--lengths", "1000000", "valid.tok"}},
      {ck + data + " --lengths 40 --mode sliding --stride 40", {"--stride", "40"}},
      {ck + data + " --lengths 16,40 --mode sliding --stride 20", {"--stride", "20", "16"}},
      {ck + data + " --lengths 40 --mode sliding", {"--stride"}},
      {ck + data + " --lengths 40 --stride 8", {"--stride", "sliding"}},
      {ck + data + " --mode rolling", {"--mode", "rolling"}},
      {ck + data + " --mode second-half --stride 8", {"--stride", "sliding"}},
      {ck + data + " --mode second-half --lengths 2", {"--lengths", "2", "second-half"}},
      {ck + data + " --split dev", {"--split", "dev"}},
      {ck, {"--data", "--text"}},
      {ck + " --text " + path("missing.txt"), {"--text", "missing.txt"}},
      {path("no_such_run") + data, {"no_such_run"}},
      {ck + data + " --json " + path("nowhere/r.json"), {"--json", "nowhere", "does not exist"}},
  };
  for (const Case& c : cases) {
    const auto r = run_cli(kOneThread + "eval " + c.args, path("bad.err"));
    EXPECT_EQ(r.code, 2) << c.args << "\n" << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << c.args << "\n" << r.err;
    for (const std::string& n : c.needles)
      EXPECT_NE(r.err.find(n), std::string::npos) << c.args << ": '" << n << "' in " << r.err;
  }
}

// The head and cross-entropy over chunks of rows (the evaluation's memory at a large
// vocabulary) give the per-token losses and the loss of the whole head, and plan logits for the
// chunk only. The products of a chunk may sum in another order than those of all rows: 1e-6.
// The head over blocks of vocabulary columns (an online log-sum-exp) against the whole head:
// the same terms, rescaled per block, so losses agree to fp32 rounding (1e-6 relative). Blocks of
// 64 columns of 300 (the last one short), and one of 299 where the target is in either part.
TEST(ChunkedHead, LossesEqualTheWholeHeadWithLogitsForOneBlock) {
  const ModelConfig c = tiny(PosKind::alibi, 300);
  const int B = 3, T = 20;
  const std::vector<float> w = random_params(c, 5);
  Model whole(c, B, T, false);
  whole.params.from_host(w);
  Rng r(3);
  std::vector<int32_t> tok(B * T), tgt(B * T);
  for (int i = 0; i < B * T; ++i) {
    tok[size_t(i)] = int32_t(r.below(c.vocab));
    tgt[size_t(i)] = int32_t(i % 2 ? r.below(c.vocab) : c.vocab - 1 - i % 3);  // the last columns
  }
  const float a = whole.forward(tok.data(), tgt.data(), B, T);
  std::vector<float> la(B * T), lb(B * T);
  whole.token_losses(la.data());
  for (int cols : {64, 299}) {
    Model chunked(c, B, T, false, default_backend(), {.cols = cols});
    chunked.params.from_host(w);
    const float b = chunked.forward(tok.data(), tgt.data(), B, T);
    EXPECT_NEAR(b, a, 1e-6 * a) << cols;
    chunked.token_losses(lb.data());
    for (int i = 0; i < B * T; ++i)
      EXPECT_NEAR(lb[size_t(i)], la[size_t(i)], 1e-6 * la[size_t(i)]) << cols << " " << i;
    const size_t saved = Model::plan_bytes(c, B, T, false, *default_backend()) -
                         Model::plan_bytes(c, B, T, false, *default_backend(), {.cols = cols});
    // (N, V - cols) fewer logits, 3N more floats of running state
    const size_t N = size_t(B * T), state = 3 * N * sizeof(float);
    EXPECT_EQ(saved + state, N * size_t(c.vocab - cols) * sizeof(float)) << cols;
    EXPECT_THROW(chunked.logits(), std::logic_error);
    EXPECT_THROW(chunked.forward(tok.data(), nullptr, B, T), std::logic_error);
  }
  EXPECT_EQ(Model::default_head_cols(250880, 1024), 16384);
  EXPECT_EQ(Model::default_head_cols(8192, 1024), 0) << "the whole head fits 64 MiB";
}

TEST(EvalWindows, CoverEveryTargetOnce) {
  for (int64_t M : {1, 39, 40, 41, 1000}) {
    for (int L : {1, 7, 40}) {
      if (L > M) continue;
      for (int S : {0, 1, 3, L}) {
        if (S > L) continue;
        const EvalMode mode = S == 0 ? EvalMode::nonoverlapping : EvalMode::sliding;
        std::vector<int> seen(size_t(M), 0);
        for (const EvalWindow& w : eval_windows(M, L, mode, S)) {
          ASSERT_LE(w.len, L);
          ASSERT_LE(w.start + w.len, M);
          ASSERT_EQ(w.score_end, w.len);
          for (int t = w.score_from; t < w.len; ++t) seen[size_t(w.start + t)] += 1;
          if (w.start > 0 && mode == EvalMode::sliding) EXPECT_GE(w.score_from, L - S);
        }
        for (int64_t i = 0; i < M; ++i) ASSERT_EQ(seen[size_t(i)], 1) << M << " " << L << " " << S;
      }
    }
  }
  EXPECT_THROW(eval_windows(10, 0, EvalMode::nonoverlapping, 0), UsageError);
  EXPECT_THROW(eval_windows(10, 11, EvalMode::nonoverlapping, 0), UsageError);
  EXPECT_THROW(eval_windows(10, 5, EvalMode::sliding, 6), UsageError);
  EXPECT_THROW(eval_windows(10, 5, EvalMode::sliding, 0), UsageError);
  EXPECT_THROW(eval_windows(10, 2, EvalMode::second_half, 0), UsageError);
}

// n tokens (M + 1) in floor(n / L) whole chunks; each scores rows [L/2, L - 1), whose targets
// all exist, and chunk k scores the targets of tokens kL + L/2 + 1 .. kL + L - 1.
TEST(EvalWindows, SecondHalfScoresTheWholeChunksSecondHalves) {
  for (int64_t M : {3, 39, 40, 79, 80, 1000}) {
    for (int L : {3, 4, 7, 40}) {
      if (L > M) continue;
      const std::vector<EvalWindow> w = eval_windows(M, L, EvalMode::second_half, 0);
      ASSERT_EQ(int64_t(w.size()), (M + 1) / L) << M << " " << L;
      ASSERT_EQ(int64_t(w.size()), eval_window_count(M, L, EvalMode::second_half, 0));
      for (size_t k = 0; k < w.size(); ++k) {
        EXPECT_EQ(w[k].start, int64_t(k) * L);
        EXPECT_EQ(w[k].len, L);
        EXPECT_EQ(w[k].score_from, L / 2);
        EXPECT_EQ(w[k].score_end, L - 1);
        EXPECT_LE(w[k].start + w[k].score_end, M) << "a scored target past the text";
      }
    }
  }
}

}  // namespace
}  // namespace alibi
