// alibi: train, evaluate and run transformer language models with ALiBi and its baselines.
//   alibi prepare | train | eval | generate | bench | tokenize | import | export | serve
//   (each subcommand in tools/cmd_*.cpp)
// Bad input exits with code 2 and one line naming the flag or file, the value and what is expected.
#include <omp.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "commands.h"
#include "core/error.h"
#include "core/signals.h"
#include "core/threads.h"
#include "dist/comm.h"
#include "dist/job.h"
#include "kernels/backend.h"

namespace {

// Under mpirun every rank meets the same bad input: rank 0 alone says so.
bool quiet_rank() { return alibi::launch_rank() != 0; }

int env_int(const char* name, int fallback) {
  const char* v = std::getenv(name);
  return v ? std::atoi(v) : fallback;
}

// Before any library constructor runs (they may start threads): the stop signals are blocked
// from here on in every thread of the process (core/signals.h).
void preinit(int, char**, char**) { alibi::block_stop_signals(); }
__attribute__((section(".preinit_array"), used)) void (*kPreinit)(int, char**, char**) = preinit;

alibi::cli::GlobalOptions g_globals;

// Whether the subcommand is serve: the first argument that is neither an option nor the value of
// one `app` declares with a value (before parsing: the re-exec of ensure_omp_wait_policy comes
// first).
bool serving(const CLI::App& app, char** argv) {
  for (int i = 1; argv[i] != nullptr; ++i) {
    const std::string a = argv[i];
    if (a.empty() || a[0] != '-') return a == "serve";
    const CLI::Option* o = app.get_option_no_throw(a);  // "--opt=value" matches no name
    if (o != nullptr && o->get_type_size() > 0 && argv[++i] == nullptr)  // skips its value
      return false;
  }
  return false;
}

}  // namespace

const alibi::cli::GlobalOptions& alibi::cli::globals() { return g_globals; }

int main(int argc, char** argv) {
  using namespace alibi;
  constexpr int kExitUsage = 2;
  CLI::App app{"alibi: train, evaluate and run transformer LMs with Attention with Linear Biases"};
  app.option_defaults()->always_capture_default();
  app.require_subcommand(1);
  app.fallthrough();  // a global option works before or after the subcommand
  int& threads = g_globals.threads;
  app.add_option("--threads", threads,
                 "OpenMP threads (0: all cores; under mpirun, the host's cores shared among its "
                 "ranks)");
  app.add_option("--device", g_globals.device,
                 "where train, eval, generate, serve and bench compute: " + device_names());
  app.add_option(
      "--max-memory", g_globals.max_memory,
      "memory train, eval, generate, serve and bench may plan for, e.g. 8G, 512M, 1.5GiB "
      "(auto: MemAvailable plus what alibi holds, or less under a cgroup's limit); a "
      "plan over it is refused before anything is allocated");
  app.add_flag("--dry-run", g_globals.memory.dry_run,
               "train, eval, generate, serve, bench: print the memory plan and stop");
  const std::vector<cli::Command> commands = {cli::add_prepare(app), cli::add_train(app),
                                              cli::add_eval(app), cli::add_generate(app),
                                              cli::add_bench(app), cli::add_tokenize(app),
                                              cli::add_import(app), cli::add_export(app),
                                              cli::add_serve(app)};
  // The re-executed process keeps the signals blocked.
  ensure_omp_wait_policy(argv, serving(app, argv) ? kServeSpinCount : kSpinCount);
  // A write past the file-size limit (ulimit -f) would otherwise kill us with SIGXFSZ and no
  // word; ignored, write() fails with EFBIG and the error names the file (docs/reliability.md).
  std::signal(SIGXFSZ, SIG_IGN);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    if (!quiet_rank()) std::fprintf(stderr, "alibi: error: %s (see --help)\n", e.what());
    return kExitUsage;
  }
  if (threads < 0) {
    std::fprintf(stderr, "alibi: error: --threads %d must be >= 0\n", threads);
    return kExitUsage;
  }
  if (threads > 0) omp_set_num_threads(threads);
  if (threads == 0 && launched_by_mpirun())  // the host's cores shared among its ranks
    omp_set_num_threads(default_threads_per_rank(int(std::thread::hardware_concurrency()),
                                                 env_int("OMPI_COMM_WORLD_LOCAL_SIZE", 1)));
  const cli::Command* chosen = nullptr;
  for (const cli::Command& c : commands)
    if (c.app->parsed()) chosen = &c;
  // The global options of the commands that compute and plan their memory, as given.
  const std::pair<std::string, std::string> compute_flags[] = {
      {"--device", " " + g_globals.device},
      {"--max-memory", " " + g_globals.max_memory},
      {"--dry-run", ""}};
  for (const auto& [flag, value] : compute_flags) {
    if (app.count(flag) == 0 || chosen->uses_device) continue;
    if (!quiet_rank())
      std::fprintf(stderr,
                   "alibi: error: %s%s applies to train, eval, generate, serve and bench, not "
                   "%s\n",
                   flag.c_str(), value.c_str(), chosen->app->get_name().c_str());
    return kExitUsage;
  }
  g_globals.memory.ranks_on_host = env_int("OMPI_COMM_WORLD_LOCAL_SIZE", 1);
  // A command that stops gracefully takes stop requests from its start to the process's exit:
  // they are requests before the thread that takes the signals starts, so one sent while alibi
  // starts up (held blocked since preinit) is a request like any other, and one sent as alibi
  // exits does not end it by the signal after its work is done.
  if (chosen->stop)
    if (const std::optional<std::string> what = chosen->stop()) take_stop_requests(*what);
  start_stop_thread();
  try {
    g_globals.memory.max_memory = parse_memory_size(g_globals.max_memory);
    chosen->run();
  } catch (const UsageError& e) {
    if (!quiet_rank()) std::fprintf(stderr, "alibi: error: %s\n", e.what());
    return kExitUsage;
  } catch (const Interrupted& e) {  // what was finished is written; say where it stopped
    if (!quiet_rank()) std::fprintf(stderr, "alibi: stopped by %s\n", e.what());
    return 128 + e.signal;
  } catch (const std::filesystem::filesystem_error& e) {
    // The OS refused a folder or file operation (a read-only or full disk): the user's to fix,
    // like bad input. what() names the operation, the reason and the path.
    if (!quiet_rank()) std::fprintf(stderr, "alibi: error: %s\n", e.what());
    return kExitUsage;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "alibi: internal error: %s\n", e.what());
    return 1;
  }
  return 0;
}
