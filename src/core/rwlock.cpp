#include "core/rwlock.hpp"

#include <climits>
#include <vector>

#include "core/thread_identity.hpp"

namespace interlock::core::rwlock {

namespace {

// ---- the calling thread's read holds ----------------------------------------------------

struct ReadHold {
  const Slot* slot;
  uint32_t tag;  // the slot's tag when the hold was taken: a reused slot is another lock
  uint32_t count;
};

// A plain struct in initial-exec TLS (as thread_identity.hpp's identity): looked up on every
// read acquire and release, so one %fs-relative access, no __tls_get_addr call or guard. A
// thread holding reads on more than kInlineHolds locks at once spills into `more`.
constexpr int kInlineHolds = 6;
struct ReadHolds {
  uint32_t tid;  // the thread these holds belong to: a fork child's thread has a new one
  uint32_t used;
  ReadHold inline_holds[kInlineHolds];
  std::vector<ReadHold>* more;  // allocated on first spill, kept for the thread's life
};
__thread ReadHolds t_reads __attribute__((tls_model("initial-exec")));

uint32_t slot_tag(const Slot& slot) {
  return slot.header.tag.load(std::memory_order_relaxed);  // set before the slot is shared
}

ReadHolds& my_holds() {
  const uint32_t tid = current_thread().tid;
  if (t_reads.tid != tid) {  // first use in this thread, or a fork child's copy: none are ours
    t_reads.tid = tid;
    t_reads.used = 0;
    if (t_reads.more != nullptr) t_reads.more->clear();
  }
  return t_reads;
}

ReadHold* find_hold(const Slot& slot) {
  ReadHolds& holds = my_holds();
  const uint32_t tag = slot_tag(slot);
  for (uint32_t i = 0; i < holds.used; ++i) {
    ReadHold& h = holds.inline_holds[i];
    if (h.slot == &slot && h.tag == tag) return &h;
  }
  if (holds.more != nullptr)
    for (ReadHold& h : *holds.more)
      if (h.slot == &slot && h.tag == tag) return &h;
  return nullptr;
}

// Counts one more read hold; `h` is find_hold's answer for this slot, taken just before.
void count_read(const Slot& slot, ReadHold* h) {
  if (h != nullptr) {
    ++h->count;
    return;
  }
  ReadHolds& holds = my_holds();
  const ReadHold fresh{&slot, slot_tag(slot), 1};
  if (holds.used < kInlineHolds) {
    holds.inline_holds[holds.used++] = fresh;
    return;
  }
  if (holds.more == nullptr) holds.more = new std::vector<ReadHold>();
  holds.more->push_back(fresh);
}

void uncount_read(ReadHold* h) {
  if (--h->count != 0) return;
  ReadHolds& holds = my_holds();
  std::vector<ReadHold>* more = holds.more;
  if (more != nullptr && !more->empty() && h >= more->data() && h < more->data() + more->size()) {
    *h = more->back();
    more->pop_back();
    return;
  }
  // An inline hold: the last inline one takes its place, and a spilled one moves in.
  *h = holds.inline_holds[--holds.used];
  if (more != nullptr && !more->empty()) {
    holds.inline_holds[holds.used++] = more->back();
    more->pop_back();
  }
}

// ---- the state word -----------------------------------------------------------------------

bool prefers_readers(const RWLockState& r) {
  return r.prefer == static_cast<uint32_t>(Prefer::kReaders);  // fixed before sharing
}

// Whether a reader may enter now (`nested`: the thread already holds a read).
bool readable(const RWLockState& r, uint64_t s, bool nested) {
  if (s & kWriterBit) return false;
  if ((s & kReaderMask) == kReaderMask) return false;  // the count is full: wait for a release
  return nested || prefers_readers(r) || (s & kWaitingWritersMask) == 0;
}

bool free_for_writer(uint64_t s) { return (s & (kWriterBit | kReaderMask)) == 0; }

bool try_read_state(RWLockState& r, bool nested) {
  uint64_t s = r.state.load(std::memory_order_relaxed);  // a guess for the CAS
  while (readable(r, s, nested)) {
    // acquire: takes a read hold, after the last writer's release.
    if (r.state.compare_exchange_weak(s, s + kReaderOne, std::memory_order_acquire,
                                      std::memory_order_relaxed))
      return true;
  }
  return false;
}

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

// Called after the state change that lets the woken side in; the waker half of the handshake
// (header), all seq_cst. Nobody counted as a sleeper means that any later sleeper will see the
// state change, so the sequence word is bumped only for sleepers that may not have: their
// futex_wait then finds the word changed, or is woken.
void wake_side(std::atomic<uint32_t>& seq, std::atomic<uint32_t>& sleepers, int count) {
  if (sleepers.load(std::memory_order_seq_cst) == 0) return;
  seq.fetch_add(1, std::memory_order_seq_cst);
  futex_wake(&seq, count);
}

void wake_readers(RWLockState& r) { wake_side(r.read_seq, r.read_sleepers, INT_MAX); }
void wake_writer(RWLockState& r) { wake_side(r.write_seq, r.write_sleepers, 1); }

// The wakes owed once no writer holds the lock and the state is `s` (see the header).
void wake_after_writer(RWLockState& r, uint64_t s) {
  const bool writers_wait = (s & kWaitingWritersMask) != 0;
  if (writers_wait && (s & kReaderMask) == 0) wake_writer(r);
  if (!writers_wait || prefers_readers(r)) wake_readers(r);
}

// Sleeps once on `seq` (a sequence word of `r`), unless `ready` holds once this thread counts
// among `sleepers`. kOk: look again.
template <class Ready>
Status sleep_on(std::atomic<uint32_t>& seq, std::atomic<uint32_t>& sleepers,
                const Deadline& deadline, Ready&& ready) {
  // seq_cst: the sleeper half of the handshake (header): sequence, sleepers, then state.
  const uint32_t seen = seq.load(std::memory_order_seq_cst);
  sleepers.fetch_add(1, std::memory_order_seq_cst);
  Status st = ready() ? Status::kOk : futex_wait(&seq, seen, deadline);
  sleepers.fetch_sub(1, std::memory_order_relaxed);  // only ever an over-estimate
  return st;
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
}

bool try_read(Slot& slot) {
  ReadHold* held = find_hold(slot);
  if (!try_read_state(slot.body.rwlock, held != nullptr)) return false;
  count_read(slot, held);
  return true;
}

Status read(Slot& slot, const Deadline& deadline, Spin spin) {
  RWLockState& r = slot.body.rwlock;
  ReadHold* held = find_hold(slot);
  const bool nested = held != nullptr;
  auto ready = [&] {
    // seq_cst: the state load of the sleeper's handshake.
    return readable(r, r.state.load(std::memory_order_seq_cst), nested);
  };
  if (try_read_state(r, nested) ||
      (spin == Spin::kYes && spin_until([&] { return try_read_state(r, nested); }))) {
    count_read(slot, held);
    return Status::kOk;
  }
  while (true) {
    Status st = sleep_on(r.read_seq, r.read_sleepers, deadline, ready);
    if (try_read_state(r, nested)) {  // also the last look of a wait that timed out
      count_read(slot, held);
      return Status::kOk;
    }
    if (st != Status::kOk) return st;
  }
}

Release release_read(Slot& slot) {
  RWLockState& r = slot.body.rwlock;
  ReadHold* h = find_hold(slot);
  if (h == nullptr) return readers(slot) == 0 ? Release::kNotHeld : Release::kNotOwner;
  uncount_read(h);
  // seq_cst: release for the reader's critical section, and the waker's state change.
  uint64_t old = r.state.fetch_sub(kReaderOne, std::memory_order_seq_cst);
  if ((old & kReaderMask) == 1 && (old & kWaitingWritersMask) != 0) wake_writer(r);
  if ((old & kReaderMask) == kReaderMask) wake_readers(r);  // readers waited for room
  return Release::kOk;
}

bool try_write(Slot& slot) {
  RWLockState& r = slot.body.rwlock;
  if (!try_write_state(r, false)) return false;
  r.writer.store(current_thread().tid, std::memory_order_relaxed);  // ordered by the CAS
  return true;
}

Status write(Slot& slot, const Deadline& deadline, Spin spin) {
  RWLockState& r = slot.body.rwlock;
  if (try_write(slot) ||
      (spin == Spin::kYes && spin_with_backoff([&] { return try_write(slot); })))
    return Status::kOk;
  // seq_cst: the announcement that holds new readers back (kWriters) is a state change the
  // readers' handshake must see.
  r.state.fetch_add(kWaitingWriterOne, std::memory_order_seq_cst);
  auto ready = [&] {
    // seq_cst: the state load of the sleeper's handshake.
    return free_for_writer(r.state.load(std::memory_order_seq_cst));
  };
  while (true) {
    if (try_write_state(r, true)) {
      r.writer.store(current_thread().tid, std::memory_order_relaxed);  // ordered by the CAS
      return Status::kOk;
    }
    Status st = sleep_on(r.write_seq, r.write_sleepers, deadline, ready);
    if (st == Status::kOk) continue;
    if (try_write_state(r, true)) {  // the last look of a wait that ended
      r.writer.store(current_thread().tid, std::memory_order_relaxed);
      return Status::kOk;
    }
    // Withdraw. Readers held back by this writer alone may enter now, and a wake meant for
    // this writer may have come: pass it on (header, "Who wakes whom").
    // seq_cst: a waker's state change in the handshake.
    uint64_t s = r.state.fetch_sub(kWaitingWriterOne, std::memory_order_seq_cst) -
                 kWaitingWriterOne;
    if (!(s & kWriterBit)) wake_after_writer(r, s);
    return st;
  }
}

Release release_write(Slot& slot) {
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
  RWLockState& r = slot.body.rwlock;
  if (!write_locked(slot)) return Release::kNotHeld;
  if (!owns_write(slot)) return Release::kNotOwner;
  r.writer.store(0, std::memory_order_relaxed);  // published by the release below
  // One addition trades the caller's writer bit (set: it holds it) for one reader, so no
  // writer can enter in between. seq_cst: release for the writer's critical section, and the
  // waker's state change.
  const uint64_t next = r.state.fetch_add(kReaderOne - kWriterBit, std::memory_order_seq_cst) +
                        (kReaderOne - kWriterBit);
  count_read(slot, find_hold(slot));
  if ((next & kWaitingWritersMask) == 0 || prefers_readers(r)) wake_readers(r);
  return Release::kOk;
}

bool owns_write(const Slot& slot) {
  // relaxed: only the holder stores its own tid, so the caller sees its own store or another.
  return write_locked(slot) &&
         slot.body.rwlock.writer.load(std::memory_order_relaxed) == current_thread().tid;
}

uint32_t own_reads(const Slot& slot) {
  const ReadHold* h = find_hold(slot);
  return h == nullptr ? 0 : h->count;
}

}  // namespace interlock::core::rwlock
