#include "serve/request.h"

#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>

#include "core/error.h"

namespace alibi::serve {
namespace {

using nlohmann::json;

constexpr int kMaxDepth = 32;    // JSON nesting a body may have (ours need 3)
constexpr size_t kMaxStops = 4;  // OpenAI's limit
constexpr size_t kMaxStopBytes = 256;
constexpr int kMaxLogprobs = 5;  // OpenAI's limit

// A value as the error message shows it: its JSON, cut to 40 bytes, and its type.
std::string shown(const json& v) {
  std::string s = v.dump(-1, ' ', false, json::error_handler_t::replace);
  if (s.size() > 40) s = s.substr(0, 37) + "...";
  return s + " (" +
         (v.is_number_integer() ? "an integer"
          : v.is_number()       ? "a number"
          : v.is_string()       ? "a string"
          : v.is_boolean()      ? "a boolean"
          : v.is_array()        ? "an array"
          : v.is_object()       ? "an object"
                                : "null") +
         ")";
}

[[noreturn]] void bad_field(const std::string& name, const json& v, const std::string& expected) {
  throw ApiError(400, str_cat("'", name, "' is ", shown(v), "; expected ", expected), name);
}

json parse_body(std::string_view body) {
  if (body.empty()) throw ApiError(400, "the request body is empty; expected a JSON object");
  json j;
  try {
    j = json::parse(body, [](int depth, json::parse_event_t, json&) {
      if (depth > kMaxDepth)
        throw ApiError(400, str_cat("the JSON body nests deeper than ", kMaxDepth, " levels"));
      return true;
    });
  } catch (const json::exception& e) {
    throw ApiError(400, str_cat("the request body is not valid JSON: ", e.what()));
  }
  if (!j.is_object())
    throw ApiError(400, "the request body is " + shown(j) + "; expected an object");
  return j;
}

// The field, or null where it is absent or JSON null (OpenAI's clients send null for unset).
const json* field(const json& o, const char* name) {
  const auto it = o.find(name);
  return it == o.end() || it->is_null() ? nullptr : &*it;
}

int64_t get_int(const json& o, const char* name, int64_t def, int64_t lo, int64_t hi) {
  const json* v = field(o, name);
  if (!v) return def;
  const std::string range = str_cat("an integer in ", lo, "..", hi);
  if (v->is_number_unsigned()) {
    // JSON's non-negative integers parse as unsigned: 0 may still be below lo.
    const uint64_t u = v->get<uint64_t>();
    if (u > uint64_t(hi) || (lo > 0 && u < uint64_t(lo))) bad_field(name, *v, range);
    return int64_t(u);
  }
  if (!v->is_number_integer()) bad_field(name, *v, range);
  const int64_t x = v->get<int64_t>();
  if (x < lo || x > hi) bad_field(name, *v, range);
  return x;
}

double get_number(const json& o, const char* name, double def, double lo, double hi) {
  const json* v = field(o, name);
  if (!v) return def;
  const std::string range = str_cat("a number in [", lo, ", ", hi, "]");
  if (!v->is_number()) bad_field(name, *v, range);
  const double x = v->get<double>();
  if (!std::isfinite(x) || x < lo || x > hi) bad_field(name, *v, range);
  return x;
}

bool get_bool(const json& o, const char* name, bool def) {
  const json* v = field(o, name);
  if (!v) return def;
  if (!v->is_boolean()) bad_field(name, *v, "true or false");
  return v->get<bool>();
}

// A token id of a prompt given as ids; `where` names it ("prompt[1][3]").
int32_t get_id(const json& v, const std::string& where, int vocab) {
  const std::string range = str_cat("a token id in 0..", vocab - 1);
  if (v.is_number_unsigned() && v.get<uint64_t>() < uint64_t(vocab))
    return int32_t(v.get<uint64_t>());
  if (v.is_number_integer() && v.get<int64_t>() >= 0 && v.get<int64_t>() < vocab)
    return int32_t(v.get<int64_t>());
  throw ApiError(400, str_cat("'", where, "' is ", shown(v), "; expected ", range), "prompt");
}

std::vector<Prompt> get_prompts(const json& o, const RequestLimits& lim) {
  const json* v = field(o, "prompt");
  if (!v)
    throw ApiError(400, "'prompt' is missing; expected a string or a list of strings", "prompt");
  const std::string expected =
      "a string, a list of strings, a list of token ids or a list of "
      "lists of token ids";
  std::vector<Prompt> out;
  if (v->is_string()) {
    out.push_back({v->get<std::string>(), {}, false});
    return out;
  }
  if (!v->is_array() || v->empty()) bad_field("prompt", *v, expected);
  const json& first = v->front();
  if (first.is_number()) {  // one prompt of ids
    Prompt p{{}, {}, true};
    for (size_t i = 0; i < v->size(); ++i)
      p.ids.push_back(get_id((*v)[i], str_cat("prompt[", i, "]"), lim.vocab));
    out.push_back(std::move(p));
    return out;
  }
  if (v->size() > size_t(lim.max_sequences))
    throw ApiError(400,
                   str_cat("'prompt' holds ", v->size(), " prompts; this server runs at most ",
                           lim.max_sequences, " sequences of one request (--max-batch)"),
                   "prompt");
  for (size_t i = 0; i < v->size(); ++i) {
    const json& e = (*v)[i];
    if (e.is_string() && first.is_string()) {
      out.push_back({e.get<std::string>(), {}, false});
    } else if (e.is_array() && first.is_array() && !e.empty()) {
      Prompt p{{}, {}, true};
      for (size_t k = 0; k < e.size(); ++k)
        p.ids.push_back(get_id(e[k], str_cat("prompt[", i, "][", k, "]"), lim.vocab));
      out.push_back(std::move(p));
    } else {
      bad_field(str_cat("prompt[", i, "]"), e,
                first.is_string() ? "a string, as prompt[0]" : "a non-empty list of token ids");
    }
  }
  return out;
}

std::vector<std::string> get_stop(const json& o) {
  const json* v = field(o, "stop");
  std::vector<std::string> out;
  if (!v) return out;
  const std::string expected = str_cat("a string or a list of at most ", kMaxStops,
                                       " non-empty strings of at most ", kMaxStopBytes, " bytes");
  auto take = [&](const json& s) {
    if (!s.is_string() || s.get_ref<const std::string&>().empty() ||
        s.get_ref<const std::string&>().size() > kMaxStopBytes)
      bad_field("stop", *v, expected);
    out.push_back(s.get<std::string>());
  };
  if (v->is_array()) {
    if (v->size() > kMaxStops) bad_field("stop", *v, expected);
    for (const json& s : *v) take(s);
  } else {
    take(*v);
  }
  return out;
}

// Fields of OpenAI's API this server does not implement: accepted at their neutral value,
// refused (naming the field) otherwise.
void refuse_unsupported(const json& o, int n) {
  auto refuse = [](const char* name, const std::string& why) {
    throw ApiError(400, str_cat("'", name, "' ", why, " is not supported by this server"), name);
  };
  if (const json* v = field(o, "best_of"); v && !(v->is_number_integer() && v->get<int64_t>() == n))
    refuse("best_of", "other than n");
  if (const json* v = field(o, "suffix"); v && !(v->is_string() && v->get<std::string>().empty()))
    refuse("suffix", "(insertion)");
  if (const json* v = field(o, "logit_bias"); v && !(v->is_object() && v->empty()))
    refuse("logit_bias", "other than {}");
  for (const char* name : {"presence_penalty", "frequency_penalty"})
    if (const json* v = field(o, name); v && !(v->is_number() && v->get<double>() == 0.0))
      refuse(name, "other than 0");
}

}  // namespace

ApiError::ApiError(int status_, std::string message_, std::string param_, std::string type_,
                   std::string code_)
    : status(status_),
      message(std::move(message_)),
      type(type_.empty() ? "invalid_request_error" : std::move(type_)),
      param(std::move(param_)),
      code(std::move(code_)) {}

std::string ApiError::body() const {
  const json j = {{"error",
                   {{"message", message},
                    {"type", type},
                    {"param", param.empty() ? json(nullptr) : json(param)},
                    {"code", code.empty() ? json(nullptr) : json(code)}}}};
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

CompletionRequest parse_completion(std::string_view body, const RequestLimits& lim) {
  const json o = parse_body(body);
  CompletionRequest r;
  if (const json* v = field(o, "model")) {
    if (!v->is_string()) bad_field("model", *v, "a string");
    r.model = v->get<std::string>();
  }
  r.prompts = get_prompts(o, lim);
  r.max_tokens = int(get_int(o, "max_tokens", 16, 0, lim.max_tokens));
  r.temperature = float(get_number(o, "temperature", 1.0, 0.0, 2.0));
  r.top_p = float(get_number(o, "top_p", 1.0, 0.0, 1.0));
  r.top_k = int(get_int(o, "top_k", 0, 0, std::numeric_limits<int>::max()));
  if (r.top_p == 0.0f) {  // OpenAI takes 0: only the most likely token
    r.top_p = 1.0f;
    r.top_k = 1;
  }
  if (field(o, "seed"))
    r.seed = uint64_t(get_int(o, "seed", 0, std::numeric_limits<int64_t>::min(),
                              std::numeric_limits<int64_t>::max()));
  r.n = int(get_int(o, "n", 1, 1, lim.max_sequences));
  if (r.prompts.size() * size_t(r.n) > size_t(lim.max_sequences))
    throw ApiError(400,
                   str_cat("'n' is ", r.n, " for ", r.prompts.size(),
                           " prompts: ", r.prompts.size() * size_t(r.n),
                           " sequences; this server runs at "
                           "most ",
                           lim.max_sequences, " of one request (--max-batch)"),
                   "n");
  r.stop = get_stop(o);
  r.stream = get_bool(o, "stream", false);
  if (const json* v = field(o, "stream_options")) {
    if (!v->is_object()) bad_field("stream_options", *v, "an object");
    r.include_usage = get_bool(*v, "include_usage", false);
  }
  r.echo = get_bool(o, "echo", false);
  r.logprobs = int(get_int(o, "logprobs", -1, 0, kMaxLogprobs));
  if (r.echo && r.logprobs >= 0)
    throw ApiError(400,
                   "'logprobs' with 'echo' is not supported by this server (the prompt's "
                   "tokens are not scored)",
                   "logprobs");
  refuse_unsupported(o, r.n);
  return r;
}

TokenizeRequest parse_tokenize(std::string_view body) {
  const json o = parse_body(body);
  const json* v = field(o, "content");
  if (!v || !v->is_string())
    throw ApiError(400, str_cat("'content' is ", v ? shown(*v) : "missing", "; expected a string"),
                   "content");
  return {v->get<std::string>(), get_bool(o, "add_special", false),
          get_bool(o, "with_pieces", false)};
}

std::vector<int32_t> parse_detokenize(std::string_view body, int vocab) {
  const json o = parse_body(body);
  const json* v = field(o, "tokens");
  if (!v || !v->is_array())
    throw ApiError(
        400, str_cat("'tokens' is ", v ? shown(*v) : "missing", "; expected a list of token ids"),
        "tokens");
  std::vector<int32_t> ids;
  for (size_t i = 0; i < v->size(); ++i) {
    const json& e = (*v)[i];
    if (!(e.is_number_integer() && e.get<int64_t>() >= 0 && e.get<int64_t>() < vocab) &&
        !(e.is_number_unsigned() && e.get<uint64_t>() < uint64_t(vocab)))
      throw ApiError(
          400,
          str_cat("'tokens[", i, "]' is ", shown(e), "; expected a token id in 0..", vocab - 1),
          "tokens");
    ids.push_back(int32_t(e.get<int64_t>()));
  }
  return ids;
}

bool same_key(std::string_view given, std::string_view key) {
  // Every byte of the key is compared whatever the input; only lengths decide the loop.
  unsigned diff = given.size() == key.size() ? 0u : 1u;
  for (size_t i = 0; i < key.size(); ++i)
    diff |= unsigned(static_cast<unsigned char>(i < given.size() ? given[i] : 0) ^
                     static_cast<unsigned char>(key[i]));
  return diff == 0;
}

}  // namespace alibi::serve
