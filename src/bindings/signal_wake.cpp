#include "bindings/signal_wake.hpp"

#include <signal.h>

#include <cerrno>
#include <cstring>

#include "core/futex.hpp"

namespace interlock::bindings::signal_wake {

namespace {

constexpr int kWatched[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGALRM, SIGUSR1, SIGUSR2};

std::atomic<uint32_t> g_epoch{0};

// The handler each watched signal had before it was wrapped. A wrapper may be running on
// another thread while a wait wraps a replaced handler again, so each wrapping publishes a
// new, never freed copy (there are as many as handler replacements, a handful).
std::atomic<const struct sigaction*> g_original[NSIG];

void wrapper(int sig, siginfo_t* info, void* context) {
  const int saved_errno = errno;
  // acquire: the copy was fully written before it was published.
  const struct sigaction* original = g_original[sig].load(std::memory_order_acquire);
  if (original != nullptr) {
    if (original->sa_flags & SA_SIGINFO)
      original->sa_sigaction(sig, info, context);
    else if (original->sa_handler != SIG_DFL && original->sa_handler != SIG_IGN)
      original->sa_handler(sig);
  }
  // release: publishes the trip flag that the original (CPython's) handler set just above
  // to a waiter that reads this increment (SignalWatch::before_sleep's acquire load).
  g_epoch.fetch_add(1, std::memory_order_release);
  core::futex_wake_private(&g_epoch, -1);
  errno = saved_errno;
}

bool is_wrapper(const struct sigaction& sa) {
  return (sa.sa_flags & SA_SIGINFO) && sa.sa_sigaction == &wrapper;
}

void wrap(int sig) {
  struct sigaction current;
  if (sigaction(sig, nullptr, &current) != 0 || is_wrapper(current)) return;
  if (!(current.sa_flags & SA_SIGINFO) &&
      (current.sa_handler == SIG_DFL || current.sa_handler == SIG_IGN))
    return;  // nothing runs on this signal: nothing to wrap
  auto* copy = new struct sigaction(current);
  g_original[sig].store(copy, std::memory_order_release);  // see g_original
  struct sigaction replacement = current;
  replacement.sa_sigaction = &wrapper;
  replacement.sa_flags |= SA_SIGINFO;
  sigaction(sig, &replacement, nullptr);
}

}  // namespace

std::atomic<uint32_t>& epoch() { return g_epoch; }

bool prepare() {
  if (!core::interrupt_word_supported()) return false;
  for (int sig : kWatched) wrap(sig);  // a query costs ~0.15 us; a sleep, tens of us
  return true;
}

}  // namespace interlock::bindings::signal_wake
