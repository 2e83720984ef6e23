// references.hpp: this process's references to slots, across fork and exit.
//
// A primitive object in this process owns one reference on its slot (arena.hpp, "Slot
// lifetime"). Besides the shared count, each arena's Companion records how many references
// this process holds on each slot (`local_refs`), so that:
//  - a forked child starts out owning exactly the references it inherited (one per inherited
//    object; they are real users of the slot and will drop their references when they die);
//  - at process exit, release_all() drops every reference still held, for processes that
//    leave through os._exit without destroying their objects (multiprocessing children).
// The record costs 4 bytes per slot and nothing per object: an object is just a slot pointer.
//
// Fork protocol. The child's references are taken by the *parent*, inside fork(), from the
// prepare step below (run by the core's one fork handler, lifecycle.hpp), which holds the
// references mutex from before it reads the local counts until the process is duplicated. Taking them in the child instead would leave
// two windows: the parent may drop the last reference (freeing the slot) before the child
// counts itself in, and the child may run Python code (other fork hooks, a garbage collection)
// that destroys an inherited object before it has counted it, releasing a reference it does
// not own. Holding the mutex across fork() also makes the child's copy of the local counts
// consistent with the references the prepare handler took, whatever other threads were doing.
//
// Only forks that continue running Python take references: the bindings announce them
// (lifecycle::announce_python_fork) from an os.register_at_fork "before" hook, which runs for
// os.fork() (and multiprocessing's fork start method) but not for subprocess's
// fork-then-exec, and the prepare step counts only for a fork announced that way. (A subprocess with a
// preexec_fn does run the Python hooks; its references are never dropped, so those slots are
// never reused, which errs on the safe side.)
//
// Every function here takes the references mutex, so creating, adopting and dropping
// references never interleaves with a fork's snapshot. The local counts are plain integers
// read and written only under that mutex.
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/arena.hpp"
#include "core/slot.hpp"

namespace interlock::core::references {

// A new primitive of `kind` in a fresh slot, held by this process (shared count 1).
Slot* create(Kind kind);
// The same, with `links` slots of `linked_kind` linked to it (Arena::allocate_linked).
Slot* create_linked(Kind kind, Kind linked_kind, uint32_t links);
// Takes over a reference that was added for transfer (add_transfer) to slot `index` of the
// arena with `token`, after checking that it holds a live `kind` of that generation. Throws
// SegmentError (also when that arena is not mapped here).
Slot* adopt(uint64_t token, uint32_t index, Kind kind, uint32_t generation);
// Drops one of this process's references to `slot`.
void release(Slot* slot);
// Adds a reference that a child process will adopt when it unpickles the primitive.
void add_transfer(Slot* slot);
// The generation of a slot this process holds (it cannot change while referenced).
inline uint32_t generation(const Slot* slot) {
  return tag_generation(slot->header.tag.load(std::memory_order_relaxed));
}

// The fork steps (lifecycle.cpp runs them). prepare takes the mutex, and when
// `python_fork` counts the child's references in; parent and child release the mutex.
void fork_prepare(bool python_fork);
void fork_parent();
void fork_child();
// Drops every reference this process holds now (process exit). Later releases do nothing.
void release_all();
// References this process holds (for tests).
size_t live_count();

}  // namespace interlock::core::references
