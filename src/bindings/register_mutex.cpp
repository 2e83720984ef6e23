// register_mutex.cpp: _core.Lock and _core.RLock.
#include <pybind11/pybind11.h>

#include "bindings/mutex_calls.hpp"
#include "bindings/native.hpp"
#include "bindings/objects.hpp"
#include "bindings/primitive_class.hpp"
#include "bindings/register.hpp"
#include "core/mutex.hpp"
#include "core/thread_identity.hpp"

namespace interlock::bindings {

using core::Status;
namespace mutex = core::mutex;

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

template <class T>
PyObject* m_acquire(PyObject* self, PyObject* const* args, Py_ssize_t nargs, PyObject* kw) {
  auto* obj = native<T>(self);
  if (obj == nullptr) return nullptr;
  WaitArgs a;
  if (!parse_wait_args("acquire", kAcquireNames, 2, args, nargs, kw, &a)) return nullptr;
  return acquire_mutex(obj->state(), T::kRecursive, a);
}

template <class T>
PyObject* m_enter(PyObject* self, PyObject* const*, Py_ssize_t nargs, PyObject* kw) {
  auto* obj = native<T>(self);
  if (obj == nullptr || !parse_no_args("__enter__", nargs, kw)) return nullptr;
  return acquire_mutex(obj->state(), T::kRecursive, WaitArgs{});
}

template <class T>
PyObject* m_release(PyObject* self, PyObject* const*, Py_ssize_t nargs, PyObject* kw) {
  auto* obj = native<T>(self);
  if (obj == nullptr || !parse_no_args("release", nargs, kw)) return nullptr;
  return release_mutex(obj->state(), T::kRecursive);
}

template <class T>
PyObject* m_exit(PyObject* self, PyObject* const*, Py_ssize_t, PyObject*) {
  auto* obj = native<T>(self);
  if (obj == nullptr) return nullptr;
  return release_mutex(obj->state(), T::kRecursive);
}

template <class T>
PyObject* m_locked(PyObject* self, PyObject* const*, Py_ssize_t nargs, PyObject* kw) {
  auto* obj = native<T>(self);
  if (obj == nullptr || !parse_no_args("locked", nargs, kw)) return nullptr;
  return PyBool_FromLong(mutex::is_locked(obj->state()));
}

template <class T>
PyMethodDef mutex_methods[] = {
    {"acquire", as_cfunction(m_acquire<T>), kFastFlags,
     "acquire(block=True, timeout=None) -> bool\n\nAcquire the lock; False if the timeout "
     "elapsed (or, with block=False, if it is held)."},
    {"release", as_cfunction(m_release<T>), kFastFlags, "release() -> None\n\nRelease the lock."},
    {"__enter__", as_cfunction(m_enter<T>), kFastFlags, "Acquire the lock, blocking."},
    {"__exit__", as_cfunction(m_exit<T>), kFastFlags, "Release the lock."},
    {"locked", as_cfunction(m_locked<T>), kFastFlags,
     "locked() -> bool\n\nTrue if the lock is held by anyone (a snapshot)."},
    {nullptr, nullptr, 0, nullptr}};

template <class T>
void define_mutex(py::module_& m, const char* name, const char* doc) {
  auto cls = define_primitive<T, NoExtraState<T, T::kKind>>(m, name, doc);
  cls.def(py::init([](bool fork_ctx, bool robust) {
            auto obj = std::make_unique<T>(T::kKind, fork_ctx);
            // relaxed: the slot is not shared with anyone yet.
            obj->state().robust.store(robust ? 1 : 0, std::memory_order_relaxed);
            return obj;
          }),
          py::arg("fork_ctx") = false, py::arg("robust") = false);
  cls.def_property_readonly(
      "robust", [](T& self) { return self.state().robust.load(std::memory_order_relaxed) != 0; },
      "True if waiters take the lock over when its holder's process dies (OwnerDiedError).");
  cls.def(
      "_is_mine", [](T& self) { return mutex::owner_tid(self.state()) == core::current_thread().tid; },
      "True if the calling thread holds the lock.");
  cls.def(
      "_owner_tid", [](T& self) { return mutex::owner_tid(self.state()); },
      "The kernel thread id of the holder, or 0 (a snapshot).");
  cls.def(
      "_owner_pid",
      [](T& self) {
        if (!mutex::is_locked(self.state())) return uint32_t{0};
        return core::record_pid(self.state().owner.load(std::memory_order_relaxed));
      },
      "The pid of the process holding the lock, or 0 (a snapshot).");
  cls.def(
      "_count", [](T& self) { return self.state().depth.load(std::memory_order_relaxed); },
      "The recursion depth of an RLock (a snapshot; 0 for a Lock).");
  install_methods(cls, mutex_methods<T>);
}

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
  define_mutex<LockObject>(m, "Lock", "A non-recursive lock in shared memory.");
  define_mutex<RLockObject>(m, "RLock", "A recursive lock in shared memory.");
}

}  // namespace interlock::bindings
