// register_mutex.cpp: interlock.synchronize.Lock and RLock.
#include <Python.h>

#include "bindings/mutex_calls.hpp"
#include "bindings/native.hpp"
#include "bindings/object.hpp"
#include "bindings/primitive_type.hpp"
#include "bindings/register.hpp"
#include "core/mutex.hpp"
#include "core/process_identity.hpp"
#include "core/thread_identity.hpp"

namespace interlock::bindings {

using core::Status;
namespace mutex = core::mutex;

PyTypeObject* g_lock_type = nullptr;
PyTypeObject* g_rlock_type = nullptr;

namespace {
PyObject* g_owner_died = nullptr;  // interlock._core.OwnerDiedError
}  // namespace

PyObject* raise_owner_died() {
  PyErr_SetString(g_owner_died,
                  "the previous holder's process died while holding the lock; the lock is "
                  "now held by the caller, and the state it protects may need repair");
  return nullptr;
}

PyObject* acquire_mutex_slow(core::MutexState& m, bool recursive, const WaitArgs& a) {
  const core::ThreadIdentity& me = core::current_thread();
  if (a.try_only()) {
    // relaxed: `robust` is set once, before the lock is shared.
    if (m.robust.load(std::memory_order_relaxed) && mutex::take_over_from_dead_owner(m, me)) {
      if (recursive) m.depth.store(1, std::memory_order_relaxed);  // ordered by the CAS
      return raise_owner_died();
    }
    Py_RETURN_FALSE;
  }
  // A short spin before giving up the GIL: most contended hand-offs complete within it.
  if (mutex::lock_spin_briefly(m.word, me.tid)) {
    m.owner.store(me.owner, std::memory_order_relaxed);  // a hint (mutex.hpp)
    if (recursive) m.depth.store(1, std::memory_order_relaxed);  // ordered by the CAS
    Py_RETURN_TRUE;
  }
  core::Deadline deadline = a.deadline();
  bool raised;
  Status s = run_blocking(
      deadline,
      [&](const core::Deadline& slice, core::Spin spin) {
        return recursive ? mutex::rlock_acquire_depth(m, 1, slice, spin)
                         : mutex::lock_acquire(m, slice, spin);
      },
      &raised);
  if (raised) return nullptr;
  if (s == Status::kOwnerDied) return raise_owner_died();
  return PyBool_FromLong(s == Status::kOk);
}

PyObject* raise_not_owned() {
  PyErr_SetString(PyExc_AssertionError, "attempt to release recursive lock not owned by thread");
  return nullptr;
}

namespace {

const char* const kAcquireNames[] = {"block", "timeout"};

core::MutexState* mutex_state(PyObject* self) {
  core::Slot* slot = checked_slot(self);
  return slot == nullptr ? nullptr : &slot->body.mutex;
}

template <bool kRecursive>
PyObject* m_acquire(PyObject* self, PyObject* const* args, Py_ssize_t nargs, PyObject* kw) {
  core::MutexState* m = mutex_state(self);
  if (m == nullptr) return nullptr;
  WaitArgs a;
  if (!parse_wait_args("acquire", kAcquireNames, 2, args, nargs, kw, &a)) return nullptr;
  return acquire_mutex(*m, kRecursive, a);
}

template <bool kRecursive>
PyObject* m_enter(PyObject* self, PyObject* const*, Py_ssize_t nargs, PyObject* kw) {
  core::MutexState* m = mutex_state(self);
  if (m == nullptr || !parse_no_args("__enter__", nargs, kw)) return nullptr;
  return acquire_mutex(*m, kRecursive, WaitArgs{});
}

template <bool kRecursive>
PyObject* m_release(PyObject* self, PyObject* const*, Py_ssize_t nargs, PyObject* kw) {
  core::MutexState* m = mutex_state(self);
  if (m == nullptr || !parse_no_args("release", nargs, kw)) return nullptr;
  return release_mutex(*m, kRecursive);
}

template <bool kRecursive>
PyObject* m_exit(PyObject* self, PyObject* const*, Py_ssize_t, PyObject*) {
  core::MutexState* m = mutex_state(self);
  if (m == nullptr) return nullptr;
  return release_mutex(*m, kRecursive);
}

PyObject* m_locked(PyObject* self, PyObject* const*, Py_ssize_t nargs, PyObject* kw) {
  core::MutexState* m = mutex_state(self);
  if (m == nullptr || !parse_no_args("locked", nargs, kw)) return nullptr;
  return PyBool_FromLong(mutex::is_locked(*m));
}

PyObject* m_is_mine(PyObject* self, PyObject*) {
  core::MutexState* m = mutex_state(self);
  if (m == nullptr) return nullptr;
  return PyBool_FromLong(mutex::owner_tid(*m) == core::current_thread().tid);
}

PyObject* m_owner_tid(PyObject* self, PyObject*) {
  core::MutexState* m = mutex_state(self);
  if (m == nullptr) return nullptr;
  return PyLong_FromUnsignedLong(mutex::owner_tid(*m));
}

PyObject* m_owner_pid(PyObject* self, PyObject*) {
  core::MutexState* m = mutex_state(self);
  if (m == nullptr) return nullptr;
  if (!mutex::is_locked(*m)) return PyLong_FromLong(0);
  return PyLong_FromUnsignedLong(
      core::record_pid(m->owner.load(std::memory_order_relaxed)));  // a snapshot
}

PyObject* m_count(PyObject* self, PyObject*) {
  core::MutexState* m = mutex_state(self);
  if (m == nullptr) return nullptr;
  return PyLong_FromUnsignedLong(m->depth.load(std::memory_order_relaxed));  // a snapshot
}

PyObject* get_robust(PyObject* self, void*) {
  core::MutexState* m = mutex_state(self);
  if (m == nullptr) return nullptr;
  return PyBool_FromLong(m->robust.load(std::memory_order_relaxed) != 0);  // set at creation
}

// __init__(*, robust=False, ctx=None)
template <core::Kind kKind>
int mutex_init(PyObject* self, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames) {
  static const char* const names[] = {"robust", "ctx"};
  PyObject* slots[2];
  const char* fname = kKind == core::Kind::kLock ? "Lock" : "RLock";
  if (!bind_arguments(fname, names, 2, 0, args, nargs, kwnames, slots)) return -1;
  bool robust = false;
  if (slots[0] != nullptr) {
    if (!PyBool_Check(slots[0])) {
      PyErr_Format(PyExc_TypeError, "robust must be a bool, not %s", Py_TYPE(slots[0])->tp_name);
      return -1;
    }
    robust = slots[0] == Py_True;
  }
  int fork_ctx = is_fork_context(slots[1]);
  if (fork_ctx < 0) return -1;
  core::Slot* slot = new_slot(kKind);
  if (slot == nullptr) return -1;
  // relaxed: the slot is not shared yet; publish_slot's release store publishes it.
  slot->body.mutex.robust.store(robust ? 1 : 0, std::memory_order_relaxed);
  publish_slot(self, slot, fork_ctx ? kFlagForkContext : 0);
  return 0;
}

template <bool kRecursive>
PyMethodDef mutex_methods[] = {
    {"acquire", as_cfunction(m_acquire<kRecursive>), kFastFlags,
     "acquire($self, /, block=True, timeout=None)\n--\n\nAcquire the lock; False if the "
     "timeout elapsed (or, with block=False, if it is held)."},
    {"release", as_cfunction(m_release<kRecursive>), kFastFlags,
     "release($self, /)\n--\n\nRelease the lock."},
    {"__enter__", as_cfunction(m_enter<kRecursive>), kFastFlags, "Acquire the lock, blocking."},
    {"__exit__", as_cfunction(m_exit<kRecursive>), kFastFlags, "Release the lock."},
    {"locked", as_cfunction(m_locked), kFastFlags,
     "locked($self, /)\n--\n\nTrue if the lock is held by anyone (a snapshot)."},
    {"_is_mine", m_is_mine, METH_NOARGS, "True if the calling thread holds the lock."},
    {"_owner_tid", m_owner_tid, METH_NOARGS,
     "The kernel thread id of the holder, or 0 (a snapshot)."},
    {"_owner_pid", m_owner_pid, METH_NOARGS,
     "The pid of the process holding the lock, or 0 (a snapshot)."},
    {"_count", m_count, METH_NOARGS, "The recursion depth of an RLock (a snapshot; 0 for a Lock)."},
    {nullptr, nullptr, 0, nullptr}};

PyGetSetDef mutex_getsets[] = {
    {"robust", get_robust, nullptr,
     "True if waiters take the lock over when its holder's process dies (OwnerDiedError).",
     nullptr},
    {nullptr, nullptr, nullptr, nullptr, nullptr}};

}  // namespace

void register_mutexes(py::module_& m) {
  g_owner_died = PyErr_NewExceptionWithDoc(
      "interlock._core.OwnerDiedError",
      "A robust lock was acquired from a holder whose process died while holding it. The "
      "caller holds the lock now (as with pthread's EOWNERDEAD).",
      PyExc_RuntimeError, nullptr);
  if (g_owner_died == nullptr) throw py::error_already_set();
  m.attr("OwnerDiedError") = py::handle(g_owner_died);
  m.def("_set_owner_check_interval", &mutex::set_owner_check_interval, py::arg("seconds"),
        "How long a robust lock's waiter sleeps between checks of the holder.");
  g_lock_type = make_primitive_type(
      m, "Lock",
      {"interlock.synchronize.Lock",
       "Lock(*, robust=False, ctx=None)\n--\n\n"
       "A non-recursive lock shared between processes: see multiprocessing.Lock.\n\n"
       "acquire(block=True, timeout=None), release(), locked() and the context manager\n"
       "protocol. Any process or thread may release it; releasing it while unlocked raises\n"
       "ValueError. With robust=True, a holder whose process dies (even by SIGKILL) does not\n"
       "strand the others: a waiter or later acquirer takes the lock over and gets\n"
       "OwnerDiedError, holding the lock (see docs/reliability.md).",
       core::Kind::kLock, sizeof(PrimitiveObject), mutex_init<core::Kind::kLock>,
       mutex_methods<false>, mutex_getsets});
  g_rlock_type = make_primitive_type(
      m, "RLock",
      {"interlock.synchronize.RLock",
       "RLock(*, robust=False, ctx=None)\n--\n\n"
       "A recursive lock shared between processes: see multiprocessing.RLock.\n\n"
       "The owning thread may acquire it again without blocking and must release it once per\n"
       "acquisition; a release by anyone else raises AssertionError. robust=True as for Lock;\n"
       "the taker-over holds it at depth 1.",
       core::Kind::kRLock, sizeof(PrimitiveObject), mutex_init<core::Kind::kRLock>,
       mutex_methods<true>, mutex_getsets});
}

}  // namespace interlock::bindings
