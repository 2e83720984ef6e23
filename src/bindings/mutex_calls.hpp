// mutex_calls.hpp: acquire/release of a Lock or RLock slot as Python calls see them.
// Shared by the Lock/RLock methods and by Condition, which delegates to its lock.
#pragma once

#include <Python.h>

#include "bindings/native.hpp"
#include "core/mutex.hpp"
#include "core/slot.hpp"
#include "core/thread_identity.hpp"

namespace interlock::bindings {

// The part of acquire_mutex after the first attempt failed.
PyObject* acquire_mutex_slow(core::MutexState& m, bool recursive, const WaitArgs& a);
PyObject* raise_not_owned();
// Raises interlock.OwnerDiedError (the caller holds the lock); returns NULL.
PyObject* raise_owner_died();

// Takes the lock as `a` says (RLock semantics when `recursive`). Returns a new reference to
// True/False, or NULL with an exception set (a signal handler raised).
inline PyObject* acquire_mutex(core::MutexState& m, bool recursive, const WaitArgs& a) {
  bool got = recursive ? core::mutex::rlock_try_acquire(m) : core::mutex::lock_try_acquire(m);
  if (got) Py_RETURN_TRUE;
  return acquire_mutex_slow(m, recursive, a);
}

// Releases one level. NULL with CPython's exception when not allowed: ValueError for an
// unlocked Lock, AssertionError for an RLock not owned by the caller.
inline PyObject* release_mutex(core::MutexState& m, bool recursive) {
  if (recursive) {
    if (!core::mutex::rlock_release(m)) return raise_not_owned();
  } else if (!core::mutex::lock_release(m)) {
    return raise_released_too_many_times();
  }
  Py_RETURN_NONE;
}

}  // namespace interlock::bindings
