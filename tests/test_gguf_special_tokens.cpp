// GGUF files whose tokenizer adds special tokens (tokenizer.ggml.add_bos_token,
// add_eos_token): what the tokenizer, eval, generate, serve and export do with them, against
// llama.cpp on the same files (tests/ref/make_gguf_bos_golden.py,
// tests/golden/gguf/bloom-bos.json).
#include <gtest/gtest.h>

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli.h"
#include "core/gguf.h"
#include "gguf_golden.h"
#include "model/gguf_import.h"
#include "serve_client.h"

namespace alibi {
namespace {

using test::golden;
using test::golden_splits;
using test::kDir;
using test::run_cli;

class GgufSpecialTokens : public test::GgufVariant {
 protected:
  // `file` imported, then exported with export --to-gguf: the path written.
  std::string written_back(const std::string& file) {
    const std::string run = dir_ / "run", back = dir_ / "back.gguf";
    EXPECT_EQ(run_cli("import " + file + " --out " + run, dir_ / "i").code, 0);
    const test::CliResult x =
        run_cli("export " + run + " --to-gguf " + back + " --max-seq-len 128", dir_ / "x");
    EXPECT_EQ(x.code, 0) << x.err;
    return back;
  }
};

// A served token's log-probability against llama.cpp's on the Q8_0 file: llama.cpp rounds the
// activations to 8 bits per block, we multiply them in fp32 (measured: within 0.012). Without the
// BOS, llama.cpp's own values are 0.07, 0.05, 0.03 and 0.03 away.
constexpr double kBosLogprobTol = 0.02;

// add_bos_token true: llama.cpp puts bos_token_id before a text's ids, and llama-perplexity at
// each chunk's start. The import's tokenizer adds it with special tokens (llama-tokenize's ids),
// eval --mode second-half tokenizes the text so and starts every chunk with it (within 0.1% of
// llama-perplexity's on the same file, tests/ref/make_gguf_bos_golden.py), and export --to-gguf
// writes it back.
TEST_F(GgufSpecialTokens, AddBosTokenIsKeptByTokenizerEvalAndExport) {
  const std::string file = variant([](GgufWriter& w, const Gguf&, std::vector<std::string>&) {
    w.add_bool("tokenizer.ggml.add_bos_token", true);
  });
  const nlohmann::json& want = golden("bloom-bos");
  const int32_t bos = int32_t(Gguf::read(file).get_int("tokenizer.ggml.bos_token_id"));
  const GgufImport m = import_gguf(file);
  const std::string text = golden().at("text");
  const std::vector<int32_t> ids = want.at("llama_ids").get<std::vector<int32_t>>();
  EXPECT_EQ(m.tokenizer.leading_special(), bos);
  EXPECT_EQ(m.tokenizer.encode(text, true), ids);
  EXPECT_EQ(m.tokenizer.encode(text), std::vector<int32_t>(ids.begin() + 1, ids.end()));
  EXPECT_EQ(import_gguf(kDir + "bloom-q8_0.gguf").tokenizer.leading_special(), std::nullopt);
  test::write_text(dir_ / "text.txt", text);
  const std::string ev = " --text " + (dir_ / "text.txt") + " --mode second-half --lengths " +
                         std::to_string(want.at("length").get<int>());
  const test::CliResult e =
      run_cli("eval " + file + ev + " --json " + (dir_ / "e.json"), dir_ / "e");
  ASSERT_EQ(e.code, 0) << e.err;
  const auto j = nlohmann::json::parse(test::read_text(dir_ / "e.json"));
  EXPECT_EQ(j.at("chunk_bos"), bos);
  EXPECT_EQ(j.at("tokens"), ids.size());
  const double ppl = j.at("results")[0].at("ppl"), llama = want.at("ppl");
  EXPECT_NEAR(ppl, llama, 1e-3 * llama);
  // The text prepared with the file's tokenizer: the same stream, BOS first, the same result.
  ASSERT_EQ(run_cli("prepare --input " + golden_splits(dir_) + " --out " + (dir_ / "data") +
                        " --tokenizer-from " + file,
                    dir_ / "p")
                .code,
            0);
  const std::string ed = " --data " + (dir_ / "data") + " --split test --mode second-half" +
                         " --lengths " + std::to_string(want.at("length").get<int>());
  ASSERT_EQ(run_cli("eval " + file + ed + " --json " + (dir_ / "d.json"), dir_ / "d").code, 0);
  const auto d = nlohmann::json::parse(test::read_text(dir_ / "d.json"));
  EXPECT_EQ(d.at("tokens"), ids.size());
  EXPECT_EQ(d.at("results")[0].at("ppl"), j.at("results")[0].at("ppl"));
  const Gguf g = Gguf::read(written_back(file));
  EXPECT_TRUE(g.get_bool("tokenizer.ggml.add_bos_token"));
  EXPECT_EQ(g.get_int("tokenizer.ggml.bos_token_id"), bos);
}

// add_eos_token true as well: the tokenizer with special tokens ends a text with eos_token_id, as
// llama-tokenize does, and export writes the flag back. A prompt (generate, serve) and eval's text
// never end with it: llama.cpp's completion and llama-perplexity refuse such a file instead, and
// eval runs as on the add_bos_token file.
TEST_F(GgufSpecialTokens, AddEosTokenEndsTheTokenizersTextOnly) {
  const auto flags = [](bool eos) {
    return [eos](GgufWriter& w, const Gguf&, std::vector<std::string>&) {
      w.add_bool("tokenizer.ggml.add_bos_token", true);
      if (eos) w.add_bool("tokenizer.ggml.add_eos_token", true);
    };
  };
  const std::string file = variant(flags(true)), bos_only = variant(flags(false));
  const nlohmann::json& want = golden("bloom-bos");
  const int32_t eos = int32_t(Gguf::read(file).get_int("tokenizer.ggml.eos_token_id"));
  const GgufImport m = import_gguf(file);
  const std::string text = golden().at("text");
  const auto ids = want.at("eos_llama_ids").get<std::vector<int32_t>>();
  EXPECT_EQ(m.tokenizer.trailing_special(), eos);
  EXPECT_EQ(m.tokenizer.encode(text, true), ids);
  EXPECT_EQ(m.tokenizer.encode_prompt(text), want.at("llama_ids").get<std::vector<int32_t>>());
  EXPECT_EQ(import_gguf(bos_only).tokenizer.trailing_special(), std::nullopt);
  test::write_text(dir_ / "text.txt", text);
  const std::string ev = " --text " + (dir_ / "text.txt") + " --mode second-half --lengths 16";
  std::vector<nlohmann::json> results;
  for (const std::string& f : {file, bos_only}) {
    const std::string out = dir_ / "e.json";
    const test::CliResult e = run_cli("eval " + f + ev + " --json " + out, dir_ / "e");
    ASSERT_EQ(e.code, 0) << e.err;
    results.push_back(nlohmann::json::parse(test::read_text(out)));
  }
  EXPECT_EQ(results[0].at("tokens"), results[1].at("tokens"));
  EXPECT_EQ(results[0].at("results")[0].at("loss"), results[1].at("results")[0].at("loss"));
  const Gguf g = Gguf::read(written_back(file));
  EXPECT_TRUE(g.get_bool("tokenizer.ggml.add_eos_token"));
  EXPECT_EQ(g.get_int("tokenizer.ggml.eos_token_id"), eos);
  EXPECT_EQ(import_gguf(g.path()).tokenizer.encode(text, true), ids);
}

// add_bos_token true: generate and serve run a prompt as llama.cpp's completion and server do,
// BOS first (tests/ref/make_gguf_bos_golden.py: llama-cpp-python on the same file). The tiny
// model's greedy tokens are the same with and without it, so the log-probabilities tell
// (kBosLogprobTol). They are over the tokenizer's ids, which leave out the file's [PAD] rows.
TEST_F(GgufSpecialTokens, AddBosTokenStartsEachPromptOfGenerateAndServe) {
  const std::string file = variant([](GgufWriter& w, const Gguf&, std::vector<std::string>&) {
    w.add_bool("tokenizer.ggml.add_bos_token", true);
  });
  const nlohmann::json& want = golden("bloom-bos");
  const std::string prompt = want.at("prompt");
  const auto prompt_ids = want.at("prompt_ids").get<std::vector<int32_t>>();
  const auto greedy = want.at("greedy").get<std::vector<int32_t>>();
  const auto logprobs = want.at("logprobs").get<std::vector<double>>();
  const GgufImport m = import_gguf(file);
  EXPECT_EQ(m.tokenizer.encode_prompt(prompt), prompt_ids);
  const std::string text = m.tokenizer.decode(greedy);
  const std::string n = std::to_string(greedy.size());
  test::write_text(dir_ / "prompt.txt", prompt);
  const test::CliResult g = run_cli("generate " + file + " --prompt-file " + (dir_ / "prompt.txt") +
                                        " --max-new-tokens " + n + " --temperature 0",
                                    dir_ / "g");
  ASSERT_EQ(g.code, 0) << g.err;
  EXPECT_EQ(g.out, text);
  EXPECT_NE(g.err.find(str_cat("prompt: ", prompt_ids.size(), " tokens")), std::string::npos)
      << g.err;
  // --interactive: the BOS starts the context, not each line.
  test::write_text(dir_ / "turns.txt", "ROMEO:\nROMEO:\n");
  const test::CliResult it =
      run_cli("generate " + file + " --interactive --max-new-tokens 2 <" + (dir_ / "turns.txt"),
              dir_ / "it");
  ASSERT_EQ(it.code, 0) << it.err;
  const size_t line = m.tokenizer.encode("ROMEO:").size();
  // The BOS, the two lines and turn 1's last token, fed when turn 2 starts.
  EXPECT_NE(it.err.find(str_cat("prompt: ", 1 + 2 * line + 1, " tokens")), std::string::npos)
      << it.err;
  test::ServeProcess s(file, dir_ / "serve.err");
  ASSERT_GT(s.port, 0) << test::read_text(dir_ / "serve.err");
  const nlohmann::json body = {
      {"prompt", prompt}, {"max_tokens", greedy.size()}, {"temperature", 0}, {"logprobs", 0}};
  const httplib::Result r = s.client().Post("/v1/completions", body.dump(), "application/json");
  ASSERT_TRUE(r) << httplib::to_string(r.error());
  ASSERT_EQ(r->status, 200) << r->body;
  const auto j = nlohmann::json::parse(r->body);
  EXPECT_EQ(j.at("usage").at("prompt_tokens"), prompt_ids.size());
  EXPECT_EQ(j.at("choices")[0].at("text"), text);
  const auto got =
      j.at("choices")[0].at("logprobs").at("token_logprobs").get<std::vector<double>>();
  ASSERT_EQ(got.size(), logprobs.size());
  for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], logprobs[i], kBosLogprobTol) << i;
  EXPECT_EQ(s.stop().code, 0);
}

}  // namespace
}  // namespace alibi
