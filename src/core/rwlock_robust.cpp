#include "core/rwlock_robust.hpp"

#include <climits>
#include <mutex>
#include <unordered_map>

#include "core/arena.hpp"
#include "core/death_watch.hpp"
#include "core/mutex.hpp"
#include "core/process_identity.hpp"
#include "core/rwlock_holds.hpp"
#include "core/rwlock_wait.hpp"
#include "core/thread_identity.hpp"

namespace interlock::core::rwlock::robust {

namespace {

using holds::ReadHold;

// The record roles, in a record's tid field (unused for a process): a participant, or a
// cleaner's mark on an entry whose process is gone.
constexpr uint64_t kParticipant = 0;
constexpr uint64_t kCleaner = 1;

uint64_t my_record(uint64_t role) { return (current_thread().owner & ~kIdMask) | role; }

uint64_t reader_bit(int e) { return uint64_t{1} << e; }
uint64_t waiting_bit(int e) { return uint64_t{1} << (kWaitingShift + e); }
uint64_t writer_entry_bits(int e) { return uint64_t(e) << kWriterEntryShift; }
int writer_entry(uint64_t s) { return static_cast<int>((s & kWriterEntryMask) >> kWriterEntryShift); }

std::atomic<uint64_t>& record(Slot& slot, int e) {
  const Arena* arena = Arena::of(&slot);
  Slot* s = arena->linked(&slot);
  for (int k = 0; k < e / kRecordsPerSlot; ++k) s = arena->linked(s);
  return s->body.rwlock_records.process[e % kRecordsPerSlot];
}

// ---- this process's part in each robust lock (guarded by g_mu) ---------------------------

struct Part {
  uint32_t tag = 0;   // the slot's tag: a reused slot is another lock
  int entry = -1;     // the entry this process owns, or -1
  uint32_t reads = 0;     // read holds of this process's threads (reader bit set while > 0)
  uint32_t waiting = 0;   // writers of this process that announced themselves (waiting bit)
  uint32_t acquiring = 0; // threads of this process inside read() or write()
  bool writing = false;   // a thread of this process holds the write lock
};

std::mutex g_mu;
std::unordered_map<const Slot*, Part>* g_parts = new std::unordered_map<const Slot*, Part>();

Part& part(const Slot& slot) {
  Part& p = (*g_parts)[&slot];
  const uint32_t tag = holds::slot_tag(slot);
  if (p.tag != tag) p = Part{tag};
  return p;
}

void wake_all(RWLockState& r) {
  wake_side(r.read_seq, r.read_sleepers, INT_MAX);
  wake_side(r.write_seq, r.write_sleepers, INT_MAX);
}

// Claims an entry for this process if it has none. g_mu held. False when all are taken.
bool ensure_entry(Slot& slot, Part& p) {
  if (p.entry >= 0) return true;
  const uint64_t mine = my_record(kParticipant);
  for (int e = 0; e < kEntries; ++e) {
    std::atomic<uint64_t>& rec = record(slot, e);
    uint64_t v = rec.load(std::memory_order_relaxed);  // a guess for the CAS
    // seq_cst: the claimer's half of the sleep handshake (header).
    if (v == 0 && rec.compare_exchange_strong(v, mine, std::memory_order_seq_cst)) {
      p.entry = e;
      wake_all(slot.body.rwlock);  // sleepers watch the new participant
      return true;
    }
  }
  return false;
}

// Gives the entry back once this process has nothing left on the lock. g_mu held.
void leave_if_idle(Slot& slot, Part& p) {
  if (p.reads != 0 || p.waiting != 0 || p.acquiring != 0 || p.writing) return;
  if (p.entry >= 0) {
    // seq_cst: a state change that waiters for a free entry must see (the handshake).
    record(slot, p.entry).store(0, std::memory_order_seq_cst);
    wake_all(slot.body.rwlock);
  }
  g_parts->erase(&slot);
}

// Gives back what entry e's process held; the caller saw `seen` in its record and found that
// process gone. False when someone else cleans it (or did).
bool clean(Slot& slot, int e, uint64_t seen) {
  RWLockState& r = slot.body.rwlock;
  std::atomic<uint64_t>& rec = record(slot, e);
  // seq_cst: the mark makes this cleaner the only one; nobody claims a marked entry.
  if (!rec.compare_exchange_strong(seen, my_record(kCleaner), std::memory_order_seq_cst))
    return false;
  uint64_t s = r.state.load(std::memory_order_relaxed);  // a guess for the CAS
  while (true) {
    uint64_t next = s & ~(reader_bit(e) | waiting_bit(e));
    if ((s & kWriterBit) && writer_entry(s) == e) {
      next = (next & ~(kWriterBit | kWriterEntryMask)) | kLostWrite;
      r.writer.store(0, std::memory_order_relaxed);  // published by the CAS below
    }
    // seq_cst: gives the dead process's holds up (a release), and a waker's state change.
    if (next == s || r.state.compare_exchange_weak(s, next, std::memory_order_seq_cst,
                                                   std::memory_order_relaxed))
      break;
  }
  rec.store(0, std::memory_order_seq_cst);  // seq_cst: a free entry (see leave_if_idle)
  wake_all(r);
  return true;
}

// The sleeper's look at the participants, between counting itself and sleeping: every entry
// of another process is watched (death watch on `word`), or cleaned when its process is gone.
class Watch {
 public:
  Watch(Slot& slot, std::atomic<uint32_t>& word) : slot_(slot), word_(word) {}
  ~Watch() {
    for (int i = 0; i < count_; ++i) death_watch::unwatch(tickets_[i]);
  }
  Watch(const Watch&) = delete;
  Watch& operator=(const Watch&) = delete;

  // True when it cleaned an entry (the state changed: look again before sleeping).
  bool look() {
    const uint32_t pid = current_thread().pid;
    bool cleaned = false;
    for (int e = 0; e < kEntries; ++e) {
      // seq_cst: the sleeper's half of the handshake with claimers (header).
      const uint64_t v = record(slot_, e).load(std::memory_order_seq_cst);
      if (v == 0 || record_pid(v) == pid) continue;
      int ticket = -1;
      switch (death_watch::watch(&word_, v, &ticket)) {
        case death_watch::Result::kWatching:
          tickets_[count_++] = ticket;
          break;
        case death_watch::Result::kGone:
          cleaned |= clean(slot_, e, v);
          break;
        case death_watch::Result::kUnavailable:
          if (record_process_gone(v))
            cleaned |= clean(slot_, e, v);
          else
            polling_ = true;
          break;
      }
    }
    return cleaned;
  }
  // The last look of a wait whose time is up: the death watch may not have heard yet of a
  // death that already happened, so every other process's entry is checked in /proc.
  void look_in_proc() {
    const uint32_t pid = current_thread().pid;
    for (int e = 0; e < kEntries; ++e) {
      // seq_cst: as look()'s.
      const uint64_t v = record(slot_, e).load(std::memory_order_seq_cst);
      if (v != 0 && record_pid(v) != pid && record_process_gone(v)) clean(slot_, e, v);
    }
  }
  // How long to sleep: to the deadline, unless a participant could not be watched.
  Deadline slice(const Deadline& deadline) const {
    if (!polling_) return deadline;
    return Deadline::earlier(deadline, Deadline::after(mutex::owner_check_interval()));
  }

 private:
  Slot& slot_;
  std::atomic<uint32_t>& word_;
  int tickets_[kEntries];
  int count_ = 0;
  bool polling_ = false;
};

bool prefers_readers(const RWLockState& r) {
  return r.prefer == static_cast<uint32_t>(Prefer::kReaders);  // fixed before sharing
}

bool readable(const RWLockState& r, uint64_t s, bool nested) {
  if (s & kWriterBit) return false;
  return nested || prefers_readers(r) || (s & kWaitingBits) == 0;
}

bool free_for_writer(uint64_t s) { return (s & (kWriterBit | kReaderBits)) == 0; }

enum class Try { kIn, kInAfterDeath, kNo, kNoEntry };

Try try_enter_read(Slot& slot, bool nested) {
  RWLockState& r = slot.body.rwlock;
  std::lock_guard<std::mutex> guard(g_mu);
  Part& p = part(slot);
  uint64_t s = r.state.load(std::memory_order_relaxed);  // a guess for the CAS
  if (p.reads > 0) {  // this process's reader bit is set: no writer can hold
    if (!readable(r, s, nested)) return Try::kNo;
    ++p.reads;
    return Try::kIn;
  }
  if (!ensure_entry(slot, p)) return Try::kNoEntry;
  while (readable(r, s, nested)) {
    // seq_cst: takes a read hold (acquire), after the last writer's release.
    if (r.state.compare_exchange_weak(s, (s | reader_bit(p.entry)) & ~kLostWrite,
                                      std::memory_order_seq_cst, std::memory_order_relaxed)) {
      p.reads = 1;
      return (s & kLostWrite) ? Try::kInAfterDeath : Try::kIn;
    }
  }
  return Try::kNo;
}

Try try_enter_write(Slot& slot, bool announced) {
  RWLockState& r = slot.body.rwlock;
  std::lock_guard<std::mutex> guard(g_mu);
  Part& p = part(slot);
  if (!ensure_entry(slot, p)) return Try::kNoEntry;
  const int e = p.entry;
  // The last writer of this process to stop waiting takes its waiting bit down.
  const uint64_t withdrawn = announced && p.waiting == 1 ? waiting_bit(e) : 0;
  uint64_t s = r.state.load(std::memory_order_relaxed);  // a guess for the CAS
  while (free_for_writer(s)) {
    const uint64_t next = (s & ~(withdrawn | kLostWrite)) | kWriterBit | writer_entry_bits(e);
    // seq_cst: takes the write hold (acquire), after every earlier holder's release.
    if (r.state.compare_exchange_weak(s, next, std::memory_order_seq_cst,
                                      std::memory_order_relaxed)) {
      if (announced) --p.waiting;
      p.writing = true;
      r.writer.store(current_thread().tid, std::memory_order_relaxed);  // ordered by the CAS
      return (s & kLostWrite) ? Try::kInAfterDeath : Try::kIn;
    }
  }
  return Try::kNo;
}

bool is_in(Try t) { return t == Try::kIn || t == Try::kInAfterDeath; }
Status entered(Try t) { return t == Try::kInAfterDeath ? Status::kOwnerDied : Status::kOk; }

// Marks the calling thread as acquiring (its process keeps its entry meanwhile), or not.
void begin_acquire(Slot& slot) {
  std::lock_guard<std::mutex> guard(g_mu);
  ++part(slot).acquiring;
}
void end_acquire(Slot& slot) {
  std::lock_guard<std::mutex> guard(g_mu);
  Part& p = part(slot);
  --p.acquiring;
  leave_if_idle(slot, p);
}

// Sleeps once on `seq` (the sleeper's half of rwlock_wait.hpp's handshake), watching every
// participant, unless `ready()` holds or a dead participant was cleaned. kOk: look again.
template <class Ready>
Status sleep_watching(Slot& slot, std::atomic<uint32_t>& seq, std::atomic<uint32_t>& sleepers,
                      const Deadline& deadline, Ready&& ready) {
  // seq_cst: the sleeper half of the handshake: sequence, sleepers, then records and state.
  const uint32_t seen = seq.load(std::memory_order_seq_cst);
  sleepers.fetch_add(1, std::memory_order_seq_cst);
  Status st = Status::kOk;
  {
    Watch watch(slot, seq);
    if (!watch.look() && !ready()) {
      st = futex_wait(&seq, seen, watch.slice(deadline));
      if (st == Status::kTimedOut) {
        if (!deadline.passed())
          st = Status::kOk;  // a slice ended
        else
          watch.look_in_proc();  // before the caller's last try
      }
    }
  }
  sleepers.fetch_sub(1, std::memory_order_relaxed);  // only ever an over-estimate
  return st;
}

// Whether a process without an entry could claim one now. seq_cst: a state load of the
// sleeper's handshake (leave_if_idle and clean free entries as wakers).
bool entry_free(Slot& slot) {
  for (int e = 0; e < kEntries; ++e)
    if (record(slot, e).load(std::memory_order_seq_cst) == 0) return true;
  return false;
}

}  // namespace

void init(Slot& slot, Prefer prefer) {
  RWLockState& r = slot.body.rwlock;
  // Not yet shared with anyone: relaxed stores; publication happens with the slot's tag. The
  // linked records are zero (free) from the arena.
  r.state.store(0, std::memory_order_relaxed);
  r.writer.store(0, std::memory_order_relaxed);
  r.prefer = static_cast<uint32_t>(prefer);
  r.robust = 1;
}

Status try_read(Slot& slot) {
  ReadHold* held = holds::find(slot);
  const Try t = try_enter_read(slot, held != nullptr);
  if (is_in(t)) {
    holds::count(slot, held);
    return entered(t);
  }
  std::lock_guard<std::mutex> guard(g_mu);
  leave_if_idle(slot, part(slot));  // the entry it may have claimed for nothing
  return Status::kTimedOut;
}

Status try_write(Slot& slot) {
  const Try t = try_enter_write(slot, false);
  if (is_in(t)) return entered(t);
  std::lock_guard<std::mutex> guard(g_mu);
  leave_if_idle(slot, part(slot));
  return Status::kTimedOut;
}

Status read(Slot& slot, const Deadline& deadline, Spin spin) {
  RWLockState& r = slot.body.rwlock;
  ReadHold* held = holds::find(slot);
  const bool nested = held != nullptr;
  begin_acquire(slot);
  Try t = try_enter_read(slot, nested);
  if (t == Try::kNo && spin == Spin::kYes)
    spin_until([&] { return (t = try_enter_read(slot, nested)) != Try::kNo; });
  Status st = Status::kOk;
  while (!is_in(t)) {
    const bool need_entry = t == Try::kNoEntry;
    st = sleep_watching(slot, r.read_seq, r.read_sleepers, deadline, [&] {
      // seq_cst: the state load of the sleeper's handshake.
      return (!need_entry || entry_free(slot)) &&
             readable(r, r.state.load(std::memory_order_seq_cst), nested);
    });
    t = try_enter_read(slot, nested);  // also the last look of a wait that ended
    if (st != Status::kOk) break;
  }
  if (is_in(t)) {
    holds::count(slot, held);
    st = entered(t);
  }
  end_acquire(slot);
  return st;
}

Status write(Slot& slot, const Deadline& deadline, Spin spin, bool& announced) {
  RWLockState& r = slot.body.rwlock;
  begin_acquire(slot);
  Try t = try_enter_write(slot, announced);
  if (t == Try::kNo && spin == Spin::kYes && !announced)
    spin_with_backoff([&] { return (t = try_enter_write(slot, false)) != Try::kNo; });
  Status st = Status::kOk;
  while (!is_in(t)) {
    if (!announced) {
      std::lock_guard<std::mutex> guard(g_mu);
      Part& p = part(slot);
      if (ensure_entry(slot, p)) {
        // seq_cst: the announcement holds new readers back, a state change readers must see.
        if (p.waiting++ == 0) r.state.fetch_or(waiting_bit(p.entry), std::memory_order_seq_cst);
        announced = true;
      }
    }
    if (is_in(t = try_enter_write(slot, announced))) break;
    const bool need_entry = t == Try::kNoEntry;
    st = sleep_watching(slot, r.write_seq, r.write_sleepers, deadline, [&] {
      // seq_cst: the state load of the sleeper's handshake.
      return (!need_entry || entry_free(slot)) &&
             free_for_writer(r.state.load(std::memory_order_seq_cst));
    });
    t = try_enter_write(slot, announced);  // also the last look of a wait that ended
    if (st != Status::kOk) break;
  }
  if (is_in(t)) {
    announced = false;  // try_enter_write took the announcement down with the entry
    st = entered(t);
  }
  end_acquire(slot);  // an announced writer keeps its process's entry (leave_if_idle)
  return st;
}

void withdraw(Slot& slot) {
  RWLockState& r = slot.body.rwlock;
  std::lock_guard<std::mutex> guard(g_mu);
  Part& p = part(slot);
  // seq_cst: a waker's state change; the held-back readers may enter now.
  if (--p.waiting == 0) r.state.fetch_and(~waiting_bit(p.entry), std::memory_order_seq_cst);
  wake_all(r);
  leave_if_idle(slot, p);
}

Release release_read(Slot& slot) {
  RWLockState& r = slot.body.rwlock;
  ReadHold* h = holds::find(slot);
  if (h == nullptr) return readers(slot) == 0 ? Release::kNotHeld : Release::kNotOwner;
  holds::uncount(h);
  std::lock_guard<std::mutex> guard(g_mu);
  Part& p = part(slot);
  if (--p.reads == 0) {
    // seq_cst: release for the readers' critical sections, and a waker's state change.
    r.state.fetch_and(~reader_bit(p.entry), std::memory_order_seq_cst);
    wake_all(r);
    leave_if_idle(slot, p);
  }
  return Release::kOk;
}

Release release_write(Slot& slot) {
  RWLockState& r = slot.body.rwlock;
  if (!write_locked(slot)) return Release::kNotHeld;
  if (!owns_write(slot)) return Release::kNotOwner;
  std::lock_guard<std::mutex> guard(g_mu);
  Part& p = part(slot);
  r.writer.store(0, std::memory_order_relaxed);  // published by the release below
  // seq_cst: release for the writer's critical section, and a waker's state change.
  r.state.fetch_and(~(kWriterBit | kWriterEntryMask), std::memory_order_seq_cst);
  p.writing = false;
  wake_all(r);
  leave_if_idle(slot, p);
  return Release::kOk;
}

Release downgrade(Slot& slot) {
  RWLockState& r = slot.body.rwlock;
  if (!write_locked(slot)) return Release::kNotHeld;
  if (!owns_write(slot)) return Release::kNotOwner;
  {
    std::lock_guard<std::mutex> guard(g_mu);
    Part& p = part(slot);
    const int e = p.entry;
    r.writer.store(0, std::memory_order_relaxed);  // published by the release below
    // One addition trades the writer bit and entry (both set: the caller holds them) for this
    // process's reader bit (clear: no reader of it could enter under the writer), so no writer
    // can enter in between. seq_cst: release for the writer's critical section, and a waker's
    // state change.
    r.state.fetch_add(reader_bit(e) - kWriterBit - writer_entry_bits(e),
                      std::memory_order_seq_cst);
    p.writing = false;
    ++p.reads;
    wake_all(r);
  }
  holds::count(slot, holds::find(slot));
  return Release::kOk;
}

void fork_prepare() { g_mu.lock(); }
void fork_parent() { g_mu.unlock(); }
void fork_child() {
  g_parts->clear();  // the parent's entries and holds are the parent's
  g_mu.unlock();
}

}  // namespace interlock::core::rwlock::robust
