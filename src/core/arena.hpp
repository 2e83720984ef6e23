// arena.hpp: shared memory carved into slots, and the references that keep slots alive.
//
// An Arena is one anonymous shared mapping of kArenaSlots 64-byte slots. It is created with
// memfd_create (sealed against resizing) so it has no name: nothing is ever left behind in
// /dev/shm, whatever dies. It reaches other processes by inheritance (fork) or by passing its
// file descriptor (spawn, forkserver). Slot 0 holds the ArenaHeader.
//
// Slot lifetime. Each slot carries a reference count of the users it has, in every process,
// plus references "in transit" (taken when a primitive is pickled for a child, adopted when
// the child unpickles it). A slot is returned to the arena's free list only when that count
// reaches zero, so a slot is never reused while any process may still use it. A process that
// dies without dropping its references leaks those slots until the arena itself goes away,
// which happens when the last process that maps it exits. (references.hpp keeps this
// process's share of the counts.)
//
// Placement. Every arena is mapped at a multiple of kArenaAlign, so the arena of any slot is
// found by masking the slot's address, and right after the shared mapping lies the arena's
// Companion: process-private memory holding a pointer back to the Arena object and the number
// of references this process holds on each slot. A primitive therefore needs nothing but its
// slot pointer to find its arena and its process-local count.
//
// Memory ordering:
//  - `refs`: increments are relaxed (the caller already holds a reference, so the count cannot
//    reach zero concurrently); the decrement is acq_rel so that every use of the slot by other
//    holders happens-before the thread that frees it.
//  - The free list is a Treiber stack whose head packs an ABA tag with the index. Push is a
//    release CAS (publishes the cleared slot); pop is an acquire CAS. A pop may read the link
//    of a slot another process just took; the tag makes that CAS fail, and the memory read is
//    always mapped, so the race is harmless.
//  - `bump` hands out never-used slots; relaxed is enough because uniqueness is all it provides.
//  - `live` counts allocated slots. An allocator increments it (acquire) before it touches the
//    free list or `bump`, and backs off if kRetiring is set; the release that frees a slot
//    decrements it (acq_rel) after the slot is on the free list.
//
// Giving memory back. When the last live slot of an arena that has grown past
// kRetireThreshold slots is freed, the process that freed it retires the arena: it claims it
// with a CAS of `live` from 0 to kRetiring (which fails if any allocation is under way, and
// makes later allocators pass the arena by), resets `bump` and the free list, punches the
// slots' pages out of the file (fallocate), so that every process's resident memory for them
// goes back to the kernel, then clears kRetiring. No reference to any of its slots exists at
// that point, in any process or in transit, since each holds a slot live. Arenas that never
// grew past the threshold are left alone, so that creating and destroying a few primitives
// in a loop never pays for a system call.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "core/slot.hpp"

namespace interlock::core {

inline constexpr uint64_t kArenaMagic = 0x31304b434f4c5449ull;  // "ITLOCK01", little-endian
inline constexpr uint32_t kLayoutVersion = 2;
inline constexpr uint32_t kArenaSlots = 16384;  // 1 MiB per arena
inline constexpr size_t kArenaBytes = size_t{kArenaSlots} * sizeof(Slot);
inline constexpr size_t kArenaAlign = size_t{2} << 20;  // arenas start at multiples of 2 MiB

struct alignas(64) ArenaHeader {
  uint64_t magic;
  uint32_t version;
  uint32_t slot_size;
  uint32_t slot_count;
  std::atomic<uint32_t> bump;       // next never-used slot index (starts at 1)
  std::atomic<uint64_t> free_head;  // (aba tag << 32) | (1 + index of top free slot), 0 = empty
  uint64_t token;                   // random identity of this arena
  uint32_t creator_pid;
  std::atomic<uint32_t> live;       // allocated slots, | kRetiring while being reset
};
static_assert(sizeof(ArenaHeader) <= sizeof(Slot), "the header fits in slot 0");

inline constexpr uint32_t kRetiring = 1u << 31;
inline constexpr uint32_t kRetireThreshold = 1024;  // slots handed out before it may retire

class Arena;

// Process-private memory right after each arena's shared mapping (see "Placement").
struct alignas(64) Companion {
  Arena* owner;                     // the Arena object of this mapping
  uint32_t local_refs[kArenaSlots];  // references this process holds on each slot
};
static_assert(kArenaBytes + sizeof(Companion) <= kArenaAlign, "an arena and its companion fit");

class Arena {
 public:
  // Creates a new, empty arena. Throws OsError.
  static std::unique_ptr<Arena> create();
  // Maps an arena received as a file descriptor and checks that it is one of ours, of this
  // layout version, with the expected token. Takes ownership of `fd` on success only.
  // Throws SegmentError or OsError.
  static std::unique_ptr<Arena> attach(int fd, uint64_t token);
  ~Arena();
  Arena(const Arena&) = delete;
  Arena& operator=(const Arena&) = delete;

  int fd() const { return fd_; }
  uint64_t token() const { return header()->token; }
  Slot* slot(uint32_t index) const { return base_ + index; }
  uint32_t index_of(const Slot* s) const { return static_cast<uint32_t>(s - base_); }
  // The arena that contains `s` (any slot of any arena this process maps).
  static Arena* of(const Slot* s) {
    uintptr_t base = reinterpret_cast<uintptr_t>(s) & ~(uintptr_t{kArenaAlign} - 1);
    return reinterpret_cast<const Companion*>(base + kArenaBytes)->owner;
  }
  // Slots with an index below this have been handed out at least once (a snapshot).
  uint32_t used_bound() const { return header()->bump.load(std::memory_order_relaxed); }
  // This process's references on each slot (references.hpp owns the protocol).
  Companion& companion() const { return *reinterpret_cast<Companion*>(base_ + kArenaSlots); }

  // Takes a free slot, marks it with `kind` and a new generation, sets its reference count
  // to 1 and returns its index; returns 0 when the arena is full.
  uint32_t allocate(Kind kind);
  // The same, plus `links` slots of `linked_kind` chained to it through SlotHeader::linked
  // (the first follows the slot, the next follows the first...), all freed together when the
  // slot is. Returns 0, having taken nothing, unless all fit in this arena.
  uint32_t allocate_linked(Kind kind, Kind linked_kind, uint32_t links);
  // Adds a reference to a slot the caller already holds a reference to.
  void retain(uint32_t index);
  // Drops `n` references; the last one returns the slot, and the slots linked to it, to the
  // free list.
  void release(uint32_t index, uint32_t n = 1);
  // The slot linked to `s` (allocate_linked), or nullptr.
  Slot* linked(const Slot* s) const {
    uint32_t next = s->header.linked.load(std::memory_order_relaxed);  // set before sharing
    return next == 0 ? nullptr : slot(next - 1);
  }
  // Checks that `index` names a live slot of `kind` with generation `generation`.
  // Throws SegmentError otherwise.
  void check_slot(uint32_t index, Kind kind, uint32_t generation) const;

 private:
  Arena(Slot* base, int fd);
  ArenaHeader* header() const { return reinterpret_cast<ArenaHeader*>(base_); }
  void push_free(uint32_t index);
  uint32_t pop_free();
  // After the last live slot was freed: gives the slots' memory back if nobody allocates.
  void try_retire();

  Slot* base_;
  int fd_;
};

// Every arena this process has mapped. Arenas stay mapped until the process exits, so raw
// Arena pointers handed out here stay valid. Thread-safe.
class ArenaSet {
 public:
  static ArenaSet& instance();

  // Allocates a slot of `kind` in some mapped arena, creating a new arena when all are full.
  // Returns the slot (reference count 1).
  Slot* allocate(Kind kind);
  // The same, with slots linked to it (Arena::allocate_linked), all in one arena.
  Slot* allocate_linked(Kind kind, Kind linked_kind, uint32_t links);
  // Returns the already-mapped arena with this token, or nullptr.
  Arena* find(uint64_t token);
  // Maps the arena behind `fd` (see Arena::attach) unless one with this token is mapped
  // already. In that case `fd` is closed when it is a second descriptor of that same arena.
  Arena* attach(int fd, uint64_t token);
  size_t arena_count();
  // The fork steps (lifecycle.cpp): the set's mutex is held across fork(), so that the child
  // never inherits it locked by a thread that was mapping an arena.
  void lock_for_fork() { mu_.lock(); }
  void unlock_after_fork() { mu_.unlock(); }
  // Calls f(Arena&) for every mapped arena, with the set's mutex held (f must not call back).
  template <class F>
  void for_each(F&& f) {
    std::lock_guard<std::mutex> guard(mu_);
    for (auto& arena : arenas_) f(*arena);
  }

 private:
  template <class Take>
  Slot* allocate_with(Take take);  // take(arena) -> index or 0, with mu_ held

  std::mutex mu_;
  std::vector<std::unique_ptr<Arena>> arenas_;
  std::unordered_map<uint64_t, Arena*> by_token_;
  Arena* current_ = nullptr;
};

}  // namespace interlock::core
