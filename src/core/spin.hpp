// spin.hpp: the bounded spin that precedes every sleep.
//
// A waiter first polls its condition for a short, bounded number of rounds, because the
// futex sleep/wake pair costs microseconds while a hand-off between two running processes
// takes far less. The bound keeps the CPU burned by a long wait negligible.
#pragma once

namespace interlock::core {

// Whether a wait polls before its first sleep. A long wait is cut into slices (so the main
// thread can run signal handlers); only the first slice spins, so a waiter blocked for a
// second burns one spin, not one per slice.
enum class Spin : bool { kNo = false, kYes = true };

// Rounds of polling before a waiter goes to sleep.
inline constexpr int kSpinRounds = 4000;
// Rounds of polling a contended lock gets before the caller even releases the GIL: releasing
// and re-taking it costs more than a typical hand-off between two processes.
inline constexpr int kShortSpinRounds = 1024;

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield" ::: "memory");
#else
  asm volatile("" ::: "memory");
#endif
}

// Polls `ready()` up to kSpinRounds times; true as soon as it returns true.
template <class Ready>
bool spin_until(Ready&& ready) {
  for (int i = 0; i < kSpinRounds; ++i) {
    if (ready()) return true;
    cpu_relax();
  }
  return false;
}

// Like spin_until, but waits 1, 2, 4, ... up to kMaxBackoff pauses between polls, within the
// same total budget of pauses. For locks: a contender that polls less often lets the holder
// re-take a lock it just released without the cache line bouncing every time, which is where
// contended throughput goes.
inline constexpr int kMaxBackoff = 64;
template <class Ready>
bool spin_with_backoff(Ready&& ready, int budget = kSpinRounds) {
  int backoff = 1;
  for (int spent = 0; spent < budget; spent += backoff) {
    if (ready()) return true;
    for (int i = 0; i < backoff; ++i) cpu_relax();
    if (backoff < kMaxBackoff) backoff *= 2;
  }
  return false;
}

}  // namespace interlock::core
