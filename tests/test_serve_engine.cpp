// Continuous batching (src/serve, docs/serve.md) against decoding one sequence at a time:
// Model::forward_batch's logits against forward_cached's per sequence, and the engine's tokens
// against the Generator's (`alibi generate`'s loop), for every registered position method.
#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "generate/generate.h"
#include "model_util.h"
#include "positions.h"
#include "serve/engine.h"

namespace alibi {
namespace {

using test::expect_logits_near;
using test::random_tokens;
using test::randomise;

class BatchMethods : public ::testing::TestWithParam<PosKind> {};

// A model for a step's batch, keeping the logits of 3 rows as a server's keeps one per slot
// (LogitsPlan::rows), and one that runs each sequence alone, with the same weights; 3 caches of
// `capacity` tokens for each.
struct BatchAndAlone {
  struct Feed {
    int seq;
    const int32_t* tokens;
    int n;
  };
  Model batch, alone;
  std::vector<KVCache> bc, ac;
  BatchAndAlone(const ModelConfig& c, uint64_t seed, int capacity)
      : batch(c, 1, 16, false, default_backend(), {.rows = 3}), alone(c, 1, 16, false) {
    randomise(batch, seed);
    alone.params.copy_from(batch.params);
    for (int s = 0; s < 3; ++s) {
      bc.push_back(batch.make_cache(capacity, false));
      ac.push_back(alone.make_cache(capacity, false));
    }
  }
  // One step of the batch over `feed`: each chunk's last-row logits equal forward_cached's for
  // its sequence alone, and both caches end at the same position.
  void step(const std::vector<Feed>& feed) {
    const int V = batch.cfg.vocab;
    std::vector<CachedChunk> chunks;
    for (const Feed& f : feed) chunks.push_back({f.tokens, f.n, &bc[size_t(f.seq)]});
    const float* lg = batch.forward_batch(chunks);
    const std::vector<float> got(lg, lg + chunks.size() * size_t(V));
    for (size_t i = 0; i < feed.size(); ++i) {
      const size_t s = size_t(feed[i].seq);
      const float* ref = alone.forward_cached(feed[i].tokens, feed[i].n, ac[s]);
      expect_logits_near(
          got.data() + i * size_t(V), ref + size_t(feed[i].n - 1) * V, V,
          "sequence " + std::to_string(s) + " at position " + std::to_string(ac[s].pos - 1));
      ASSERT_EQ(bc[s].pos, ac[s].pos);
    }
  }
};

// Three sequences join and leave a running batch: prefill chunks of different sizes next to
// single decode rows, each against its own cache at its own positions (up to 90, past the
// learned table's nothing; a learned model stays inside its 128). Every chunk's last-row logits
// equal forward_cached's for that sequence alone, run on its own model and cache.
TEST_P(BatchMethods, EachSequenceGetsTheLogitsItWouldGetAlone) {
  const ModelConfig c = test::small_model(GetParam(), 2);
  const int V = c.vocab;
  BatchAndAlone m(c, 5, 100);
  const std::vector<int32_t> toks = random_tokens(300, c.vocab, 8);
  // Steps of (sequence, tokens fed) pairs; sequence 2 starts late, sequence 0 leaves early.
  const std::vector<std::vector<std::pair<int, int>>> steps = {{{0, 7}, {1, 3}},
                                                               {{0, 1}, {1, 5}},
                                                               {{0, 1}, {1, 1}, {2, 9}},
                                                               {{1, 1}, {2, 1}, {0, 4}},
                                                               {{2, 1}, {1, 1}}};
  std::vector<size_t> at(3, 0);  // tokens fed per sequence
  for (int round = 0; round < 12; ++round)
    for (const auto& step : steps) {
      if (m.bc[0].len + 8 > 95 || m.bc[1].len + 8 > 95 || m.bc[2].len + 10 > 95) break;
      std::vector<BatchAndAlone::Feed> feed;
      for (const auto& [s, n] : step) {
        feed.push_back({s, &toks[size_t(s) * 100 + at[size_t(s)] % 90], n});
        at[size_t(s)] += size_t(n);
      }
      m.step(feed);
    }
  EXPECT_GT(m.bc[1].pos, 40);
}

// A model that keeps the logits of k rows refuses, before any cache changes, what would need
// more: a step of more sequences, a forward_cached chunk or a forward of more tokens.
TEST(Batch, FewerLogitRowsRefuseWhatNeedsMore) {
  const ModelConfig c = test::small_model(PosKind::alibi, 1);
  Model m(c, 1, 8, false, default_backend(), {.rows = 2});
  randomise(m, 3);
  EXPECT_EQ(Model::plan(c, 1, 8, false, *default_backend(), {.rows = 2}).logits,
            2 * size_t(c.vocab) * sizeof(float));
  std::vector<KVCache> kv;
  for (int s = 0; s < 3; ++s) kv.push_back(m.make_cache(32, false));
  const std::vector<int32_t> toks = random_tokens(8, c.vocab, 1);
  std::vector<CachedChunk> three;
  for (int s = 0; s < 3; ++s) three.push_back({toks.data(), 2, &kv[size_t(s)]});
  EXPECT_THROW(m.forward_batch(three), std::logic_error);
  EXPECT_THROW(m.forward_cached(toks.data(), 3, kv[0]), std::logic_error);
  EXPECT_THROW(m.forward(toks.data(), nullptr, 1, 3), std::logic_error);
  for (const KVCache& k : kv) EXPECT_EQ(k.len, 0);
  EXPECT_NO_THROW(m.forward_batch({three.data(), 2}));  // two sequences of 2 tokens: 4 rows
  EXPECT_NO_THROW(m.forward_cached(toks.data(), 2, kv[2]));
  EXPECT_EQ(kv[0].len + kv[1].len + kv[2].len, 6);
}

INSTANTIATE_TEST_SUITE_P(AllMethods, BatchMethods, ::testing::ValuesIn(all_positions()),
                         test::pos_param_name);

// --alibi-interpolate: each sequence's slopes are times L/L' of its own context (what its
// request spans), so one step holds three different sets. Each sequence's logits equal its own
// forward_cached's, as the step runs its attention before the next sequence's slopes are made
// (PositionMethod::bias_per_call); with one set for the whole step two of them would differ.
TEST(Batch, InterpolatedAlibiSequencesKeepTheirOwnSlopes) {
  ModelConfig c = test::small_model(PosKind::alibi, 2);
  c.alibi_interpolate = true;
  c.train_len = 8;
  BatchAndAlone m(c, 6, 60);
  for (int s = 0; s < 3; ++s) m.bc[size_t(s)].context = m.ac[size_t(s)].context = 20 * (s + 1);
  const std::vector<int32_t> toks = random_tokens(60, c.vocab, 9);
  for (int step = 0; step < 12; ++step) {
    std::vector<BatchAndAlone::Feed> feed;
    for (int s = 0; s < 3; ++s) {
      const int n = step == 0 ? 3 + 2 * s : 1;  // prompts of 3, 5 and 7 tokens, then decoding
      feed.push_back({s, &toks[size_t(m.bc[size_t(s)].pos)], n});
    }
    m.step(feed);
  }
}

// Sliding windows in a batch: two sequences of one window each, decoded past 3W together.
TEST(Batch, SlidingWindowsMatchTheirOwnDecoding) {
  for (PosKind pos : test::relative_positions()) {
    const ModelConfig c = test::small_model(pos, 2);
    const int V = c.vocab, W = 9;
    Model batch(c, 1, 8, false), alone(c, 1, 8, false);
    randomise(batch, 6);
    alone.params.copy_from(batch.params);
    KVCache b0 = batch.make_cache(W, true), b1 = batch.make_cache(W, true);
    KVCache a0 = alone.make_cache(W, true), a1 = alone.make_cache(W, true);
    const auto toks = random_tokens(60, V, 9);
    for (int t = 0; t < 30; ++t) {
      const std::vector<CachedChunk> chunks = {{&toks[size_t(t)], 1, &b0},
                                               {&toks[size_t(30 + t)], 1, &b1}};
      const float* lg = batch.forward_batch(chunks);
      std::vector<float> got(lg, lg + 2 * size_t(V));
      expect_logits_near(got.data(), alone.forward_cached(&toks[size_t(t)], 1, a0), V,
                         pos_name(pos));
      expect_logits_near(got.data() + V, alone.forward_cached(&toks[size_t(30 + t)], 1, a1), V,
                         pos_name(pos));
    }
    EXPECT_EQ(b0.len, W);
  }
}

// ---------------------------------------------------------------------------------------------
// The engine against the Generator

// Runs `prompts` through an engine (all submitted at once) and returns each job's tokens with
// their log-probabilities.
std::vector<std::vector<serve::TokenLogprob>> engine_logprobs(
    Model& m, const serve::EngineOptions& o, const std::vector<std::vector<int32_t>>& prompts,
    int max_tokens, const SamplingOptions& s) {
  serve::Metrics metrics;
  const Tokenizer tok = Tokenizer::bytes();
  serve::Engine engine(m, tok, o, metrics);
  auto waiter = std::make_shared<serve::Waiter>();
  std::vector<std::shared_ptr<serve::Job>> jobs;
  for (const auto& p : prompts)
    jobs.push_back(std::make_shared<serve::Job>(
        serve::Job::Spec{p, max_tokens, s, {}, /*logprobs=*/0}, waiter));
  EXPECT_TRUE(engine.submit(jobs));
  EXPECT_TRUE(engine.wait_idle(std::chrono::steady_clock::now() + std::chrono::seconds(60)));
  std::vector<std::vector<serve::TokenLogprob>> out;
  for (const auto& j : jobs) {
    EXPECT_TRUE(j->done());
    serve::Job::Output o = j->take();
    EXPECT_EQ(o.finish, serve::Finish::length);
    out.push_back(std::move(o.logprobs));
  }
  return out;
}

// The same, the tokens alone.
std::vector<std::vector<int32_t>> engine_tokens(Model& m, const serve::EngineOptions& o,
                                                const std::vector<std::vector<int32_t>>& prompts,
                                                int max_tokens, const SamplingOptions& s) {
  std::vector<std::vector<int32_t>> out;
  for (const auto& lps : engine_logprobs(m, o, prompts, max_tokens, s)) {
    std::vector<int32_t> ids;
    for (const serve::TokenLogprob& lp : lps) ids.push_back(lp.token);
    out.push_back(std::move(ids));
  }
  return out;
}

std::vector<int32_t> generator_tokens(Model& m, const std::vector<int32_t>& prompt, int max_tokens,
                                      const SamplingOptions& s, int window) {
  Generator gen(m, GenerateOptions{s, window, 0});
  std::vector<int32_t> ids;
  gen.generate(prompt, max_tokens, [&](int32_t t, const float*) { ids.push_back(t); });
  return ids;
}

// Five sequences of different prompt lengths on three slots with a prefill chunk of 6: prompts
// are prefilled in pieces next to decoding sequences, and the last two wait for a free slot.
// Greedy and seeded sampling give the Generator's tokens, token for token, for every method,
// 120 tokens each (a byte model: 256 ids).
TEST(ServeEngine, TokensEqualTheGeneratorsForEveryMethod) {
  for (PosKind pos : all_positions()) {
    ModelConfig c = test::small_model(pos, 2, 256);
    c.max_positions = 256;
    serve::EngineOptions o;
    o.max_batch = 3;
    o.max_context = 200;
    o.chunk = 6;
    // As alibi serve and alibi generate plan them (make_decoder): one logits row per sequence.
    Model batch(c, 1, o.step_rows(), false, default_backend(), {.rows = o.max_batch});
    Model alone(c, 1, 6, false, default_backend(), {.rows = 1});
    randomise(batch, 12);
    alone.params.copy_from(batch.params);
    std::vector<std::vector<int32_t>> prompts;
    for (int i = 0; i < 5; ++i) prompts.push_back(random_tokens(3 + 11 * i, c.vocab, 20 + i));
    for (const SamplingOptions& s :
         {SamplingOptions{0.0f, 0, 1.0f, 0}, SamplingOptions{0.8f, 20, 0.9f, 77}}) {
      const auto got = engine_tokens(batch, o, prompts, 120, s);
      for (size_t i = 0; i < prompts.size(); ++i)
        ASSERT_EQ(got[i], generator_tokens(alone, prompts[i], 120, s, 0))
            << pos_name(pos) << ", sequence " << i << ", temperature " << s.temperature;
    }
  }
}

// Two slots of a sliding window of W, prompts prefilled 5 rows a step.
serve::EngineOptions window_slots(int W) {
  serve::EngineOptions o;
  o.max_batch = 2;
  o.window = W;
  o.chunk = 5;
  return o;
}

// With --window: each slot a sliding window of 16; prompts longer than the window.
TEST(ServeEngine, WindowTokensEqualTheGenerators) {
  for (PosKind pos : test::relative_positions()) {
    const ModelConfig c = test::small_model(pos, 2, 256);
    const serve::EngineOptions o = window_slots(16);
    Model batch(c, 1, o.step_rows(), false), alone(c, 1, 5, false);
    randomise(batch, 13);
    alone.params.copy_from(batch.params);
    const std::vector<std::vector<int32_t>> prompts = {
        random_tokens(40, c.vocab, 1), random_tokens(7, c.vocab, 2), random_tokens(23, c.vocab, 3)};
    const SamplingOptions greedy{0.0f, 0, 1.0f, 0};
    const auto got = engine_tokens(batch, o, prompts, 100, greedy);
    for (size_t i = 0; i < prompts.size(); ++i)
      ASSERT_EQ(got[i], generator_tokens(alone, prompts[i], 100, greedy, 16))
          << pos_name(pos) << ", sequence " << i;
  }
}

// A window keeps a sequence's BOS in view (Model::sink_rows) in the engine as in the Generator:
// each sampled token's log-probability, with and without the BOS first, equals the Generator's,
// within 1e-4, for every method (those whose keys hold their position slide over the BOS).
TEST(ServeEngine, WindowKeepsTheBosAsTheGeneratorDoes) {
  const int32_t bos = 2;
  for (PosKind pos : test::relative_positions()) {
    const ModelConfig c = test::small_model(pos, 2, 256);
    serve::EngineOptions o = window_slots(8);
    o.bos = bos;
    Model batch(c, 1, o.step_rows(), false), alone(c, 1, 5, false);
    randomise(batch, 14);
    alone.params.copy_from(batch.params);
    std::vector<std::vector<int32_t>> prompts = {random_tokens(20, c.vocab, 4),
                                                 random_tokens(6, c.vocab, 5)};
    prompts[0][0] = bos;
    prompts[1][0] = bos + 1;
    const SamplingOptions greedy{0.0f, 0, 1.0f, 0};
    const auto got = engine_logprobs(batch, o, prompts, 40, greedy);
    for (size_t i = 0; i < prompts.size(); ++i) {
      GenerateOptions go{greedy, o.window, 0};
      go.bos = bos;
      Generator gen(alone, go);
      size_t t = 0;
      gen.generate(prompts[i], 40, [&](int32_t tok, const float* lg) {
        ASSERT_LT(t, got[i].size());
        EXPECT_EQ(got[i][t].token, tok) << pos_name(pos) << ", sequence " << i << ", token " << t;
        EXPECT_NEAR(got[i][t].logprob, serve::token_logprob(lg, c.vocab, tok, 0).logprob, 1e-4)
            << pos_name(pos) << ", sequence " << i << ", token " << t;
        ++t;
      });
      EXPECT_EQ(t, got[i].size());
    }
  }
}

// Cancelling a running sequence frees its slot at the next step; a full queue refuses a request
// (all of its sequences or none); a stop string ends a sequence early.
TEST(ServeEngine, CancelQueueLimitAndStop) {
  const ModelConfig c = test::small_model(PosKind::alibi, 1, 256);
  serve::EngineOptions o;
  o.max_batch = 1;
  o.max_queue = 1;
  o.max_context = 5000;
  Model m(c, 1, o.step_rows(), false);
  randomise(m, 3);
  serve::Metrics metrics;
  const Tokenizer tok = Tokenizer::bytes();
  serve::Engine engine(m, tok, o, metrics);
  auto w = std::make_shared<serve::Waiter>();
  const SamplingOptions greedy{0.0f, 0, 1.0f, 0};
  auto job = [&](int max_tokens, std::vector<std::string> stop = {}) {
    return std::make_shared<serve::Job>(
        serve::Job::Spec{{1, 2, 3}, max_tokens, greedy, std::move(stop), -1}, w);
  };
  const auto long_job = job(4000);
  ASSERT_TRUE(engine.submit({long_job}));
  const auto queued = job(3);
  ASSERT_TRUE(engine.submit({queued}));
  EXPECT_FALSE(engine.submit({job(3)}));  // one slot, one place in the queue
  long_job->cancel();
  ASSERT_TRUE(engine.wait_idle(std::chrono::steady_clock::now() + std::chrono::seconds(30)));
  EXPECT_EQ(long_job->take().finish, serve::Finish::cancelled);
  EXPECT_LT(long_job->completion_tokens(), 4000);
  EXPECT_EQ(queued->take().finish, serve::Finish::length);
  EXPECT_EQ(queued->completion_tokens(), 3);

  // The greedy text of 40 tokens, then the same request stopped at a piece of it.
  const auto full = job(40);
  ASSERT_TRUE(engine.submit({full}));
  engine.wait_idle(std::chrono::steady_clock::now() + std::chrono::seconds(30));
  const std::string text = full->take().text();
  ASSERT_GE(text.size(), 30u);
  const std::string stop = text.substr(20, 3);
  const auto stopped = job(40, {stop});
  ASSERT_TRUE(engine.submit({stopped}));
  engine.wait_idle(std::chrono::steady_clock::now() + std::chrono::seconds(30));
  const serve::Job::Output out = stopped->take();
  EXPECT_EQ(out.finish, serve::Finish::stop);
  EXPECT_EQ(out.text(), text.substr(0, text.find(stop)));
  EXPECT_LE(stopped->completion_tokens(), 23);
  const serve::EngineGauges g = engine.gauges();
  EXPECT_EQ(g.running + g.queued, 0);
}

}  // namespace
}  // namespace alibi
