// arena.hpp: shared memory carved into slots, and the references that keep slots alive.
//
// An Arena is one anonymous shared mapping of kArenaSlots 64-byte slots. It is created with
// memfd_create (sealed against resizing) so it has no name: nothing is ever left behind in
// /dev/shm, whatever dies. It reaches other processes by inheritance (fork) or by passing its
// file descriptor (spawn, forkserver). Slot 0 holds the ArenaHeader.
//
// Slot lifetime. Each slot carries a reference count of the handles that use it, in every
// process, plus references "in transit" (taken when a handle is pickled for a child, adopted
// when the child unpickles it). A slot is returned to the arena's free list only when that
// count reaches zero, so a slot is never reused while any process may still use it. A process
// that dies without dropping its references leaks those slots until the arena itself goes
// away, which happens when the last process that maps it exits.
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
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "core/slot.hpp"

namespace interlock::core {

inline constexpr uint64_t kArenaMagic = 0x31304b434f4c5449ull;  // "ITLOCK01", little-endian
inline constexpr uint32_t kLayoutVersion = 1;
inline constexpr uint32_t kArenaSlots = 16384;  // 1 MiB per arena
inline constexpr size_t kArenaBytes = size_t{kArenaSlots} * sizeof(Slot);

struct alignas(64) ArenaHeader {
  uint64_t magic;
  uint32_t version;
  uint32_t slot_size;
  uint32_t slot_count;
  std::atomic<uint32_t> bump;       // next never-used slot index (starts at 1)
  std::atomic<uint64_t> free_head;  // (aba tag << 32) | (1 + index of top free slot), 0 = empty
  uint64_t token;                   // random identity of this arena
  uint32_t creator_pid;
};
static_assert(sizeof(ArenaHeader) <= sizeof(Slot), "the header fits in slot 0");

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

  // Takes a free slot, marks it with `kind` and a new generation, sets its reference count
  // to 1 and returns its index; returns 0 when the arena is full.
  uint32_t allocate(Kind kind);
  // Adds a reference to a slot the caller already holds a reference to.
  void retain(uint32_t index);
  // Drops a reference; the last one returns the slot to the free list.
  void release(uint32_t index);
  // Checks that `index` names a live slot of `kind` with generation `generation`.
  // Throws SegmentError otherwise.
  void check_slot(uint32_t index, Kind kind, uint32_t generation) const;

 private:
  Arena(Slot* base, int fd) : base_(base), fd_(fd) {}
  ArenaHeader* header() const { return reinterpret_cast<ArenaHeader*>(base_); }
  void push_free(uint32_t index);
  uint32_t pop_free();

  Slot* base_;
  int fd_;
};

// Every arena this process has mapped. Arenas stay mapped until the process exits, so raw
// Arena pointers handed out here stay valid. Thread-safe.
class ArenaSet {
 public:
  static ArenaSet& instance();

  // Allocates a slot of `kind` in some mapped arena, creating a new arena when all are full.
  // Returns the arena and the slot index (reference count 1).
  std::pair<Arena*, uint32_t> allocate(Kind kind);
  // Returns the already-mapped arena with this token, or nullptr.
  Arena* find(uint64_t token);
  // Maps the arena behind `fd` (see Arena::attach) unless one with this token is mapped
  // already. In that case `fd` is closed when it is a second descriptor of that same arena.
  Arena* attach(int fd, uint64_t token);
  size_t arena_count();

 private:
  std::mutex mu_;
  std::vector<std::unique_ptr<Arena>> arenas_;
  std::unordered_map<uint64_t, Arena*> by_token_;
  Arena* current_ = nullptr;
};

}  // namespace interlock::core
