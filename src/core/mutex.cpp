#include "core/mutex.hpp"

#include "core/death_watch.hpp"
#include "core/spin.hpp"
#include "core/thread_identity.hpp"

namespace interlock::core::mutex {

namespace {

enum class Slept { kTaken, kWoken, kTimedOut, kInterrupted };

// Any holder: a plain lock's waiter sleeps whoever holds the lock.
constexpr uint32_t kAnyHolder = ~uint32_t{0};

// Takes the lock if it is free, else marks a waiter and sleeps once: until woken, the deadline
// or a signal. With `holder` set to a tid, it sleeps only while that thread holds the lock and
// answers kWoken (look again) when another does: a robust waiter watches one holder's process
// (death_watch.hpp), and must not sleep behind a holder it does not watch. The futex compares
// the whole word, tid included, so a holder that changes after the check ends the sleep too.
Slept sleep_once(std::atomic<uint32_t>& word, uint32_t tid, const Deadline& deadline,
                 uint32_t holder = kAnyHolder) {
  uint32_t w = word.load(std::memory_order_relaxed);  // a guess for the CAS loop
  while (true) {
    if (w != 0 && holder != kAnyHolder && (w & kTidMask) != holder) return Slept::kWoken;
    if (w == 0) {
      // We may have slept, so others may sleep too: keep the waiters bit set.
      // acquire: this CAS takes the lock.
      if (word.compare_exchange_weak(w, tid | kWaitersBit, std::memory_order_acquire,
                                       std::memory_order_relaxed))
        return Slept::kTaken;
      continue;
    }
    if (!(w & kWaitersBit)) {
      // relaxed: setting the bit publishes nothing but the bit itself.
      if (!word.compare_exchange_weak(w, w | kWaitersBit, std::memory_order_relaxed,
                                        std::memory_order_relaxed))
        continue;
      w |= kWaitersBit;
    }
    switch (futex_wait(&word, w, deadline)) {
      case Status::kOk:
        return Slept::kWoken;
      case Status::kTimedOut:
        // A last look: the lock may have been freed just as time ran out.
        return try_lock(word, tid) ? Slept::kTaken : Slept::kTimedOut;
      default:
        return Slept::kInterrupted;
    }
  }
}

bool spin_for_lock(std::atomic<uint32_t>& word, uint32_t tid, int64_t budget) {
  return spin_with_backoff(
      [&] {
        // relaxed poll; the CAS in try_lock provides the ordering.
        return word.load(std::memory_order_relaxed) == 0 && try_lock(word, tid);
      },
      budget);
}

}  // namespace

bool lock_spin_briefly(std::atomic<uint32_t>& word, uint32_t tid) {
  return spin_for_lock(word, tid, kShortSpinNanos);
}

Status lock_slow(std::atomic<uint32_t>& word, uint32_t tid, const Deadline& deadline,
                 Spin spin) {
  if (spin == Spin::kYes && spin_for_lock(word, tid, kSpinNanos)) return Status::kOk;
  while (true) {
    switch (sleep_once(word, tid, deadline)) {
      case Slept::kTaken:
        return Status::kOk;
      case Slept::kWoken:
        continue;
      case Slept::kTimedOut:
        return Status::kTimedOut;
      case Slept::kInterrupted:
        return Status::kInterrupted;
    }
  }
}

void wake_after_unlock(MutexState& m) {
  // relaxed: `robust` is set once, before the lock is shared.
  futex_wake(&m.word, m.robust.load(std::memory_order_relaxed) ? -1 : 1);
}

namespace {

// 50 ms: where no death watch is available, a dead holder is noticed within 100 ms.
std::atomic<int64_t> g_check_interval_ns{50'000'000};  // relaxed: a setting, not a protocol

// How long a robust waiter sleeps before it looks at its holder again: until the deadline
// when the death watch will wake it; shorter when it cannot.
Deadline robust_slice(const Deadline& deadline, death_watch::Result watched) {
  if (watched == death_watch::Result::kWatching) return deadline;
  double seconds = watched == death_watch::Result::kUnavailable ? owner_check_interval() : 0.001;
  return Deadline::earlier(deadline, Deadline::after(seconds));
}

// lock_slow for robust locks: before each sleep, watches a live holder or takes over from a
// dead one (see the header). The death watch is asked first: a holder it watches is alive,
// which spares the /proc read of take_over_from_dead_owner on every wait.
Status robust_lock_slow(MutexState& m, const ThreadIdentity& me, const Deadline& deadline,
                        Spin spin) {
  if (spin == Spin::kYes && spin_for_lock(m.word, me.tid, kSpinNanos)) return Status::kOk;
  while (true) {
    // relaxed loads: hints for whom to watch; take_over_from_dead_owner decides.
    uint32_t w = m.word.load(std::memory_order_relaxed);
    uint64_t record = m.owner.load(std::memory_order_relaxed);
    death_watch::Result watched = death_watch::Result::kWatching;  // nothing to watch: sleep
    int ticket = -1;
    if (w != 0) {
      if (record_tid(record) != (w & kTidMask))
        watched = death_watch::Result::kGone;  // the holder's record is not written yet
      else if (record_pid(record) != me.pid)
        watched = death_watch::watch(&m.word, record, &ticket);
    }
    if (watched != death_watch::Result::kWatching && take_over_from_dead_owner(m, me))
      return Status::kOwnerDied;
    // Sleep only behind the holder just watched (or judged): another one, or one that came
    // since the lock looked free, sends the loop round to watch it first.
    Slept slept = sleep_once(m.word, me.tid, robust_slice(deadline, watched), w & kTidMask);
    if (ticket >= 0) death_watch::unwatch(ticket);
    switch (slept) {
      case Slept::kTaken:
        return Status::kOk;
      case Slept::kInterrupted:
        return Status::kInterrupted;
      case Slept::kTimedOut:
        if (!deadline.passed()) continue;  // a slice ended
        // A last look: the holder may have died just as time ran out.
        if (take_over_from_dead_owner(m, me))
          return Status::kOwnerDied;
        return Status::kTimedOut;
      case Slept::kWoken:
        continue;
    }
  }
}

Status acquire_and_record(MutexState& m, const Deadline& deadline, Spin spin,
                          const ThreadIdentity& me) {
  if (try_lock(m.word, me.tid)) {
    m.owner.store(me.owner, std::memory_order_relaxed);  // a hint (see the header)
    return Status::kOk;
  }
  Status s = m.robust.load(std::memory_order_relaxed)  // set once, before sharing
                 ? robust_lock_slow(m, me, deadline, spin)
                 : lock_slow(m.word, me.tid, deadline, spin);
  if (s == Status::kOk) m.owner.store(me.owner, std::memory_order_relaxed);  // a hint
  return s;
}

}  // namespace

void set_owner_check_interval(double seconds) {
  g_check_interval_ns.store(static_cast<int64_t>(seconds * 1e9), std::memory_order_relaxed);
}

double owner_check_interval() {
  return static_cast<double>(g_check_interval_ns.load(std::memory_order_relaxed)) / 1e9;
}

bool take_over_from_dead_owner(MutexState& m, const ThreadIdentity& me) {
  // relaxed loads: hints only; the CAS from the exact word value below decides.
  uint32_t w = m.word.load(std::memory_order_relaxed);
  if (w == 0) return false;
  uint64_t record = m.owner.load(std::memory_order_relaxed);
  if (record_tid(record) != (w & kTidMask)) return false;  // not this holder's record (yet)
  if (record_pid(record) == me.pid) return false;          // our own process is alive
  if (!record_process_gone(record)) return false;
  // acquire: this CAS takes the lock; keep the waiters bit, others may sleep on the word.
  if (!m.word.compare_exchange_strong(w, me.tid | kWaitersBit, std::memory_order_acquire,
                                      std::memory_order_relaxed))
    return false;
  m.owner.store(me.owner, std::memory_order_relaxed);  // a hint (see the header)
  return true;
}

Status lock_acquire(MutexState& m, const Deadline& deadline, Spin spin) {
  return acquire_and_record(m, deadline, spin, current_thread());
}

Status rlock_acquire_depth(MutexState& m, uint32_t depth, const Deadline& deadline,
                           Spin spin) {
  Status s = acquire_and_record(m, deadline, spin, current_thread());
  if (s == Status::kOk || s == Status::kOwnerDied)
    m.depth.store(depth, std::memory_order_relaxed);  // ordered by the acquiring CAS
  return s;
}

uint32_t rlock_release_all(MutexState& m) {
  if (owner_tid(m) != current_thread().tid) return 0;
  uint32_t depth = m.depth.load(std::memory_order_relaxed);
  m.depth.store(0, std::memory_order_relaxed);
  unlock(m);
  return depth;
}

}  // namespace interlock::core::mutex
