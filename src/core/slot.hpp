// slot.hpp: the 64-byte shared-memory record behind every primitive.
//
// An arena (arena.hpp) is an array of Slots. Slot 0 holds the arena's header; every other
// slot is either free or holds the state of one primitive. The first 16 bytes are managed by
// the arena (kind, generation, reference count, free-list link); the remaining 48 hold the
// primitive's own state, whose meaning each primitive's header documents.
//
// Everything here lives in memory shared between processes, so it holds no pointers, only
// 32/64-bit atomics (lock-free and therefore address-free), and a zero-filled slot is a valid
// initial state for every field that is not set explicitly.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace interlock::core {

enum class Kind : uint32_t {
  kFree = 0,
  kLock = 1,
  kRLock = 2,
  kSemaphore = 3,
  kEvent = 4,
  kCondition = 5,
  kBarrier = 6,
  kRWLock = 7,
  kRWLockRecords = 8,  // a robust RWLock's participant records, linked to its slot
};

// A slot's tag packs its kind (low 8 bits) with a generation (high 24 bits) that changes
// each time the slot is reused, so a stale reference can be told from a live one.
inline constexpr uint32_t tag_kind(uint32_t tag) { return tag & 0xffu; }
inline constexpr uint32_t tag_generation(uint32_t tag) { return tag >> 8; }
inline constexpr uint32_t make_tag(Kind kind, uint32_t generation) {
  return (generation << 8) | static_cast<uint32_t>(kind);
}

struct SlotHeader {
  std::atomic<uint32_t> tag;        // make_tag(kind, generation); kind kFree while free
  std::atomic<uint32_t> refs;       // live handles in all processes, plus references in transit
  std::atomic<uint32_t> next_free;  // while free: 1 + index of the next free slot, or 0
  std::atomic<uint32_t> linked;     // 1 + index of a slot freed together with this one, or 0
};

// Lock and RLock. See mutex.hpp.
struct MutexState {
  std::atomic<uint32_t> word;    // 0 = unlocked, else owner tid | kWaitersBit
  std::atomic<uint32_t> depth;   // RLock recursion depth; touched only by the owner
  std::atomic<uint64_t> owner;   // the holder's owner record (process_identity.hpp), or 0
  std::atomic<uint32_t> robust;  // 1: waiters take over from a holder whose process died
};

// Semaphore and BoundedSemaphore. See semaphore.hpp.
struct SemaphoreState {
  std::atomic<uint32_t> value;    // the futex word: permits available
  std::atomic<uint32_t> waiters;  // threads that are (about to be) asleep on `value`
  uint32_t maxvalue;              // the bound; SEM_VALUE_MAX for an unbounded semaphore
};

// Event. See event.hpp.
struct EventState {
  std::atomic<uint32_t> word;     // the futex word: the flag's transitions; odd = set
  std::atomic<uint32_t> waiters;  // threads that are (about to be) asleep on `word`
};

// Condition. See condition.hpp.
struct ConditionState {
  std::atomic<uint32_t> seq;       // the futex word: bumped by every notify that hands out tokens
  std::atomic<uint32_t> gen;       // notify generation; waiters that joined before it are eligible
  std::atomic<uint32_t> fresh;     // waiters that joined in the current generation
  std::atomic<uint32_t> eligible;  // eligible waiters that no token has been handed out for yet
  std::atomic<uint32_t> tokens;    // wake-ups handed out and not yet taken
};

// Barrier. See barrier.hpp.
struct BarrierState {
  std::atomic<uint32_t> inner;     // a small mutex (mutex.hpp protocol) guarding the fields below
  std::atomic<uint32_t> seq;       // the futex word: bumped by every change waiters wait for
  std::atomic<uint32_t> gen;       // the current round
  std::atomic<uint32_t> count;     // parties that arrived in the current round
  std::atomic<uint32_t> broken;    // 1 once broken, until reset()
  std::atomic<uint32_t> releasing; // 1 while the last party runs the action
  std::atomic<uint64_t> reset_rounds;  // bit (round % 64) set when that round ended by reset()
  uint32_t parties;
};

// RWLock. See rwlock.hpp (and rwlock_robust.hpp for `robust` ones).
struct RWLockState {
  std::atomic<uint64_t> state;           // plain: readers | waiting writers << 32 | writer bit 63
  std::atomic<uint32_t> read_seq;        // the readers' futex word: bumped to wake them
  std::atomic<uint32_t> write_seq;       // the writers' futex word: bumped to wake them
  std::atomic<uint32_t> read_sleepers;   // readers that are (about to be) asleep
  std::atomic<uint32_t> write_sleepers;  // writers that are (about to be) asleep
  std::atomic<uint32_t> writer;          // the write holder's tid, 0 when none
  uint32_t prefer;                       // rwlock::Prefer, set before the slot is shared
  uint32_t robust;                       // 1: holds of dead processes are given back
};

// A robust RWLock's records of the processes taking part (rwlock_robust.hpp): kRecordSlots
// slots of this kind hang off its slot through SlotHeader::linked.
struct RWLockRecords {
  std::atomic<uint64_t> process[6];  // a participant's record, a cleaner's mark, or 0
};

struct alignas(64) Slot {
  SlotHeader header;
  union Body {
    MutexState mutex;
    SemaphoreState semaphore;
    EventState event;
    ConditionState condition;
    BarrierState barrier;
    RWLockState rwlock;
    RWLockRecords rwlock_records;
    unsigned char bytes[48];
  } body;
};

static_assert(sizeof(Slot) == 64, "a slot is one cache line");
static_assert(std::atomic<uint64_t>::is_always_lock_free, "shared memory needs lock-free atomics");

}  // namespace interlock::core
