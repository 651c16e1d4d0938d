#pragma once
// One POST /v1/completions from its parsed body to its answer, independent of HTTP (the server in
// tools/serve_http.cpp moves bytes; tests drive this in-process): the prompts tokenized and
// checked against the server's limits, one engine Job per prompt and choice, and the answer in
// OpenAI's formats: one completion object, or server-sent events of chunk objects ending in
// `data: [DONE]`.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "data/tokenizer.h"
#include "model/config.h"
#include "serve/engine.h"
#include "serve/request.h"

namespace alibi::serve {

// What every request is checked against and named by.
struct ServeContext {
  std::string model_name;  // GET /v1/models's id and every answer's "model"
  int64_t created = 0;     // when the server started (unix seconds)
  const Tokenizer* tok = nullptr;
  ModelConfig cfg;
  int64_t max_positions = 0;  // the position method's limit (kAnyLength: none)
  int max_prompt_tokens = 0;
  int max_context = 0;  // a sequence's rows without a window
  int window = 0;
  RequestLimits limits;
};

class Completion {
 public:
  // Tokenizes and checks the prompts (ApiError naming the field where one cannot run) and makes
  // the jobs; nothing runs until submit().
  Completion(const CompletionRequest& req, const ServeContext& ctx);
  bool stream() const { return req_.stream; }
  // False where the engine's queue has no room (the server answers 429).
  bool submit(Engine& engine);
  Waiter& waiter() { return *waiter_; }
  uint64_t version();  // the waiter's, for waiting until it moves on
  void cancel();       // every job: their slots are freed at the engine's next step
  bool done();         // every job ended (after collect(), all output is in)

  // Streaming: the events ready now ("data: {chunk}\n\n" ..., and at the end the usage chunk if
  // asked and "data: [DONE]\n\n"). A request the server cancelled (shutdown) or that failed
  // ends in an error event instead: {"error": {...}} then [DONE].
  std::string events();
  bool ended() const { return finished_events_; }  // events() has sent [DONE]
  // Not streaming, once done(): the completion object; ApiError 503 / 500 if cancelled / failed.
  std::string response();
  int prompt_tokens() const;
  int completion_tokens() const;

 private:
  struct Choice {
    std::shared_ptr<Job> job;  // null for max_tokens 0
    std::string echo;          // the prompt's text, with echo
    std::string text;          // everything so far (response())
    std::vector<TokenLogprob> logprobs;
    size_t offset = 0;  // bytes of text and echo before the next token (text_offset)
    std::vector<size_t> offsets;
    Finish finish = Finish::none;
    std::string error;
    bool echo_sent = false;
  };
  std::string chunk(size_t index, const std::string& text, const std::vector<TokenLogprob>& lp,
                    size_t first_offset, Finish finish) const;
  std::string usage_json() const;

  CompletionRequest req_;
  const ServeContext& ctx_;
  std::string id_;
  int64_t created_ = 0;
  std::shared_ptr<Waiter> waiter_;
  std::vector<Choice> choices_;
  std::vector<std::shared_ptr<Job>> jobs_;
  int prompt_tokens_ = 0;
  bool finished_events_ = false;
};

// GET /v1/models
std::string models_json(const ServeContext& ctx);

}  // namespace alibi::serve
