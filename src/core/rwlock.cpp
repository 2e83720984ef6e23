#include "core/rwlock.hpp"

#include <climits>

#include "core/rwlock_holds.hpp"
#include "core/rwlock_robust.hpp"
#include "core/rwlock_wait.hpp"
#include "core/thread_identity.hpp"

namespace interlock::core::rwlock {

// The thread-local read holds (rwlock_holds.hpp).
__thread holds::ReadHolds holds::t_reads __attribute__((tls_model("initial-exec")));

namespace {

using holds::ReadHold;

// ---- the state word -----------------------------------------------------------------------

using state::prefers_readers;
using state::readable;
using state::try_read_state;

bool free_for_writer(uint64_t s) { return (s & (kWriterBit | kReaderMask)) == 0; }

// Takes the write hold if nobody holds the lock; `announced`: the caller counted itself among
// the waiting writers, and withdraws as it enters.
bool try_write_state(RWLockState& r, bool announced) {
  uint64_t s = r.state.load(std::memory_order_relaxed);  // a guess for the CAS
  while (free_for_writer(s)) {
    uint64_t next = (announced ? s - kWaitingWriterOne : s) | kWriterBit;
    // acquire: takes the write hold, after every earlier holder's release.
    if (r.state.compare_exchange_weak(s, next, std::memory_order_acquire,
                                      std::memory_order_relaxed))
      return true;
  }
  return false;
}

void wake_readers(RWLockState& r) { wake_side(r.read_seq, r.read_sleepers, INT_MAX); }
void wake_writer(RWLockState& r) { wake_side(r.write_seq, r.write_sleepers, 1); }

// The wakes owed once no writer holds the lock and the state is `s` (see the header).
void wake_after_writer(RWLockState& r, uint64_t s) {
  const bool writers_wait = (s & kWaitingWritersMask) != 0;
  if (writers_wait && (s & kReaderMask) == 0) wake_writer(r);
  if (!writers_wait || prefers_readers(r)) wake_readers(r);
}

}  // namespace

void init(Slot& slot, Prefer prefer) {
  RWLockState& r = slot.body.rwlock;
  // Not yet shared with anyone: relaxed stores; publication happens with the slot's tag.
  r.state.store(0, std::memory_order_relaxed);
  r.read_seq.store(0, std::memory_order_relaxed);
  r.write_seq.store(0, std::memory_order_relaxed);
  r.read_sleepers.store(0, std::memory_order_relaxed);
  r.write_sleepers.store(0, std::memory_order_relaxed);
  r.writer.store(0, std::memory_order_relaxed);
  r.prefer = static_cast<uint32_t>(prefer);
  r.robust = 0;
}

Status read(Slot& slot, const Deadline& deadline, Spin spin) {
  if (is_robust(slot)) return robust::read(slot, deadline, spin);
  RWLockState& r = slot.body.rwlock;
  ReadHold* held = holds::find(slot);
  const bool nested = held != nullptr;
  auto ready = [&] {
    // seq_cst: the state load of the sleeper's handshake.
    return readable(r, r.state.load(std::memory_order_seq_cst), nested);
  };
  if (try_read_state(r, nested) ||
      (spin == Spin::kYes && spin_until([&] { return try_read_state(r, nested); }))) {
    holds::count(slot, held);
    return Status::kOk;
  }
  while (true) {
    Status st = sleep_on(r.read_seq, r.read_sleepers, deadline, ready);
    if (try_read_state(r, nested)) {  // also the last look of a wait that timed out
      holds::count(slot, held);
      return Status::kOk;
    }
    if (st != Status::kOk) return st;
  }
}

Release release_read_elsewhere(Slot& slot) {
  if (is_robust(slot)) return robust::release_read(slot);
  return readers(slot) == 0 ? Release::kNotHeld : Release::kNotOwner;  // no hold of ours
}

void wake_after_read(RWLockState& r, uint64_t old) {
  if ((old & kReaderMask) == 1 && (old & kWaitingWritersMask) != 0) wake_writer(r);
  if ((old & kReaderMask) == kReaderMask) wake_readers(r);  // readers waited for room
}

bool try_write(Slot& slot) {
  if (is_robust(slot)) return false;
  RWLockState& r = slot.body.rwlock;
  if (!try_write_state(r, false)) return false;
  r.writer.store(current_thread().tid, std::memory_order_relaxed);  // ordered by the CAS
  return true;
}

Status write(Slot& slot, const Deadline& deadline, Spin spin) {
  WriteWait wait;
  const Status st = write(slot, deadline, spin, wait);
  withdraw(slot, wait);  // nothing to do when the hold was taken
  return st;
}

Status write(Slot& slot, const Deadline& deadline, Spin spin, WriteWait& wait) {
  const uint32_t pid = current_thread().pid;
  if (wait.announced_by != pid) wait.announced_by = 0;  // none, or a parent's (fork)
  if (is_robust(slot)) {
    bool announced = wait.announced_by != 0;
    const Status st = robust::write(slot, deadline, spin, announced);
    wait.announced_by = announced ? pid : 0;
    return st;
  }
  RWLockState& r = slot.body.rwlock;
  if (wait.announced_by == 0) {
    if (try_write(slot) ||
        (spin == Spin::kYes && spin_with_backoff([&] { return try_write(slot); })))
      return Status::kOk;
    // seq_cst: the announcement that holds new readers back (kWriters) is a state change the
    // readers' handshake must see.
    r.state.fetch_add(kWaitingWriterOne, std::memory_order_seq_cst);
    wait.announced_by = pid;
  }
  auto ready = [&] {
    // seq_cst: the state load of the sleeper's handshake.
    return free_for_writer(r.state.load(std::memory_order_seq_cst));
  };
  while (true) {
    if (try_write_state(r, true)) {
      wait.announced_by = 0;  // the announcement went with the entry
      r.writer.store(current_thread().tid, std::memory_order_relaxed);  // ordered by the CAS
      return Status::kOk;
    }
    Status st = sleep_on(r.write_seq, r.write_sleepers, deadline, ready);
    if (st == Status::kOk) continue;
    if (try_write_state(r, true)) {  // the last look of a wait that ended
      wait.announced_by = 0;
      r.writer.store(current_thread().tid, std::memory_order_relaxed);
      return Status::kOk;
    }
    return st;  // still announced: the caller calls again or withdraws
  }
}

void withdraw(Slot& slot, WriteWait& wait) {
  if (wait.announced_by != current_thread().pid) {  // none, or a parent's (fork)
    wait.announced_by = 0;
    return;
  }
  wait.announced_by = 0;
  if (is_robust(slot)) return robust::withdraw(slot);
  RWLockState& r = slot.body.rwlock;
  // Readers held back by this writer alone may enter now, and a wake meant for this writer
  // may have come: pass it on (header, "Who wakes whom").
  // seq_cst: a waker's state change in the handshake.
  const uint64_t s =
      r.state.fetch_sub(kWaitingWriterOne, std::memory_order_seq_cst) - kWaitingWriterOne;
  if (!(s & kWriterBit)) wake_after_writer(r, s);
}

Release release_write(Slot& slot) {
  if (is_robust(slot)) return robust::release_write(slot);
  RWLockState& r = slot.body.rwlock;
  if (!write_locked(slot)) return Release::kNotHeld;
  if (!owns_write(slot)) return Release::kNotOwner;
  r.writer.store(0, std::memory_order_relaxed);  // published by the release below
  // seq_cst: release for the writer's critical section, and the waker's state change. The
  // caller's bit is set, so subtracting it clears it: one xadd, where fetch_and would be a
  // CAS loop on x86-64.
  uint64_t s = r.state.fetch_sub(kWriterBit, std::memory_order_seq_cst) - kWriterBit;
  wake_after_writer(r, s);
  return Release::kOk;
}

Release downgrade(Slot& slot) {
  if (is_robust(slot)) return robust::downgrade(slot);
  RWLockState& r = slot.body.rwlock;
  if (!write_locked(slot)) return Release::kNotHeld;
  if (!owns_write(slot)) return Release::kNotOwner;
  r.writer.store(0, std::memory_order_relaxed);  // published by the release below
  // One addition trades the caller's writer bit (set: it holds it) for one reader, so no
  // writer can enter in between. seq_cst: release for the writer's critical section, and the
  // waker's state change.
  const uint64_t next = r.state.fetch_add(kReaderOne - kWriterBit, std::memory_order_seq_cst) +
                        (kReaderOne - kWriterBit);
  holds::count(slot, holds::find(slot));
  if ((next & kWaitingWritersMask) == 0 || prefers_readers(r)) wake_readers(r);
  return Release::kOk;
}

uint32_t readers(const Slot& slot) {
  const uint64_t s = slot.body.rwlock.state.load(std::memory_order_relaxed);  // a snapshot
  if (is_robust(slot)) return static_cast<uint32_t>(__builtin_popcountll(s & robust::kReaderBits));
  return static_cast<uint32_t>(s & kReaderMask);
}

uint32_t waiting_writers(const Slot& slot) {
  const uint64_t s = slot.body.rwlock.state.load(std::memory_order_relaxed);  // a snapshot
  if (is_robust(slot))
    return static_cast<uint32_t>(__builtin_popcountll(s & robust::kWaitingBits));
  return static_cast<uint32_t>((s & kWaitingWritersMask) >> 32);
}

bool owns_write(const Slot& slot) {
  // relaxed: only the holder stores its own tid, so the caller sees its own store or another.
  return write_locked(slot) &&
         slot.body.rwlock.writer.load(std::memory_order_relaxed) == current_thread().tid;
}

uint32_t own_reads(const Slot& slot) {
  const ReadHold* h = holds::find(slot);
  return h == nullptr ? 0 : h->count;
}

}  // namespace interlock::core::rwlock
