// semaphore.hpp: Semaphore and BoundedSemaphore over one futex word.
//
// SemaphoreState::value is the number of permits and the futex word; `waiters` counts the
// threads that are asleep or about to sleep on it, so that release() skips the wake system
// call when nobody waits; `maxvalue` is the bound (SEM_VALUE_MAX when unbounded).
//
// Protocol: acquire is a CAS value -> value-1 while value > 0. A thread that finds no permit
// spins briefly, then increments `waiters` and sleeps while value == 0. release(n) adds n
// permits with a CAS that refuses to pass `maxvalue` (so the bound check is atomic, unlike
// CPython's getvalue-then-post), then wakes up to n sleepers if `waiters` is non-zero.
//
// Memory ordering: the permit-taking CAS is acquire and the permit-adding CAS is release, so
// work done before a release happens-before the acquirer that takes the permit. The pair
// "waiter: increment waiters, then futex_wait reads value" / "releaser: add to value, then
// read waiters" is a store-then-load handshake on two locations, so both the increment, the
// add and the read of `waiters` are seq_cst: either the releaser sees the waiter, or the
// waiter's futex_wait sees the new value and does not sleep.
#pragma once

#include <cstdint>

#include "core/deadline.hpp"
#include "core/futex.hpp"
#include "core/slot.hpp"
#include "core/spin.hpp"

namespace interlock::core::semaphore {

inline constexpr uint32_t kValueMax = 0x7fffffff;  // SEM_VALUE_MAX on Linux

void init(SemaphoreState& s, uint32_t value, uint32_t maxvalue);
bool try_acquire(SemaphoreState& s);
// Spins, then sleeps until a permit is taken (kOk), the deadline passes or a signal arrives.
Status acquire(SemaphoreState& s, const Deadline& deadline, Spin spin = Spin::kYes);
// Adds n permits; false (and no change) when that would pass maxvalue.
bool release(SemaphoreState& s, uint32_t n);
inline uint32_t value(const SemaphoreState& s) {
  return s.value.load(std::memory_order_relaxed);  // a snapshot
}

}  // namespace interlock::core::semaphore
