// futex.hpp: the one place that talks to futex(2).
//
// Every futex here is process-shared (no FUTEX_PRIVATE_FLAG), because the words live in
// memory mapped by several processes. Waits take an absolute CLOCK_MONOTONIC deadline
// (FUTEX_WAIT_BITSET), so a wait resumed after a signal keeps its original end time.
//
// Interrupt word. A thread may name a word of its own process that interrupts its futex
// waits (ScopedInterruptWord): while it is set, futex_wait() sleeps on both words at once
// (futex_waitv) and returns kInterrupted as soon as the interrupt word no longer holds the
// value given, even when it changed before the sleep began. A change can therefore never be
// missed between the caller's last look and the sleep. The bindings use it to make signals
// end the main thread's waits (signal_wake.hpp). It needs futex_waitv (Linux 5.16);
// interrupt_word_supported() says whether this kernel has it (the environment variable
// INTERLOCK_NO_FUTEX_WAITV makes it say no, to test what happens without).
#pragma once

#include <atomic>
#include <cstddef>
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

// Sleeps while *word == expected, until woken, the deadline passes, or a signal arrives (or,
// with an interrupt word set, that word changes). Returns kOk when woken or when *word
// already differed (the caller always re-checks its condition), kTimedOut when the deadline
// passed, kInterrupted on a signal or a changed interrupt word.
Status futex_wait(std::atomic<uint32_t>* word, uint32_t expected, const Deadline& deadline);

// The same for a word private to this process (FUTEX_PRIVATE_FLAG), with no interrupt word.
Status futex_wait_private(std::atomic<uint32_t>* word, uint32_t expected,
                          const Deadline& deadline);

// Wakes at most `count` waiters sleeping on `word` (count < 0 wakes all of them).
void futex_wake(std::atomic<uint32_t>* word, int count);
// The same for a word private to this process (the interrupt word).
void futex_wake_private(std::atomic<uint32_t>* word, int count);

// One entry of a futex_waitv request: sleep while *word == expected. `private_word` for a
// word of this process only (FUTEX_PRIVATE_FLAG), else process-shared as everywhere here.
struct WaitEntry {
  const std::atomic<uint32_t>* word;
  uint32_t expected;
  bool private_word;
};
// Sleeps on every entry at once (futex_waitv, at most 128), with no deadline. Returns the
// index of the entry that was woken, or -1 when a word already differed or a signal came.
long futex_wait_many(const WaitEntry* entries, size_t count);

// True when this kernel has futex_waitv (asked once, then cached).
bool interrupt_word_supported();

// Sets the calling thread's interrupt word for its lifetime (none when `word` is null), then
// restores the previous one. A word may be set only while interrupt_word_supported().
class ScopedInterruptWord {
 public:
  ScopedInterruptWord(const std::atomic<uint32_t>* word, uint32_t value);
  ~ScopedInterruptWord();
  ScopedInterruptWord(const ScopedInterruptWord&) = delete;
  ScopedInterruptWord& operator=(const ScopedInterruptWord&) = delete;

 private:
  const std::atomic<uint32_t>* saved_word_;
  uint32_t saved_value_;
};

}  // namespace interlock::core
