#pragma once
// The flags of a field table (core/fields.h) on a CLI11 subcommand: each row with a flag becomes
// an option that shows its default and type in --help. After parsing, apply() sets the flags
// given, each parsed by its row (a bad value is a UsageError naming the flag), and given() tells
// which were.
#include <CLI/CLI.hpp>
#include <map>
#include <string>

#include "core/fields.h"

namespace alibi::cli {

template <class S>
class FieldFlags {
 public:
  FieldFlags(CLI::App* app, const Fields<S>& fields) : app_(app), fields_(&fields) {
    const S defaults{};
    for (const Field<S>& f : fields) {
      if (f.flag.empty()) continue;
      if (f.is_switch)
        app->add_flag(f.flag, switches_[f.flag], f.help);
      else
        app->add_option(f.flag, text_[f.flag], f.help)
            ->default_str(f.show(defaults))
            ->type_name(f.type);
    }
  }
  bool given(const std::string& flag) const { return app_->count(flag) > 0; }
  void apply(S& s) const {
    for (const Field<S>& f : *fields_) {
      if (f.flag.empty() || !given(f.flag)) continue;
      if (f.is_switch)
        f.set(s, true, f.flag);
      else
        f.parse(s, text_.at(f.flag), f.flag);
    }
  }

 private:
  CLI::App* app_;
  const Fields<S>* fields_;
  std::map<std::string, std::string> text_;  // bound by CLI11: node addresses are stable
  std::map<std::string, bool> switches_;
};

}  // namespace alibi::cli
