#include "core/references.hpp"

#include <mutex>

#include "core/errors.hpp"
#include "core/lifecycle.hpp"

namespace interlock::core::references {

namespace {

struct State {
  std::mutex mu;           // guards every Companion's local_refs and the fields below
  size_t live = 0;         // sum of local_refs over all arenas
  bool released = false;   // release_all() ran: later releases do nothing
};

State& state() {
  static State* s = new State();  // never destroyed: objects may outlive statics
  return *s;
}

uint32_t& local_refs(Arena& arena, uint32_t index) { return arena.companion().local_refs[index]; }

}  // namespace

Slot* create(Kind kind) { return create_linked(kind, Kind::kFree, 0); }

Slot* create_linked(Kind kind, Kind linked_kind, uint32_t links) {
  lifecycle::install();  // from the first primitive on, forks must count its references
  State& st = state();
  std::lock_guard<std::mutex> guard(st.mu);
  Slot* slot = links == 0 ? ArenaSet::instance().allocate(kind)
                          : ArenaSet::instance().allocate_linked(kind, linked_kind, links);
  Arena* arena = Arena::of(slot);
  ++local_refs(*arena, arena->index_of(slot));
  ++st.live;
  return slot;
}

Slot* adopt(uint64_t token, uint32_t index, Kind kind, uint32_t generation) {
  State& st = state();
  std::lock_guard<std::mutex> guard(st.mu);
  Arena* arena = ArenaSet::instance().find(token);
  if (arena == nullptr)
    throw SegmentError("the arena of this primitive is not mapped in this process");
  arena->check_slot(index, kind, generation);
  ++local_refs(*arena, index);  // the transfer reference becomes ours
  ++st.live;
  return arena->slot(index);
}

void release(Slot* slot) {
  State& st = state();
  std::lock_guard<std::mutex> guard(st.mu);
  if (st.released) return;
  Arena* arena = Arena::of(slot);
  uint32_t index = arena->index_of(slot);
  --local_refs(*arena, index);
  --st.live;
  arena->release(index);
}

void add_transfer(Slot* slot) {
  Arena* arena = Arena::of(slot);
  arena->retain(arena->index_of(slot));  // the caller holds a reference: no mutex needed
}

// The fork protocol of references.hpp. prepare runs in the forking thread just before the
// process is duplicated; exactly one of parent/child runs afterwards in each process, in
// that same thread (the child's only one), which is the thread holding the mutex.
void fork_prepare(bool python_fork) {
  State& st = state();
  st.mu.lock();  // held across fork(): unlocked again in both processes
  if (!python_fork || st.released) return;  // fork-then-exec: the child never uses our slots
  ArenaSet::instance().for_each([](Arena& arena) {
    const uint32_t bound = arena.used_bound();
    for (uint32_t index = 1; index < bound && index < kArenaSlots; ++index) {
      uint32_t n = local_refs(arena, index);
      if (n == 0) continue;
      // relaxed: we hold references, so the count cannot reach zero concurrently.
      arena.slot(index)->header.refs.fetch_add(n, std::memory_order_relaxed);
    }
  });
}

void fork_parent() { state().mu.unlock(); }

void fork_child() { state().mu.unlock(); }

void release_all() {
  State& st = state();
  std::lock_guard<std::mutex> guard(st.mu);
  if (st.released) return;
  st.released = true;
  ArenaSet::instance().for_each([&](Arena& arena) {
    const uint32_t bound = arena.used_bound();
    for (uint32_t index = 1; index < bound && index < kArenaSlots; ++index) {
      uint32_t& n = local_refs(arena, index);
      if (n == 0) continue;
      arena.release(index, n);
      n = 0;
    }
  });
  st.live = 0;
}

size_t live_count() {
  State& st = state();
  std::lock_guard<std::mutex> guard(st.mu);
  return st.live;
}

}  // namespace interlock::core::references
