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
thread_local bool t_python_fork = false;  // announced by expect_python_fork()
thread_local bool t_holding = false;      // this thread holds the registry across fork()

void fork_prepare() {
  if (!t_python_fork) return;  // fork-then-exec: the child never uses our primitives
  Registry& r = registry();
  r.mu.lock();  // held across fork(): unlocked again by fork_parent / fork_child
  t_holding = true;
  for (SlotHandle* h = r.head; h != nullptr; h = h->next())
    if (!h->released()) h->arena()->retain(h->index());  // the child's reference
}

void fork_done() {
  t_python_fork = false;
  if (!t_holding) return;
  t_holding = false;
  registry().mu.unlock();  // in the child, the one thread is the one that locked it
}

}  // namespace

void SlotHandle::install_fork_handlers() {
  static const int error = pthread_atfork(&fork_prepare, &fork_done, &fork_done);
  if (error != 0) throw OsError(error, "pthread_atfork");
}

void SlotHandle::expect_python_fork() { t_python_fork = true; }

void SlotHandle::cancel_python_fork() { t_python_fork = false; }

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
