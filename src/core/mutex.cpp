#include "core/mutex.hpp"

#include "core/spin.hpp"
#include "core/thread_identity.hpp"

namespace interlock::core::mutex {

bool lock_spin_briefly(std::atomic<uint32_t>& word, uint32_t tid) {
  return spin_with_backoff(
      [&] {
        // relaxed poll; the CAS in try_lock provides the ordering.
        return word.load(std::memory_order_relaxed) == 0 && try_lock(word, tid);
      },
      kShortSpinRounds);
}

Status lock_slow(std::atomic<uint32_t>& word, uint32_t tid, const Deadline& deadline,
                 Spin spin) {
  if (spin == Spin::kYes && spin_with_backoff([&] {
        // relaxed poll; the CAS in try_lock provides the ordering.
        return word.load(std::memory_order_relaxed) == 0 && try_lock(word, tid);
      }))
    return Status::kOk;
  uint32_t w = word.load(std::memory_order_relaxed);  // a guess for the CAS loop
  while (true) {
    if (w == 0) {
      // We may have slept, so others may sleep too: keep the waiters bit set.
      // acquire: this CAS takes the lock.
      if (word.compare_exchange_weak(w, tid | kWaitersBit, std::memory_order_acquire,
                                       std::memory_order_relaxed))
        return Status::kOk;
      continue;
    }
    if (!(w & kWaitersBit)) {
      // relaxed: setting the bit publishes nothing but the bit itself.
      if (!word.compare_exchange_weak(w, w | kWaitersBit, std::memory_order_relaxed,
                                        std::memory_order_relaxed))
        continue;
      w |= kWaitersBit;
    }
    Status s = futex_wait(&word, w, deadline);
    if (s != Status::kOk) {
      // A last look: the lock may have been freed just as time ran out.
      if (s == Status::kTimedOut && try_lock(word, tid)) return Status::kOk;
      return s;
    }
    w = word.load(std::memory_order_relaxed);  // re-read after waking
  }
}

namespace {

// 50 ms: a dead holder is noticed within 100 ms even by a waiter that just went to sleep.
std::atomic<int64_t> g_check_interval_ns{50'000'000};  // relaxed: a setting, not a protocol

// lock_slow for robust locks: sleeps in slices, checking the holder after each one.
Status robust_lock_slow(MutexState& m, const ThreadIdentity& me, const Deadline& deadline,
                        Spin spin) {
  while (true) {
    Deadline slice = Deadline::earlier(deadline, Deadline::after(owner_check_interval()));
    Status s = lock_slow(m.word, me.tid, slice, spin);
    if (s != Status::kTimedOut) return s;
    spin = Spin::kNo;
    if (take_over_from_dead_owner(m, me)) return Status::kOwnerDied;
    if (deadline.passed()) return Status::kTimedOut;
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
  unlock(m.word);
  return depth;
}

}  // namespace interlock::core::mutex
