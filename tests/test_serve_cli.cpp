// `alibi serve` as users meet it: a process on a free port of 127.0.0.1, real sockets,
// cpp-httplib's client, curl -N for the stream, and raw connections for misbehaving clients. The
// model is a random byte-level one stored as if trained at seq-len 16, so every request here runs
// far past its training length.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <future>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "cli.h"
#include "model/checkpoint.h"
#include "model_util.h"
#include "serve_client.h"

namespace alibi {
namespace {

using nlohmann::json;
using test::RawClient;
using test::ServeProcess;
using test::TempDir;

class ServeCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir("serve_cli");
    ModelConfig c;
    c.vocab = 256;
    c.layers = 2;
    c.d_model = 32;
    c.heads = 4;
    c.ffn = 64;
    c.pos = PosKind::alibi;
    Model m(c, 1, 1, false);
    test::randomise(m, 77);
    write_checkpoint(path("run"), c, json{{"seq_len", 16}}, 1, Tokenizer::bytes(), m.params,
                     nullptr, nullptr, 1);
  }
  static void TearDownTestSuite() { delete dir_; }
  static std::string path(const std::string& s) { return *dir_ / s; }
  static ServeProcess serve(const std::string& args = "") {
    ServeProcess s(path("run") + " " + args, path("serve.err"));
    EXPECT_GT(s.port, 0) << test::read_text(path("serve.err"));
    return s;
  }
  static std::string generate(const std::string& prompt, int tokens,
                              const std::string& flags = "--temperature 0") {
    const test::CliResult r =
        test::run_cli("--threads 1 generate " + path("run") + " --max-new-tokens " +
                          std::to_string(tokens) + " --prompt '" + prompt + "' " + flags,
                      path("gen.err"));
    EXPECT_EQ(r.code, 0) << r.err;
    return r.out;
  }
  static json post(const ServeProcess& s, const json& body, int expect = 200) {
    httplib::Client c = s.client();
    const auto r = c.Post("/v1/completions", body.dump(), "application/json");
    EXPECT_TRUE(r) << "no answer";
    if (!r) return {};
    EXPECT_EQ(r->status, expect) << r->body;
    return json::parse(r->body);
  }
  static TempDir* dir_;
};
TempDir* ServeCli::dir_ = nullptr;

// Four requests at once on four slots, prompts prefilled in chunks of 8 next to running decodes,
// 300 tokens each (nearly 20 times the training length): each completion equals what
// `alibi generate --temperature 0` writes for its prompt alone.
TEST_F(ServeCli, GreedyEqualsGenerateForConcurrentRequestsPastTrainingLength) {
  ServeProcess s = serve("--max-batch 4 --chunk 8");
  const std::vector<std::string> prompts = {"It is a truth universally acknowledged", "Mr",
                                            "The quick brown fox jumps over the lazy dog, twice",
                                            "Pride and"};
  std::vector<std::future<json>> answers;
  for (const std::string& p : prompts)
    answers.push_back(std::async(std::launch::async, [&, p] {
      return post(s, {{"prompt", p}, {"max_tokens", 300}, {"temperature", 0}});
    }));
  for (size_t i = 0; i < prompts.size(); ++i) {
    const json a = answers[i].get();
    ASSERT_EQ(a["choices"].size(), 1u);
    EXPECT_EQ(a["choices"][0]["text"].get<std::string>(),
              test::as_json_text(generate(prompts[i], 300)))
        << prompts[i];
    EXPECT_EQ(a["choices"][0]["finish_reason"], "length");
    EXPECT_EQ(a["usage"]["prompt_tokens"], prompts[i].size());  // bytes
    EXPECT_EQ(a["usage"]["completion_tokens"], 300);
  }
  EXPECT_EQ(s.stop().code, 0);
}

// --alibi-interpolate as generate runs it: each request's slopes scaled by L / L', L' its own
// prompt + max_tokens (not the slot's --max-context), while two requests of different lengths
// share the batch; and the flag changes the text. Sampled with a seed (greedy decoding of this
// random model repeats one byte, with or without the flag).
TEST_F(ServeCli, ContextExtensionIsEachRequestsAsGenerateRunsIt) {
  ServeProcess s = serve("--max-batch 2 --chunk 8 --max-context 512 --alibi-interpolate");
  const std::vector<std::pair<std::string, int>> asks = {{"It is a truth universally", 200},
                                                         {"The quick brown fox", 90}};
  std::vector<std::future<json>> answers;
  for (const auto& ask : asks)
    answers.push_back(std::async(std::launch::async, [&s, ask] {
      return post(s, {{"prompt", ask.first}, {"max_tokens", ask.second}, {"temperature", 1},
                      {"seed", 7}});
    }));
  const std::string sampled = "--temperature 1 --seed 7 ";
  for (size_t i = 0; i < asks.size(); ++i) {
    const auto& [p, n] = asks[i];
    const std::string text = answers[i].get()["choices"][0]["text"].get<std::string>();
    EXPECT_EQ(text, test::as_json_text(generate(p, n, sampled + "--alibi-interpolate"))) << p;
    EXPECT_NE(text, test::as_json_text(generate(p, n, sampled))) << p;
  }
  EXPECT_EQ(s.stop().code, 0);
  EXPECT_NE(test::read_text(path("serve.err")).find("context extension {\"alibi_interpolate\""),
            std::string::npos);
}

// The stream as curl -N receives it: OpenAI's chunks (one per token, the same id, finish_reason
// null until a last chunk with empty text and "length"), the usage chunk, then data: [DONE]; the
// text equals the non-streamed answer's.
TEST_F(ServeCli, StreamIsOpenAIsChunkFormat) {
  ServeProcess s = serve();
  const json req = {{"prompt", "Elizabeth"}, {"max_tokens", 20}, {"temperature", 0}, {"n", 2}};
  const json whole = post(s, req);
  json sreq = req;
  sreq["stream"] = true;
  sreq["stream_options"] = {{"include_usage", true}};
  test::write_text(path("body.json"), sreq.dump());
  const std::string cmd = "curl -sN -H 'Content-Type: application/json' --data-binary @" +
                          path("body.json") + " http://127.0.0.1:" + std::to_string(s.port) +
                          "/v1/completions";
  std::string out;
  std::FILE* p = ::popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  char buf[4096];
  for (size_t n; (n = std::fread(buf, 1, sizeof buf, p)) > 0;) out.append(buf, n);
  ASSERT_EQ(::pclose(p), 0) << "curl failed";
  ASSERT_TRUE(out.ends_with("data: [DONE]\n\n")) << out;
  std::vector<std::string> text(2);
  std::vector<int> chunks(2, 0);
  std::string id;
  bool usage_seen = false;
  for (size_t at = 0; at < out.size();) {
    const size_t end = out.find("\n\n", at);
    ASSERT_NE(end, std::string::npos);
    const std::string ev = out.substr(at, end - at);
    at = end + 2;
    ASSERT_TRUE(ev.starts_with("data: ")) << ev;
    if (ev == "data: [DONE]") break;
    const json j = json::parse(ev.substr(6));
    EXPECT_EQ(j["object"], "text_completion");
    EXPECT_EQ(j["model"], "run");
    EXPECT_TRUE(j["created"].is_number_integer());
    if (id.empty()) id = j["id"];
    EXPECT_EQ(j["id"], id);
    if (j["choices"].empty()) {  // the usage chunk
      EXPECT_EQ(j["usage"], whole["usage"]);
      usage_seen = true;
      continue;
    }
    EXPECT_TRUE(j["usage"].is_null());
    const json& c = j["choices"][0];
    const size_t i = c["index"];
    ASSERT_LT(i, 2u);
    EXPECT_TRUE(c["logprobs"].is_null());
    if (c["finish_reason"].is_null()) {
      text[i] += c["text"].get<std::string>();
      ++chunks[i];
    } else {
      EXPECT_EQ(c["finish_reason"], "length");
      EXPECT_EQ(c["text"], "");
    }
  }
  EXPECT_TRUE(usage_seen);
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(text[i], whole["choices"][i]["text"].get<std::string>());
    EXPECT_GE(chunks[i], 15);  // about one per token (bytes held back join the next)
  }
  EXPECT_EQ(s.stop().code, 0);
}

// Each bad request gets its status and OpenAI's error object naming the field, and the server
// goes on serving; the other routes answer as documented.
TEST_F(ServeCli, FaultsAreAnsweredAndTheServerKeepsServing) {
  ServeProcess s = serve("--max-body 4096 --max-context 64");
  httplib::Client c = s.client();
  auto expect_error = [&](const std::string& body, int status, const json& param) {
    const auto r = c.Post("/v1/completions", body, "application/json");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, status) << body.substr(0, 80);
    const json j = json::parse(r->body);
    EXPECT_EQ(j["error"]["param"], param) << r->body;
    EXPECT_TRUE(j["error"]["message"].is_string());
    EXPECT_TRUE(j["error"]["type"].is_string());
  };
  expect_error("{not json", 400, nullptr);
  expect_error(R"({"prompt":"x","max_tokens":"16"})", 400, "max_tokens");
  expect_error(R"({"prompt":"x","temperature":[1]})", 400, "temperature");
  expect_error(R"({"prompt":42})", 400, "prompt");
  expect_error(R"({"prompt":"x","max_tokens":65})", 400, "max_tokens");  // 1 + 65 - 1 > 64
  expect_error(R"({"prompt":")" + std::string(10000, 'a') + R"("})", 413, nullptr);
  const auto nf = c.Get("/v2/nothing");
  ASSERT_TRUE(nf);
  EXPECT_EQ(nf->status, 404);
  EXPECT_EQ(json::parse(nf->body)["error"]["type"], "invalid_request_error");

  const json ok = post(s, {{"prompt", "ok"}, {"max_tokens", 5}});
  EXPECT_EQ(ok["usage"]["completion_tokens"], 5);
  const auto models = c.Get("/v1/models");
  ASSERT_TRUE(models);
  EXPECT_EQ(json::parse(models->body)["data"][0]["id"], "run");
  const auto tk = c.Post("/tokenize", R"({"content":"hi!"})", "application/json");
  ASSERT_TRUE(tk);
  EXPECT_EQ(json::parse(tk->body)["tokens"], json({104, 105, 33}));
  const auto dt = c.Post("/detokenize", R"({"tokens":[104,105,33]})", "application/json");
  ASSERT_TRUE(dt);
  EXPECT_EQ(json::parse(dt->body)["content"], "hi!");
  const auto health = c.Get("/health");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 200);
  const auto m = c.Get("/metrics");
  ASSERT_TRUE(m);
  EXPECT_EQ(test::metric(m->body, "alibi_generation_tokens_total"), 5);
  EXPECT_NE(m->body.find("alibi_requests_total{status=\"400\"} 5"), std::string::npos) << m->body;
  EXPECT_NE(m->body.find("alibi_time_to_first_token_seconds_count 1"), std::string::npos);
  EXPECT_EQ(s.stop().code, 0);
}

// With a key, every route but /health needs it; a wrong or missing one gets 401.
TEST_F(ServeCli, ApiKeyIsRequiredButForHealth) {
  test::write_text(path("key"), "s3cret-key\n");
  ServeProcess s = serve("--api-key-file " + path("key"));
  httplib::Client c = s.client();
  const std::string body = R"({"prompt":"x","max_tokens":2})";
  for (const std::string& auth : {std::string(), std::string("Bearer wrong-key-0"),
                                  std::string("Bearer s3cret-ke"), std::string("s3cret-key")}) {
    httplib::Headers h;
    if (!auth.empty()) h.emplace("Authorization", auth);
    const auto r = c.Post("/v1/completions", h, body, "application/json");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 401) << auth;
    EXPECT_EQ(json::parse(r->body)["error"]["code"], "invalid_api_key");
    const auto m = c.Get("/metrics", h);
    ASSERT_TRUE(m);
    EXPECT_EQ(m->status, 401);
  }
  const auto h = c.Get("/health");
  ASSERT_TRUE(h);
  EXPECT_EQ(h->status, 200);
  const auto r =
      c.Post("/v1/completions", {{"Authorization", "Bearer s3cret-key"}}, body, "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(s.stop().code, 0);
}

// Waits until /metrics shows no running sequence (true) or timeout_s passes.
bool rows_freed(const ServeProcess& s, double timeout_s) {
  httplib::Client c = s.client();
  for (double t = 0; t < timeout_s; t += 0.05) {
    const auto m = c.Get("/metrics");
    if (m && test::metric(m->body, "alibi_batch_running") == 0 &&
        test::metric(m->body, "alibi_queue_length") == 0)
      return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

const std::string kEndless =
    R"({"prompt":"and so on","max_tokens":1000000,"stream":true,"temperature":0})";

// One slot and no queue: a second request gets 429 with Retry-After. A streaming client that
// vanishes frees its slot at once, and the next request runs.
TEST_F(ServeCli, FullQueueAnswers429AndADisconnectFreesTheRows) {
  ServeProcess s = serve("--max-batch 1 --max-queue 0 --window 32 --max-tokens 1000000");
  RawClient endless(s.port);
  ASSERT_TRUE(endless.post("/v1/completions", kEndless));
  ASSERT_NE(endless.read_until("data: {").find("data: {"), std::string::npos);
  httplib::Client c = s.client();
  const auto busy = c.Post("/v1/completions", R"({"prompt":"x"})", "application/json");
  ASSERT_TRUE(busy);
  EXPECT_EQ(busy->status, 429);
  EXPECT_EQ(busy->get_header_value("Retry-After"), "1");
  EXPECT_EQ(json::parse(busy->body)["error"]["code"], "rate_limit_exceeded");
  const auto t0 = std::chrono::steady_clock::now();
  endless.close();
  EXPECT_TRUE(rows_freed(s, 5));
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 2.0);
  const json ok = post(s, {{"prompt", "x"}, {"max_tokens", 3}});
  EXPECT_EQ(ok["usage"]["completion_tokens"], 3);
  const auto m = c.Get("/metrics");
  ASSERT_TRUE(m);
  EXPECT_NE(m->body.find("alibi_sequences_total{finish=\"cancelled\"} 1"), std::string::npos);
  EXPECT_EQ(s.stop().code, 0);
}

// 48 clients connecting at once while the server cannot accept (stopped, as when its cores are
// busy): the kernel completes every handshake and queues the connections. With httplib's backlog
// of 5, all but 6 lost their SYNs and would have waited a second for TCP to send them again.
// Resumed, the server still answers.
TEST_F(ServeCli, ABurstOfConnectionsIsQueuedNotDropped) {
  ServeProcess s = serve();
  ASSERT_EQ(::kill(s.cli.pid, SIGSTOP), 0);
  std::vector<int> fds;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(uint16_t(s.port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  for (int i = 0; i < 48; ++i) {
    fds.push_back(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0));
    ::connect(fds.back(), reinterpret_cast<sockaddr*>(&a), sizeof a);  // EINPROGRESS
  }
  ::usleep(300000);  // a handshake on loopback takes microseconds; a dropped SYN waits 1 s
  int connected = 0;
  for (int fd : fds) {
    pollfd p{fd, POLLOUT, 0};
    int err = -1;
    socklen_t len = sizeof err;
    if (::poll(&p, 1, 0) == 1 && ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 &&
        err == 0)
      ++connected;
  }
  ::kill(s.cli.pid, SIGCONT);
  for (int fd : fds) ::close(fd);
  EXPECT_EQ(connected, 48);
  EXPECT_EQ(post(s, {{"prompt", "x"}, {"max_tokens", 2}})["usage"]["completion_tokens"], 2);
  EXPECT_EQ(s.stop().code, 0);
}

// A client that stops reading its stream (a 4 KB receive buffer, never read) is cut off once a
// write has waited --timeout seconds, and its rows are freed; others are served meanwhile.
TEST_F(ServeCli, SlowReaderIsCutOffAfterTheTimeout) {
  ServeProcess s = serve("--max-batch 2 --timeout 1 --window 32 --max-tokens 1000000");
  RawClient slow(s.port, 4096);
  ASSERT_TRUE(slow.post("/v1/completions", kEndless));
  const json ok = post(s, {{"prompt", "meanwhile"}, {"max_tokens", 50}});
  EXPECT_EQ(ok["usage"]["completion_tokens"], 50);
  EXPECT_TRUE(rows_freed(s, 20));  // the socket is still open: only the timeout ends it
  EXPECT_EQ(s.stop().code, 0);
}

// SIGTERM with three streams under way: they finish (within --grace), the process exits 0.
// With a short grace, an endless stream ends in an error event and [DONE], and still exit 0.
TEST_F(ServeCli, SigtermFinishesOrCancelsWithinTheGraceAndExitsZero) {
  {
    ServeProcess s = serve("--max-batch 3 --grace 60");
    std::vector<std::unique_ptr<RawClient>> streams;
    const std::string body = R"({"prompt":"so","max_tokens":400,"stream":true,"temperature":0})";
    for (int i = 0; i < 3; ++i) {
      streams.push_back(std::make_unique<RawClient>(s.port));
      ASSERT_TRUE(streams.back()->post("/v1/completions", body));
    }
    for (auto& r : streams) ASSERT_NE(r->read_until("data: {").find("data: {"), std::string::npos);
    ::kill(s.cli.pid, SIGTERM);
    for (auto& r : streams) {
      const std::vector<std::string> ev = test::sse_data(r->read_until("data: [DONE]"));
      ASSERT_FALSE(ev.empty());
      EXPECT_EQ(ev.back(), "[DONE]");
      EXPECT_EQ(json::parse(ev[ev.size() - 2])["choices"][0]["finish_reason"], "length");
    }
    const test::CliResult r = s.stop(0);
    EXPECT_EQ(r.code, 0) << r.err;
    EXPECT_NE(r.err.find("finished"), std::string::npos) << r.err;
  }
  ServeProcess s = serve("--grace 0.3 --window 32 --max-tokens 1000000");
  RawClient endless(s.port);
  ASSERT_TRUE(endless.post("/v1/completions", kEndless));
  ASSERT_NE(endless.read_until("data: {").find("data: {"), std::string::npos);
  ::kill(s.cli.pid, SIGTERM);
  const std::vector<std::string> ev = test::sse_data(endless.read_until("data: [DONE]", 10));
  ASSERT_GE(ev.size(), 2u);
  EXPECT_EQ(ev.back(), "[DONE]");
  EXPECT_EQ(json::parse(ev[ev.size() - 2])["error"]["type"], "server_error");
  const test::CliResult r = s.stop(0);
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("cancelled after --grace"), std::string::npos) << r.err;
}

// GOMP_SPINCOUNT in process pid's environment once alibi has re-executed itself with it; "" if
// the process ended or 10 s passed first.
std::string spin_count_of(pid_t pid) {
  const std::string key = std::string("GOMP_SPINCOUNT=");
  for (int i = 0; i < 1000; ++i) {
    const std::string env = test::read_text("/proc/" + std::to_string(pid) + "/environ");
    const size_t at = env.find(key);
    if (at != std::string::npos)
      return env.substr(at + key.size(), env.find('\0', at) - at - key.size());
    ::usleep(10000);
  }
  return "";
}

// Without the user's OMP_WAIT_POLICY or GOMP_SPINCOUNT, serve re-executes itself with 300,000
// spins and every other command with 1,000 (core/threads.h).
TEST_F(ServeCli, SpinsLongerThanTheOtherCommands) {
  const std::string env = "-u OMP_WAIT_POLICY -u GOMP_SPINCOUNT";
  test::BackgroundCli s =
      test::start_cli("--threads 1 serve " + path("run") + " --port 0", path("spin.err"), env);
  ASSERT_TRUE(s.wait_for("listening on http://")) << test::read_text(path("spin.err"));
  EXPECT_EQ(spin_count_of(s.pid), "300000");
  EXPECT_EQ(s.finish(SIGTERM).code, 0);
  test::BackgroundCli g = test::start_cli(
      "--threads 1 generate " + path("run") + " --max-new-tokens 100000 --prompt x --window 16",
      path("spin_gen.err"), env);
  EXPECT_EQ(spin_count_of(g.pid), "1000");
  g.finish(SIGKILL);
}

TEST_F(ServeCli, BadFlagsExitTwoWithOneLine) {
  auto run = [&](const std::string& args) {
    return test::run_cli("--threads 1 serve " + args, path("bad.err"));
  };
  test::expect_cli_error(run(path("run") + " --max-batch 0"), "--max-batch 0 must be in 1..4096");
  test::expect_cli_error(run(path("run") + " --port 70000"), "--port 70000 must be in 0..65535");
  test::expect_cli_error(run(path("run") + " --window -1"), "--window -1 must be >= 0");
  test::expect_cli_error(run(path("run") + " --api-key a --api-key-file b"),
                         "--api-key and --api-key-file 'b' are both given");
  test::expect_cli_error(run(path("nothing-here")), path("nothing-here"));
  // A port that is taken: by a server of ours.
  ServeProcess s = serve();
  test::expect_cli_error(run(path("run") + " --port " + std::to_string(s.port)),
                         "--port " + std::to_string(s.port) + ": cannot listen there");
  EXPECT_EQ(s.stop().code, 0);
}

}  // namespace
}  // namespace alibi
