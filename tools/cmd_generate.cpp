// alibi generate (placeholder until the generation job lands).
#include "commands.h"
#include "core/error.h"

namespace alibi::cli {

Command add_generate(CLI::App& app) {
  CLI::App* c = add_subcommand(app, "generate", "generate text from a checkpoint");
  return {c, [] { usage_error("alibi generate is not built yet"); }};
}

}  // namespace alibi::cli
