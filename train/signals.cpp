#include "train/signals.h"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <mutex>

namespace rdd::train {

namespace {

std::atomic<int> g_stop{0};  // the first SIGINT/SIGTERM, or 0
static_assert(std::atomic<int>::is_always_lock_free, "the signal handler needs a lock-free flag");

void write_stderr(const char* s) {
  size_t n = 0;
  while (s[n]) ++n;
  [[maybe_unused]] ssize_t w = ::write(2, s, n);
}

void on_stop_signal(int sig) {
  int expected = 0;
  if (g_stop.compare_exchange_strong(expected, sig)) {
    write_stderr(sig == SIGINT ? "\nrdd: SIGINT: finishing this iteration, then writing a checkpoint "
                                 "(press Ctrl-C again to stop at once, without one)\n"
                               : "\nrdd: SIGTERM: finishing this iteration, then writing a checkpoint "
                                 "(a second signal stops at once, without one)\n");
    return;
  }
  // The second signal: the default action, now.
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  sigemptyset(&dfl.sa_mask);
  sigaction(sig, &dfl, nullptr);
  write_stderr("\nrdd: second signal: stopping at once (no checkpoint written)\n");
  ::raise(sig);
}

std::mutex g_scope_mu;
int g_scope_depth = 0;
struct sigaction g_old_int {}, g_old_term {};

}  // namespace

StopSignals::StopSignals() {
  std::lock_guard<std::mutex> lock(g_scope_mu);
  if (g_scope_depth++ > 0) return;
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  sigaction(SIGINT, &sa, &g_old_int);
  sigaction(SIGTERM, &sa, &g_old_term);
}

StopSignals::~StopSignals() {
  std::lock_guard<std::mutex> lock(g_scope_mu);
  if (--g_scope_depth > 0) return;
  sigaction(SIGINT, &g_old_int, nullptr);
  sigaction(SIGTERM, &g_old_term, nullptr);
}

int stop_requested() { return g_stop.load(std::memory_order_relaxed); }

void request_stop(int sig) {
  int expected = 0;
  g_stop.compare_exchange_strong(expected, sig);
}

void clear_stop() { g_stop.store(0); }

std::string signal_name(int sig) {
  switch (sig) {
    case SIGINT: return "SIGINT";
    case SIGTERM: return "SIGTERM";
    case SIGHUP: return "SIGHUP";
    case SIGKILL: return "SIGKILL";
    default: return "signal " + std::to_string(sig);
  }
}

}  // namespace rdd::train
