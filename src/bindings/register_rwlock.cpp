// register_rwlock.cpp: interlock.synchronize.RWLock's native methods. The lock-like views
// (read_lock(), write_lock()) and the repr are Python (interlock/_native_sync.py).
#include <Python.h>

#include <cstring>

#include "bindings/mutex_calls.hpp"
#include "bindings/native.hpp"
#include "bindings/object.hpp"
#include "bindings/primitive_type.hpp"
#include "bindings/register.hpp"
#include "core/references.hpp"
#include "core/rwlock.hpp"
#include "core/rwlock_robust.hpp"

namespace interlock::bindings {

namespace {

using core::Status;
namespace rwlock = core::rwlock;

const char* const kAcquireNames[] = {"block", "timeout"};

// Misuse raises what a Lock's and an RLock's misuse raise: ValueError when the lock is not
// held that way at all, AssertionError when it is, by another thread.
PyObject* raise_misuse(rwlock::Release r, const char* what) {
  if (r == rwlock::Release::kNotHeld)
    PyErr_Format(PyExc_ValueError, "%s: the lock is not held for %s", what,
                 std::strcmp(what, "release_read") == 0 ? "reading" : "writing");
  else
    PyErr_Format(PyExc_AssertionError, "%s: the calling thread does not hold the lock for %s",
                 what, std::strcmp(what, "release_read") == 0 ? "reading" : "writing");
  return nullptr;
}

// kOwnerDied (robust locks): the hold was taken, and OwnerDiedError tells of a write hold
// that a dead process lost.
PyObject* acquired(Status st) {
  if (st == Status::kOwnerDied) return raise_owner_died();
  return PyBool_FromLong(st == Status::kOk);
}

template <bool kWrite>
PyObject* acquire_with(core::Slot& slot, const WaitArgs& a) {
  if (kWrite ? rwlock::try_write(slot) : rwlock::try_read(slot)) Py_RETURN_TRUE;
  const bool robust = rwlock::is_robust(slot);
  if (robust) {
    Status st = kWrite ? rwlock::robust::try_write(slot) : rwlock::robust::try_read(slot);
    if (st != Status::kTimedOut) return acquired(st);
  } else if (a.try_only()) {
    Py_RETURN_FALSE;
  }
  // A writer's announcement stays up across the slices of one wait (a main-thread wait on a
  // kernel without futex_waitv sleeps in slices), and comes down when the wait ends.
  rwlock::WriteWait wait;
  struct Withdraw {
    core::Slot& slot;
    rwlock::WriteWait& wait;
    ~Withdraw() { rwlock::withdraw(slot, wait); }
  } withdraw_on_exit{slot, wait};
  auto op = [&](const core::Deadline& slice, core::Spin spin) {
    return kWrite ? rwlock::write(slot, slice, spin, wait) : rwlock::read(slot, slice, spin);
  };
  if (a.try_only()) {  // a robust lock's one attempt, which also cleans up after the dead
    Status st;
    Py_BEGIN_ALLOW_THREADS
    st = op(core::Deadline::after(-1), core::Spin::kNo);
    Py_END_ALLOW_THREADS
    return acquired(st);
  }
  bool raised;
  Status st = run_blocking(a.deadline(), op, &raised);
  if (raised) return nullptr;
  return acquired(st);
}

template <bool kWrite>
PyObject* rw_acquire(PyObject* self, PyObject* const* args, Py_ssize_t nargs, PyObject* kw) {
  core::Slot* slot = checked_slot(self);
  if (slot == nullptr) return nullptr;
  WaitArgs a;
  if (!parse_wait_args(kWrite ? "acquire_write" : "acquire_read", kAcquireNames, 2, args, nargs,
                       kw, &a))
    return nullptr;
  return acquire_with<kWrite>(*slot, a);
}

template <bool kWrite>
PyObject* rw_release(PyObject* self, PyObject* const*, Py_ssize_t nargs, PyObject* kw) {
  const char* name = kWrite ? "release_write" : "release_read";
  core::Slot* slot = checked_slot(self);
  if (slot == nullptr || !parse_no_args(name, nargs, kw)) return nullptr;
  rwlock::Release r = kWrite ? rwlock::release_write(*slot) : rwlock::release_read(*slot);
  if (r != rwlock::Release::kOk) return raise_misuse(r, name);
  Py_RETURN_NONE;
}

PyObject* rw_downgrade(PyObject* self, PyObject* const*, Py_ssize_t nargs, PyObject* kw) {
  core::Slot* slot = checked_slot(self);
  if (slot == nullptr || !parse_no_args("downgrade", nargs, kw)) return nullptr;
  rwlock::Release r = rwlock::downgrade(*slot);
  if (r != rwlock::Release::kOk) return raise_misuse(r, "downgrade");
  Py_RETURN_NONE;
}

// The snapshots, as METH_NOARGS methods: a count or a flag of the slot.
template <uint32_t (*kCount)(const core::Slot&)>
PyObject* rw_count(PyObject* self, PyObject*) {
  core::Slot* slot = checked_slot(self);
  return slot == nullptr ? nullptr : PyLong_FromUnsignedLong(kCount(*slot));
}
template <bool (*kFlag)(const core::Slot&)>
PyObject* rw_flag(PyObject* self, PyObject*) {
  core::Slot* slot = checked_slot(self);
  return slot == nullptr ? nullptr : PyBool_FromLong(kFlag(*slot));
}

PyObject* get_robust(PyObject* self, void*) {
  core::Slot* slot = checked_slot(self);
  return slot == nullptr ? nullptr : PyBool_FromLong(rwlock::is_robust(*slot));
}

PyObject* get_prefer(PyObject* self, void*) {
  core::Slot* slot = checked_slot(self);
  if (slot == nullptr) return nullptr;
  return PyUnicode_FromString(slot->body.rwlock.prefer ==
                                      static_cast<uint32_t>(rwlock::Prefer::kReaders)
                                  ? "readers"
                                  : "writers");  // set at creation
}

// __init__(*, prefer="writers", robust=False, ctx=None)
int rw_init(PyObject* self, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames) {
  static const char* const names[] = {"prefer", "robust", "ctx"};
  PyObject* slots[3];
  if (!bind_arguments("RWLock", names, 3, 0, args, nargs, kwnames, slots)) return -1;
  rwlock::Prefer prefer = rwlock::Prefer::kWriters;
  if (slots[0] != nullptr) {
    if (!PyUnicode_Check(slots[0])) {
      PyErr_Format(PyExc_TypeError, "prefer must be a str, not %s", Py_TYPE(slots[0])->tp_name);
      return -1;
    }
    if (PyUnicode_CompareWithASCIIString(slots[0], "readers") == 0) {
      prefer = rwlock::Prefer::kReaders;
    } else if (PyUnicode_CompareWithASCIIString(slots[0], "writers") != 0) {
      PyErr_Format(PyExc_ValueError, "prefer must be 'writers' or 'readers', not %R", slots[0]);
      return -1;
    }
  }
  bool robust = false;
  if (slots[1] != nullptr) {
    if (!PyBool_Check(slots[1])) {
      PyErr_Format(PyExc_TypeError, "robust must be a bool, not %s", Py_TYPE(slots[1])->tp_name);
      return -1;
    }
    robust = slots[1] == Py_True;
  }
  int fork_ctx = is_fork_context(slots[2]);
  if (fork_ctx < 0) return -1;
  core::Slot* slot = nullptr;
  if (robust) {
    if (!call_core([&] {
          slot = core::references::create_linked(core::Kind::kRWLock, core::Kind::kRWLockRecords,
                                                 rwlock::robust::kRecordSlots);
        }))
      return -1;
    rwlock::robust::init(*slot, prefer);
  } else {
    slot = new_slot(core::Kind::kRWLock);
    if (slot == nullptr) return -1;
    rwlock::init(*slot, prefer);
  }
  publish_slot(self, slot, fork_ctx ? kFlagForkContext : 0);
  return 0;
}

PyMethodDef rw_methods[] = {
    {"acquire_read", as_cfunction(rw_acquire<false>), kFastFlags,
     "acquire_read($self, /, block=True, timeout=None)\n--\n\nTake a read hold; False if the "
     "timeout elapsed (or, with block=False, if a reader cannot enter now)."},
    {"release_read", as_cfunction(rw_release<false>), kFastFlags,
     "release_read($self, /)\n--\n\nGive back one of the calling thread's read holds."},
    {"acquire_write", as_cfunction(rw_acquire<true>), kFastFlags,
     "acquire_write($self, /, block=True, timeout=None)\n--\n\nTake the write hold; False if "
     "the timeout elapsed (or, with block=False, if anyone holds the lock)."},
    {"release_write", as_cfunction(rw_release<true>), kFastFlags,
     "release_write($self, /)\n--\n\nGive back the calling thread's write hold."},
    {"downgrade", as_cfunction(rw_downgrade), kFastFlags,
     "downgrade($self, /)\n--\n\nTurn the calling thread's write hold into a read hold, "
     "atomically: no writer can enter in between."},
    {"_readers", rw_count<rwlock::readers>, METH_NOARGS,
     "Read holds in every process; for a robust lock, processes holding reads (a snapshot)."},
    {"_write_locked", rw_flag<rwlock::write_locked>, METH_NOARGS,
     "True while a writer holds (a snapshot)."},
    {"_waiting_writers", rw_count<rwlock::waiting_writers>, METH_NOARGS,
     "Writers waiting; for a robust lock, processes with writers waiting (a snapshot)."},
    {"_own_reads", rw_count<rwlock::own_reads>, METH_NOARGS, "The calling thread's read holds."},
    {"_owns_write", rw_flag<rwlock::owns_write>, METH_NOARGS,
     "True if the calling thread holds the write lock."},
    {nullptr, nullptr, 0, nullptr}};

PyGetSetDef rw_getsets[] = {
    {"prefer", get_prefer, nullptr, "'writers' or 'readers': the policy (fixed at creation).",
     nullptr},
    {"robust", get_robust, nullptr,
     "True if the holds of a process that dies come back (OwnerDiedError tells of a lost write "
     "hold).",
     nullptr},
    {nullptr, nullptr, nullptr, nullptr, nullptr}};

}  // namespace

void register_rwlock(py::module_& m) {
  make_primitive_type(
      m, "RWLock",
      {"interlock.synchronize.RWLock",
       "RWLock(*, prefer='writers', robust=False, ctx=None)\n--\n\n"
       "A reader-writer lock shared between processes: many readers at once, or one writer.\n\n"
       "read_lock() and write_lock() give lock-like views; acquire_read/release_read,\n"
       "acquire_write/release_write and downgrade() are the same operations as methods.",
       core::Kind::kRWLock, sizeof(PrimitiveObject), rw_init, rw_methods, rw_getsets});
}

}  // namespace interlock::bindings
