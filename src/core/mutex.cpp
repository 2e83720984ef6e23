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

Status lock_acquire(MutexState& m, const Deadline& deadline, Spin spin) {
  const ThreadIdentity& me = current_thread();
  if (!try_lock(m.word, me.tid)) {
    Status s = lock_slow(m.word, me.tid, deadline, spin);
    if (s != Status::kOk) return s;
  }
  m.owner_pid.store(me.pid, std::memory_order_relaxed);  // informational (repr)
  return Status::kOk;
}

Status rlock_acquire_depth(MutexState& m, uint32_t depth, const Deadline& deadline,
                           Spin spin) {
  const ThreadIdentity& me = current_thread();
  if (!try_lock(m.word, me.tid)) {
    Status s = lock_slow(m.word, me.tid, deadline, spin);
    if (s != Status::kOk) return s;
  }
  m.owner_pid.store(me.pid, std::memory_order_relaxed);  // informational (repr)
  m.depth.store(depth, std::memory_order_relaxed);
  return Status::kOk;
}

uint32_t rlock_release_all(MutexState& m) {
  if (owner_tid(m) != current_thread().tid) return 0;
  uint32_t depth = m.depth.load(std::memory_order_relaxed);
  m.depth.store(0, std::memory_order_relaxed);
  unlock(m.word);
  return depth;
}

}  // namespace interlock::core::mutex
