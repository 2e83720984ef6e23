// native.hpp: the plumbing of the raw METH_FASTCALL entry points.
//
// pybind11's generic dispatcher costs several times a CPython lock call (BRIEF §4), so the
// primitives' methods are plain PyMethodDef functions on native types (object.hpp). This
// header gives them argument parsing in CPython's style and the blocking loop that releases
// the GIL and runs signal handlers.
#pragma once

#include <pybind11/pybind11.h>

#include <exception>

#include "core/deadline.hpp"
#include "core/futex.hpp"
#include "core/spin.hpp"

namespace interlock::bindings {

namespace py = pybind11;

// acquire(block=True, timeout=None) and wait(timeout=None) arguments.
struct WaitArgs {
  bool block = true;
  bool has_timeout = false;
  double timeout = 0.0;
  // The deadline these arguments describe (meaningless when !block).
  core::Deadline deadline() const {
    return has_timeout ? core::Deadline::after(timeout) : core::Deadline::never();
  }
  // True when the call must not wait at all: block=False, or a timeout <= 0.
  bool try_only() const { return !block || (has_timeout && timeout <= 0); }
};

// Parses up to `max_positional` of (block, timeout) or (timeout) in CPython's style.
// `names` lists the accepted parameter names in order. Returns false with an exception set.
bool parse_wait_args_slow(const char* fname, const char* const* names, int nparams,
                          PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames,
                          WaitArgs* out);
inline bool parse_wait_args(const char* fname, const char* const* names, int nparams,
                            PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames,
                            WaitArgs* out) {
  if (nargs == 0 && kwnames == nullptr) return true;  // the common case: all defaults
  return parse_wait_args_slow(fname, names, nparams, args, nargs, kwnames, out);
}
// Converts a timeout object (None or a real number) like CPython, refusing NaN.
bool parse_timeout(PyObject* obj, WaitArgs* out);
// Parses a single optional integer argument named `name` (notify's n, release's n).
bool parse_count_arg(const char* fname, const char* name, PyObject* const* args, Py_ssize_t nargs,
                     PyObject* kwnames, long long default_value, long long* out);
// Sorts positional and keyword arguments into `slots` (nullptr where absent): the first
// `npositional` of the `nparams` names may be given by position, the rest only by keyword.
// Returns false with TypeError set, in CPython's wording, for anything else.
bool bind_arguments(const char* fname, const char* const* names, int nparams, int npositional,
                    PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames,
                    PyObject** slots);
// Refuses any argument.
bool refuse_args(const char* fname);
inline bool parse_no_args(const char* fname, Py_ssize_t nargs, PyObject* kwnames) {
  if (nargs == 0 && (kwnames == nullptr || PyTuple_GET_SIZE(kwnames) == 0)) return true;
  return refuse_args(fname);
}

// Python runs signal handlers only in the main thread, between bytecodes. A signal that
// arrives after a waiting thread released the GIL but before it is asleep in the kernel
// interrupts no system call, so an untimed sleep would never notice it. The main thread
// therefore sleeps in slices of at most kSignalSliceSeconds and looks for pending signals
// between them (a few wake-ups per second; other threads sleep in one piece).
inline constexpr double kSignalSliceSeconds = 0.1;
bool in_main_thread();

// The deadline for the next sleep of a wait that must end by `deadline`.
inline core::Deadline next_slice(const core::Deadline& deadline, bool main_thread) {
  if (!main_thread) return deadline;
  return core::Deadline::earlier(deadline, core::Deadline::after(kSignalSliceSeconds));
}

// Runs `op(slice)` (which returns core::Status and must not touch Python) with the GIL
// released. When it is interrupted by a signal, or a main-thread slice ends before `deadline`,
// it takes the GIL back, runs the signal handlers and, unless one raised, calls `op` again;
// `deadline` stays fixed, so only the remaining time is waited. Returns the final status;
// `*raised` is set when a signal handler raised. A C++ exception thrown by `op` is rethrown
// once the GIL is held again (never while it is released).
template <class Op>
core::Status run_blocking(const core::Deadline& deadline, Op&& op, bool* raised) {
  *raised = false;
  const bool main_thread = in_main_thread();
  core::Spin spin = core::Spin::kYes;  // only the first slice spins (spin.hpp)
  while (true) {
    const core::Deadline slice = next_slice(deadline, main_thread);
    core::Status s = core::Status::kOk;
    std::exception_ptr failure;
    Py_BEGIN_ALLOW_THREADS
    try {
      s = op(slice, spin);
    } catch (...) {
      failure = std::current_exception();
    }
    Py_END_ALLOW_THREADS
    if (failure) std::rethrow_exception(failure);
    if (s == core::Status::kTimedOut && !deadline.passed()) s = core::Status::kInterrupted;
    if (s != core::Status::kInterrupted) return s;
    if (PyErr_CheckSignals() < 0) {
      *raised = true;
      return s;
    }
    spin = core::Spin::kNo;
  }
}

// Like run_blocking with no deadline, but never gives up: a pending exception from a signal
// handler is kept aside and restored once `op` succeeds (used to re-take a lock that must be
// held on exit). Returns kOk, or kOwnerDied when a robust lock was taken from a dead holder.
template <class Op>
core::Status run_blocking_uninterruptible(Op&& op) {
  PyObject *type = nullptr, *value = nullptr, *tb = nullptr;
  const bool main_thread = in_main_thread();
  core::Spin spin = core::Spin::kYes;  // only the first slice spins (spin.hpp)
  while (true) {
    const core::Deadline slice = next_slice(core::Deadline::never(), main_thread);
    core::Status s;
    Py_BEGIN_ALLOW_THREADS
    s = op(slice, spin);
    Py_END_ALLOW_THREADS
    if (s == core::Status::kOk || s == core::Status::kOwnerDied) {
      if (type != nullptr) PyErr_Restore(type, value, tb);
      return s;
    }
    if (type == nullptr && PyErr_CheckSignals() < 0) PyErr_Fetch(&type, &value, &tb);
    spin = core::Spin::kNo;
  }
}

// A METH_FASTCALL | METH_KEYWORDS function, as PyMethodDef stores it.
using FastMethod = PyObject* (*)(PyObject*, PyObject* const*, Py_ssize_t, PyObject*);
inline PyCFunction as_cfunction(FastMethod f) {
  return reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(f));
}
inline constexpr int kFastFlags = METH_FASTCALL | METH_KEYWORDS;

// The exception CPython raises for a release past the value or bound.
PyObject* raise_released_too_many_times();

}  // namespace interlock::bindings
