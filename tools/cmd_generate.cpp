// alibi generate: continue a prompt from a checkpoint with a KV cache (src/generate), past the
// training length; --window for a bounded sliding cache, --interactive for a prompt loop.
#include <unistd.h>

#include <algorithm>
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
};

void write_out(const std::string& s) {
  if (s.empty()) return;
  std::fwrite(s.data(), 1, s.size(), stdout);
  std::fflush(stdout);
}

// The model is planned for one prefill chunk; a window never needs a bigger one.
Decoder load(const GenerateFlags& f, const ExtensionFlags& ext,
             const std::shared_ptr<Backend>& backend) {
  return load_decoder(f.checkpoint, 1, f.window > 0 ? std::min(f.chunk, f.window) : f.chunk,
                      backend, &ext);
}

void print_banner(const Decoder& m, int window) {
  const ModelConfig& c = m.model->cfg;
  const nlohmann::json ext = extension_of(c);
  std::fprintf(stderr,
               "%s: %s, %d layers, d_model %d, %d heads, vocab %d, trained at seq-len %d "
               "(step %lld); %s%s\n",
               m.path.c_str(), pos_name(c.pos), c.layers, c.d_model, c.heads, c.vocab,
               m.train_len, static_cast<long long>(m.step),
               window > 0 ? ("sliding KV window of " + std::to_string(window)).c_str()
                          : "full KV cache",
               ext.empty() ? "" : ("; context extension " + ext.dump()).c_str());
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
    if (ids.empty() && gen.length() == 0) {
      std::fputs("(type some text to start)\n", stderr);
      continue;
    }
    turn(ids);
  }
}

void run(const GenerateFlags& f, const ExtensionFlags& ext) {
  f.sampling.validate();
  if (f.max_new_tokens < 0) usage_error("--max-new-tokens ", f.max_new_tokens, " must be >= 0");
  if (f.window < 0) usage_error("--window ", f.window, " must be >= 0 (0: no window)");
  if (f.chunk < 1) usage_error("--chunk ", f.chunk, " must be >= 1");
  if (!f.prompt.empty() && !f.prompt_file.empty())
    usage_error("--prompt and --prompt-file '", f.prompt_file, "' are both given; use one");
  const std::string text =
      f.prompt_file.empty() ? f.prompt : read_file(f.prompt_file, "--prompt-file");
  const std::shared_ptr<Backend> backend = make_backend(globals().device, parse_precision(f.dtype));
  const Decoder m = load(f, ext, backend);
  std::vector<int32_t> ids = m.tok.encode(text);
  if (ids.empty() && !f.interactive)
    usage_error(
        f.prompt_file.empty() ? "--prompt '" + text + "'" : "--prompt-file '" + f.prompt_file + "'",
        " gives no tokens; give some text to continue (or use --interactive)");
  GenerateOptions go;
  go.sampling = f.sampling;
  go.window = f.window;
  go.sample_vocab = m.tok.vocab();
  Generator gen(*m.model, go);
  if (!f.interactive) gen.check(int64_t(ids.size()), f.max_new_tokens);  // fail before any output
  print_banner(m, f.window);

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
  c->add_option("checkpoint", f->checkpoint, "run folder (its latest checkpoint) or file")
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
                "sliding KV window: attend to the last W tokens, memory bounded by W (0: off)");
  c->add_option("--chunk", f->chunk, "prompt tokens per prefill step");
  c->add_option("--dtype", f->dtype,
                "matrix-product operands: fp32 | bf16 (AVX512-BF16; bf16 weights are used as "
                "stored; accumulation, softmax and LayerNorm stay fp32)");
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
