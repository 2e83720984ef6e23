// spin.hpp: the bounded spin that precedes every sleep.
//
// A waiter first polls its condition for a short while, because a futex sleep and wake-up
// cost tens of microseconds of CPU (about 40-50 us on a virtual machine) while a hand-off
// between two running processes takes about one. The spin is bounded by time, not by a count
// of `pause` instructions, whose cost differs tenfold between processors: a waiter that ends
// up sleeping has burnt at most kSpinNanos before it did.
#pragma once

#include <time.h>

#include <cstdint>

namespace interlock::core {

// Whether a wait polls before its first sleep. A wait that is resumed after a signal (or a
// slice) does not spin again.
enum class Spin : bool { kNo = false, kYes = true };

// How long a waiter polls before it sleeps.
inline constexpr int64_t kSpinNanos = 10'000;
// How long a contended lock is polled before the caller even releases the GIL: releasing and
// re-taking it costs more than a typical hand-off between two processes.
inline constexpr int64_t kShortSpinNanos = 4'000;

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield" ::: "memory");
#else
  asm volatile("" ::: "memory");
#endif
}

inline int64_t monotonic_nanos() {
  timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);  // the vDSO: no system call
  return int64_t{t.tv_sec} * 1'000'000'000 + t.tv_nsec;
}

// Polls `ready()` for up to `budget` nanoseconds; true as soon as it returns true. Waits 1, 2,
// 4, ... up to kMaxBackoff pauses between polls when `backoff` is set: for locks, a contender
// that polls less often lets the holder re-take a lock it just released without the cache
// line bouncing every time, which is where contended throughput goes.
inline constexpr int kMaxBackoff = 64;
template <class Ready>
bool spin_for(Ready&& ready, int64_t budget, bool backoff) {
  const int64_t start = monotonic_nanos();
  int pauses = 1;
  while (true) {
    for (int round = 0; round < 8; ++round) {  // look at the clock every 8 polls
      if (ready()) return true;
      for (int i = 0; i < pauses; ++i) cpu_relax();
      if (backoff && pauses < kMaxBackoff) pauses *= 2;
    }
    if (monotonic_nanos() - start >= budget) return false;
  }
}

// The spin before a sleep.
template <class Ready>
bool spin_until(Ready&& ready) {
  return spin_for(ready, kSpinNanos, false);
}

// The same with backoff, for locks.
template <class Ready>
bool spin_with_backoff(Ready&& ready, int64_t budget = kSpinNanos) {
  return spin_for(ready, budget, true);
}

}  // namespace interlock::core
