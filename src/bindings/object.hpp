// object.hpp: the Python object behind every interlock primitive. This is the one place that
// defines it.
//
//   struct PrimitiveObject {   // 32 bytes: all that a Lock, RLock, Semaphore or Event costs
//     PyObject_HEAD            // 16  reference count and type
//     uintptr_t bits;          //  8  the slot's address | flag bits (kFlagMask)
//     PyObject* weakrefs;      //  8  weak references, as multiprocessing's objects allow
//   };
//
// The slot (64 bytes of shared memory, slot.hpp) holds the primitive's whole state. Slots are
// 64-byte aligned, so the low six bits of its address carry per-object flags. From the slot
// address alone the core finds the arena and this process's reference count (arena.hpp,
// "Placement"), so nothing else is needed per object: no C++ allocation, no registry entry.
// An object whose __init__ has not run has no slot (bits < 64) and refuses every method.
//
// Publication protocol (free-threaded builds run methods of one object in parallel threads):
// `bits` is written once, by __init__, which first claims it (0 -> kInitializing, a CAS, so
// a second or racing __init__ fails), then creates the slot and writes its initial state and
// the object's other fields, and last stores slot|flags with release order. A method loads
// `bits` relaxed: a thread that uses an object got it from the thread that made it, through
// something that already synchronised them (a queue, a lock, starting the thread), so the
// release only matters for racy hand-offs, where it makes the state visible with the pointer.
//
// These objects are not tracked by the garbage collector (they reference no Python object),
// which is why the public classes are these native types themselves, not Python subclasses
// (every Python subclass instance is GC-tracked and carries a 16-byte GC header).
//
// Condition adds the Python lock it waits with and Barrier its action and default timeout;
// those two reference Python objects, so they take part in garbage collection.
#pragma once

#include <Python.h>

#include <cstdint>

#include "core/slot.hpp"

namespace interlock::bindings {

struct PrimitiveObject {
  PyObject_HEAD
  uintptr_t bits;
  PyObject* weakrefs;
};
#ifndef Py_GIL_DISABLED  // the free-threaded build has a larger object header
static_assert(sizeof(PrimitiveObject) == 32, "a primitive object is 32 bytes");
#endif

struct ConditionObject {
  PrimitiveObject base;
  PyObject* lock;  // the interlock Lock or RLock it waits with (kFlagRecursiveLock: an RLock)
};

struct BarrierObject {
  PrimitiveObject base;
  PyObject* action;   // None, or a callable run by the party that completes a round
  PyObject* timeout;  // None, or the default timeout (a float, seconds)
};

// Flag bits kept below the slot address.
inline constexpr uintptr_t kFlagMask = 63;
inline constexpr uintptr_t kInitializing = kFlagMask;  // claimed by an __init__ in progress
inline constexpr uintptr_t kFlagForkContext = 1;    // made for a fork context: not for spawn
inline constexpr uintptr_t kFlagRecursiveLock = 2;  // Condition: its lock is an RLock

// relaxed: see the publication protocol above (a plain load on every target).
inline uintptr_t load_bits(PyObject* self) {
  return __atomic_load_n(&reinterpret_cast<PrimitiveObject*>(self)->bits, __ATOMIC_RELAXED);
}
// release: the slot's initial state and the object's fields are visible with the pointer.
inline void publish_bits(PyObject* self, uintptr_t bits) {
  __atomic_store_n(&reinterpret_cast<PrimitiveObject*>(self)->bits, bits, __ATOMIC_RELEASE);
}
inline core::Slot* slot_of(PyObject* self) {
  return reinterpret_cast<core::Slot*>(load_bits(self) & ~kFlagMask);
}
// Flags count only once a slot is published (kInitializing has every flag bit set).
inline bool has_flag(PyObject* self, uintptr_t flag) {
  const uintptr_t bits = load_bits(self);
  return bits > kFlagMask && (bits & flag) != 0;
}

// Raises RuntimeError for an object whose __init__ never ran; returns nullptr.
PyObject* not_initialized(PyObject* self);

// The slot behind `self`, or nullptr with RuntimeError set.
inline core::Slot* checked_slot(PyObject* self) {
  core::Slot* slot = slot_of(self);
  if (slot == nullptr) not_initialized(self);
  return slot;
}

}  // namespace interlock::bindings
