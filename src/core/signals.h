#pragma once
// Stop signals (SIGINT, SIGTERM, SIGUSR1) are taken by one thread of ours with sigwait and never
// delivered to a thread that computes.
//
// Why not a handler: the kernel writes a signal frame (about 3 KB with AVX-512 state) at the
// stack pointer of whichever thread it interrupts. oneDNN 2.6's JIT sgemm (Debian 12) points rsp
// at its heap workspace while it runs (uxlfoundation/oneDNN#4845, fixed upstream in 3.11.1), so a
// handler that only stored a flag had its frame written into the heap, and a Ctrl-C crashed
// training about half the time (docs/reliability.md, "Signals"; bench/signal_stack_probe.cpp
// shows it outside alibi). With the signals blocked in every thread, no frame is ever written.
#include <exception>
#include <string>

namespace alibi {

// Blocks the stop signals in the calling thread. Called from the executable's .preinit_array,
// before any library constructor can start a thread, so every thread inherits the block (an
// exec of alibi keeps it: a signal sent during start-up waits for the thread below).
void block_stop_signals();

// First thing in main(): starts the thread that takes the stop signals. Without a StopScope a
// stop signal ends the process as its default action would. Children forked later get the
// signals unblocked (they have no such thread).
void start_stop_thread();

// While one lives, a stop signal is a request that the work polls (stop_signal()) and honours at
// its next safe point; `what` is said on stderr when the request arrives (empty: nothing said).
// A second SIGINT while one is pending ends the process at once.
class StopScope {
 public:
  explicit StopScope(std::string what);
  ~StopScope();
  StopScope(const StopScope&) = delete;
  StopScope& operator=(const StopScope&) = delete;
};

// As a StopScope that lives until the process exits: for a command that stops gracefully from
// its start to its end. Call before start_stop_thread.
void take_stop_requests(const std::string& what);

// The signal of the pending stop request, 0 if none. Always 0 where start_stop_thread was not
// called (tests that call the jobs in-process).
int stop_signal();

// Thrown by work that stopped on a request after writing what it had finished; the CLI exits
// with 128 + the signal, as a shell reports a process the signal ended.
struct Interrupted : std::exception {
  int signal;
  std::string message;  // "SIGINT <where>"
  Interrupted(int sig, const std::string& where);
  const char* what() const noexcept override { return message.c_str(); }
};

// Throws Interrupted (naming `where`) if a stop was requested.
void throw_if_stopped(const std::string& where);

}  // namespace alibi
