// register_barrier.cpp: interlock.synchronize.Barrier.
#include <Python.h>

#include "bindings/native.hpp"
#include "bindings/object.hpp"
#include "bindings/primitive_type.hpp"
#include "bindings/register.hpp"
#include "core/barrier.hpp"
#include "core/semaphore.hpp"

#include <utility>

namespace interlock::bindings {

namespace {

using core::barrier::Outcome;
namespace barrier = core::barrier;

const char* const kWaitNames[] = {"timeout"};

BarrierObject* as_barrier(PyObject* self) { return reinterpret_cast<BarrierObject*>(self); }

// threading.BrokenBarrierError, looked up at import (register_barrier) and kept for the life
// of the process: immutable after import, so threads without the GIL read it freely.
PyObject* g_broken_barrier_error = nullptr;

PyObject* raise_broken() {
  PyErr_SetNone(g_broken_barrier_error);
  return nullptr;
}

// Runs a barrier step without the GIL (native.hpp, run_sleeps). Returns kInterrupted only
// when a signal handler raised (the exception is set), and kTimedOut only once `deadline`
// itself has passed.
template <class Step>
Outcome run_step(const core::Deadline& deadline, Step&& step) {
  bool raised;
  Outcome o = run_sleeps(deadline, std::forward<Step>(step), &raised, Outcome::kInterrupted,
                         Outcome::kTimedOut);
  return raised ? Outcome::kInterrupted : o;
}

// Breaks the barrier while keeping the current exception.
void abort_keeping_error(core::BarrierState& b) {
#if PY_VERSION_HEX >= 0x030C0000  // PyErr_Fetch/Restore are deprecated from 3.12 on
  PyObject* raised = PyErr_GetRaisedException();
  Py_BEGIN_ALLOW_THREADS
  barrier::abort(b);
  Py_END_ALLOW_THREADS
  PyErr_SetRaisedException(raised);
#else
  PyObject *type, *value, *tb;
  PyErr_Fetch(&type, &value, &tb);
  Py_BEGIN_ALLOW_THREADS
  barrier::abort(b);
  Py_END_ALLOW_THREADS
  PyErr_Restore(type, value, tb);
#endif
}

PyObject* b_wait(PyObject* self, PyObject* const* args, Py_ssize_t nargs, PyObject* kw) {
  core::Slot* slot = checked_slot(self);
  if (slot == nullptr) return nullptr;
  BarrierObject* obj = as_barrier(self);
  WaitArgs a;
  if (!parse_wait_args("wait", kWaitNames, 1, args, nargs, kw, &a)) return nullptr;
  if (!a.has_timeout && !parse_timeout(obj->timeout, &a)) return nullptr;
  core::BarrierState& b = slot->body.barrier;
  core::Deadline deadline = a.deadline();
  barrier::Ticket ticket{0, 0};

  Outcome o = run_step(deadline, [&](const core::Deadline& slice, core::Spin) {
    return barrier::arrive(b, slice, &ticket);
  });
  if (o == Outcome::kInterrupted) return nullptr;
  if (o == Outcome::kTimedOut) {
    // Could not even join (a full round's action ran past our timeout): break, as on timeout.
    Py_BEGIN_ALLOW_THREADS
    barrier::abort(b);
    Py_END_ALLOW_THREADS
    return raise_broken();
  }
  if (o == Outcome::kLast) {
    bool ok = true;
    if (obj->action != nullptr && obj->action != Py_None) {
      PyObject* action = obj->action;
      Py_INCREF(action);  // the action may replace itself (re-running __init__)
      PyObject* r = PyObject_CallNoArgs(action);
      Py_DECREF(action);
      ok = r != nullptr;
      Py_XDECREF(r);
    }
    Outcome done;
    Py_BEGIN_ALLOW_THREADS
    done = barrier::finish_round(b, ticket, ok);
    Py_END_ALLOW_THREADS
    if (!ok) return nullptr;  // the action's exception; the barrier is broken
    if (done != Outcome::kReleased) return raise_broken();
    return PyLong_FromUnsignedLong(ticket.index);
  }
  if (o == Outcome::kWait) {
    o = run_step(deadline, [&](const core::Deadline& slice, core::Spin spin) {
      return barrier::await(b, ticket, slice, spin);
    });
    if (o == Outcome::kInterrupted) {
      // Leaving on an exception breaks the round, so nobody waits for this party.
      abort_keeping_error(b);
      return nullptr;
    }
    if (o == Outcome::kTimedOut) {
      Py_BEGIN_ALLOW_THREADS
      o = barrier::time_out(b, ticket);
      Py_END_ALLOW_THREADS
    }
    if (o == Outcome::kReleased) return PyLong_FromUnsignedLong(ticket.index);
  }
  return raise_broken();
}

core::BarrierState* barrier_state(PyObject* self) {
  core::Slot* slot = checked_slot(self);
  return slot == nullptr ? nullptr : &slot->body.barrier;
}

// abort() and reset() take the inner lock only for a few instructions: no need to drop the GIL
// for long, but do drop it, since the inner lock may be held by a process that was preempted.
template <void (*kStep)(core::BarrierState&)>
PyObject* b_step(PyObject* self, PyObject*) {
  core::BarrierState* b = barrier_state(self);
  if (b == nullptr) return nullptr;
  Py_BEGIN_ALLOW_THREADS
  kStep(*b);
  Py_END_ALLOW_THREADS
  Py_RETURN_NONE;
}

PyObject* get_parties(PyObject* self, void*) {
  core::BarrierState* b = barrier_state(self);
  return b == nullptr ? nullptr : PyLong_FromUnsignedLong(b->parties);
}

// The inner lock is held only for a few instructions, so these read it with the GIL held.
PyObject* get_n_waiting(PyObject* self, void*) {
  core::BarrierState* b = barrier_state(self);
  return b == nullptr ? nullptr : PyLong_FromUnsignedLong(barrier::n_waiting(*b));
}

PyObject* get_broken(PyObject* self, void*) {
  core::BarrierState* b = barrier_state(self);
  return b == nullptr ? nullptr : PyBool_FromLong(barrier::is_broken(*b));
}

PyObject* get_field(PyObject* self, PyObject* BarrierObject::*field) {
  if (slot_of(self) == nullptr) return not_initialized(self);
  PyObject* value = as_barrier(self)->*field;
  if (value == nullptr) value = Py_None;
  Py_INCREF(value);
  return value;
}
PyObject* get_action(PyObject* self, void*) { return get_field(self, &BarrierObject::action); }
PyObject* get_timeout(PyObject* self, void*) { return get_field(self, &BarrierObject::timeout); }

// Sets action and default timeout (new references); validates them as threading.Barrier's
// users would expect.
int set_fields(PyObject* self, PyObject* action, PyObject* timeout) {
  if (action != Py_None && !PyCallable_Check(action)) {
    PyErr_Format(PyExc_TypeError, "action must be callable or None, not %s",
                 Py_TYPE(action)->tp_name);
    return -1;
  }
  PyObject* seconds = Py_None;
  if (timeout != Py_None) {
    WaitArgs a;
    if (!parse_timeout(timeout, &a)) return -1;
    seconds = PyFloat_FromDouble(a.timeout);
    if (seconds == nullptr) return -1;
  } else {
    Py_INCREF(seconds);
  }
  Py_INCREF(action);
  Py_XSETREF(as_barrier(self)->action, action);
  Py_XSETREF(as_barrier(self)->timeout, seconds);
  return 0;
}

// __init__(parties, action=None, timeout=None, *, ctx=None)
int barrier_init(PyObject* self, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames) {
  static const char* const names[] = {"parties", "action", "timeout", "ctx"};
  PyObject* slots[4];
  if (!bind_arguments("Barrier", names, 4, 3, args, nargs, kwnames, slots)) return -1;
  if (slots[0] == nullptr) {
    PyErr_SetString(PyExc_TypeError, "Barrier() missing required argument 'parties' (pos 1)");
    return -1;
  }
  PyObject* index = PyNumber_Index(slots[0]);
  if (index == nullptr) return -1;
  int overflow = 0;
  long long parties = PyLong_AsLongLongAndOverflow(index, &overflow);
  Py_DECREF(index);
  if (parties == -1 && PyErr_Occurred()) return -1;
  if (overflow < 0 || (overflow == 0 && parties < 1)) {
    PyErr_SetString(PyExc_ValueError, "parties must be > 0");
    return -1;
  }
  if (overflow > 0 || parties > core::semaphore::kValueMax) {
    PyErr_Format(PyExc_OverflowError, "parties must be <= %u", core::semaphore::kValueMax);
    return -1;
  }
  if (set_fields(self, slots[1] ? slots[1] : Py_None, slots[2] ? slots[2] : Py_None) < 0)
    return -1;
  int fork_ctx = is_fork_context(slots[3]);
  if (fork_ctx < 0) return -1;
  core::Slot* slot = new_slot(core::Kind::kBarrier);
  if (slot == nullptr) return -1;
  barrier::init(slot->body.barrier, static_cast<uint32_t>(parties));
  publish_slot(self, slot, fork_ctx ? kFlagForkContext : 0);
  return 0;
}

int barrier_traverse(PyObject* self, visitproc visit, void* arg) {
  Py_VISIT(as_barrier(self)->action);
  Py_VISIT(as_barrier(self)->timeout);
  Py_VISIT(Py_TYPE(self));  // heap type instances reference their type
  return 0;
}

int barrier_clear(PyObject* self) {
  Py_CLEAR(as_barrier(self)->action);
  Py_CLEAR(as_barrier(self)->timeout);
  return 0;
}

int barrier_export(PyObject* self, PyObject* items) {
  PyObject* action = as_barrier(self)->action;
  PyObject* timeout = as_barrier(self)->timeout;
  if (PyList_Append(items, action ? action : Py_None) < 0) return -1;
  return PyList_Append(items, timeout ? timeout : Py_None);
}

int barrier_import(PyObject* self, PyObject* const* extras, Py_ssize_t, uintptr_t*) {
  return set_fields(self, extras[0], extras[1]);
}

PyMethodDef barrier_methods[] = {
    {"wait", as_cfunction(b_wait), kFastFlags,
     "wait($self, /, timeout=None)\n--\n\nWait for all parties; returns this party's index."},
    {"abort", b_step<barrier::abort>, METH_NOARGS,
     "abort($self, /)\n--\n\nBreak the barrier: current and future waiters get "
     "BrokenBarrierError until reset()."},
    {"reset", b_step<barrier::reset>, METH_NOARGS,
     "reset($self, /)\n--\n\nReturn to the empty state; parties waiting now get "
     "BrokenBarrierError."},
    {nullptr, nullptr, 0, nullptr}};

PyGetSetDef barrier_getsets[] = {
    {"parties", get_parties, nullptr, "The number of parties a round needs.", nullptr},
    {"n_waiting", get_n_waiting, nullptr, "Parties waiting in the current round.", nullptr},
    {"broken", get_broken, nullptr, "True if the barrier is broken.", nullptr},
    {"_action", get_action, nullptr, "The action, or None.", nullptr},
    {"_timeout", get_timeout, nullptr, "The default timeout, or None.", nullptr},
    {nullptr, nullptr, nullptr, nullptr, nullptr}};

}  // namespace

void register_barrier(py::module_& m) {
  py::object broken = py::module_::import("threading").attr("BrokenBarrierError");
  g_broken_barrier_error = broken.release().ptr();
  PrimitiveTypeSpec spec{
      "interlock.synchronize.Barrier",
      "Barrier(parties, action=None, timeout=None, *, ctx=None)\n--\n\n"
      "A reusable barrier shared between processes: see multiprocessing.Barrier.\n\n"
      "wait(timeout=None) returns a distinct index in range(parties); action runs in one\n"
      "party per round before any is released; timeouts, abort() and reset() raise\n"
      "threading.BrokenBarrierError in the waiting parties.",
      core::Kind::kBarrier, sizeof(BarrierObject), barrier_init, barrier_methods,
      barrier_getsets, barrier_traverse, barrier_clear, barrier_export, barrier_import, 2};
  make_primitive_type(m, "Barrier", spec);
}

}  // namespace interlock::bindings
