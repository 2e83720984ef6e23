// mutex_calls.hpp: acquire/release of a Lock or RLock slot as Python calls see them.
// Shared by the Lock/RLock methods and by Condition, which delegates to its lock.
#pragma once

#include <Python.h>

#include "bindings/native.hpp"
#include "core/slot.hpp"

namespace interlock::bindings {

// Takes the lock as `a` says (RLock semantics when `recursive`). Returns a new reference to
// True/False, or NULL with an exception set (a signal handler raised).
PyObject* acquire_mutex(core::MutexState& m, bool recursive, const WaitArgs& a);
// Releases one level. NULL with CPython's exception when not allowed: ValueError for an
// unlocked Lock, AssertionError for an RLock not owned by the caller.
PyObject* release_mutex(core::MutexState& m, bool recursive);

}  // namespace interlock::bindings
