// alibi generate: continue a prompt from a checkpoint with a KV cache (src/generate), past the
// training length; --window for a bounded sliding cache, --interactive for a prompt loop.
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstdio>
#include <functional>
#include <iostream>
#include <memory>
#include <optional>
#include <string>

#include "commands.h"
#include "decoder.h"
#include "extension_flags.h"
#include "core/error.h"
#include "core/io.h"
#include "core/signals.h"
#include "core/rss.h"
#include "generate/generate.h"

namespace alibi::cli {
namespace {

struct GenerateFlags {
  std::string checkpoint;
  std::string prompt;
  std::string prompt_file;
  int max_new_tokens = 256;
  SamplingOptions sampling;
  int window = 0;
  int chunk = 256;
  bool interactive = false;
  std::string dtype = "fp32";
  std::string kv_cache = "f32";
};

void write_out(const std::string& s) {
  if (s.empty()) return;
  std::fwrite(s.data(), 1, s.size(), stdout);
  std::fflush(stdout);
}

// The model is planned for one prefill chunk; a window never needs a bigger one.
int chunk_rows(const GenerateFlags& f, int window) {
  return window > 0 ? std::min(f.chunk, window) : f.chunk;
}

// A window longer than the sequence can grow (prompt and new tokens, one turn) never slides: it
// is cut to that length, which gives the same tokens with a cache of that size, and said so.
int effective_window(const GenerateFlags& f, int64_t prompt_tokens) {
  const int64_t reach = Generator::cache_tokens(prompt_tokens, f.max_new_tokens);
  if (f.window == 0 || f.interactive || f.window <= reach) return f.window;
  std::fprintf(stderr, "note: --window %d is more than the %lld tokens this generation reaches "
               "(prompt and --max-new-tokens); the KV cache holds %lld\n", f.window,
               (long long)reach, (long long)reach);
  return int(std::max<int64_t>(reach, 1));
}

// The memory plan (core/memory_plan.h): printed, or refused where it does not fit, naming the
// flag that sizes the cache (--window, else --max-new-tokens) and the largest value that fits.
// Returns false for --dry-run.
bool check_memory_plan(const GenerateFlags& f, const Checkpoint& ck, const Backend& backend,
                       int64_t prompt_tokens, int window, KvType kv_type) {
  const int64_t full = Generator::cache_tokens(prompt_tokens, f.max_new_tokens);
  if (window > INT_MAX / 2)  // a sliding cache keeps room for twice its window
    usage_error("--window ", window, " is more than a sliding KV cache holds (", INT_MAX / 2,
                " tokens)");
  if (window == 0 && full > INT_MAX)
    usage_error("--max-new-tokens ", f.max_new_tokens, " with a prompt of ", prompt_tokens,
                " tokens makes a context of ", full, " tokens, more than one KV cache holds (",
                INT_MAX, "); use --window");
  auto plan_for = [&](int64_t capacity) {
    return generate_memory(ck.config, ck.st, backend, chunk_rows(f, window),
                           int(std::max<int64_t>(capacity, 1)), window > 0, kv_type);
  };
  const MemoryPlan plan = plan_for(window > 0 ? window : full);
  const MemoryBudget budget = memory_budget(globals().memory);
  if (globals().memory.dry_run) std::printf("%s\n", memory_line(plan, budget).c_str());
  std::fflush(stdout);
  auto fits = [&](int64_t capacity) { return plan_for(capacity).total() <= budget.bytes; };
  const std::string what =
      window > 0 ? str_cat("--window ", window)
                 : str_cat("a prompt of ", prompt_tokens, prompt_tokens == 1 ? " token" : " tokens",
                           " and --max-new-tokens ", f.max_new_tokens);
  check_memory(plan, budget, what, [&]() -> std::string {
    const int64_t w = largest_fitting(1, window > 0 ? window - 1 : full - 1, fits);
    if (window > 0 || w < prompt_tokens)
      return w >= 1 ? str_cat("--window ", w, " would fit") : "the weights alone do not fit";
    return str_cat("--max-new-tokens ", w - prompt_tokens + 1, " would fit, or --window ", w,
                   " bounds the cache");
  });
  if (!globals().memory.dry_run) std::fprintf(stderr, "%s\n", memory_line(plan, budget).c_str());
  return !globals().memory.dry_run;
}

void print_banner(const Decoder& m, int window, KvType kv_type) {
  const ModelConfig& c = m.model->cfg;
  const nlohmann::json ext = extension_of(c);
  std::fprintf(
      stderr,
      "%s: %s, %d layers, d_model %d, %d heads, vocab %d, trained at seq-len %d "
      "(step %lld); %s (%s)%s\n",
      m.path.c_str(), pos_name(c.pos), c.layers, c.d_model, c.heads, c.vocab, m.train_len,
      static_cast<long long>(m.step),
      window > 0 ? ("sliding KV window of " + std::to_string(window)).c_str() : "full KV cache",
      kv_type_name(kv_type), ext.empty() ? "" : ("; context extension " + ext.dump()).c_str());
}

void print_stats(const GenerateStats& total, const Generator& gen) {
  auto rate = [](int64_t n, double s) { return s > 0 ? double(n) / s : 0.0; };
  std::fprintf(stderr,
               "prompt: %lld tokens in %.3f s (%.1f tokens/s); decode: %lld tokens in %.3f s "
               "(%.1f tokens/s); context %lld tokens, KV cache %d rows, peak RSS %.1f MiB\n",
               static_cast<long long>(total.prompt_tokens), total.prompt_s,
               rate(total.prompt_tokens, total.prompt_s), static_cast<long long>(total.new_tokens),
               total.decode_s, rate(total.new_tokens, total.decode_s),
               static_cast<long long>(gen.length()), gen.cache().capacity, peak_rss_mb());
}

// Each line is appended to the context as typed (without its newline) and continued for
// --max-new-tokens; an empty line continues the text so far. The cache is kept between turns.
// A stop signal ends the turn under way (its text stays in the context); at the prompt it ends
// the program.
void interactive(const GenerateFlags& f, const Decoder& m, Generator& gen,
                 std::vector<int32_t> ids, const std::function<void()>& new_turn,
                 const Generator::OnToken& on_token, Utf8Stream& out, GenerateStats& total) {
  const bool tty = isatty(STDIN_FILENO);
  auto turn = [&](const std::vector<int32_t>& p) {
    const StopScope stop_turn("stopping this reply");
    new_turn();
    total += gen.generate(p, f.max_new_tokens, on_token);
    write_out(out.flush());
    write_out("\n");  // separates turns on the terminal; not part of the model's context
  };
  if (!ids.empty()) turn(ids);
  std::string line;
  for (;;) {
    if (tty) std::fputs("> ", stderr);
    if (!std::getline(std::cin, line)) break;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    ids = m.tok.encode(line);
    if (gen.length() == 0) {  // the context's start: the vocabulary's BOS goes first
      if (ids.empty()) {
        std::fputs("(type some text to start)\n", stderr);
        continue;
      }
      ids = m.tok.encode_prompt(line);
    }
    turn(ids);
  }
}

void run(const GenerateFlags& f, const ExtensionFlags& ext) {
  f.sampling.validate();
  if (f.max_new_tokens < 0) usage_error("--max-new-tokens ", f.max_new_tokens, " must be >= 0");
  if (f.window < 0) usage_error("--window ", f.window, " must be >= 0 (0: no window)");
  if (f.chunk < 1) usage_error("--chunk ", f.chunk, " must be >= 1");
  const KvType kv_type = parse_kv_type(f.kv_cache);
  if (!f.prompt.empty() && !f.prompt_file.empty())
    usage_error("--prompt and --prompt-file '", f.prompt_file, "' are both given; use one");
  const std::string text =
      f.prompt_file.empty() ? f.prompt : read_file(f.prompt_file, "--prompt-file");
  const std::shared_ptr<Backend> backend = make_backend(globals().device, parse_precision(f.dtype));
  const Checkpoint ck = read_decoder_checkpoint(f.checkpoint);
  // An empty prompt runs from the BOS alone where the vocabulary adds one (as llama.cpp's
  // completion does); --interactive without a prompt waits for the first line.
  std::vector<int32_t> ids =
      f.interactive && text.empty() ? std::vector<int32_t>{} : ck.tokenizer.encode_prompt(text);
  if (ids.empty() && !f.interactive)
    usage_error(
        f.prompt_file.empty() ? "--prompt '" + text + "'" : "--prompt-file '" + f.prompt_file + "'",
        " gives no tokens; give some text to continue (or use --interactive)");
  if (!f.interactive)  // fail before any output
    Generator::check_request(ck.config, 0, int64_t(ids.size()), false, f.max_new_tokens);
  const int window = effective_window(f, int64_t(ids.size()));
  if (!check_memory_plan(f, ck, *backend, int64_t(ids.size()), window, kv_type)) return;
  const Decoder m = make_decoder(ck, kGenerateSequences, chunk_rows(f, window), backend, &ext);
  GenerateOptions go;
  go.sampling = f.sampling;
  go.window = window;
  go.sample_vocab = m.tok.vocab();
  go.kv_type = kv_type;
  go.bos = m.tok.leading_special();
  Generator gen(*m.model, go);
  print_banner(m, window, kv_type);

  Utf8Stream out;
  int turn_tokens = 0;  // of the generation under way
  const auto on_token = [&](int32_t t, const float*) {
    write_out(out.push(m.tok.decode_one(t)));
    if (++turn_tokens == 1) test_pause_point("ALIBI_TEST_PAUSE_IN_DECODE", "decoding");
  };
  GenerateStats total;
  if (f.interactive) {
    interactive(f, m, gen, ids, [&] { turn_tokens = 0; }, on_token, out, total);
  } else {
    total += gen.generate(ids, f.max_new_tokens, on_token);
    write_out(out.flush());
    if (isatty(STDOUT_FILENO)) write_out("\n");
  }
  print_stats(total, gen);
  if (total.stopped && !f.interactive)
    throw Interrupted(stop_signal(), str_cat("after ", total.new_tokens, " of ",
                                             f.max_new_tokens, " new tokens"));
}

}  // namespace

Command add_generate(CLI::App& app) {
  auto f = std::make_shared<GenerateFlags>();
  CLI::App* c =
      add_subcommand(app, "generate", "continue a prompt from a checkpoint (KV cache, any length)");
  c->add_option("checkpoint", f->checkpoint,
                "run folder (its latest checkpoint), checkpoint file, or GGUF file (in place)")
      ->required();
  c->add_option("--prompt", f->prompt, "text to continue");
  c->add_option("--prompt-file", f->prompt_file, "file whose text to continue");
  c->add_option("--max-new-tokens", f->max_new_tokens, "tokens to generate (per turn)");
  c->add_option("--temperature", f->sampling.temperature, "softmax temperature (0: greedy)");
  c->add_option("--top-k", f->sampling.top_k, "sample from the k most likely tokens (0: all)");
  c->add_option("--top-p", f->sampling.top_p,
                "sample from the smallest set holding this probability (1: all)");
  c->add_option("--seed", f->sampling.seed, "sampling seed (a fixed seed reproduces the text)");
  c->add_option("--window", f->window,
                "sliding KV window: attend to the last W tokens (a tokenizer's BOS first stays in "
                "view: the BOS and the last W - 1), memory bounded by W (0: off)");
  c->add_option("--chunk", f->chunk, "prompt tokens per prefill step");
  c->add_option("--dtype", f->dtype,
                "matrix-product operands: fp32 | bf16 (AVX512-BF16; bf16 weights are used as "
                "stored; accumulation, softmax and LayerNorm stay fp32) | int8 (AVX512-VNNI: "
                "decoding's products on Q8_0/Q4_0/Q4_K/Q6_K weights take activations rounded to "
                "8 bits per block of 32, as llama.cpp; docs/gguf.md)");
  c->add_option("--kv-cache", f->kv_cache,
                "KV cache storage: f32 | f16 (the CPU: keys and values rounded to IEEE half as "
                "they are cached, read back exactly; half the memory per token; not for xpos)");
  c->add_flag("--interactive", f->interactive,
              "prompt loop on stdin keeping the cache between turns (ends on EOF)");
  // --interactive takes stop requests per reply (at its prompt one ends the program); without
  // it a stop request ends the generation at the next token.
  const auto ext = std::make_shared<ExtensionFlags>(c);
  Command cmd{c, [f, ext] { run(*f, *ext); }};
  cmd.stop = [f] {
    return f->interactive ? std::nullopt : std::optional<std::string>("stopping the generation");
  };
  cmd.uses_device = true;
  return cmd;
}

}  // namespace alibi::cli
