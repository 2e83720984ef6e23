#include "core/handle.hpp"

#include "core/errors.hpp"

#include <pthread.h>

#include <mutex>

namespace interlock::core {

namespace {

struct Registry {
  std::mutex mu;
  SlotHandle* head = nullptr;
  size_t count = 0;
};

Registry& registry() {
  static Registry* r = new Registry();  // never destroyed: handles may outlive statics
  return *r;
}

}  // namespace

SlotHandle::SlotHandle(Kind kind) {
  auto [arena, index] = ArenaSet::instance().allocate(kind);
  arena_ = arena;
  index_ = index;
  slot_ = arena->slot(index);
  link();
}

SlotHandle::SlotHandle(Arena* arena, uint32_t index, Kind kind, uint32_t generation)
    : arena_(arena), index_(index) {
  arena->check_slot(index, kind, generation);
  slot_ = arena->slot(index);
  link();
}

SlotHandle::~SlotHandle() {
  unlink();
  if (!released_) arena_->release(index_);
}

void SlotHandle::link() {
  Registry& r = registry();
  std::lock_guard<std::mutex> guard(r.mu);
  next_ = r.head;
  if (r.head != nullptr) r.head->prev_ = this;
  r.head = this;
  ++r.count;
}

void SlotHandle::unlink() {
  Registry& r = registry();
  std::lock_guard<std::mutex> guard(r.mu);
  if (prev_ != nullptr) prev_->next_ = next_;
  else r.head = next_;
  if (next_ != nullptr) next_->prev_ = prev_;
  --r.count;
}

namespace {

// The fork protocol of handle.hpp. prepare runs in the forking thread just before the
// process is duplicated; exactly one of parent/child runs afterwards in each process.
void fork_prepare() {
  Registry& r = registry();
  r.mu.lock();  // held across fork(): unlocked again by fork_parent / fork_child
  for (SlotHandle* h = r.head; h != nullptr; h = h->next())
    if (!h->released()) h->arena()->retain(h->index());  // the child's reference
}

void fork_parent() { registry().mu.unlock(); }

void fork_child() { registry().mu.unlock(); }  // the child's only thread is the one that locked

}  // namespace

void SlotHandle::install_fork_handlers() {
  static const int error = pthread_atfork(&fork_prepare, &fork_parent, &fork_child);
  if (error != 0) throw OsError(error, "pthread_atfork");
}

void SlotHandle::release_all() {
  Registry& r = registry();
  std::lock_guard<std::mutex> guard(r.mu);
  for (SlotHandle* h = r.head; h != nullptr; h = h->next_) {
    if (h->released_) continue;
    h->released_ = true;
    h->arena_->release(h->index_);
  }
}

size_t SlotHandle::live_count() {
  Registry& r = registry();
  std::lock_guard<std::mutex> guard(r.mu);
  return r.count;
}

}  // namespace interlock::core
