// handle.hpp: one process's reference to a primitive's slot.
//
// A SlotHandle owns one reference on its slot (arena.hpp, "Slot lifetime"). Every live
// handle of this process is on a registry so that:
//  - after fork, the child adds one reference per inherited handle (the child's copies are
//    real users of the slot and will drop their references when they die);
//  - at process exit, release_all() drops every reference still held, for processes that
//    leave through os._exit without destroying their objects (multiprocessing children).
// The registry is guarded by a mutex; the Python bindings only touch it with the GIL held,
// so it is never held by another thread at fork time.
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

  // Fork child: one more reference for every handle inherited from the parent.
  static void after_fork_in_child();
  // Drops the reference of every live handle now (process exit); their destructors then do
  // nothing more.
  static void release_all();
  static size_t live_count();

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
