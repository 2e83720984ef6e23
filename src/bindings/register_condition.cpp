// register_condition.cpp: interlock.synchronize.Condition over a Lock or RLock.
#include <Python.h>

#include <string>

#include "bindings/mutex_calls.hpp"
#include "bindings/native.hpp"
#include "bindings/object.hpp"
#include "bindings/primitive_type.hpp"
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

ConditionObject* as_condition(PyObject* self) { return reinterpret_cast<ConditionObject*>(self); }

// The condition's own state and its lock's, or false with RuntimeError set.
struct Parts {
  core::ConditionState* cond;
  core::MutexState* lock;
  bool recursive;
};
bool parts_of(PyObject* self, Parts* out) {
  const uintptr_t bits = load_bits(self);  // once: the slot and its flags come together
  auto* slot = reinterpret_cast<core::Slot*>(bits & ~kFlagMask);
  if (slot == nullptr) {
    not_initialized(self);
    return false;
  }
  PyObject* lock = as_condition(self)->lock;
  if (lock == nullptr || slot_of(lock) == nullptr) {  // cleared by the garbage collector
    not_initialized(self);
    return false;
  }
  out->cond = &slot->body.condition;
  out->lock = &slot_of(lock)->body.mutex;
  out->recursive = (bits & kFlagRecursiveLock) != 0;
  return true;
}

bool owns_lock(const Parts& p) {
  return mutex::owner_tid(*p.lock) == core::current_thread().tid;
}

PyObject* c_acquire(PyObject* self, PyObject* const* args, Py_ssize_t nargs, PyObject* kw) {
  Parts p;
  if (!parts_of(self, &p)) return nullptr;
  WaitArgs a;
  if (!parse_wait_args("acquire", kAcquireNames, 2, args, nargs, kw, &a)) return nullptr;
  return acquire_mutex(*p.lock, p.recursive, a);
}

PyObject* c_enter(PyObject* self, PyObject* const*, Py_ssize_t nargs, PyObject* kw) {
  Parts p;
  if (!parts_of(self, &p) || !parse_no_args("__enter__", nargs, kw)) return nullptr;
  return acquire_mutex(*p.lock, p.recursive, WaitArgs{});
}

PyObject* c_release(PyObject* self, PyObject* const*, Py_ssize_t nargs, PyObject* kw) {
  Parts p;
  if (!parts_of(self, &p) || !parse_no_args("release", nargs, kw)) return nullptr;
  return release_mutex(*p.lock, p.recursive);
}

PyObject* c_exit(PyObject* self, PyObject* const*, Py_ssize_t, PyObject*) {
  Parts p;
  if (!parts_of(self, &p)) return nullptr;
  return release_mutex(*p.lock, p.recursive);
}

// wait(): join, drop every level of the lock, sleep, take the lock back at the same depth,
// and withdraw if no token was taken. The lock is held again on every exit, exceptions
// included, as threading.Condition guarantees.
PyObject* c_wait(PyObject* self, PyObject* const* args, Py_ssize_t nargs, PyObject* kw) {
  Parts p;
  if (!parts_of(self, &p)) return nullptr;
  WaitArgs a;
  if (!parse_wait_args("wait", kWaitNames, 1, args, nargs, kw, &a)) return nullptr;
  if (!owns_lock(p)) {
    PyErr_SetString(PyExc_AssertionError, "must acquire() condition before using wait()");
    return nullptr;
  }
  core::ConditionState& c = *p.cond;
  core::MutexState& m = *p.lock;
  const bool recursive = p.recursive;
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
  Parts p;
  if (!parts_of(self, &p)) return nullptr;
  if (!owns_lock(p)) {
    PyErr_SetString(PyExc_AssertionError, "lock is not owned");
    return nullptr;
  }
  if (n > 0) condition::notify(*p.cond, n > 0xffffffffLL ? 0xffffffffu : static_cast<uint32_t>(n));
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

PyObject* c_waiting(PyObject* self, PyObject*) {
  Parts p;
  if (!parts_of(self, &p)) return nullptr;
  return PyLong_FromUnsignedLong(condition::waiting(*p.cond));
}

PyObject* c_pending_wakeups(PyObject* self, PyObject*) {
  Parts p;
  if (!parts_of(self, &p)) return nullptr;
  return PyLong_FromUnsignedLong(p.cond->tokens.load(std::memory_order_relaxed));  // a snapshot
}

PyObject* get_lock(PyObject* self, void*) {
  PyObject* lock = as_condition(self)->lock;
  if (lock == nullptr) return not_initialized(self);
  Py_INCREF(lock);
  return lock;
}

// Points the condition at `lock` (a new reference is taken) and sets *recursive to the flag
// its slot bits need; -1 unless it is an interlock Lock or RLock. Before the slot is
// published (object.hpp): the field is never written again.
int bind_lock(PyObject* self, PyObject* lock, uintptr_t* recursive_flag) {
  uintptr_t recursive;
  if (PyObject_TypeCheck(lock, g_rlock_type)) {
    recursive = kFlagRecursiveLock;
  } else if (PyObject_TypeCheck(lock, g_lock_type)) {
    recursive = 0;
  } else {
    PyErr_Format(PyExc_TypeError, "Condition() needs an interlock Lock or RLock, not %s",
                 Py_TYPE(lock)->tp_name);
    return -1;
  }
  if (checked_slot(lock) == nullptr) return -1;
  *recursive_flag = recursive;
  Py_INCREF(lock);
  Py_XSETREF(as_condition(self)->lock, lock);
  return 0;
}

// __init__(lock=None, *, ctx=None)
int condition_init(PyObject* self, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames) {
  static const char* const names[] = {"lock", "ctx"};
  PyObject* slots[2];
  if (!bind_arguments("Condition", names, 2, 1, args, nargs, kwnames, slots)) return -1;
  int fork_ctx = is_fork_context(slots[1]);
  if (fork_ctx < 0) return -1;
  const uintptr_t flags = fork_ctx ? kFlagForkContext : 0;
  PyObject* lock = slots[0];
  PyObject* made = nullptr;
  if (lock == nullptr || lock == Py_None) {
    // A new RLock of the same context (multiprocessing: ctx.RLock()).
    made = g_rlock_type->tp_alloc(g_rlock_type, 0);
    if (made == nullptr || attach_new_slot(made, core::Kind::kRLock, flags) < 0) {
      Py_XDECREF(made);
      return -1;
    }
    lock = made;
  }
  uintptr_t recursive = 0;
  int rc = bind_lock(self, lock, &recursive);
  Py_XDECREF(made);
  if (rc < 0) return -1;
  return attach_new_slot(self, core::Kind::kCondition, flags | recursive);
}

int condition_traverse(PyObject* self, visitproc visit, void* arg) {
  Py_VISIT(as_condition(self)->lock);
  Py_VISIT(Py_TYPE(self));  // heap type instances reference their type
  return 0;
}

int condition_clear(PyObject* self) {
  Py_CLEAR(as_condition(self)->lock);
  return 0;
}

int condition_export(PyObject* self, PyObject* items) {
  return PyList_Append(items, as_condition(self)->lock);
}

int condition_import(PyObject* self, PyObject* const* extras, Py_ssize_t, uintptr_t* flags) {
  return bind_lock(self, extras[0], flags);
}

PyMethodDef condition_methods[] = {
    {"acquire", as_cfunction(c_acquire), kFastFlags,
     "acquire($self, /, block=True, timeout=None)\n--\n\nAcquire the underlying lock."},
    {"release", as_cfunction(c_release), kFastFlags,
     "release($self, /)\n--\n\nRelease the underlying lock."},
    {"__enter__", as_cfunction(c_enter), kFastFlags, "Acquire the underlying lock."},
    {"__exit__", as_cfunction(c_exit), kFastFlags, "Release the underlying lock."},
    {"wait", as_cfunction(c_wait), kFastFlags,
     "wait($self, /, timeout=None)\n--\n\nRelease the lock, wait for a notify, re-acquire. "
     "False on timeout."},
    {"notify", as_cfunction(c_notify), kFastFlags,
     "notify($self, /, n=1)\n--\n\nWake up to n of the waiters waiting now. Never blocks."},
    {"notify_all", as_cfunction(c_notify_all), kFastFlags,
     "notify_all($self, /)\n--\n\nWake every waiter waiting now. Never blocks."},
    {"_waiting", c_waiting, METH_NOARGS, "Waiters that have not returned yet (a snapshot)."},
    {"_pending_wakeups", c_pending_wakeups, METH_NOARGS,
     "Wake-ups handed out by notify and not yet taken (a snapshot)."},
    {nullptr, nullptr, 0, nullptr}};

PyGetSetDef condition_getsets[] = {
    {"_lock", get_lock, nullptr, "The Lock or RLock this condition uses.", nullptr},
    {nullptr, nullptr, nullptr, nullptr, nullptr}};

}  // namespace

void register_condition(py::module_& m) {
  PrimitiveTypeSpec spec{
      "interlock.synchronize.Condition",
      "Condition(lock=None, *, ctx=None)\n--\n\n"
      "A condition variable shared between processes: see multiprocessing.Condition.\n\n"
      "lock must be an interlock Lock or RLock (a new RLock when None). notify() and\n"
      "notify_all() never block.",
      core::Kind::kCondition, sizeof(ConditionObject), condition_init, condition_methods,
      condition_getsets, condition_traverse, condition_clear, condition_export,
      condition_import, 1};
  make_primitive_type(m, "Condition", spec);
}

}  // namespace interlock::bindings
