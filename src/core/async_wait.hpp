// async_wait.hpp: the steps of a wait that a Waker (waker.hpp) sleeps through for a task.
//
// A thread that waits runs "check, announce itself, sleep, check again" in one call. An
// asyncio task cannot sleep, so the same protocol is cut into steps that the task runs on its
// event loop, and the sleep is the Waker's: join() announces the waiter exactly as a thread
// that is about to sleep does; prepare() says which word to watch and for which value (no
// word: try again now); the task tries the primitive's own non-blocking operation each time
// its watch fires; leave() withdraws the announcement. Every announcement and handshake is
// the primitive's own, with the same memory orders, so synchronous waiters in any process
// and awaiting tasks wait on one primitive side by side.
//
// Wake-ups a task consumed. A releaser that wakes one sleeper (Lock, Semaphore) may wake the
// Waker on a task's behalf. A task that then leaves without taking what it was woken for
// (cancelled, timed out) passes the wake on (pass_wake), so that no other waiter sleeps
// through a release meant for it.
#pragma once

#include <atomic>
#include <cstdint>

#include "core/condition.hpp"
#include "core/death_watch.hpp"
#include "core/futex.hpp"
#include "core/mutex.hpp"
#include "core/slot.hpp"

namespace interlock::core::async_wait {

// The word to watch while it holds `expected`; word == nullptr: do not watch, try now.
struct Watch {
  std::atomic<uint32_t>* word;
  uint32_t expected;
};

// --- Lock (not robust) ----------------------------------------------------------------

// Marks a waiter on a held lock (kWaitersBit), as a sleeping thread does, and returns the
// word to watch; nothing to watch when the lock is free.
inline Watch lock_prepare(MutexState& m) {
  uint32_t w = m.word.load(std::memory_order_relaxed);  // a guess for the CAS loop
  while (w != 0) {
    if (w & mutex::kWaitersBit) return {&m.word, w};
    // relaxed: setting the bit publishes nothing but the bit itself (as mutex.cpp).
    if (m.word.compare_exchange_weak(w, w | mutex::kWaitersBit, std::memory_order_relaxed,
                                     std::memory_order_relaxed))
      return {&m.word, w | mutex::kWaitersBit};
  }
  return {nullptr, 0};
}

// One attempt by a task that has announced itself: takes a free lock and keeps the waiters
// bit set, since other tasks or threads may still be waiting (as mutex.cpp's sleepers do).
inline bool lock_try_after_wake(MutexState& m) {
  const ThreadIdentity& me = current_thread();
  uint32_t expected = 0;
  // acquire: this CAS takes the lock. relaxed on failure: only decides to watch again.
  if (!m.word.compare_exchange_strong(expected, me.tid | mutex::kWaitersBit,
                                      std::memory_order_acquire, std::memory_order_relaxed))
    return false;
  m.owner.store(me.owner, std::memory_order_relaxed);  // read as a hint only (mutex.hpp)
  return true;
}

// A woken task leaves without the lock: the unlock's single wake goes on to someone else.
inline void lock_pass_wake(MutexState& m) { futex_wake(&m.word, 1); }

// --- Lock (robust) -------------------------------------------------------------------

// A robust lock's waiter also watches its holder's process (mutex.hpp, "Robust locks"):
// the death watch wakes the lock word when that process ends, and the Waker fires on the
// wake. `ticket` (>= 0) is the death watch's registration, for unwatch() once the watch
// ends. `poll` says that no watch can vouch for the holder (its record is not written yet,
// or there is no death watch here): look again after a short while instead.
struct RobustWatch {
  Watch watch;
  int ticket;
  bool poll;
};

inline RobustWatch robust_lock_prepare(MutexState& m) {
  const ThreadIdentity& me = current_thread();
  // relaxed loads: hints for whom to watch; the try step's CASes decide.
  uint32_t w = m.word.load(std::memory_order_relaxed);
  if (w == 0) return {{nullptr, 0}, -1, false};
  uint64_t record = m.owner.load(std::memory_order_relaxed);
  int ticket = -1;
  if (record_tid(record) != (w & mutex::kTidMask)) return {{nullptr, 0}, -1, true};
  if (record_pid(record) != me.pid) {
    switch (death_watch::watch(&m.word, record, &ticket)) {
      case death_watch::Result::kWatching:
        break;
      case death_watch::Result::kGone:
        return {{nullptr, 0}, -1, false};  // try now: the take-over is due
      case death_watch::Result::kUnavailable:
        return {{nullptr, 0}, -1, true};
    }
  }
  Watch plain = lock_prepare(m);
  // The watch is on the exact word judged above: another holder changes it and fires.
  if (plain.word == nullptr || (plain.expected & mutex::kTidMask) != (w & mutex::kTidMask)) {
    if (ticket >= 0) death_watch::unwatch(ticket);
    return {{nullptr, 0}, -1, false};
  }
  return {plain, ticket, false};
}

// One attempt: kOk (taken), kOwnerDied (taken over from a dead holder) or kTimedOut (not
// yet).
inline Status robust_lock_try(MutexState& m) {
  if (lock_try_after_wake(m)) return Status::kOk;
  return mutex::take_over_from_dead_owner(m, current_thread()) ? Status::kOwnerDied
                                                               : Status::kTimedOut;
}

// A robust lock's unlock wakes every sleeper, so a task leaving passes nothing on.

// --- Semaphore -----------------------------------------------------------------------

inline void semaphore_join(SemaphoreState& s) {
  // seq_cst: the waiter half of semaphore.hpp's handshake.
  s.waiters.fetch_add(1, std::memory_order_seq_cst);
}
inline Watch semaphore_prepare(SemaphoreState& s) {
  // seq_cst: read after join()'s increment (the handshake); no permit: watch value == 0.
  return s.value.load(std::memory_order_seq_cst) == 0 ? Watch{&s.value, 0} : Watch{nullptr, 0};
}
// Withdraws the waiter; `pass_wake` when it was woken and leaves without a permit.
inline void semaphore_leave(SemaphoreState& s, bool pass_wake) {
  s.waiters.fetch_sub(1, std::memory_order_relaxed);  // only ever an over-estimate
  if (pass_wake) futex_wake(&s.value, 1);
}

// --- Event ---------------------------------------------------------------------------

inline void event_join(EventState& e) {
  // seq_cst: the waiter half of event.hpp's handshake.
  e.waiters.fetch_add(1, std::memory_order_seq_cst);
}
// `since` is the snapshot taken when the wait started (event::snapshot); nothing to watch
// once the word moved on from it: the flag was set at some moment since.
inline Watch event_prepare(EventState& e, uint32_t since) {
  // seq_cst: read after join()'s increment (the handshake).
  return e.word.load(std::memory_order_seq_cst) == since ? Watch{&e.word, since}
                                                          : Watch{nullptr, 0};
}
inline void event_leave(EventState& e) {
  e.waiters.fetch_sub(1, std::memory_order_relaxed);  // only ever an over-estimate
}

// --- Condition ---------------------------------------------------------------------

// The notify sequence as of now: read it before each attempt (condition::try_take), and
// watch it with that value, so a notify between the attempt and the watch is never missed.
inline uint32_t condition_seen(const ConditionState& c) {
  return c.seq.load(std::memory_order_acquire);  // as condition::sleep (condition.hpp)
}
inline Watch condition_watch(ConditionState& c, uint32_t seen) { return {&c.seq, seen}; }

// --- Barrier -----------------------------------------------------------------------

// The change sequence as of now: read it before each non-blocking step (barrier::arrive or
// barrier::await with a deadline already past), and watch it with that value when the step
// says "not yet", so a change between the step and the watch is never missed.
inline uint32_t barrier_seen(const BarrierState& b) {
  return b.seq.load(std::memory_order_acquire);  // then the step looks under `inner`
}
inline Watch barrier_watch(BarrierState& b, uint32_t seen) { return {&b.seq, seen}; }

}  // namespace interlock::core::async_wait
