// alibi tokenize: text to ids and back with any tokenizer alibi reads (a tokenizer.json, a
// SentencePiece .model, a data folder, a run folder or checkpoint, or "bytes"), as spm_encode
// and spm_decode are for SentencePiece. Reads --text FILE or stdin; writes stdout.
#include <omp.h>

#include <cctype>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <sstream>

#include "commands.h"
#include "core/error.h"
#include "core/io.h"
#include "core/rss.h"
#include "data/tokenizer.h"
#include "model/checkpoint.h"

namespace alibi::cli {

namespace {

struct TokenizeOptions {
  std::string tokenizer;
  std::string text;  // empty: stdin
  bool decode = false, pieces = false, json = false, no_special = false, keep_special = false;
};

std::string read_input(const std::string& path) {
  if (!path.empty()) return read_file(path, "--text");
  std::ostringstream ss;
  ss << std::cin.rdbuf();
  return ss.str();
}

// "12 7 3" or "[12, 7, 3]" -> ids; a UsageError naming the first thing that is not an id.
std::vector<int32_t> parse_ids(const std::string& s, const std::string& where) {
  std::vector<int32_t> ids;
  size_t i = 0;
  auto sep = [](char c) { return std::isspace(uint8_t(c)) || c == ',' || c == '[' || c == ']'; };
  while (i < s.size()) {
    if (sep(s[i])) {
      ++i;
      continue;
    }
    size_t j = i;
    while (j < s.size() && !sep(s[j])) ++j;
    const std::string word = s.substr(i, j - i);
    size_t used = 0;
    long long v = -1;
    try {
      v = std::stoll(word, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != word.size() || v < 0 || v > INT32_MAX)
      usage_error(where, ": '", word.substr(0, 40),
                  "' is not a token id; expected ids separated by "
                  "spaces (or a JSON array) with --decode");
    ids.push_back(int32_t(v));
    i = j;
  }
  return ids;
}

// A piece with control characters and backslashes escaped, so that each fits on one line.
std::string printable(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    if (c == '\\') out += "\\\\";
    else if (c == '\n') out += "\\n";
    else if (c == '\t') out += "\\t";
    else if (c == '\r') out += "\\r";
    else if (c < 0x20 || c == 0x7F) {
      char hex[8];
      std::snprintf(hex, sizeof hex, "\\x%02X", c);
      out += hex;
    } else {
      out += char(c);
    }
  }
  return out;
}

void run_tokenize(const TokenizeOptions& o) {
  const double rss0 = current_rss_mb();
  const auto t0 = std::chrono::steady_clock::now();
  const Tokenizer tok = load_tokenizer(o.tokenizer);
  const auto t1 = std::chrono::steady_clock::now();
  const double tokenizer_mb = current_rss_mb() - rss0;
  const std::string input = read_input(o.text);
  const std::string where = o.text.empty() ? "stdin" : str_cat("--text '", o.text, "'");
  if (o.decode) {
    const std::string text = tok.decode(parse_ids(input, where), o.keep_special);
    if (o.json)
      std::cout << nlohmann::json{{"text", text}}.dump(-1, ' ', false,
                                                       nlohmann::json::error_handler_t::replace)
                << "\n";
    else std::cout << text;
    return;
  }
  const auto t2 = std::chrono::steady_clock::now();
  const std::vector<int32_t> ids = tok.encode_parallel(input, omp_get_max_threads(), !o.no_special);
  const auto t3 = std::chrono::steady_clock::now();
  if (o.json) {
    auto secs = [](auto a, auto b) { return std::chrono::duration<double>(b - a).count(); };
    nlohmann::json j{{"ids", ids}, {"tokens", ids.size()}, {"bytes", input.size()},
                     {"threads", omp_get_max_threads()}, {"load_seconds", secs(t0, t1)},
                     {"encode_seconds", secs(t2, t3)}, {"tokenizer_rss_mb", tokenizer_mb}};
    if (o.pieces) {
      j["pieces"] = nlohmann::json::array();
      for (int32_t id : ids) j["pieces"].push_back(tok.piece(id));
    }
    std::cout << j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
  } else if (o.pieces) {
    for (int32_t id : ids) std::cout << id << "\t" << printable(tok.piece(id)) << "\n";
  } else {
    for (size_t i = 0; i < ids.size(); ++i) std::cout << (i ? " " : "") << ids[i];
    std::cout << "\n";
  }
}

}  // namespace

Command add_tokenize(CLI::App& app) {
  auto o = std::make_shared<TokenizeOptions>();
  CLI::App* c = add_subcommand(app, "tokenize", "Text to token ids and back (--decode)");
  c->add_option("--tokenizer", o->tokenizer,
                "a tokenizer.json, SentencePiece .model, Hugging Face model folder, data folder, "
                "run folder or checkpoint, or 'bytes'")->required();
  c->add_option("--text", o->text, "input file (default: stdin)");
  c->add_flag("--decode", o->decode, "read ids (spaces or a JSON array), write the text");
  c->add_flag("--pieces", o->pieces, "write one 'id<TAB>piece' line per token (escaped)");
  c->add_flag("--json", o->json, "write JSON: {ids, tokens, bytes, threads, load_seconds, "
              "encode_seconds, tokenizer_rss_mb[, pieces]} or {text}");
  c->add_flag("--no-special", o->no_special,
              "do not add the tokenizer's BOS/EOS (a tokenizer.json's post-processor)");
  c->add_flag("--keep-special", o->keep_special,
              "--decode: write special tokens (<s>, </s>, added special tokens) as they are "
              "spelt instead of dropping them (Hugging Face's skip_special_tokens=False)");
  return {c, [o] {
            if (o->keep_special && !o->decode)
              usage_error("--keep-special applies to --decode (encoding keeps the special "
                          "tokens the text spells; --no-special drops the added BOS/EOS)");
            run_tokenize(*o);
          }};
}

}  // namespace alibi::cli
