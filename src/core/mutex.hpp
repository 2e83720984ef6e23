// mutex.hpp: Lock and RLock over one futex word.
//
// States of MutexState::word:
//   0                        unlocked
//   tid                      locked by kernel thread `tid`, nobody asleep
//   tid | kWaitersBit        locked, and somebody may be asleep on the word
// The owner's tid is kept in the low 30 bits as in the kernel's robust-futex ABI, so any
// process can tell who holds the lock. `owner` is the holder's owner record (tid, pid and
// process start stamp: process_identity.hpp), stored after the acquiring CAS; a reader may
// briefly see the previous holder's record, and tells by comparing its tid with the word's.
// `depth` is the RLock recursion count.
//
// Lock: anyone may unlock (multiprocessing's contract). RLock: only the owner may unlock,
// once per acquisition.
//
// Protocol (a three-state futex mutex): acquire is a CAS 0 -> tid. A waiter that finds the
// lock held first spins a bounded number of rounds, then sets kWaitersBit and sleeps while the
// word still reads as locked-with-waiters. Once it has slept it acquires with the bit set
// (it cannot know whether others still sleep). Unlock exchanges the word with 0 and issues a
// wake only if the bit was set, so an uncontended unlock makes no system call.
//
// Robust locks (`robust` set at creation). Before each sleep, a waiter reads the word, then the
// owner record, and if the record belongs to the word's holder (same tid) and names a process
// that is gone, it takes the lock over with a CAS from that exact word value, so at most one
// waiter wins, and the acquire reports kOwnerDied. A record of another holder, or none yet, is
// never acted on. Releasing does not clear the record: the tid comparison already rejects a
// stale one. A Lock may still be released by any process; the record then simply belongs to
// nobody until the next acquire.
// A waiter whose holder lives in another process asks death_watch.hpp to wake it when that
// process ends, then sleeps until a release or that death: an idle robust waiter costs no
// more than any other. Since the holder may change while it sleeps, a robust lock's unlock
// wakes every sleeper (not one), and each watches the new holder before sleeping again. The
// holder can also change between the watch and the sleep (a release that nobody asleep
// heard, then a new acquire): the waiter sleeps only on a word that still names the holder it
// watches, and otherwise goes round to watch the new one. Where
// no death watch is available, a waiter sleeps in slices of owner_check_interval() instead
// and looks at the holder after each. A holder caught between its CAS and the store of its
// record (a few instructions) is looked at again after 1 ms.
//
// Memory ordering: the acquiring CAS is acquire and the unlocking exchange is release, so
// everything done under the lock happens-before the next owner's critical section. Failed
// CASes and polling loads are relaxed: they only decide whether to retry.
#pragma once

#include <cstdint>

#include "core/deadline.hpp"
#include "core/futex.hpp"
#include "core/process_identity.hpp"
#include "core/slot.hpp"
#include "core/spin.hpp"
#include "core/thread_identity.hpp"

namespace interlock::core::mutex {

inline constexpr uint32_t kWaitersBit = 1u << 31;
inline constexpr uint32_t kTidMask = (1u << 30) - 1;

inline uint32_t owner_tid(const MutexState& m) {
  return m.word.load(std::memory_order_relaxed) & kTidMask;  // a snapshot, for checks by the owner
}
inline bool is_locked(const MutexState& m) {
  return m.word.load(std::memory_order_relaxed) != 0;  // a snapshot
}

// The bare three-state mutex on a futex word (also used by barrier.hpp's inner lock).

// One attempt, never blocks. A held lock is seen with a plain load, which costs far less than
// a failing compare-and-swap (a locked instruction either way).
inline bool try_lock(std::atomic<uint32_t>& word, uint32_t tid) {
  uint32_t expected = 0;
  // relaxed: only decides whether to try; acquire on the CAS (see "Memory ordering").
  return word.load(std::memory_order_relaxed) == 0 &&
         word.compare_exchange_strong(expected, tid, std::memory_order_acquire,
                                      std::memory_order_relaxed);
}

// Spins, then sleeps until the lock is taken (kOk), the deadline passes or a signal arrives.
Status lock_slow(std::atomic<uint32_t>& word, uint32_t tid, const Deadline& deadline,
                 Spin spin = Spin::kYes);

// A brief bounded spin for a contended lock, meant to run before the caller releases the GIL.
bool lock_spin_briefly(std::atomic<uint32_t>& word, uint32_t tid);

// Unlocks unconditionally; returns the previous word (0 if it was not locked).
inline uint32_t unlock(std::atomic<uint32_t>& word) {
  // release: see the header's "Memory ordering".
  uint32_t old = word.exchange(0, std::memory_order_release);
  if (old & kWaitersBit) futex_wake(&word, 1);
  return old;
}

// The same for a Lock or RLock: a robust one wakes every sleeper (see the header).
void wake_after_unlock(MutexState& m);
inline uint32_t unlock(MutexState& m) {
  // release: see the header's "Memory ordering".
  uint32_t old = m.word.exchange(0, std::memory_order_release);
  if (old & kWaitersBit) wake_after_unlock(m);
  return old;
}

// --- multiprocessing.Lock -------------------------------------------------------------

// Acquires (blocking per `deadline`). kOk when acquired; kOwnerDied (robust locks) when
// acquired from a holder whose process had died.
Status lock_acquire(MutexState& m, const Deadline& deadline, Spin spin = Spin::kYes);

// Robust locks: takes the lock over if its holder's process is gone (see the header). True
// when the caller now holds it.
bool take_over_from_dead_owner(MutexState& m, const ThreadIdentity& me);

// How long a robust lock's waiter sleeps between checks of the holder where no death watch is
// available (default 50 ms).
void set_owner_check_interval(double seconds);
double owner_check_interval();
// False when the lock was not locked (nothing changes then: the exchange wrote 0 over 0).
inline bool lock_release(MutexState& m) { return unlock(m) != 0; }

// --- multiprocessing.RLock ------------------------------------------------------------

// Lock: one attempt that also records the owner's process.
inline bool lock_try_acquire(MutexState& m) {
  const ThreadIdentity& me = current_thread();
  if (!try_lock(m.word, me.tid)) return false;
  m.owner.store(me.owner, std::memory_order_relaxed);  // read as a hint only (see the header)
  return true;
}

inline bool rlock_try_acquire(MutexState& m) {
  const ThreadIdentity& me = current_thread();
  if (owner_tid(m) == me.tid) {
    // Only the owner writes depth while it holds the lock: relaxed is enough.
    m.depth.store(m.depth.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    return true;
  }
  if (!try_lock(m.word, me.tid)) return false;
  m.owner.store(me.owner, std::memory_order_relaxed);  // read as a hint only (see the header)
  m.depth.store(1, std::memory_order_relaxed);  // ordered by the acquiring CAS
  return true;
}

// False when the caller is not the owner (nothing changes then).
inline bool rlock_release(MutexState& m) {
  if (owner_tid(m) != current_thread().tid) return false;
  uint32_t depth = m.depth.load(std::memory_order_relaxed);  // only the owner writes it
  m.depth.store(depth - 1, std::memory_order_relaxed);
  if (depth <= 1) unlock(m);  // its release exchange publishes depth == 0
  return true;
}
// Releases every level at once (Condition.wait); returns the depth that was held, 0 if the
// caller is not the owner.
uint32_t rlock_release_all(MutexState& m);
// Takes the lock and sets its depth (Condition.wait re-acquiring; also RLock's slow path).
// kOwnerDied as lock_acquire.
Status rlock_acquire_depth(MutexState& m, uint32_t depth, const Deadline& deadline,
                           Spin spin = Spin::kYes);

}  // namespace interlock::core::mutex
