// Where does a signal handler run while oneDNN's sgemm computes? (docs/reliability.md, "Signals")
//
//   signal_stack_probe [--seconds S] [--mode plain|altstack|sigwait] [--m M --n N --k K]
//
// A timer sends SIGALRM every 200 us while the main thread runs dnnl_sgemm in a loop on one
// thread. The handler only records the address of one of its own locals (async-signal-safe), the
// way alibi's old handler only stored an atomic. Each address is then classified against the
// process's mappings: the main thread's [stack], the alternate signal stack, or elsewhere (the
// heap or an anonymous mapping). A handler frame outside every stack means the kernel wrote the
// signal frame (about 3 KB with AVX-512 state) at a stack pointer that pointed into data: oneDNN's
// JIT sgemm points rsp at its heap workspace (uxlfoundation/oneDNN#4845, fixed upstream in 3.11.1;
// Debian 12 ships 2.6.3). Every product is also compared with the first one, bit for bit: a frame
// written over the workspace can change a result before it corrupts the allocator.
//
// --mode altstack gives the thread an alternate signal stack (SA_ONSTACK); --mode sigwait blocks
// SIGALRM in the computing thread and receives it on a dedicated thread with sigwait, which is
// what alibi does (src/core/signals.h). Both must report 0 frames off the stacks.
#include <dnnl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/time.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace {

constexpr int kMaxFrames = 1 << 20;
uintptr_t g_frames[kMaxFrames];
std::atomic<int> g_count{0};

extern "C" void on_alarm(int) {
  volatile char probe = 0;
  const int i = g_count.fetch_add(1, std::memory_order_relaxed);
  if (i < kMaxFrames) g_frames[i] = reinterpret_cast<uintptr_t>(&probe);
}

struct Range {
  uintptr_t lo = 0, hi = 0;
  std::string name;
  bool contains(uintptr_t a) const { return a >= lo && a < hi; }
};

std::vector<Range> mappings() {
  std::vector<Range> out;
  std::ifstream maps("/proc/self/maps");
  std::string line;
  while (std::getline(maps, line)) {
    std::istringstream s(line);
    std::string span, perms, off, dev, inode, name;
    s >> span >> perms >> off >> dev >> inode >> name;
    Range r;
    r.lo = std::stoull(span.substr(0, span.find('-')), nullptr, 16);
    r.hi = std::stoull(span.substr(span.find('-') + 1), nullptr, 16);
    r.name = name.empty() ? "anonymous" : name;
    out.push_back(r);
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  double seconds = 3;
  std::string mode = "plain";
  int64_t M = 512, N = 256, K = 64;  // one FFN product of a (8 x 64)-token batch, d_model 64
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string f = argv[i];
    if (f == "--seconds") seconds = std::atof(argv[i + 1]);
    else if (f == "--mode") mode = argv[i + 1];
    else if (f == "--m") M = std::atoll(argv[i + 1]);
    else if (f == "--n") N = std::atoll(argv[i + 1]);
    else if (f == "--k") K = std::atoll(argv[i + 1]);
    else {
      std::fprintf(stderr, "signal_stack_probe: unknown flag '%s'\n", f.c_str());
      return 2;
    }
  }
  if (mode != "plain" && mode != "altstack" && mode != "sigwait") {
    std::fprintf(stderr, "signal_stack_probe: --mode '%s'; expected plain|altstack|sigwait\n",
                 mode.c_str());
    return 2;
  }
  std::vector<char> alt(1 << 16);
  if (mode == "altstack") {
    stack_t ss{};
    ss.ss_sp = alt.data();
    ss.ss_size = alt.size();
    sigaltstack(&ss, nullptr);
  }
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGALRM);
  std::thread waiter;
  std::atomic<bool> done{false};
  Range waiter_stack{0, 0, "waiter"};
  if (mode == "sigwait") {
    pthread_sigmask(SIG_BLOCK, &set, nullptr);  // the computing thread never takes it
    waiter = std::thread([&] {
      pthread_attr_t attr;
      void* base = nullptr;
      size_t size = 0;
      pthread_getattr_np(pthread_self(), &attr);
      pthread_attr_getstack(&attr, &base, &size);
      pthread_attr_destroy(&attr);
      waiter_stack.lo = uintptr_t(base);
      waiter_stack.hi = uintptr_t(base) + size;
      int sig = 0;
      while (!done.load() && sigwait(&set, &sig) == 0) on_alarm(sig);
    });
  } else {
    struct sigaction sa{};
    sa.sa_handler = on_alarm;
    sa.sa_flags = SA_RESTART | (mode == "altstack" ? SA_ONSTACK : 0);
    sigaction(SIGALRM, &sa, nullptr);
  }

  std::vector<float> A(size_t(M * K)), B(size_t(K * N)), C(size_t(M * N)), first;
  for (size_t i = 0; i < A.size(); ++i) A[i] = float(int(i * 2654435761u % 1000)) / 1000.f - .5f;
  for (size_t i = 0; i < B.size(); ++i) B[i] = float(int(i * 40503u % 1000)) / 1000.f - .5f;
  itimerval t{};
  t.it_interval.tv_usec = t.it_value.tv_usec = 200;
  setitimer(ITIMER_REAL, &t, nullptr);
  int64_t products = 0, differ = 0;
  const auto t0 = std::chrono::steady_clock::now();
  while (std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() < seconds) {
    dnnl_sgemm('N', 'N', M, N, K, 1.f, A.data(), K, B.data(), N, 0.f, C.data(), N);
    if (first.empty()) first = C;
    else differ += std::memcmp(first.data(), C.data(), C.size() * sizeof(float)) != 0;
    ++products;
  }
  t = {};
  setitimer(ITIMER_REAL, &t, nullptr);
  done.store(true);
  if (waiter.joinable()) {
    pthread_kill(waiter.native_handle(), SIGALRM);
    waiter.join();
  }

  const std::vector<Range> maps = mappings();
  const Range altr{uintptr_t(alt.data()), uintptr_t(alt.data() + alt.size()), "altstack"};
  int64_t on_stack = 0, on_alt = 0, elsewhere = 0;
  const int n = std::min(g_count.load(), kMaxFrames);
  std::string example;
  for (int i = 0; i < n; ++i) {
    const uintptr_t a = g_frames[i];
    if (mode == "altstack" && altr.contains(a)) {
      ++on_alt;
      continue;
    }
    std::string where = "unmapped";
    for (const Range& r : maps)
      if (r.contains(a)) where = r.name;
    if (where == "[stack]" || waiter_stack.contains(a)) ++on_stack;
    else {
      ++elsewhere;
      if (example.empty()) example = where;
    }
  }
  std::printf("mode %s: %lld products (%lldx%lldx%lld), %lld differ from the first; %d signals "
              "handled: %lld on the thread's stack, %lld on the alternate stack, %lld elsewhere%s%s\n",
              mode.c_str(), (long long)products, (long long)M, (long long)N, (long long)K,
              (long long)differ, n, (long long)on_stack, (long long)on_alt, (long long)elsewhere,
              example.empty() ? "" : " (first: ", example.empty() ? "" : (example + ")").c_str());
  return elsewhere > 0 || differ > 0 ? 1 : 0;
}
