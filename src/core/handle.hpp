// handle.hpp: one process's reference to a primitive's slot.
//
// A SlotHandle owns one reference on its slot (arena.hpp, "Slot lifetime"). Every live
// handle of this process is on a registry so that:
//  - a forked child starts out owning one reference per inherited handle (its copies are real
//    users of the slot and will drop their references when they die);
//  - at process exit, release_all() drops every reference still held, for processes that
//    leave through os._exit without destroying their objects (multiprocessing children).
//
// Fork protocol. The child's references are taken by the *parent*, inside fork(), from a
// pthread_atfork prepare handler that holds the registry mutex from before the snapshot until
// the process is duplicated. Taking them in the child instead would leave two windows: the
// parent may drop the last reference (freeing the slot) before the child counts itself in,
// and the child may run Python code (other fork hooks, a garbage collection) that destroys an
// inherited handle before it has counted it, releasing a reference it does not own. Holding
// the mutex across fork() also makes the child's copy of the registry consistent, whatever
// other threads were doing.
//
// Only forks that continue running Python take references: the bindings call
// expect_python_fork() from an os.register_at_fork "before" hook, which runs for os.fork()
// (and multiprocessing's fork start method) but not for subprocess's fork-then-exec, and the
// prepare handler acts only in a thread that announced a fork that way. (Python 3.9's
// subprocess forks with fork(), so a prepare handler that always counted would leak one
// reference per live primitive per subprocess.) A subprocess with a preexec_fn does run the
// Python hooks; its references are never dropped, so those slots are never reused.
#pragma once

#include <cstdint>

#include "core/arena.hpp"
#include "core/slot.hpp"

namespace interlock::core {

class SlotHandle {
 public:
  // A new primitive of `kind` in a fresh slot.
  explicit SlotHandle(Kind kind);
  // Takes over a reference that was added for transfer (see add_transfer_reference) to slot
  // `index` of `arena`, after checking that the slot holds a live `kind` of that generation.
  SlotHandle(Arena* arena, uint32_t index, Kind kind, uint32_t generation);
  ~SlotHandle();
  SlotHandle(const SlotHandle&) = delete;
  SlotHandle& operator=(const SlotHandle&) = delete;

  Slot* slot() const { return slot_; }
  Arena* arena() const { return arena_; }
  uint32_t index() const { return index_; }
  uint32_t generation() const {
    return tag_generation(slot_->header.tag.load(std::memory_order_relaxed));  // never changes while referenced
  }
  // Adds a reference that a child process will adopt when it unpickles this primitive.
  void add_transfer_reference() { arena_->retain(index_); }

  // Installs the fork handlers described above (idempotent; call once at module load).
  static void install_fork_handlers();
  // The calling thread is about to fork a child that keeps running (see above); the next
  // fork() in this thread counts the child's references. cancel_python_fork() withdraws it.
  static void expect_python_fork();
  static void cancel_python_fork();
  // Drops the reference of every live handle now (process exit); their destructors then do
  // nothing more.
  static void release_all();
  static size_t live_count();

  // For the fork handlers, which walk the registry with its mutex held.
  SlotHandle* next() const { return next_; }
  bool released() const { return released_; }

 private:
  void link();
  void unlink();

  Arena* arena_;
  uint32_t index_;
  Slot* slot_;
  bool released_ = false;
  SlotHandle* prev_ = nullptr;
  SlotHandle* next_ = nullptr;
};

}  // namespace interlock::core
