// register_event.cpp: interlock.synchronize.Event.
#include <Python.h>

#include "bindings/native.hpp"
#include "bindings/object.hpp"
#include "bindings/primitive_type.hpp"
#include "bindings/register.hpp"
#include "core/event.hpp"

namespace interlock::bindings {

namespace {

using core::Status;
namespace event = core::event;

const char* const kWaitNames[] = {"timeout"};

core::EventState* event_state(PyObject* self) {
  core::Slot* slot = checked_slot(self);
  return slot == nullptr ? nullptr : &slot->body.event;
}

PyObject* event_is_set(PyObject* self, PyObject* const*, Py_ssize_t nargs, PyObject* kw) {
  core::EventState* e = event_state(self);
  if (e == nullptr || !parse_no_args("is_set", nargs, kw)) return nullptr;
  return PyBool_FromLong(event::is_set(*e));
}

PyObject* event_set(PyObject* self, PyObject* const*, Py_ssize_t nargs, PyObject* kw) {
  core::EventState* e = event_state(self);
  if (e == nullptr || !parse_no_args("set", nargs, kw)) return nullptr;
  event::set(*e);
  Py_RETURN_NONE;
}

PyObject* event_clear(PyObject* self, PyObject* const*, Py_ssize_t nargs, PyObject* kw) {
  core::EventState* e = event_state(self);
  if (e == nullptr || !parse_no_args("clear", nargs, kw)) return nullptr;
  event::clear(*e);
  Py_RETURN_NONE;
}

PyObject* event_wait(PyObject* self, PyObject* const* args, Py_ssize_t nargs, PyObject* kw) {
  core::EventState* e = event_state(self);
  if (e == nullptr) return nullptr;
  WaitArgs a;
  if (!parse_wait_args("wait", kWaitNames, 1, args, nargs, kw, &a)) return nullptr;
  // The wait starts here: every slice (and every resumption after a signal handler) compares
  // against this one snapshot, so a set() that a clear() followed at once is never lost.
  const uint32_t since = event::snapshot(*e);
  if (event::word_is_set(since)) Py_RETURN_TRUE;
  if (a.try_only()) Py_RETURN_FALSE;
  core::Deadline deadline = a.deadline();
  bool raised;
  Status st = run_blocking(
      deadline,
      [&](const core::Deadline& slice, core::Spin spin) {
        return event::wait(*e, since, slice, spin);
      },
      &raised);
  if (raised) return nullptr;
  return PyBool_FromLong(st == Status::kOk);
}

// _waiters(): threads (of every process) asleep or about to sleep in wait(). For tests, which
// use it to know that every waiter's wait has started before they pulse the Event.
PyObject* event_waiters(PyObject* self, PyObject* const*, Py_ssize_t nargs, PyObject* kw) {
  core::EventState* e = event_state(self);
  if (e == nullptr || !parse_no_args("_waiters", nargs, kw)) return nullptr;
  return PyLong_FromUnsignedLong(event::waiters(*e));
}

// __init__(*, ctx=None)
int event_init(PyObject* self, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames) {
  static const char* const names[] = {"ctx"};
  PyObject* ctx;
  if (!bind_arguments("Event", names, 1, 0, args, nargs, kwnames, &ctx)) return -1;
  int fork_ctx = is_fork_context(ctx);
  if (fork_ctx < 0) return -1;
  return attach_new_slot(self, core::Kind::kEvent, fork_ctx ? kFlagForkContext : 0);
}

PyMethodDef event_methods[] = {
    {"is_set", as_cfunction(event_is_set), kFastFlags, "is_set($self, /)\n--\n\n"},
    {"set", as_cfunction(event_set), kFastFlags,
     "set($self, /)\n--\n\nSet the flag and wake every waiter. Safe in a signal handler."},
    {"clear", as_cfunction(event_clear), kFastFlags, "clear($self, /)\n--\n\n"},
    {"wait", as_cfunction(event_wait), kFastFlags,
     "wait($self, /, timeout=None)\n--\n\n"
     "Block until the flag is set. True if it was set before the call or at any moment\n"
     "after the wait started (even if clear() followed at once); False on timeout."},
    {"_waiters", as_cfunction(event_waiters), kFastFlags,
     "_waiters($self, /)\n--\n\nThreads asleep or about to sleep in wait() (for tests)."},
    {nullptr, nullptr, 0, nullptr}};

}  // namespace

void register_event(py::module_& m) {
  make_primitive_type(
      m, "Event",
      {"interlock.synchronize.Event",
       "Event(*, ctx=None)\n--\n\n"
       "An event flag shared between processes: see multiprocessing.Event. set() takes no\n"
       "lock, so it is safe in a signal handler.",
       core::Kind::kEvent, sizeof(PrimitiveObject), event_init, event_methods, nullptr});
}

}  // namespace interlock::bindings
