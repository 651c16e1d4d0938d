// The request side of `alibi serve` without sockets: the body parsers and their errors (each
// naming the field, as OpenAI's error object does), stop strings, log-probabilities against a
// direct computation, the Prometheus text, and the API key comparison.
#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "serve/metrics.h"
#include "serve/request.h"
#include "serve/text.h"

namespace alibi::serve {
namespace {

using nlohmann::json;

RequestLimits limits() {
  RequestLimits l;
  l.vocab = 256;
  l.max_tokens = 100;
  l.max_sequences = 4;
  return l;
}

// The ApiError a body gets: its status and the field it names ("" for none).
std::pair<int, std::string> refusal(const std::string& body) {
  try {
    parse_completion(body, limits());
  } catch (const ApiError& e) {
    const json j = json::parse(e.body());  // always a valid error object
    EXPECT_EQ(j["error"]["message"], e.message);
    EXPECT_EQ(j["error"]["param"].is_null(), e.param.empty());
    return {e.status, e.param};
  }
  ADD_FAILURE() << "accepted: " << body;
  return {0, ""};
}

TEST(ServeRequest, ParsesEveryField) {
  const CompletionRequest r = parse_completion(
      R"({"model":"m","prompt":["a","bc"],"max_tokens":7,"temperature":0.5,"top_p":0.9,
          "top_k":3,"seed":-1,"n":2,"stop":["x","yz"],"stream":true,
          "stream_options":{"include_usage":true},"logprobs":2,"user":"u","best_of":2,
          "presence_penalty":0,"logit_bias":{},"suffix":null})",
      limits());
  EXPECT_EQ(r.model, "m");
  ASSERT_EQ(r.prompts.size(), 2u);
  EXPECT_EQ(r.prompts[1].text, "bc");
  EXPECT_EQ(r.max_tokens, 7);
  EXPECT_FLOAT_EQ(r.temperature, 0.5f);
  EXPECT_FLOAT_EQ(r.top_p, 0.9f);
  EXPECT_EQ(r.top_k, 3);
  EXPECT_EQ(*r.seed, ~uint64_t(0));
  EXPECT_EQ(r.n, 2);
  EXPECT_EQ(r.stop, (std::vector<std::string>{"x", "yz"}));
  EXPECT_TRUE(r.stream && r.include_usage);
  EXPECT_EQ(r.logprobs, 2);
  // Defaults: OpenAI's (max_tokens 16, temperature 1), nulls as absent; ids as prompts.
  const CompletionRequest d =
      parse_completion(R"({"prompt":[[1,2],[3]],"max_tokens":null})", limits());
  EXPECT_EQ(d.max_tokens, 16);
  EXPECT_FLOAT_EQ(d.temperature, 1.0f);
  ASSERT_EQ(d.prompts.size(), 2u);
  EXPECT_TRUE(d.prompts[0].is_ids);
  EXPECT_EQ(d.prompts[0].ids, (std::vector<int32_t>{1, 2}));
  EXPECT_EQ(parse_completion(R"({"prompt":[5,6,7]})", limits()).prompts[0].ids.size(), 3u);
  EXPECT_EQ(parse_completion(R"({"prompt":"x","top_p":0})", limits()).top_k,
            1);  // top_p 0: top token
}

TEST(ServeRequest, BadBodiesNameTheField) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"", ""},
      {"{", ""},
      {"[1,2]", ""},
      {"\"text\"", ""},
      {std::string(40, '[') + std::string(40, ']'), ""},
      {R"({"max_tokens":5})", "prompt"},
      {R"({"prompt":5})", "prompt"},
      {R"({"prompt":[]})", "prompt"},
      {R"({"prompt":["a",1]})", "prompt[1]"},
      {R"({"prompt":[1,"a"]})", "prompt"},
      {R"({"prompt":[1,256]})", "prompt"},
      {R"({"prompt":[[1],[]]})", "prompt[1]"},
      {R"({"prompt":["a","b","c","d","e"]})", "prompt"},
      {R"({"prompt":"x","max_tokens":"16"})", "max_tokens"},
      {R"({"prompt":"x","max_tokens":16.5})", "max_tokens"},
      {R"({"prompt":"x","max_tokens":101})", "max_tokens"},
      {R"({"prompt":"x","max_tokens":-1})", "max_tokens"},
      {R"({"prompt":"x","max_tokens":1e30})", "max_tokens"},
      {R"({"prompt":"x","max_tokens":18446744073709551615})", "max_tokens"},
      {R"({"prompt":"x","temperature":"hot"})", "temperature"},
      {R"({"prompt":"x","temperature":2.5})", "temperature"},
      {R"({"prompt":"x","top_p":1.5})", "top_p"},
      {R"({"prompt":"x","top_k":-2})", "top_k"},
      {R"({"prompt":"x","seed":1.5})", "seed"},
      {R"({"prompt":"x","n":0})", "n"},
      {R"({"prompt":["a","b"],"n":3})", "n"},
      {R"({"prompt":"x","stop":5})", "stop"},
      {R"({"prompt":"x","stop":[""]})", "stop"},
      {R"({"prompt":"x","stop":["a","b","c","d","e"]})", "stop"},
      {R"({"prompt":"x","stream":"yes"})", "stream"},
      {R"({"prompt":"x","stream_options":true})", "stream_options"},
      {R"({"prompt":"x","stream_options":{"include_usage":1}})", "include_usage"},
      {R"({"prompt":"x","echo":1})", "echo"},
      {R"({"prompt":"x","logprobs":6})", "logprobs"},
      {R"({"prompt":"x","logprobs":true})", "logprobs"},
      {R"({"prompt":"x","logprobs":1,"echo":true})", "logprobs"},
      {R"({"prompt":"x","model":7})", "model"},
      {R"({"prompt":"x","best_of":3})", "best_of"},
      {R"({"prompt":"x","suffix":"end"})", "suffix"},
      {R"({"prompt":"x","logit_bias":{"1":5}})", "logit_bias"},
      {R"({"prompt":"x","frequency_penalty":0.5})", "frequency_penalty"},
  };
  for (const auto& [body, param] : cases) {
    const auto [status, got] = refusal(body);
    EXPECT_EQ(status, 400) << body;
    EXPECT_EQ(got, param) << body;
  }
}

TEST(ServeRequest, TokenizeAndDetokenize) {
  const TokenizeRequest t = parse_tokenize(R"({"content":"hi","with_pieces":true})");
  EXPECT_EQ(t.content, "hi");
  EXPECT_TRUE(t.with_pieces);
  EXPECT_FALSE(t.add_special);
  EXPECT_EQ(parse_detokenize(R"({"tokens":[104,105]})", 256), (std::vector<int32_t>{104, 105}));
  for (const char* bad : {R"({"content":5})", R"({})", "nope"})
    EXPECT_THROW(parse_tokenize(bad), ApiError) << bad;
  for (const char* bad :
       {R"({"tokens":[256]})", R"({"tokens":[-1]})", R"({"tokens":"ab"})", R"({"tokens":[1.5]})"})
    EXPECT_THROW(parse_detokenize(bad, 256), ApiError) << bad;
}

TEST(ServeRequest, ErrorObjectIsOpenAIs) {
  const ApiError e(429, "busy", "", "requests", "rate_limit_exceeded");
  const json j = json::parse(e.body());
  EXPECT_EQ(j, json::parse(R"({"error":{"message":"busy","type":"requests","param":null,
                                          "code":"rate_limit_exceeded"}})"));
  // Bytes that are not UTF-8 in a message (a quoted body) still give valid JSON.
  EXPECT_NO_THROW(json::parse(ApiError(400, "bad \xff byte", "prompt").body()));
}

TEST(ServeKey, ComparesWholeKeys) {
  EXPECT_TRUE(same_key("secret", "secret"));
  EXPECT_FALSE(same_key("secreT", "secret"));
  EXPECT_FALSE(same_key("secret2", "secret"));
  EXPECT_FALSE(same_key("secre", "secret"));
  EXPECT_FALSE(same_key("", "secret"));
  EXPECT_TRUE(same_key("", ""));
}

// Every way of cutting a text into tokens gives the same sent text: everything before the first
// stop string, nothing of it, and nothing held back at the end without one.
TEST(ServeText, StopStringsAcrossTokenBoundaries) {
  const std::string text = "the cat sat on the mat\xc3\xa9 and then";
  const std::vector<std::string> stops = {"on th", "mat\xc3\xa9 a", "zzz"};
  for (size_t step : {1u, 2u, 3u, 7u}) {
    StopText st(stops);
    std::string sent;
    for (size_t i = 0; i < text.size() && !st.stopped(); i += step)
      sent += st.push(text.substr(i, step));
    sent += st.flush();
    EXPECT_EQ(sent, "the cat sat ") << "tokens of " << step << " bytes";
    EXPECT_TRUE(st.stopped());
  }
  StopText none({"xyz"});
  std::string sent;
  for (char ch : std::string("ab xy\xe2\x82"))  // ends in half a character and half a stop
    sent += none.push(std::string(1, ch));
  EXPECT_EQ(sent, "ab ");
  EXPECT_EQ(none.flush(), "xy\xe2\x82");
}

TEST(ServeText, LogprobsAreTheLogSoftmax) {
  const std::vector<float> lg = {1.0f, 3.0f, -2.0f, 3.0f, 0.5f};
  double z = 0;
  for (float x : lg) z += std::exp(double(x));
  const TokenLogprob lp = token_logprob(lg.data(), 5, 4, 3);
  EXPECT_NEAR(lp.logprob, 0.5 - std::log(z), 1e-6);
  ASSERT_EQ(lp.top.size(), 3u);
  EXPECT_EQ(lp.top[0].first, 1);  // ties: the smaller id first
  EXPECT_EQ(lp.top[1].first, 3);
  EXPECT_EQ(lp.top[2].first, 0);
  EXPECT_NEAR(lp.top[2].second, 1.0 - std::log(z), 1e-6);
  EXPECT_TRUE(token_logprob(lg.data(), 5, 0, 0).top.empty());
}

TEST(ServeMetrics, PrometheusText) {
  Metrics m;
  m.request_done(200);
  m.request_done(200);
  m.request_done(429);
  m.tokens(10, 3);
  m.time_to_first_token(0.003);
  m.time_to_first_token(0.2);
  m.inter_token_latency(0.02);
  const std::string t = m.prometheus({2, 1, 4});
  for (const char* line :
       {"alibi_requests_total{status=\"200\"} 2\n", "alibi_requests_total{status=\"429\"} 1\n",
        "alibi_prompt_tokens_total 10\n", "alibi_generation_tokens_total 3\n",
        "alibi_queue_length 1\n", "alibi_batch_running 2\n", "alibi_batch_occupancy 0.5\n",
        "# TYPE alibi_time_to_first_token_seconds histogram\n",
        "alibi_time_to_first_token_seconds_bucket{le=\"0.0025\"} 0\n",
        "alibi_time_to_first_token_seconds_bucket{le=\"0.005\"} 1\n",
        "alibi_time_to_first_token_seconds_bucket{le=\"0.25\"} 2\n",
        "alibi_time_to_first_token_seconds_bucket{le=\"+Inf\"} 2\n",
        "alibi_time_to_first_token_seconds_count 2\n",
        "alibi_inter_token_latency_seconds_sum 0.02\n"})
    EXPECT_NE(t.find(line), std::string::npos) << line << "\nin:\n" << t;
  // Every sample line is NAME[{labels}] VALUE.
  size_t at = 0;
  while (at < t.size()) {
    const std::string line = t.substr(at, t.find('\n', at) - at);
    at += line.size() + 1;
    if (line.starts_with("#")) continue;
    const size_t sp = line.rfind(' ');
    ASSERT_NE(sp, std::string::npos) << line;
    EXPECT_NO_THROW((void)std::stod(line.substr(sp + 1))) << line;
  }
}

}  // namespace
}  // namespace alibi::serve
