// spin.hpp: the bounded spin that precedes every sleep.
//
// A waiter first polls its condition for a short, bounded number of rounds, because the
// futex sleep/wake pair costs microseconds while a hand-off between two running processes
// takes far less. The bound keeps the CPU burned by a long wait negligible.
#pragma once

namespace interlock::core {

// Rounds of polling before a waiter goes to sleep.
inline constexpr int kSpinRounds = 4000;

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

}  // namespace interlock::core
