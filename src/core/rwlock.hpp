// rwlock.hpp: a reader-writer lock in one slot: many readers, or one writer.
//
// RWLockState::state, a 64-bit word that is never slept on:
//   bits 0-31   readers holding the lock
//   bits 32-62  writers waiting (announced before they sleep, withdrawn when they give up)
//   bit 63      a writer holds the lock
// Readers sleep on `read_seq` and writers on `write_seq`; a waker changes `state`, then, only
// when the side it wakes counts sleepers, bumps that side's sequence word and calls
// futex_wake, so an uncontended release makes no system call and no extra atomic write. `writer` names the
// write holder's thread, for the ownership check of release_write and downgrade.
//
// Policy (`prefer`, fixed at creation):
//   kWriters  a reader may enter only while no writer holds or waits, so a stream of readers
//             cannot starve a writer; a thread that already holds a read may always take
//             another, so nested reads never deadlock behind a waiting writer;
//   kReaders  a reader may enter whenever no writer holds; writers wait for a moment with
//             no reader at all, and can starve under a continuous stream of readers.
// Either way a writer may enter whenever nobody holds the lock, before writers that wait.
//
// Who wakes whom:
//   - the last reader to leave wakes one writer, if any waits (other readers wake nobody);
//   - a writer's release wakes one writer if any waits, and all readers with one wake when
//     no writer waits (kWriters) or always (kReaders);
//   - downgrade() wakes the readers the same way;
//   - a writer that gives up waiting (timeout, signal, withdraw()) and leaves the lock free
//     passes the wake on as a release would, so no wake-up is lost with it.
//
// Read holds are counted per thread (in this process's thread-local memory, keyed by slot
// and generation, and reset in a fork child, whose thread has a new tid), so that releasing
// a read hold the thread does not have is refused instead of corrupting the count.
//
// Memory ordering: every change of `state` that takes the lock is acquire, and every change
// that gives it up is release, so a writer's critical section happens-before every later
// holder's, and every reader's before the next writer's (the readers' decrements form one
// release sequence that the writer's acquiring CAS reads from). The sleep handshakes are
// store-then-load on two locations ("sleeper: read the sequence word, bump sleepers, read
// state, sleep while the sequence word is unchanged" / "waker: change state, read sleepers,
// and if there are any, bump the sequence word and wake"), all seq_cst: either the waker sees
// the sleeper, whose sleep then ends on the bumped word, or the sleeper sees the new state
// and does not sleep.
#pragma once

#include <cstdint>

#include "core/deadline.hpp"
#include "core/futex.hpp"
#include "core/slot.hpp"
#include "core/spin.hpp"

namespace interlock::core::rwlock {

enum class Prefer : uint32_t { kWriters = 0, kReaders = 1 };

inline constexpr uint64_t kReaderOne = 1;
inline constexpr uint64_t kReaderMask = 0xffffffffull;
inline constexpr uint64_t kWaitingWriterOne = 1ull << 32;
inline constexpr uint64_t kWaitingWritersMask = 0x7fffffffull << 32;
inline constexpr uint64_t kWriterBit = 1ull << 63;

// The outcome of a release or downgrade.
enum class Release {
  kOk,
  kNotHeld,   // nobody holds the lock that way (a Lock's release of an unlocked lock)
  kNotOwner,  // it is held that way, but not by the calling thread (an RLock's non-owner)
};

// A plain lock; a robust one is set up by rwlock_robust.hpp's init. Every call below serves
// both kinds, except try_read and try_write, which answer false for a robust lock.
void init(Slot& slot, Prefer prefer);

// Read holds. try_read makes one attempt; read spins, then sleeps until it holds (kOk), the
// deadline passes or a signal arrives. (try_read and release_read are inline: the read path
// is the one that must cost least, rwlock_read.hpp.)
inline bool try_read(Slot& slot);
Status read(Slot& slot, const Deadline& deadline, Spin spin = Spin::kYes);
inline Release release_read(Slot& slot);

// The write hold. write() is one whole wait: a writer that gives up withdraws at once.
bool try_write(Slot& slot);
Status write(Slot& slot, const Deadline& deadline, Spin spin = Spin::kYes);

// One writer's wait made of several write() calls, as a caller that sleeps in slices (to run
// signal handlers in between) makes. The writer's announcement, which holds new readers back
// under kWriters, stays up from the call that makes it until a call takes the hold or the
// caller withdraws, so no reader can slip in between two calls. The caller must withdraw()
// once it stops waiting without the hold (withdraw after a taken hold does nothing). A fork
// child inherits no announcement: the parent's stays the parent's.
struct WriteWait {
  uint32_t announced_by = 0;  // the pid of the process that announced; 0: not announced
};
Status write(Slot& slot, const Deadline& deadline, Spin spin, WriteWait& wait);
void withdraw(Slot& slot, WriteWait& wait);
Release release_write(Slot& slot);
// Turns the calling thread's write hold into a read hold, with no moment in between at which
// another writer could enter.
Release downgrade(Slot& slot);

// Snapshots: read holds in every process (for a robust lock: processes holding reads), and
// writers waiting (robust: processes with writers waiting).
uint32_t readers(const Slot& slot);
inline bool write_locked(const Slot& slot) {
  return (slot.body.rwlock.state.load(std::memory_order_relaxed) & kWriterBit) != 0;  // snapshot
}
uint32_t waiting_writers(const Slot& slot);
inline bool is_robust(const Slot& slot) { return slot.body.rwlock.robust != 0; }  // fixed
// Whether the calling thread holds the write lock, and how many read holds it has.
bool owns_write(const Slot& slot);
uint32_t own_reads(const Slot& slot);

}  // namespace interlock::core::rwlock

#include "core/rwlock_read.hpp"  // IWYU pragma: export (the bodies of try_read, release_read)
