// register_condition.cpp: _core.Condition over a _core.Lock or _core.RLock.
#include <pybind11/pybind11.h>

#include "bindings/mutex_calls.hpp"
#include "bindings/native.hpp"
#include "bindings/objects.hpp"
#include "bindings/primitive_class.hpp"
#include "bindings/register.hpp"
#include "core/condition.hpp"
#include "core/mutex.hpp"
#include "core/thread_identity.hpp"

namespace interlock::bindings {

namespace {

using core::Status;
namespace condition = core::condition;
namespace mutex = core::mutex;

const char* const kAcquireNames[] = {"block", "timeout"};
const char* const kWaitNames[] = {"timeout"};

// Points `obj` at `lock`, which must be a _core.Lock or _core.RLock.
void bind_lock(ConditionObject& obj, py::object lock) {
  if (py::isinstance<LockObject>(lock)) {
    obj.lock_native = lock.cast<LockObject*>();
    obj.lock_recursive = false;
  } else if (py::isinstance<RLockObject>(lock)) {
    obj.lock_native = lock.cast<RLockObject*>();
    obj.lock_recursive = true;
  } else {
    throw py::type_error("Condition() needs an interlock Lock or RLock, not " +
                         std::string(Py_TYPE(lock.ptr())->tp_name));
  }
  obj.lock = std::move(lock);
}

bool owns_lock(ConditionObject* obj) {
  return mutex::owner_tid(obj->lock_state()) == core::current_thread().tid;
}

PyObject* c_acquire(PyObject* self, PyObject* const* args, Py_ssize_t nargs, PyObject* kw) {
  auto* obj = native<ConditionObject>(self);
  if (obj == nullptr) return nullptr;
  WaitArgs a;
  if (!parse_wait_args("acquire", kAcquireNames, 2, args, nargs, kw, &a)) return nullptr;
  return acquire_mutex(obj->lock_state(), obj->lock_recursive, a);
}

PyObject* c_enter(PyObject* self, PyObject* const*, Py_ssize_t nargs, PyObject* kw) {
  auto* obj = native<ConditionObject>(self);
  if (obj == nullptr || !parse_no_args("__enter__", nargs, kw)) return nullptr;
  return acquire_mutex(obj->lock_state(), obj->lock_recursive, WaitArgs{});
}

PyObject* c_release(PyObject* self, PyObject* const*, Py_ssize_t nargs, PyObject* kw) {
  auto* obj = native<ConditionObject>(self);
  if (obj == nullptr || !parse_no_args("release", nargs, kw)) return nullptr;
  return release_mutex(obj->lock_state(), obj->lock_recursive);
}

PyObject* c_exit(PyObject* self, PyObject* const*, Py_ssize_t, PyObject*) {
  auto* obj = native<ConditionObject>(self);
  if (obj == nullptr) return nullptr;
  return release_mutex(obj->lock_state(), obj->lock_recursive);
}

// wait(): join, drop every level of the lock, sleep, take the lock back at the same depth,
// and withdraw if no token was taken. The lock is held again on every exit, exceptions
// included, as threading.Condition guarantees.
PyObject* c_wait(PyObject* self, PyObject* const* args, Py_ssize_t nargs, PyObject* kw) {
  auto* obj = native<ConditionObject>(self);
  if (obj == nullptr) return nullptr;
  WaitArgs a;
  if (!parse_wait_args("wait", kWaitNames, 1, args, nargs, kw, &a)) return nullptr;
  if (!owns_lock(obj)) {
    PyErr_SetString(PyExc_AssertionError, "must acquire() condition before using wait()");
    return nullptr;
  }
  core::ConditionState& c = obj->state();
  core::MutexState& m = obj->lock_state();
  const bool recursive = obj->lock_recursive;
  condition::Ticket ticket = condition::enqueue(c);
  uint32_t depth = 1;
  if (recursive) depth = mutex::rlock_release_all(m);
  else mutex::lock_release(m);

  core::Deadline deadline = a.deadline();
  bool raised;
  Status st = run_blocking(
      deadline,
      [&](const core::Deadline& slice, core::Spin spin) {
        return condition::sleep(c, ticket, slice, spin);
      }, &raised);
  bool notified = !raised && st == Status::kOk;

  Status back = run_blocking_uninterruptible([&](const core::Deadline& slice, core::Spin spin) {
    return recursive ? mutex::rlock_acquire_depth(m, depth, slice, spin)
                     : mutex::lock_acquire(m, slice, spin);
  });
  if (!notified) notified = condition::withdraw(c, ticket);
  if (raised || PyErr_Occurred()) return nullptr;
  if (back == Status::kOwnerDied) return raise_owner_died();
  return PyBool_FromLong(notified);
}

PyObject* notify_n(PyObject* self, long long n) {
  auto* obj = native<ConditionObject>(self);
  if (obj == nullptr) return nullptr;
  if (!owns_lock(obj)) {
    PyErr_SetString(PyExc_AssertionError, "lock is not owned");
    return nullptr;
  }
  if (n > 0) condition::notify(obj->state(), n > 0xffffffffLL ? 0xffffffffu : static_cast<uint32_t>(n));
  Py_RETURN_NONE;
}

PyObject* c_notify(PyObject* self, PyObject* const* args, Py_ssize_t nargs, PyObject* kw) {
  long long n;
  if (!parse_count_arg("notify", "n", args, nargs, kw, 1, &n)) return nullptr;
  return notify_n(self, n);
}

PyObject* c_notify_all(PyObject* self, PyObject* const*, Py_ssize_t nargs, PyObject* kw) {
  if (!parse_no_args("notify_all", nargs, kw)) return nullptr;
  return notify_n(self, 0xffffffffLL);
}

PyMethodDef condition_methods[] = {
    {"acquire", as_cfunction(c_acquire), kFastFlags,
     "acquire(block=True, timeout=None) -> bool\n\nAcquire the underlying lock."},
    {"release", as_cfunction(c_release), kFastFlags, "release() -> None\n\nRelease the underlying lock."},
    {"__enter__", as_cfunction(c_enter), kFastFlags, "Acquire the underlying lock."},
    {"__exit__", as_cfunction(c_exit), kFastFlags, "Release the underlying lock."},
    {"wait", as_cfunction(c_wait), kFastFlags,
     "wait(timeout=None) -> bool\n\nRelease the lock, wait for a notify, re-acquire. False on timeout."},
    {"notify", as_cfunction(c_notify), kFastFlags,
     "notify(n=1) -> None\n\nWake up to n of the waiters waiting now. Never blocks."},
    {"notify_all", as_cfunction(c_notify_all), kFastFlags,
     "notify_all() -> None\n\nWake every waiter waiting now. Never blocks."},
    {nullptr, nullptr, 0, nullptr}};

struct ConditionExtra {
  static constexpr size_t kSize = 1;
  static py::tuple save(ConditionObject& self) { return py::make_tuple(self.lock); }
  static std::unique_ptr<ConditionObject> load(SlotAddress a, const py::tuple& state) {
    auto obj = std::make_unique<ConditionObject>(a.arena, a.index, core::Kind::kCondition,
                                                 a.generation);
    bind_lock(*obj, state[kImportPrefix]);
    return obj;
  }
};

}  // namespace

void register_condition(py::module_& m) {
  auto cls = define_primitive<ConditionObject, ConditionExtra>(
      m, "Condition", "A condition variable in shared memory over a _core.Lock or _core.RLock.");
  cls.def(py::init([](py::object lock, bool fork_ctx) {
            auto obj = std::make_unique<ConditionObject>(core::Kind::kCondition, fork_ctx);
            bind_lock(*obj, std::move(lock));
            return obj;
          }),
          py::arg("lock"), py::arg("fork_ctx") = false);
  cls.def_property_readonly("_lock", [](ConditionObject& self) { return self.lock; });
  cls.def(
      "_waiting", [](ConditionObject& self) { return condition::waiting(self.state()); },
      "Waiters that have not returned yet (a snapshot).");
  cls.def(
      "_pending_wakeups",
      [](ConditionObject& self) {
        return self.state().tokens.load(std::memory_order_relaxed);  // a snapshot
      },
      "Wake-ups handed out by notify and not yet taken (a snapshot).");
  install_methods(cls, condition_methods);
}

}  // namespace interlock::bindings
