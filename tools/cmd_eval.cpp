// alibi eval (placeholder until the evaluation job lands).
#include "commands.h"
#include "core/error.h"

namespace alibi::cli {

Command add_eval(CLI::App& app) {
  CLI::App* c = add_subcommand(app, "eval", "evaluate a checkpoint at any length");
  return {c, [] { usage_error("alibi eval is not built yet"); }};
}

}  // namespace alibi::cli
