// alibi serve: an OpenAI-compatible HTTP server with continuous batching (docs/serve.md). The
// model runs in the engine's thread (src/serve/engine.h), cpp-httplib's threads parse and answer
// requests (serve_http.cpp), and this file reads the flags, loads the model and stops gracefully
// on SIGTERM / SIGINT: no new connections, the requests under way finish within --grace
// seconds (those that do not are cancelled), exit 0.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "commands.h"
#include "core/error.h"
#include "core/io.h"
#include "core/memory_plan.h"
#include "core/rss.h"
#include "core/signals.h"
#include "decoder.h"
#include "extension_flags.h"
#include "serve/completion.h"
#include "serve/engine.h"
#include "serve/metrics.h"
#include "serve_http.h"

namespace alibi::cli {
namespace {

using Clock = std::chrono::steady_clock;

struct ServeFlags {
  std::string checkpoint;
  std::string host = "127.0.0.1";
  int port = 8080;
  std::string model_name;
  int max_batch = 8;
  int max_context = 2048;
  int window = 0;
  int chunk = 64;
  int max_queue = 32;
  int max_tokens = 2048;
  int max_prompt_tokens = 0;
  int max_body = 1 << 20;
  int timeout = 30;
  double grace = 10;
  std::string api_key;
  std::string api_key_file;
  std::string dtype = "fp32";
  std::string kv_cache = "f32";
};

void check_flags(const ServeFlags& f) {
  if (f.port < 0 || f.port > 65535) usage_error("--port ", f.port, " must be in 0..65535 (0: any)");
  if (f.max_batch < 1 || f.max_batch > 4096)
    usage_error("--max-batch ", f.max_batch, " must be in 1..4096");
  if (f.max_context < 2) usage_error("--max-context ", f.max_context, " must be >= 2");
  if (f.window < 0) usage_error("--window ", f.window, " must be >= 0 (0: no window)");
  if (f.chunk < 1 || f.chunk > 65536) usage_error("--chunk ", f.chunk, " must be in 1..65536");
  if (f.max_queue < 0) usage_error("--max-queue ", f.max_queue, " must be >= 0");
  if (f.max_tokens < 1) usage_error("--max-tokens ", f.max_tokens, " must be >= 1");
  if (f.max_prompt_tokens < 0)
    usage_error("--max-prompt-tokens ", f.max_prompt_tokens, " must be >= 0 (0: the default)");
  if (f.max_body < 1024) usage_error("--max-body ", f.max_body, " must be >= 1024 bytes");
  if (f.timeout < 1) usage_error("--timeout ", f.timeout, " must be >= 1 second");
  if (!(f.grace >= 0)) usage_error("--grace ", f.grace, " must be >= 0 seconds");
  if (!f.api_key.empty() && !f.api_key_file.empty())
    usage_error("--api-key and --api-key-file '", f.api_key_file, "' are both given; use one");
  if (f.host != "127.0.0.1" && f.host != "localhost" && f.host != "::1" && f.api_key.empty() &&
      f.api_key_file.empty())
    std::fprintf(stderr,
                 "alibi: warning: --host %s without --api-key: anyone who can reach this "
                 "port can use the model\n",
                 f.host.c_str());
}

std::string read_key(const ServeFlags& f) {
  if (f.api_key_file.empty()) return f.api_key;
  std::string key = read_file(f.api_key_file, "--api-key-file");
  key = key.substr(0, key.find_first_of("\r\n"));
  if (key.empty())
    usage_error("--api-key-file '", f.api_key_file, "' holds no key on its first line");
  return key;
}

std::string default_name(const std::string& path) {
  std::filesystem::path p(path);
  while (!p.empty() && p.filename().empty()) p = p.parent_path();  // a trailing slash
  const auto ext = p.extension();
  return ext == ".safetensors" || ext == ".gguf" ? p.stem().string() : p.filename().string();
}

// Every 10 s while there is work: what ran since the last line.
struct Progress {
  Clock::time_point last = Clock::now();
  void tick(const serve::Engine& engine) {
    if (Clock::now() - last < std::chrono::seconds(10)) return;
    last = Clock::now();
    const serve::EngineGauges g = engine.gauges();
    if (g.running + g.queued == 0) return;
    std::fprintf(stderr, "alibi serve: %d sequences running, %d queued, RSS %.1f MiB\n", g.running,
                 g.queued, current_rss_mb());
  }
};

// The plan of the model, its activations and every slot's KV cache against the budget: --dry-run
// prints it and stops; a plan over it is refused in one line with what would fit.
bool check_memory_plan(const serve::EngineOptions& eo, const Checkpoint& ck, const Backend& backend,
                       MemoryPlan& plan) {
  auto plan_for = [&](int batch, int context) {
    serve::EngineOptions o = eo;
    o.max_batch = batch;
    o.max_context = context;
    return serve::serve_memory(ck.config, ck.st, backend, o);
  };
  plan = plan_for(eo.max_batch, eo.max_context);
  const MemoryBudget budget = memory_budget(globals().memory);
  if (globals().memory.dry_run) std::printf("%s\n", memory_line(plan, budget).c_str());
  std::fflush(stdout);
  auto fits = [&](int batch, int context) {
    return plan_for(batch, context).total() <= budget.bytes;
  };
  const std::string what = str_cat(
      "--max-batch ", eo.max_batch, " slots of ",
      eo.window > 0 ? str_cat("--window ", eo.window) : str_cat("--max-context ", eo.max_context));
  check_memory(plan, budget, what, [&]() -> std::string {
    const int64_t b = largest_fitting(1, eo.max_batch - 1,
                                      [&](int64_t x) { return fits(int(x), eo.max_context); });
    if (b >= 1) return str_cat("--max-batch ", b, " would fit");
    if (eo.window > 0) return "a smaller --window might fit";
    const int64_t c =
        largest_fitting(2, eo.max_context - 1, [&](int64_t x) { return fits(1, int(x)); });
    return c >= 2 ? str_cat("--max-batch 1 --max-context ", c, " would fit")
                  : std::string("this model does not fit");
  });
  if (!globals().memory.dry_run) std::fprintf(stderr, "%s\n", memory_line(plan, budget).c_str());
  return !globals().memory.dry_run;
}

void run(const ServeFlags& f, const ExtensionFlags& ext) {
  check_flags(f);
  const std::string key = read_key(f);
  serve::EngineOptions eo;
  eo.max_batch = f.max_batch;
  eo.max_context = f.max_context;
  eo.window = f.window;
  eo.chunk = f.window > 0 ? std::min(f.chunk, f.window) : f.chunk;
  eo.max_queue = f.max_queue;
  eo.kv_type = parse_kv_type(f.kv_cache);
  const std::shared_ptr<Backend> backend = make_backend(globals().device, parse_precision(f.dtype));
  const Checkpoint ck = read_decoder_checkpoint(f.checkpoint);
  MemoryPlan plan;
  if (!check_memory_plan(eo, ck, *backend, plan)) return;
  const Decoder m = make_decoder(ck, f.max_batch, eo.step_rows(), backend, &ext);
  eo.sample_vocab = m.tok.vocab();
  eo.bos = m.tok.leading_special();
  serve::Metrics metrics;
  serve::Engine engine(*m.model, m.tok, eo, metrics);

  serve::ServeContext ctx;
  ctx.model_name = f.model_name.empty() ? default_name(f.checkpoint) : f.model_name;
  ctx.created = int64_t(std::time(nullptr));
  ctx.tok = &m.tok;
  ctx.cfg = m.model->cfg;
  ctx.max_positions = position_method(ctx.cfg.pos).max_positions(ctx.cfg);
  ctx.max_context = f.max_context;
  ctx.window = f.window;
  ctx.max_prompt_tokens =
      f.max_prompt_tokens > 0 ? f.max_prompt_tokens : (f.window > 0 ? 1 << 16 : f.max_context - 1);
  ctx.limits.vocab = m.tok.vocab();
  ctx.limits.max_tokens = f.max_tokens;
  ctx.limits.max_sequences = f.max_batch;

  HttpOptions ho;
  ho.host = f.host;
  ho.port = f.port;
  ho.api_key = key;
  ho.max_body = size_t(f.max_body);
  ho.timeout_s = f.timeout;
  ho.threads = f.max_batch + f.max_queue + 16;  // the running, the waiting, and room to refuse
  HttpServer http(ho, ctx, engine, metrics);
  const int port = http.bind();

  const ModelConfig& c = m.model->cfg;
  const double kv_mib = double(plan.of("KV cache")) / (1 << 20);
  std::fprintf(stderr,
               "alibi serve: %s (%s: %s, %d layers, d_model %d, %d heads, vocab %d, trained at "
               "seq-len %d); %d slots of %s, KV cache %.1f MiB (%s); prefill chunk %d; queue %d\n",
               ctx.model_name.c_str(), m.path.c_str(), pos_name(c.pos), c.layers, c.d_model,
               c.heads, c.vocab, m.train_len, f.max_batch,
               (f.window > 0 ? "a sliding window of " + std::to_string(f.window) + " tokens"
                             : std::to_string(f.max_context) + " tokens")
                   .c_str(),
               kv_mib, kv_type_name(eo.kv_type), eo.chunk, f.max_queue);
  if (const nlohmann::json x = extension_of(c); !x.empty())
    std::fprintf(stderr, "alibi serve: context extension %s\n", x.dump().c_str());
  http.start();
  std::fprintf(stderr, "alibi serve: listening on http://%s:%d%s\n", f.host.c_str(), port,
               key.empty() ? "" : " (API key required)");
  Progress progress;
  while (stop_signal() == 0 && http.running()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    progress.tick(engine);
  }
  if (stop_signal() == 0) throw std::runtime_error("the HTTP listener ended by itself");

  http.drain();
  const auto deadline = Clock::now() + std::chrono::milliseconds(int64_t(f.grace * 1000.0));
  const serve::EngineGauges g = engine.gauges();
  const bool finished = engine.wait_idle(deadline);
  if (!finished) engine.cancel_all();
  engine.wait_idle(Clock::now() + std::chrono::seconds(30));
  http.join();
  engine.stop();
  std::fprintf(stderr,
               "alibi serve: stopped; %d running and %d queued sequences at the signal %s; peak "
               "RSS %.1f MiB\n",
               g.running, g.queued, finished ? "finished" : "were cancelled after --grace",
               peak_rss_mb());
}

}  // namespace

Command add_serve(CLI::App& app) {
  auto f = std::make_shared<ServeFlags>();
  CLI::App* c = add_subcommand(
      app, "serve", "OpenAI-compatible HTTP server with continuous batching (docs/serve.md)");
  c->add_option("checkpoint", f->checkpoint,
                "run folder (its latest checkpoint), checkpoint file, or GGUF file (in place)")
      ->required();
  c->add_option("--host", f->host, "address to listen on (loopback by default)");
  c->add_option("--port", f->port, "port to listen on (0: any free port, said on stderr)");
  c->add_option("--model-name", f->model_name,
                "the model's id in /v1/models and answers (default: the run folder's name)");
  c->add_option("--max-batch", f->max_batch,
                "sequences decoded together: KV cache slots, allocated at start-up");
  c->add_option("--max-context", f->max_context,
                "tokens of one sequence (prompt + completion) without --window: rows per slot");
  c->add_option("--window", f->window,
                "sliding KV window of W tokens per sequence (a tokenizer's BOS first stays in "
                "view): flat memory, any length (0: off)");
  c->add_option("--chunk", f->chunk, "prompt tokens prefilled per step (over all sequences)");
  c->add_option("--max-queue", f->max_queue,
                "sequences waiting for a slot; a request beyond it gets 429 with Retry-After");
  c->add_option("--max-tokens", f->max_tokens, "the largest max_tokens a request may ask for");
  c->add_option("--max-prompt-tokens", f->max_prompt_tokens,
                "the longest prompt in tokens (0: --max-context - 1, or 65536 with --window)");
  c->add_option("--max-body", f->max_body, "the largest request body in bytes (more: 413)");
  c->add_option("--timeout", f->timeout,
                "seconds a connection may stall reading a request or taking an answer");
  c->add_option("--grace", f->grace,
                "seconds the requests under way get to finish after SIGTERM / SIGINT");
  c->add_option("--api-key", f->api_key,
                "require Authorization: Bearer KEY on every route but /health (empty: none)");
  c->add_option("--api-key-file", f->api_key_file, "read the key from the file's first line");
  c->add_option("--dtype", f->dtype, "matrix-product operands: fp32 | bf16 | int8 (as generate)");
  c->add_option("--kv-cache", f->kv_cache, "KV cache storage: f32 | f16 (as generate)");
  // Context extension as generate runs it: L' is each request's prompt + max_tokens.
  const auto ext = std::make_shared<ExtensionFlags>(c);
  Command cmd{c, [f, ext] { run(*f, *ext); }};
  cmd.stop = [] {
    return std::optional<std::string>(
        "stopping the server: no new connections; the requests under way get --grace seconds");
  };
  cmd.uses_device = true;
  return cmd;
}

}  // namespace alibi::cli
