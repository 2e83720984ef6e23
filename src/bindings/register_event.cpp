// register_event.cpp: _core.Event.
#include <pybind11/pybind11.h>

#include "bindings/native.hpp"
#include "bindings/objects.hpp"
#include "bindings/primitive_class.hpp"
#include "bindings/register.hpp"
#include "core/event.hpp"

namespace interlock::bindings {

namespace {

using core::Status;
namespace event = core::event;

const char* const kWaitNames[] = {"timeout"};

PyObject* event_is_set(PyObject* self, PyObject* const*, Py_ssize_t nargs, PyObject* kw) {
  auto* obj = native<EventObject>(self);
  if (obj == nullptr || !parse_no_args("is_set", nargs, kw)) return nullptr;
  return PyBool_FromLong(event::is_set(obj->state()));
}

PyObject* event_set(PyObject* self, PyObject* const*, Py_ssize_t nargs, PyObject* kw) {
  auto* obj = native<EventObject>(self);
  if (obj == nullptr || !parse_no_args("set", nargs, kw)) return nullptr;
  event::set(obj->state());
  Py_RETURN_NONE;
}

PyObject* event_clear(PyObject* self, PyObject* const*, Py_ssize_t nargs, PyObject* kw) {
  auto* obj = native<EventObject>(self);
  if (obj == nullptr || !parse_no_args("clear", nargs, kw)) return nullptr;
  event::clear(obj->state());
  Py_RETURN_NONE;
}

PyObject* event_wait(PyObject* self, PyObject* const* args, Py_ssize_t nargs, PyObject* kw) {
  auto* obj = native<EventObject>(self);
  if (obj == nullptr) return nullptr;
  WaitArgs a;
  if (!parse_wait_args("wait", kWaitNames, 1, args, nargs, kw, &a)) return nullptr;
  core::EventState& e = obj->state();
  if (event::is_set(e)) Py_RETURN_TRUE;
  if (a.try_only()) Py_RETURN_FALSE;
  core::Deadline deadline = a.deadline();
  bool raised;
  Status st = run_blocking(
      deadline, [&](const core::Deadline& slice, core::Spin spin) { return event::wait(e, slice, spin); }, &raised);
  if (raised) return nullptr;
  return PyBool_FromLong(st == Status::kOk);
}

PyMethodDef event_methods[] = {
    {"is_set", as_cfunction(event_is_set), kFastFlags, "is_set() -> bool"},
    {"set", as_cfunction(event_set), kFastFlags,
     "set() -> None\n\nSet the flag and wake every waiter. Safe in a signal handler."},
    {"clear", as_cfunction(event_clear), kFastFlags, "clear() -> None"},
    {"wait", as_cfunction(event_wait), kFastFlags,
     "wait(timeout=None) -> bool\n\nBlock until the flag is set; False on timeout."},
    {nullptr, nullptr, 0, nullptr}};

}  // namespace

void register_event(py::module_& m) {
  auto cls = define_primitive<EventObject, NoExtraState<EventObject, core::Kind::kEvent>>(
      m, "Event", "An event flag in shared memory (core of interlock.synchronize.Event).");
  cls.def(py::init([](bool fork_ctx) {
            return std::make_unique<EventObject>(core::Kind::kEvent, fork_ctx);
          }),
          py::arg("fork_ctx") = false);
  install_methods(cls, event_methods);
}

}  // namespace interlock::bindings
