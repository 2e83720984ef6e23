// event.hpp: Event over one futex word.
//
// EventState::flag (0 unset, 1 set) is the futex word; `waiters` counts threads asleep or
// about to sleep on it. No lock is involved anywhere, so set() may run in a signal handler
// that interrupted is_set() or wait() on the same Event (CPython deadlocks there).
//
// Memory ordering: set() is a seq_cst exchange and clear() a release store; is_set() is an
// acquire load, so what a setter did before set() is visible to whoever sees the flag.
// set()'s read of `waiters` and wait()'s increment of it form the same seq_cst handshake as
// in semaphore.hpp, so a waiter never sleeps through a set().
#pragma once

#include "core/deadline.hpp"
#include "core/futex.hpp"
#include "core/slot.hpp"
#include "core/spin.hpp"

namespace interlock::core::event {

inline bool is_set(const EventState& e) {
  return e.flag.load(std::memory_order_acquire) != 0;  // see the header
}
void set(EventState& e);
inline void clear(EventState& e) {
  e.flag.store(0, std::memory_order_release);  // orders the caller's prior writes
}
// Spins, then sleeps until the flag is set (kOk), the deadline passes or a signal arrives.
Status wait(EventState& e, const Deadline& deadline, Spin spin = Spin::kYes);

}  // namespace interlock::core::event
