// futex.hpp: the one place that talks to futex(2).
//
// Every futex here is process-shared (no FUTEX_PRIVATE_FLAG), because the words live in
// memory mapped by several processes. Waits take an absolute CLOCK_MONOTONIC deadline
// (FUTEX_WAIT_BITSET), so a wait resumed after a signal keeps its original end time.
#pragma once

#include <atomic>
#include <cstdint>

#include "core/deadline.hpp"

namespace interlock::core {

// The outcome of every blocking operation in the core.
enum class Status {
  kOk,           // the operation completed (acquired, woken, notified, ...)
  kTimedOut,     // the deadline passed first
  kInterrupted,  // a signal arrived; the caller runs its handlers and may call again
  kOwnerDied,    // (robust locks) acquired, but the previous holder's process had died
};

static_assert(std::atomic<uint32_t>::is_always_lock_free,
              "shared-memory futex words need lock-free 32-bit atomics");
static_assert(sizeof(std::atomic<uint32_t>) == sizeof(uint32_t),
              "a futex word must be exactly 32 bits");

// Sleeps while *word == expected, until woken, the deadline passes, or a signal arrives.
// Returns kOk when woken or when *word already differed (the caller always re-checks its
// condition), kTimedOut when the deadline passed, kInterrupted on EINTR.
Status futex_wait(std::atomic<uint32_t>* word, uint32_t expected, const Deadline& deadline);

// Wakes at most `count` waiters sleeping on `word` (count < 0 wakes all of them).
void futex_wake(std::atomic<uint32_t>* word, int count);

}  // namespace interlock::core
