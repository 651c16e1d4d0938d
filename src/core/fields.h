#pragma once
// Every field of a settings struct (ModelConfig, TrainOptions) declared once, as a row of a
// table: its JSON key in a checkpoint, its member, its default (the struct's own initialiser),
// the value settings stored before the field existed take, its CLI flag and help, its role and
// its range. Reading and writing checkpoints, comparing shapes, the flags with their defaults in
// --help and the resume / --init-from checks all walk the table, so a new field is one row
// (CTranslate2 declares its spec attributes once and serialises by walking them).
//
//   Field<ModelConfig>::of(ALIBI_MEMBER(ModelConfig, layers), "layers")
//       .flag("--layers", "transformer blocks").role(Role::shape).at_least(1)
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

#include "core/error.h"
#include "core/json_int.h"

namespace alibi {

// What a field is to a run.
enum class Role {
  shape,  // the model's shape and function: same_shape compares it; a resume and --init-from
          // take the checkpoint's value (a flag that contradicts it is refused)
  model,  // comes with the weights without being the shape (the initialisation scheme): as
          // shape, but same_shape ignores it
  fixed,  // the run's own (learning rate, dropout): a resume keeps the checkpoint's (a flag that
          // contradicts it is refused); a new run from --init-from takes the flag's
  free,   // may change when a run resumes (validation cadence, the device)
};

// An accessor of a member, nested ones included: ALIBI_MEMBER(TrainOptions, adamw.beta1).
#define ALIBI_MEMBER(S, member) (+[](S& s) -> auto& { return s.member; })

template <class S>
struct Field {
  std::string key;    // JSON key in stored settings ("": never stored)
  std::string flag;   // CLI flag ("": none)
  std::string help;
  std::string type;   // in --help: INT, FLOAT, BOOL, TEXT, or the choices "a|b|c"
  Role role = Role::free;
  bool is_switch = false;  // a flag that takes no value (--check-finite)
  // An option of how a model runs rather than what it is (context extension): eval and
  // generate take its flag too, and set it on the checkpoint's settings.
  bool at_inference = false;
  // The value stored settings without the key take; none: the key is required.
  std::optional<nlohmann::json> legacy;
  // For a position method's own fields: whether they mean anything for these settings (t5's
  // table options for a t5 model). Null: always.
  std::function<bool(const S&)> applies;
  std::function<nlohmann::json(const S&)> get;  // enums as their names
  std::function<std::string(const S&)> show;    // the value as --help shows it
  // From stored JSON, or from a flag's text; `what` names the source in the one-line error.
  std::function<void(S&, const nlohmann::json&, const std::string& what)> set;
  std::function<void(S&, const std::string& text, const std::string& what)> parse;
  std::vector<std::function<void(const S&, const std::string& what)>> checks;  // its range

  // How errors name the field: its flag, or "config KEY".
  std::string name() const { return flag.empty() ? "config " + key : flag; }
  bool applies_to(const S& s) const { return !applies || applies(s); }

  // A row for the member `ref` reaches, of type T: an integer, float, bool or string.
  template <class T>
  static Field of(T& (*ref)(S&), std::string key);
  // A row for an enum member, stored and given by name.
  template <class E>
  static Field of_enum(E& (*ref)(S&), std::string key, const char* (*name)(E),
                       E (*parse_name)(const std::string&, const std::string&),
                       std::string choices);

  Field& flag_help(std::string f, std::string h) {
    flag = std::move(f);
    help = std::move(h);
    return *this;
  }
  Field& as_role(Role r) {
    role = r;
    return *this;
  }
  // --help's type: the values a text field takes ("fp32|bf16").
  Field& choices(std::string c) {
    type = std::move(c);
    return *this;
  }
  Field& as_switch() {
    is_switch = true;
    return *this;
  }
  // An option of how a model runs rather than what it is (context extension): a resume keeps it
  // and a fine-tune (--init-from) takes the flag's (Role::fixed), eval and generate set it too,
  // and stored settings from before it ran without it (its default).
  Field& run_option() {
    role = Role::fixed;
    at_inference = true;
    return legacy_default();
  }
  // Stored settings from before the field take its default (the struct's initialiser)...
  Field& legacy_default() {
    legacy = get(S{});
    return *this;
  }
  // ... or this value.
  Field& legacy_value(nlohmann::json v) {
    legacy = std::move(v);
    return *this;
  }
  Field& only_if(std::function<bool(const S&)> f) {
    applies = std::move(f);
    return *this;
  }
  Field& at_least(double lo) {
    return check([lo](double v) { return v >= lo; }, "must be at least " + num_text(lo));
  }
  // A finite number > 0.
  Field& positive() {
    return check([](double v) { return v > 0 && std::isfinite(v); }, "must be a positive number");
  }
  // A probability of dropping: [0, 1).
  Field& unit_interval() {
    return check([](double v) { return v >= 0 && v < 1; }, "must be in [0, 1)");
  }
  // A numeric field's range: "<name> <value> <says>" when ok(value) fails.
  Field& check(std::function<bool(double)> ok, std::string says) {
    const auto get_value = get;
    const auto show_value = show;
    checks.push_back([=](const S& s, const std::string& what) {
      if (!ok(get_value(s).template get<double>()))
        usage_error(what, " ", show_value(s), " ", says);
    });
    return *this;
  }

 private:
  static std::string num_text(double x) {
    return x == std::trunc(x) ? std::to_string(int64_t(x)) : std::to_string(x);
  }
};

namespace fields_detail {

// The shortest text that reads back as x (1e-05, not 9.99999974737875e-06).
template <class T>
std::string shortest(T x) {
  char buf[64];
  const auto r = std::to_chars(buf, buf + sizeof(buf), x);
  return std::string(buf, r.ptr);
}

template <class T>
T from_json(const nlohmann::json& v, const std::string& what) {
  if constexpr (std::is_same_v<T, bool>) {
    if (!v.is_boolean()) usage_error(what, " is ", v.dump(), "; expected true or false");
    return v.get<bool>();
  } else if constexpr (std::is_same_v<T, std::string>) {
    if (!v.is_string()) usage_error(what, " is ", v.dump(), "; expected a string");
    return v.get<std::string>();
  } else if constexpr (std::is_same_v<T, int>) {
    return json_int(v, what);
  } else if constexpr (std::is_integral_v<T>) {  // int64_t, uint64_t
    if (v.is_number_integer() && (std::is_signed_v<T> || v.is_number_unsigned() ||
                                  v.get<int64_t>() >= 0))
      return v.get<T>();
    usage_error(what, " is ", v.dump(), "; expected ",
                std::is_signed_v<T> ? "an integer" : "an integer >= 0");
  } else {
    if (!v.is_number()) usage_error(what, " is ", v.dump(), "; expected a number");
    return v.get<T>();
  }
}

template <class T>
T from_text(const std::string& text, const std::string& what) {
  if constexpr (std::is_same_v<T, std::string>) {
    return text;
  } else if constexpr (std::is_same_v<T, bool>) {
    for (const char* t : {"true", "1", "yes", "on"})
      if (text == t) return true;
    for (const char* f : {"false", "0", "no", "off"})
      if (text == f) return false;
    usage_error(what, " '", text, "' is not a truth value; expected true or false");
  } else {
    T v{};
    const char* end = text.data() + text.size();
    std::from_chars_result r{};
    if constexpr (std::is_floating_point_v<T>)
      r = std::from_chars(text.data(), end, v, std::chars_format::general);
    else
      r = std::from_chars(text.data(), end, v);
    if (text.empty() || r.ec != std::errc() || r.ptr != end)
      usage_error(what, " '", text, "' is not ",
                  std::is_floating_point_v<T> ? "a number"
                  : std::is_signed_v<T>      ? "an integer"
                                             : "an integer >= 0",
                  r.ec == std::errc::result_out_of_range ? " in range" : "");
    return v;
  }
}

template <class T>
std::string type_name() {
  if constexpr (std::is_same_v<T, bool>) return "BOOL";
  else if constexpr (std::is_same_v<T, std::string>) return "TEXT";
  else if constexpr (std::is_floating_point_v<T>) return "FLOAT";
  else return "INT";
}

}  // namespace fields_detail

template <class S>
template <class T>
Field<S> Field<S>::of(T& (*ref)(S&), std::string key) {
  Field f;
  f.key = std::move(key);
  f.type = fields_detail::type_name<T>();
  f.get = [ref](const S& s) { return nlohmann::json(ref(const_cast<S&>(s))); };
  f.show = [ref](const S& s) {
    const T& v = ref(const_cast<S&>(s));
    if constexpr (std::is_same_v<T, std::string>) return v;
    else if constexpr (std::is_same_v<T, bool>) return std::string(v ? "true" : "false");
    else if constexpr (std::is_floating_point_v<T>) return fields_detail::shortest(v);
    else return std::to_string(v);
  };
  f.set = [ref](S& s, const nlohmann::json& v, const std::string& what) {
    ref(s) = fields_detail::from_json<T>(v, what);
  };
  f.parse = [ref](S& s, const std::string& text, const std::string& what) {
    ref(s) = fields_detail::from_text<T>(text, what);
  };
  return f;
}

template <class S>
template <class E>
Field<S> Field<S>::of_enum(E& (*ref)(S&), std::string key, const char* (*name)(E),
                           E (*parse_name)(const std::string&, const std::string&),
                           std::string choices) {
  Field f;
  f.key = std::move(key);
  f.type = std::move(choices);
  f.get = [ref, name](const S& s) { return nlohmann::json(name(ref(const_cast<S&>(s)))); };
  f.show = [ref, name](const S& s) { return std::string(name(ref(const_cast<S&>(s)))); };
  f.set = [ref, parse_name](S& s, const nlohmann::json& v, const std::string& what) {
    ref(s) = parse_name(fields_detail::from_json<std::string>(v, what), what);
  };
  f.parse = [ref, parse_name](S& s, const std::string& text, const std::string& what) {
    ref(s) = parse_name(text, what);
  };
  return f;
}

// The fields of an inner struct as fields of the outer one that holds it (TrainOptions::model).
template <class Outer, class Inner>
Field<Outer> lift(const Field<Inner>& f, Inner& (*ref)(Outer&)) {
  Field<Outer> o;
  o.key = f.key;
  o.flag = f.flag;
  o.help = f.help;
  o.type = f.type;
  o.role = f.role;
  o.is_switch = f.is_switch;
  o.at_inference = f.at_inference;
  o.legacy = f.legacy;
  auto in = [ref](const Outer& s) -> const Inner& { return ref(const_cast<Outer&>(s)); };
  if (f.applies) o.applies = [f, in](const Outer& s) { return f.applies(in(s)); };
  o.get = [f, in](const Outer& s) { return f.get(in(s)); };
  o.show = [f, in](const Outer& s) { return f.show(in(s)); };
  o.set = [f, ref](Outer& s, const nlohmann::json& v, const std::string& w) { f.set(ref(s), v, w); };
  o.parse = [f, ref](Outer& s, const std::string& t, const std::string& w) { f.parse(ref(s), t, w); };
  for (const auto& c : f.checks)
    o.checks.push_back([c, in](const Outer& s, const std::string& w) { c(in(s), w); });
  return o;
}

template <class S>
using Fields = std::vector<Field<S>>;

// The stored fields of s, by key.
template <class S>
nlohmann::json fields_to_json(const Fields<S>& fields, const S& s) {
  nlohmann::json j = nlohmann::json::object();
  for (const Field<S>& f : fields)
    if (!f.key.empty()) j[f.key] = f.get(s);
  return j;
}

// Settings from stored JSON: a missing key takes its legacy value, or is an error naming `what`
// (e.g. "checkpoint 'x' config").
template <class S>
S fields_from_json(const Fields<S>& fields, const nlohmann::json& j, const std::string& what) {
  if (!j.is_object()) usage_error(what, " is ", j.dump(), "; expected a JSON object");
  S s;
  for (const Field<S>& f : fields) {
    if (f.key.empty()) continue;
    const std::string where = what + " " + f.key;
    if (j.contains(f.key))
      f.set(s, j.at(f.key), where);
    else if (f.legacy)
      f.set(s, *f.legacy, where);
    else
      usage_error(what, " has no '", f.key, "'");
  }
  return s;
}

// Whether a and b agree on every field of the given roles that means anything for a.
template <class S>
bool same_fields(const Fields<S>& fields, const S& a, const S& b, std::initializer_list<Role> roles) {
  for (const Field<S>& f : fields) {
    if (std::find(roles.begin(), roles.end(), f.role) == roles.end()) continue;
    if (f.applies_to(a) && f.get(a) != f.get(b)) return false;
  }
  return true;
}

// Each field's own range, naming it as name() does.
template <class S>
void check_fields(const Fields<S>& fields, const S& s) {
  for (const Field<S>& f : fields)
    if (f.applies_to(s))
      for (const auto& c : f.checks) c(s, f.name());
}

template <class S>
const Field<S>* find_field(const Fields<S>& fields, const std::string& key) {
  for (const Field<S>& f : fields)
    if (f.key == key) return &f;
  return nullptr;
}

}  // namespace alibi
