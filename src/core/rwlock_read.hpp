// rwlock_read.hpp: a plain RWLock's read acquire and release, inline where they cost least.
//
// Included at the end of rwlock.hpp, which declares and specifies try_read and release_read;
// here are their bodies. An uncontended read acquire and release is a lookup in the calling
// thread's holds (rwlock_holds.hpp) and one atomic read-modify-write each; everything else (a
// robust lock, a misused release, a release that owes a wake) goes to rwlock.cpp. Memory
// ordering: as rwlock.hpp states it, and at each atomic below.
#pragma once

#include "core/rwlock_holds.hpp"

namespace interlock::core::rwlock {

namespace state {

inline bool prefers_readers(const RWLockState& r) {
  return r.prefer == static_cast<uint32_t>(Prefer::kReaders);  // fixed before sharing
}

// Whether a reader may enter now (`nested`: the thread already holds a read).
inline bool readable(const RWLockState& r, uint64_t s, bool nested) {
  if (s & kWriterBit) return false;
  if ((s & kReaderMask) == kReaderMask) return false;  // the count is full: wait for a release
  return nested || prefers_readers(r) || (s & kWaitingWritersMask) == 0;
}

inline bool try_read_state(RWLockState& r, bool nested) {
  uint64_t s = r.state.load(std::memory_order_relaxed);  // a guess for the CAS
  while (readable(r, s, nested)) {
    // acquire: takes a read hold, after the last writer's release.
    if (r.state.compare_exchange_weak(s, s + kReaderOne, std::memory_order_acquire,
                                      std::memory_order_relaxed))
      return true;
  }
  return false;
}

}  // namespace state

// The rest of release_read (rwlock.cpp): a robust lock's, or a release by a thread with no
// read hold (the answer to misuse); and the wakes that a read release `old` owes.
Release release_read_elsewhere(Slot& slot);
void wake_after_read(RWLockState& r, uint64_t old);

inline bool try_read(Slot& slot) {
  if (is_robust(slot)) return false;
  holds::ReadHolds& mine = holds::mine();
  holds::ReadHold* held = holds::find(mine, slot);
  if (!state::try_read_state(slot.body.rwlock, held != nullptr)) return false;
  holds::count(mine, slot, held);
  return true;
}

inline Release release_read(Slot& slot) {
  if (is_robust(slot)) return release_read_elsewhere(slot);
  holds::ReadHolds& mine = holds::mine();
  holds::ReadHold* h = holds::find(mine, slot);
  if (h == nullptr) return release_read_elsewhere(slot);
  holds::uncount(mine, h);
  RWLockState& r = slot.body.rwlock;
  // seq_cst: release for the reader's critical section, and the waker's state change.
  const uint64_t old = r.state.fetch_sub(kReaderOne, std::memory_order_seq_cst);
  // The last reader out wakes a waiting writer; readers waited for room in a full count.
  if (((old & kReaderMask) == 1 && (old & kWaitingWritersMask) != 0) ||
      (old & kReaderMask) == kReaderMask)
    wake_after_read(r, old);
  return Release::kOk;
}

}  // namespace interlock::core::rwlock
