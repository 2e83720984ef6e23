// rwlock_robust.hpp: an RWLock whose holds come back when the process holding them dies.
//
// A plain RWLock (rwlock.hpp) counts readers; a count cannot say whose holds a dead process
// took with it. A robust one therefore counts *processes*. Each process taking part (reading,
// writing, or waiting to) owns one of kEntries entries: a record (process_identity.hpp: its
// pid and start stamp) in the kRecordSlots slots of kind kRWLockRecords linked to the lock's
// slot. Its threads' holds are counted in this process's own memory, and the shared state
// word only says which entries hold what:
//   bits  0-23  entry e's process holds at least one read          (reader bit e)
//   bits 24-47  entry e's process has at least one writer waiting  (waiting bit e)
//   bits 48-52  the writer's entry, while bit 63 is set
//   bit  62     a writer died holding the lock: the next acquirer gets kOwnerDied
//   bit  63     a writer holds the lock
// A thread changes its process's bits only in the transitions 0 <-> 1 of its process's
// counts, under a process-wide mutex, so the bits and the counts agree in every living
// process. Nothing a process keeps in its own memory matters once it is dead: its entry and
// bits say everything there is to give back.
//
// Entries. A process claims a free entry (CAS 0 -> its record) when it first takes part and
// gives it back (store 0) when its last hold, wait and acquire on the lock are over. While all
// kEntries are taken, a further process waits as if the lock were held.
//
// The dead. A waiter, before each sleep, looks at every entry of another process: it asks the
// death watch (death_watch.hpp) to wake its futex word when that process ends, and cleans an
// entry whose process is gone: it marks the entry (CAS record -> its own record with the
// cleaning role), which no one else can claim or clean then, clears that entry's bits in one
// CAS (turning a write hold it had into bit 62), and frees the entry. A cleaner that dies
// leaves its mark, which is itself the record of a dead process, and the next cleaner takes
// over. Every change of entries or bits happens in one atomic step, so there is no window in
// which a death leaves a hold that nobody can account for: a process that dies between
// claiming an entry and setting a bit leaves an entry with no bits, which is freed.
//
// Waking. A sleeper must watch every process it might wait for, and processes come and go, so
// every release, claim, free or cleaning wakes all sleepers of both sides (when there are
// any), and each looks again, watches the current set, and sleeps. This costs a robust lock a
// herd of wake-ups when it is contended; an uncontended robust lock makes no system call.
//
// Memory ordering: as rwlock.hpp. The CASes that take a hold are acquire (seq_cst), the
// changes that give one up are release (seq_cst), and the sleep handshake (rwlock_wait.hpp)
// covers the records too: a claimer writes its record, then reads the sleepers, while a
// sleeper counts itself, then reads the records (all seq_cst), so either the claimer wakes it
// or it watches the claimer. A thread of a process that already has its reader bit takes a
// further read without touching the state word; it is ordered after the writer before it by
// the process-wide mutex, which it takes after the thread that set the bit (with an acquire).
#pragma once

#include <cstdint>

#include "core/deadline.hpp"
#include "core/futex.hpp"
#include "core/rwlock.hpp"
#include "core/slot.hpp"
#include "core/spin.hpp"

namespace interlock::core::rwlock::robust {

inline constexpr uint32_t kRecordSlots = 4;
inline constexpr int kRecordsPerSlot = 6;
inline constexpr int kEntries = kRecordSlots * kRecordsPerSlot;  // 24 processes at a time

inline constexpr uint64_t kReaderBits = (uint64_t{1} << kEntries) - 1;
inline constexpr int kWaitingShift = 24;
inline constexpr uint64_t kWaitingBits = kReaderBits << kWaitingShift;
inline constexpr int kWriterEntryShift = 48;
inline constexpr uint64_t kWriterEntryMask = uint64_t{31} << kWriterEntryShift;
inline constexpr uint64_t kLostWrite = uint64_t{1} << 62;

// The slot must come with kRecordSlots linked slots of kind kRWLockRecords.
void init(Slot& slot, Prefer prefer);

// As rwlock.hpp's read() and write(), plus kOwnerDied: the hold was taken, and a writer had
// died holding the lock since the last acquire. With a deadline that has passed, one attempt
// (which still cleans up after dead processes).
Status read(Slot& slot, const Deadline& deadline, Spin spin);
// One attempt that neither sleeps nor looks at other processes (cheap enough to make with
// the GIL held): kOk, kOwnerDied as above, or kTimedOut when the hold cannot be had now.
Status try_read(Slot& slot);
Status try_write(Slot& slot);
// `announced`: the caller's writer is counted among this process's waiting writers, on the
// way in (an earlier call announced it) and on the way out (rwlock.hpp's WriteWait).
Status write(Slot& slot, const Deadline& deadline, Spin spin, bool& announced);
void withdraw(Slot& slot);  // takes one of this process's writers off the waiting count
Release release_read(Slot& slot);
Release release_write(Slot& slot);
Release downgrade(Slot& slot);

// The fork steps (lifecycle.cpp): the process-wide mutex is held across fork(), and a child,
// which holds and waits for nothing, starts with no entries.
void fork_prepare();
void fork_parent();
void fork_child();

}  // namespace interlock::core::rwlock::robust
