// register_semaphore.cpp: _core.Semaphore (bounded when given a maxvalue below SEM_VALUE_MAX).
#include <pybind11/pybind11.h>

#include "bindings/native.hpp"
#include "bindings/objects.hpp"
#include "bindings/primitive_class.hpp"
#include "bindings/register.hpp"
#include "core/semaphore.hpp"

namespace interlock::bindings {

namespace {

using core::Status;
namespace semaphore = core::semaphore;

const char* const kAcquireNames[] = {"block", "timeout"};

PyObject* sem_acquire_with(SemaphoreObject* obj, const WaitArgs& a) {
  core::SemaphoreState& s = obj->state();
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
  auto* obj = native<SemaphoreObject>(self);
  if (obj == nullptr) return nullptr;
  WaitArgs a;
  if (!parse_wait_args("acquire", kAcquireNames, 2, args, nargs, kw, &a)) return nullptr;
  return sem_acquire_with(obj, a);
}

PyObject* sem_enter(PyObject* self, PyObject* const*, Py_ssize_t nargs, PyObject* kw) {
  auto* obj = native<SemaphoreObject>(self);
  if (obj == nullptr || !parse_no_args("__enter__", nargs, kw)) return nullptr;
  return sem_acquire_with(obj, WaitArgs{});
}

PyObject* sem_release_n(SemaphoreObject* obj, long long n) {
  if (n < 1) {
    PyErr_SetString(PyExc_ValueError, "n must be one or more");
    return nullptr;
  }
  if (n > semaphore::kValueMax || !semaphore::release(obj->state(), static_cast<uint32_t>(n)))
    return raise_released_too_many_times();
  Py_RETURN_NONE;
}

PyObject* sem_release(PyObject* self, PyObject* const* args, Py_ssize_t nargs, PyObject* kw) {
  auto* obj = native<SemaphoreObject>(self);
  if (obj == nullptr) return nullptr;
  long long n;
  if (!parse_count_arg("release", "n", args, nargs, kw, 1, &n)) return nullptr;
  return sem_release_n(obj, n);
}

PyObject* sem_exit(PyObject* self, PyObject* const*, Py_ssize_t, PyObject*) {
  auto* obj = native<SemaphoreObject>(self);
  if (obj == nullptr) return nullptr;
  return sem_release_n(obj, 1);
}

PyObject* sem_get_value(PyObject* self, PyObject* const*, Py_ssize_t nargs, PyObject* kw) {
  auto* obj = native<SemaphoreObject>(self);
  if (obj == nullptr || !parse_no_args("get_value", nargs, kw)) return nullptr;
  return PyLong_FromUnsignedLong(semaphore::value(obj->state()));
}

PyMethodDef sem_methods[] = {
    {"acquire", as_cfunction(sem_acquire), kFastFlags,
     "acquire(block=True, timeout=None) -> bool\n\nTake one permit; see interlock.Semaphore."},
    {"release", as_cfunction(sem_release), kFastFlags,
     "release(n=1) -> None\n\nReturn n permits. ValueError past the bound."},
    {"__enter__", as_cfunction(sem_enter), kFastFlags, "Take one permit, blocking."},
    {"__exit__", as_cfunction(sem_exit), kFastFlags, "Return one permit."},
    {"get_value", as_cfunction(sem_get_value), kFastFlags,
     "get_value() -> int\n\nThe number of permits available now."},
    {nullptr, nullptr, 0, nullptr}};

}  // namespace

void register_semaphore(py::module_& m) {
  m.attr("SEM_VALUE_MAX") = semaphore::kValueMax;
  auto cls = define_primitive<SemaphoreObject,
                              NoExtraState<SemaphoreObject, core::Kind::kSemaphore>>(
      m, "Semaphore", "A counting semaphore in shared memory (core of interlock's semaphores).");
  cls.def(py::init([](uint32_t value, uint32_t maxvalue, bool fork_ctx) {
            auto obj = std::make_unique<SemaphoreObject>(core::Kind::kSemaphore, fork_ctx);
            semaphore::init(obj->state(), value, maxvalue);
            return obj;
          }),
          py::arg("value"), py::arg("maxvalue"), py::arg("fork_ctx") = false,
          "value and maxvalue must already be checked: 0 <= value <= maxvalue <= SEM_VALUE_MAX.");
  cls.def_property_readonly("maxvalue", [](SemaphoreObject& self) {
    return self.state().maxvalue;
  });
  install_methods(cls, sem_methods);
}

}  // namespace interlock::bindings
