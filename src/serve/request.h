#pragma once
// The bodies `alibi serve` accepts (docs/serve.md), parsed into structs before anything else
// looks at them: POST /v1/completions (OpenAI's legacy completions API), /tokenize and
// /detokenize (llama-server's). Everything a body can get wrong is an ApiError naming the field,
// which the server answers with OpenAI's error object; the fuzz target
// tests/fuzz/fuzz_serve_request feeds these parsers arbitrary bytes, and ApiError is the only way
// they may refuse them.
#include <cstdint>
#include <exception>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace alibi::serve {

// An answer other than success, as OpenAI's error object:
//   {"error": {"message": ..., "type": ..., "param": ... | null, "code": ... | null}}
struct ApiError : std::exception {
  int status = 400;  // HTTP status
  std::string message;
  std::string type = "invalid_request_error";
  std::string param;  // the request field at fault ("" -> null)
  std::string code;   // "" -> null
  ApiError(int status, std::string message, std::string param = "", std::string type = "",
           std::string code = "");
  const char* what() const noexcept override { return message.c_str(); }
  std::string body() const;  // the JSON object above
};

// What one request may ask for (the server's flags; docs/serve.md).
struct RequestLimits {
  int vocab = 256;        // token ids in a prompt given as ids are below it
  int max_tokens = 4096;  // largest max_tokens
  int max_sequences = 8;  // prompts x n at most (the batch: all of a request runs at once)
  int max_prompt_bytes = 1 << 20;
};

// One prompt: text, or token ids (OpenAI's list-of-integers form).
struct Prompt {
  std::string text;
  std::vector<int32_t> ids;
  bool is_ids = false;
};

struct CompletionRequest {
  std::string model;            // as given (any name is accepted: one model is served)
  std::vector<Prompt> prompts;  // at least one
  int max_tokens = 16;          // OpenAI's default
  float temperature = 1.0f;     // 0: greedy
  float top_p = 1.0f;
  int top_k = 0;                  // not OpenAI's; llama-server's and ours (0: all)
  std::optional<uint64_t> seed;   // none: the server draws one
  int n = 1;                      // choices per prompt
  std::vector<std::string> stop;  // up to 4 non-empty strings
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage
  bool echo = false;
  int logprobs = -1;  // -1: none; 0..5: the chosen token's and this many others'
};

CompletionRequest parse_completion(std::string_view body, const RequestLimits& limits);

struct TokenizeRequest {
  std::string content;
  bool add_special = false;
  bool with_pieces = false;
};
TokenizeRequest parse_tokenize(std::string_view body);

// {"tokens": [ids]}: ids below `vocab`.
std::vector<int32_t> parse_detokenize(std::string_view body, int vocab);

// Whether `given` equals `key`, in time that depends on the key's length only (not on where they
// differ), so the API key cannot be found byte by byte by timing the answers.
bool same_key(std::string_view given, std::string_view key);

}  // namespace alibi::serve
