#include "core/signals.h"

#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <thread>

#include "core/error.h"

namespace alibi {
namespace {

std::atomic<int> g_pending{0};  // the signal of the pending request
std::atomic<bool> g_thread{false};
sigset_t g_ignored;             // stop signals ignored when we started (a background job's SIGINT)

// Never destroyed: the stop thread may take a signal while the process runs its exit handlers.
struct Scopes {
  std::mutex mu;
  int alive = 0;     // StopScopes alive
  std::string what;  // what the outermost one does with a request
};
Scopes& scopes() {
  static Scopes* const s = new Scopes;
  return *s;
}

sigset_t stop_set() {
  sigset_t set;
  sigemptyset(&set);
  for (int s : {SIGINT, SIGTERM, SIGUSR1}) sigaddset(&set, s);
  return set;
}

const char* sig_name(int sig) {
  return sig == SIGINT ? "SIGINT" : sig == SIGTERM ? "SIGTERM" : sig == SIGUSR1 ? "SIGUSR1" : "?";
}

// As the default action would: restore it, unblock the signal in this thread and send it here.
[[noreturn]] void end_by(int sig) {
  std::signal(sig, SIG_DFL);
  sigset_t one;
  sigemptyset(&one);
  sigaddset(&one, sig);
  pthread_sigmask(SIG_UNBLOCK, &one, nullptr);
  raise(sig);
  _exit(128 + sig);  // SIGUSR1's default ends the process too; only reached if ignored above us
}

void say(const std::string& line) {
  const std::string s = line + "\n";
  const ssize_t n = write(STDERR_FILENO, s.data(), s.size());
  (void)n;
}

void stop_thread() {
  const sigset_t set = stop_set();
  for (;;) {
    int sig = 0;
    if (sigwait(&set, &sig) != 0) continue;
    Scopes& sc = scopes();
    std::unique_lock lock(sc.mu);
    if (sc.alive == 0) {
      if (sigismember(&g_ignored, sig)) continue;
      end_by(sig);
    }
    int none = 0;
    if (g_pending.compare_exchange_strong(none, sig)) {
      if (!sc.what.empty())
        say(str_cat("alibi: ", sig_name(sig), ": ", sc.what,
                    sig == SIGINT ? " (Ctrl-C again stops at once)" : ""));
    } else if (sig == SIGINT) {
      say("alibi: second interrupt: stopping at once");
      end_by(sig);
    }
  }
}

void unblock_in_child() {
  const sigset_t set = stop_set();
  pthread_sigmask(SIG_UNBLOCK, &set, nullptr);
}

}  // namespace

void block_stop_signals() {
  const sigset_t set = stop_set();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

void start_stop_thread() {
  if (g_thread.exchange(true)) return;
  block_stop_signals();
  sigemptyset(&g_ignored);
  for (int s : {SIGINT, SIGTERM, SIGUSR1}) {
    struct sigaction old {};
    if (sigaction(s, nullptr, &old) == 0 && old.sa_handler == SIG_IGN) sigaddset(&g_ignored, s);
  }
  pthread_atfork(nullptr, nullptr, unblock_in_child);
  std::thread(stop_thread).detach();
}

StopScope::StopScope(std::string what) {
  Scopes& sc = scopes();
  std::lock_guard lock(sc.mu);
  if (sc.alive++ == 0) {
    g_pending.store(0);
    sc.what = std::move(what);
  }
}

StopScope::~StopScope() {
  Scopes& sc = scopes();
  std::lock_guard lock(sc.mu);
  --sc.alive;
}

void take_stop_requests(const std::string& what) {
  static StopScope* const kept = new StopScope(what);  // never destroyed: until exit
  (void)kept;
}

int stop_signal() { return g_pending.load(std::memory_order_relaxed); }

Interrupted::Interrupted(int sig, const std::string& where)
    : signal(sig), message(str_cat(sig_name(sig), " ", where)) {}

void throw_if_stopped(const std::string& where) {
  if (const int sig = stop_signal()) throw Interrupted(sig, where);
}

}  // namespace alibi
