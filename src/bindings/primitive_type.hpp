// primitive_type.hpp: what every primitive type shares.
//
// Each primitive is a native heap type (object.hpp) made from a PrimitiveTypeSpec: its name,
// kind, object size, __init__ and methods. This file provides the rest, the same for all:
//  - construction: `Type(...)` goes straight to the type's init (vectorcall, no argument
//    tuple or dict); the init runs once per object (object.hpp, "Publication protocol"):
//    __init__ called again, or by two threads at once, raises RuntimeError;
//  - deallocation, which drops this process's reference to the slot;
//  - the cold members every primitive has: `_is_fork_ctx`, `_slot_info()` and `_export()`;
//  - `_core._import(cls, token, index, generation, *extras)`, the other half of `_export()`;
//  - the multiprocessing context of a new primitive (is it a fork context?).
//
// Pickling state. `_export()` returns (fd, token, index, generation, *extras): the arena's
// descriptor and identity, the slot and its generation, then what the type adds (Condition:
// its lock; Barrier: action and timeout). It adds a reference to the slot for the receiving
// process to adopt (arena.hpp, "Slot lifetime"). The Python layer (interlock/_sharing.py)
// turns (fd, token) into one picklable arena object per arena, so an arena travels once per
// child however many of its primitives do, and maps it in the child before calling _import.
#pragma once

#include <Python.h>

#include <pybind11/pybind11.h>

#include "bindings/object.hpp"
#include "core/slot.hpp"

namespace interlock::bindings {

namespace py = pybind11;

// __init__ in vectorcall form. Returns 0, or -1 with an exception set.
using InitFunction = int (*)(PyObject* self, PyObject* const* args, Py_ssize_t nargs,
                             PyObject* kwnames);
// Appends the type's extra pickling state to `items` (a list); -1 with an exception set.
using ExportFunction = int (*)(PyObject* self, PyObject* items);
// Sets up a freshly imported object from the extras (`count` of them), before its slot is
// published, and adds the flag bits it needs to *flags; -1 on error.
using ImportFunction = int (*)(PyObject* self, PyObject* const* extras, Py_ssize_t count,
                               uintptr_t* flags);

struct PrimitiveTypeSpec {
  const char* name;       // qualified: "interlock.synchronize.Lock"
  const char* doc;        // starts with the signature, "Lock(*, robust=False, ctx=None)\n--\n\n"
  core::Kind kind;
  int basicsize;          // sizeof(PrimitiveObject), ConditionObject or BarrierObject
  InitFunction init;
  PyMethodDef* methods;   // hot methods first; {nullptr} terminated (may be nullptr)
  PyGetSetDef* getsets;   // {nullptr} terminated (may be nullptr)
  // Only for types that reference Python objects (Condition, Barrier): then GC-tracked.
  traverseproc traverse = nullptr;
  inquiry clear = nullptr;
  ExportFunction export_extras = nullptr;
  ImportFunction import_extras = nullptr;
  Py_ssize_t extra_count = 0;  // how many extras _export adds and _import expects
  PyTypeObject* base = nullptr;  // the type this one derives from (BoundedSemaphore), or none
};

// Creates the type and adds it to `m` as `attr`. Throws py::error_already_set.
PyTypeObject* make_primitive_type(py::module_& m, const char* attr, const PrimitiveTypeSpec& spec);

// Inside a type's init (which runs with `self` claimed): a new slot of `kind`, held by this
// process, or nullptr with an exception set. The init writes the slot's initial state and
// the object's fields, then publishes it with publish_slot; nothing may fail in between.
core::Slot* new_slot(core::Kind kind);
void publish_slot(PyObject* self, core::Slot* slot, uintptr_t flags);
// new_slot and publish_slot at once, for a slot whose initial state is all zero.
int attach_new_slot(PyObject* self, core::Kind kind, uintptr_t flags);

// A new, initialised object of `type` with the vectorcall arguments (as `type(...)` does).
PyObject* construct(PyTypeObject* type, PyObject* const* args, Py_ssize_t nargs,
                    PyObject* kwnames);

// Whether a primitive made with `ctx` (None or nullptr: the default context) belongs to a fork
// context: 1 or 0, or -1 with an exception set. Resolved as multiprocessing does; see
// register_runtime.cpp for how the Python layer supplies the resolver.
int is_fork_context(PyObject* ctx);
void set_context_resolver(PyObject* default_context, PyObject* resolver);

// Sets the Python exception matching the C++ exception being handled: core::OsError becomes
// OSError (or the subclass its errno selects), core::SegmentError interlock.SegmentError,
// std::bad_alloc MemoryError, anything else RuntimeError. Call only inside a catch block.
void set_error_from_current_exception();
// The Python class of core::SegmentError (set when the module registers it).
extern PyObject* g_segment_error;

// Runs `f` (which may throw the core's C++ exceptions) and turns an exception into the
// matching Python one. Returns false when `f` threw.
template <class F>
bool call_core(F&& f) {
  try {
    f();
    return true;
  } catch (...) {
    set_error_from_current_exception();
    return false;
  }
}

}  // namespace interlock::bindings
