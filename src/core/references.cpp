#include "core/references.hpp"

#include <pthread.h>

#include <mutex>

#include "core/errors.hpp"

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

Slot* create(Kind kind) {
  State& st = state();
  std::lock_guard<std::mutex> guard(st.mu);
  Slot* slot = ArenaSet::instance().allocate(kind);
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

namespace {

// The fork protocol of references.hpp. prepare runs in the forking thread just before the
// process is duplicated; exactly one of parent/child runs afterwards in each process.
thread_local bool t_python_fork = false;  // announced by expect_python_fork()
thread_local bool t_holding = false;      // this thread holds the mutex across fork()

void fork_prepare() {
  if (!t_python_fork) return;  // fork-then-exec: the child never uses our primitives
  State& st = state();
  st.mu.lock();  // held across fork(): unlocked again by fork_done in both processes
  t_holding = true;
  if (st.released) return;
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

void fork_done() {
  t_python_fork = false;
  if (!t_holding) return;
  t_holding = false;
  state().mu.unlock();  // in the child, the one thread is the one that locked it
}

}  // namespace

void install_fork_handlers() {
  static const int error = pthread_atfork(&fork_prepare, &fork_done, &fork_done);
  if (error != 0) throw OsError(error, "pthread_atfork");
}

void expect_python_fork() { t_python_fork = true; }

void cancel_python_fork() { t_python_fork = false; }

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
