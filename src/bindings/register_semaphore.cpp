// register_semaphore.cpp: interlock.synchronize.Semaphore and BoundedSemaphore.
#include <Python.h>

#include "bindings/native.hpp"
#include "bindings/object.hpp"
#include "bindings/primitive_type.hpp"
#include "bindings/register.hpp"
#include "core/semaphore.hpp"

namespace interlock::bindings {

namespace {

using core::Status;
namespace semaphore = core::semaphore;

const char* const kAcquireNames[] = {"block", "timeout"};

core::SemaphoreState* sem_state(PyObject* self) {
  core::Slot* slot = checked_slot(self);
  return slot == nullptr ? nullptr : &slot->body.semaphore;
}

PyObject* sem_acquire_with(core::SemaphoreState& s, const WaitArgs& a) {
  if (semaphore::try_acquire(s)) Py_RETURN_TRUE;
  if (a.try_only()) Py_RETURN_FALSE;
  core::Deadline deadline = a.deadline();
  bool raised;
  Status st = run_blocking(
      deadline, [&](const core::Deadline& slice, core::Spin spin) {
        return semaphore::acquire(s, slice, spin);
      },
      &raised);
  if (raised) return nullptr;
  return PyBool_FromLong(st == Status::kOk);
}

PyObject* sem_acquire(PyObject* self, PyObject* const* args, Py_ssize_t nargs, PyObject* kw) {
  core::SemaphoreState* s = sem_state(self);
  if (s == nullptr) return nullptr;
  WaitArgs a;
  if (!parse_wait_args("acquire", kAcquireNames, 2, args, nargs, kw, &a)) return nullptr;
  return sem_acquire_with(*s, a);
}

PyObject* sem_enter(PyObject* self, PyObject* const*, Py_ssize_t nargs, PyObject* kw) {
  core::SemaphoreState* s = sem_state(self);
  if (s == nullptr || !parse_no_args("__enter__", nargs, kw)) return nullptr;
  return sem_acquire_with(*s, WaitArgs{});
}

PyObject* sem_release_n(core::SemaphoreState& s, long long n) {
  if (n < 1) {
    PyErr_SetString(PyExc_ValueError, "n must be one or more");
    return nullptr;
  }
  if (n > semaphore::kValueMax || !semaphore::release(s, static_cast<uint32_t>(n)))
    return raise_released_too_many_times();
  Py_RETURN_NONE;
}

PyObject* sem_release(PyObject* self, PyObject* const* args, Py_ssize_t nargs, PyObject* kw) {
  core::SemaphoreState* s = sem_state(self);
  if (s == nullptr) return nullptr;
  long long n;
  if (!parse_count_arg("release", "n", args, nargs, kw, 1, &n)) return nullptr;
  return sem_release_n(*s, n);
}

PyObject* sem_exit(PyObject* self, PyObject* const*, Py_ssize_t, PyObject*) {
  core::SemaphoreState* s = sem_state(self);
  if (s == nullptr) return nullptr;
  return sem_release_n(*s, 1);
}

PyObject* sem_get_value(PyObject* self, PyObject* const*, Py_ssize_t nargs, PyObject* kw) {
  core::SemaphoreState* s = sem_state(self);
  if (s == nullptr || !parse_no_args("get_value", nargs, kw)) return nullptr;
  return PyLong_FromUnsignedLong(semaphore::value(*s));
}

PyObject* get_maxvalue(PyObject* self, void*) {
  core::SemaphoreState* s = sem_state(self);
  if (s == nullptr) return nullptr;
  return PyLong_FromUnsignedLong(s->maxvalue);
}

// The initial value, checked as multiprocessing's semaphores check it.
bool semaphore_value(PyObject* obj, uint32_t* out) {
  if (obj == nullptr) {
    *out = 1;
    return true;
  }
  PyObject* index = PyNumber_Index(obj);
  if (index == nullptr) return false;
  int overflow = 0;
  long long value = PyLong_AsLongLongAndOverflow(index, &overflow);
  Py_DECREF(index);
  if (value == -1 && PyErr_Occurred()) return false;
  if (overflow < 0 || (overflow == 0 && value < 0)) {
    PyErr_SetString(PyExc_ValueError, "semaphore initial value must be >= 0");
    return false;
  }
  if (overflow > 0 || value > semaphore::kValueMax) {
    PyErr_Format(PyExc_OverflowError, "semaphore value must be <= SEM_VALUE_MAX (%u)",
                 semaphore::kValueMax);
    return false;
  }
  *out = static_cast<uint32_t>(value);
  return true;
}

// __init__(value=1, *, ctx=None); a bounded semaphore's bound is its initial value.
template <bool kBounded>
int sem_init(PyObject* self, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames) {
  static const char* const names[] = {"value", "ctx"};
  PyObject* slots[2];
  if (!bind_arguments(kBounded ? "BoundedSemaphore" : "Semaphore", names, 2, 1, args, nargs,
                      kwnames, slots))
    return -1;
  uint32_t value;
  if (!semaphore_value(slots[0], &value)) return -1;
  int fork_ctx = is_fork_context(slots[1]);
  if (fork_ctx < 0) return -1;
  core::Slot* slot = new_slot(core::Kind::kSemaphore);
  if (slot == nullptr) return -1;
  semaphore::init(slot->body.semaphore, value, kBounded ? value : semaphore::kValueMax);
  publish_slot(self, slot, fork_ctx ? kFlagForkContext : 0);
  return 0;
}

PyMethodDef sem_methods[] = {
    {"acquire", as_cfunction(sem_acquire), kFastFlags,
     "acquire($self, /, block=True, timeout=None)\n--\n\nTake one permit; False if the "
     "timeout elapsed (or, with block=False, if none is available)."},
    {"release", as_cfunction(sem_release), kFastFlags,
     "release($self, /, n=1)\n--\n\nReturn n permits. ValueError past the bound."},
    {"__enter__", as_cfunction(sem_enter), kFastFlags, "Take one permit, blocking."},
    {"__exit__", as_cfunction(sem_exit), kFastFlags, "Return one permit."},
    {"get_value", as_cfunction(sem_get_value), kFastFlags,
     "get_value($self, /)\n--\n\nThe number of permits available now."},
    {nullptr, nullptr, 0, nullptr}};

PyGetSetDef sem_getsets[] = {
    {"maxvalue", get_maxvalue, nullptr, "The bound (SEM_VALUE_MAX when unbounded).", nullptr},
    {nullptr, nullptr, nullptr, nullptr, nullptr}};

}  // namespace

void register_semaphore(py::module_& m) {
  m.attr("SEM_VALUE_MAX") = semaphore::kValueMax;
  PyTypeObject* sem = make_primitive_type(
      m, "Semaphore",
      {"interlock.synchronize.Semaphore",
       "Semaphore(value=1, *, ctx=None)\n--\n\n"
       "A counting semaphore shared between processes: see multiprocessing.Semaphore.\n\n"
       "acquire(block=True, timeout=None), release(n=1), get_value() and the context\n"
       "manager protocol.",
       core::Kind::kSemaphore, sizeof(PrimitiveObject), sem_init<false>, sem_methods,
       sem_getsets});
  PrimitiveTypeSpec bounded{
      "interlock.synchronize.BoundedSemaphore",
      "BoundedSemaphore(value=1, *, ctx=None)\n--\n\n"
      "A semaphore that refuses to be released above its initial value: see\n"
      "multiprocessing.BoundedSemaphore. The bound is checked atomically: a release that\n"
      "would pass it raises ValueError and changes nothing.",
      core::Kind::kSemaphore, sizeof(PrimitiveObject), sem_init<true>, nullptr, nullptr};
  bounded.base = sem;
  make_primitive_type(m, "BoundedSemaphore", bounded);
}

}  // namespace interlock::bindings
