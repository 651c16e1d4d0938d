#pragma once
// Each subcommand of the alibi CLI lives in its own file and registers itself here: it adds its
// flags (every one with a default, shown by --help) and returns what to run once parsing is done.
// UsageError thrown by a command becomes one line on stderr and exit code 2 (tools/alibi.cpp).
#include <CLI/CLI.hpp>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/memory_plan.h"

namespace alibi::cli {

struct Command {
  CLI::App* app = nullptr;
  std::function<void()> run;
  // Set for a command that stops gracefully on SIGINT/SIGTERM/SIGUSR1 for its whole run (after
  // parsing): what it says when asked to (core/signals.h; empty: nothing, nullopt: no scope).
  std::function<std::optional<std::string>()> stop;
  bool uses_device = false;  // computes on the global --device, plans its memory (--dry-run)
};

// The global options: given before or after the subcommand (alibi --threads 2 train or alibi
// train --threads 2), the rule for every global option (tools/alibi.cpp).
struct GlobalOptions {
  int threads = 0;             // OpenMP threads; 0: all cores
  std::string device = "cpu";  // where train, eval, generate, serve and bench compute
  // Their memory plan (core/memory_plan.h): --max-memory (parsed into memory.max_memory),
  // --dry-run.
  std::string max_memory = "auto";
  MemoryOptions memory;
};
const GlobalOptions& globals();

// A subcommand whose flags show their defaults and where a repeated flag takes its last value.
inline CLI::App* add_subcommand(CLI::App& parent, const std::string& name,
                                const std::string& help) {
  CLI::App* sub = parent.add_subcommand(name, help);
  sub->option_defaults()->always_capture_default()->multi_option_policy(
      CLI::MultiOptionPolicy::TakeLast);
  sub->footer(
      "Global options, before or after the subcommand (alibi --help): --threads N "
      "(OpenMP threads; 0: all cores), --device cpu|cuda (train, eval, generate, serve, "
      "bench), --max-memory SIZE, --dry-run (the same commands)");
  return sub;
}

// "128,256,512" -> {128, 256, 512}, sorted ascending without repeats; a UsageError naming
// `flag` for anything else (empty, not a number, < 1).
std::vector<int> parse_lengths(const std::string& flag, const std::string& s);

Command add_prepare(CLI::App& app);  // one file each: cmd_<name>.cpp (cmd_hf.cpp: import, export)
Command add_train(CLI::App& app);
Command add_eval(CLI::App& app);
Command add_generate(CLI::App& app);
Command add_bench(CLI::App& app);
Command add_tokenize(CLI::App& app);
Command add_import(CLI::App& app);
Command add_export(CLI::App& app);
Command add_serve(CLI::App& app);

}  // namespace alibi::cli
