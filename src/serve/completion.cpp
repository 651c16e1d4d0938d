#include "serve/completion.h"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <nlohmann/json.hpp>
#include <random>

#include "core/error.h"
#include "core/rng.h"
#include "position/position.h"

namespace alibi::serve {
namespace {

using nlohmann::json;

// Output may hold bytes that are not UTF-8 (a byte model makes any byte): they become U+FFFD in
// the JSON, as they would on a terminal.
std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

// 64 random bits per call: a per-process random base and a counter through hash64.
uint64_t fresh_random() {
  static const uint64_t base = [] {
    std::random_device rd;
    return (uint64_t(rd()) << 32) ^ rd() ^
           uint64_t(std::chrono::steady_clock::now().time_since_epoch().count());
  }();
  static std::atomic<uint64_t> counter{0};
  return hash64(base, counter.fetch_add(1));
}

json logprobs_json(const Tokenizer& tok, const std::vector<TokenLogprob>& lps,
                   const std::vector<size_t>& offsets) {
  json tokens = json::array(), values = json::array(), tops = json::array();
  for (const TokenLogprob& lp : lps) {
    tokens.push_back(tok.decode_one(lp.token));
    values.push_back(lp.logprob);
    json top = json::object();
    for (const auto& [id, v] : lp.top) top[tok.decode_one(id)] = v;
    tops.push_back(std::move(top));
  }
  return {{"tokens", tokens},
          {"token_logprobs", values},
          {"top_logprobs", tops},
          {"text_offset", offsets}};
}

}  // namespace

Completion::Completion(const CompletionRequest& req, const ServeContext& ctx)
    : req_(req),
      ctx_(ctx),
      id_(str_cat("cmpl-", std::hex, fresh_random(), fresh_random())),
      created_(int64_t(std::time(nullptr))),
      waiter_(std::make_shared<Waiter>()) {
  const uint64_t seed = req.seed ? *req.seed : fresh_random();
  const int M = req.max_tokens;
  for (size_t p = 0; p < req.prompts.size(); ++p) {
    const Prompt& pr = req.prompts[p];
    const std::string which = req.prompts.size() > 1 ? str_cat("prompt[", p, "]") : "the prompt";
    std::vector<int32_t> ids = pr.is_ids ? pr.ids : ctx.tok->encode_prompt(pr.text);
    if (ids.empty()) throw ApiError(400, which + " gives no tokens; give some text", "prompt");
    const int64_t P = int64_t(ids.size());
    prompt_tokens_ += int(P);  // each prompt once, whatever n (as OpenAI counts)
    if (P > ctx.max_prompt_tokens)
      throw ApiError(400,
                     str_cat(which, " has ", P, " tokens; this server takes at most ",
                             ctx.max_prompt_tokens, " (--max-prompt-tokens)"),
                     "prompt");
    // The last token is sampled, never fed: P + M - 1 rows and positions.
    const int64_t rows = P + std::max(M, 1) - 1;
    if (ctx.window == 0 && rows > ctx.max_context)
      throw ApiError(400,
                     str_cat("the context of a sequence is at most ", ctx.max_context,
                             " tokens (--max-context; --window runs past it), but ", which, " has ",
                             P, " tokens and max_tokens asks for ", M, " more"),
                     P > ctx.max_context ? "prompt" : "max_tokens");
    if (rows > ctx.max_positions)
      throw ApiError(400,
                     str_cat("this --pos ", pos_name(ctx.cfg.pos), " model has positions ", "for ",
                             ctx.max_positions, " tokens (a table cannot ", "extrapolate), but ",
                             which, " has ", P, " tokens and max_tokens asks for ", M, " more"),
                     "max_tokens");
    const std::string echo = req.echo ? (pr.is_ids ? ctx.tok->decode(ids) : pr.text) : "";
    for (int c = 0; c < req.n; ++c) {
      Choice ch;
      ch.echo = echo;
      ch.offset = echo.size();
      if (M > 0) {
        Job::Spec spec{ids, M,
                       SamplingOptions{req.temperature, req.top_k, req.top_p, seed + uint64_t(c)},
                       req.stop, req.logprobs};
        ch.job = std::make_shared<Job>(std::move(spec), waiter_);
        jobs_.push_back(ch.job);
      } else {
        ch.finish = Finish::length;
      }
      choices_.push_back(std::move(ch));
    }
  }
}

bool Completion::submit(Engine& engine) { return jobs_.empty() || engine.submit(jobs_); }

uint64_t Completion::version() {
  std::lock_guard lock(waiter_->mu);
  return waiter_->version;
}

void Completion::cancel() {
  for (const auto& j : jobs_) j->cancel();
}

bool Completion::done() {
  for (const auto& j : jobs_)
    if (!j->done()) return false;
  return true;
}

int Completion::prompt_tokens() const { return prompt_tokens_; }

int Completion::completion_tokens() const {
  int n = 0;
  for (const Choice& c : choices_) n += c.job ? c.job->completion_tokens() : 0;
  return n;
}

std::string Completion::usage_json() const {
  const int p = prompt_tokens(), c = completion_tokens();
  return dump({{"prompt_tokens", p}, {"completion_tokens", c}, {"total_tokens", p + c}});
}

std::string Completion::chunk(size_t index, const std::string& text,
                              const std::vector<TokenLogprob>& lp, size_t first_offset,
                              Finish finish) const {
  json choice = {
      {"text", text},
      {"index", index},
      {"logprobs", nullptr},
      {"finish_reason", finish == Finish::none ? json(nullptr) : json(finish_name(finish))}};
  if (req_.logprobs >= 0) {
    std::vector<size_t> offsets;
    size_t at = first_offset;
    for (const TokenLogprob& t : lp) {
      offsets.push_back(at);
      at += ctx_.tok->decode_one(t.token).size();
    }
    choice["logprobs"] = logprobs_json(*ctx_.tok, lp, offsets);
  }
  json j = {{"id", id_},
            {"object", "text_completion"},
            {"created", created_},
            {"model", ctx_.model_name},
            {"choices", json::array({choice})}};
  if (req_.include_usage) j["usage"] = nullptr;
  return "data: " + dump(j) + "\n\n";
}

std::string Completion::events() {
  std::string out;
  if (finished_events_) return out;
  std::string error;  // the first cancelled or failed choice's
  bool all_done = true;
  for (size_t i = 0; i < choices_.size(); ++i) {
    Choice& c = choices_[i];
    if (!c.echo_sent) {
      if (!c.echo.empty()) out += chunk(i, c.echo, {}, 0, Finish::none);
      c.echo_sent = true;
    }
    Job::Output o;
    if (c.job) o = c.job->take();
    if (o.finish != Finish::none) c.finish = o.finish;
    if (c.finish == Finish::cancelled || c.finish == Finish::error) {
      if (error.empty())
        error = c.finish == Finish::error ? o.error : "the server is shutting down";
      continue;
    }
    // One chunk per token, as OpenAI streams; a token whose text is held back (half a
    // character, the start of a stop string) sends nothing unless its logprobs were asked for.
    for (size_t k = 0; k < o.pieces.size(); ++k) {
      std::vector<TokenLogprob> lp;
      if (k < o.logprobs.size()) lp.push_back(std::move(o.logprobs[k]));
      if (!o.pieces[k].empty() || !lp.empty())
        out += chunk(i, o.pieces[k], lp, c.offset, Finish::none);
      if (!lp.empty()) c.offset += ctx_.tok->decode_one(lp[0].token).size();
    }
    if (o.finish != Finish::none) out += chunk(i, "", {}, c.offset, o.finish);
    if (c.finish == Finish::none) all_done = false;
  }
  if (!error.empty()) {  // the request ends here: cancel what still runs
    cancel();
    const ApiError e(503, "the request was not completed: " + error, "", "server_error");
    out += "data: " + e.body() + "\n\ndata: [DONE]\n\n";
    finished_events_ = true;
    return out;
  }
  if (all_done) {
    if (req_.include_usage) {
      const json j = {{"id", id_},
                      {"object", "text_completion"},
                      {"created", created_},
                      {"model", ctx_.model_name},
                      {"choices", json::array()},
                      {"usage", json::parse(usage_json())}};
      out += "data: " + dump(j) + "\n\n";
    }
    out += "data: [DONE]\n\n";
    finished_events_ = true;
  }
  return out;
}

std::string Completion::response() {
  json choices = json::array();
  for (size_t i = 0; i < choices_.size(); ++i) {
    Choice& c = choices_[i];
    if (c.job) {
      Job::Output o = c.job->take();
      c.text += o.text();
      for (TokenLogprob& t : o.logprobs) {
        c.offsets.push_back(c.offset);
        c.offset += ctx_.tok->decode_one(t.token).size();
        c.logprobs.push_back(std::move(t));
      }
      if (o.finish != Finish::none) c.finish = o.finish;
      if (o.finish == Finish::error) c.error = o.error;
    }
    if (c.finish == Finish::cancelled)
      throw ApiError(503, "the request was not completed: the server is shutting down", "",
                     "server_error");
    if (c.finish == Finish::error)
      throw ApiError(500, "the request failed: " + c.error, "", "server_error");
    json lp = req_.logprobs >= 0 ? logprobs_json(*ctx_.tok, c.logprobs, c.offsets) : json(nullptr);
    choices.push_back({{"text", c.echo + c.text},
                       {"index", i},
                       {"logprobs", lp},
                       {"finish_reason", finish_name(c.finish)}});
  }
  const json j = {{"id", id_},           {"object", "text_completion"},
                  {"created", created_}, {"model", ctx_.model_name},
                  {"choices", choices},  {"usage", json::parse(usage_json())}};
  return dump(j);
}

std::string models_json(const ServeContext& ctx) {
  const json j = {{"object", "list"},
                  {"data", json::array({{{"id", ctx.model_name},
                                         {"object", "model"},
                                         {"created", ctx.created},
                                         {"owned_by", "alibi"}}})}};
  return dump(j);
}

}  // namespace alibi::serve
