// native.hpp: the plumbing of the raw METH_FASTCALL entry points.
//
// pybind11's generic dispatcher costs several times a CPython lock call (about 5x, measured),
// so the primitives' methods are plain PyMethodDef functions on native types (object.hpp). This
// header gives them argument parsing in CPython's style and the blocking loop that releases
// the GIL and runs signal handlers.
#pragma once

#include <pybind11/pybind11.h>

#include <exception>

#include "core/deadline.hpp"
#include "core/futex.hpp"
#include "core/spin.hpp"

#include <atomic>
#include <utility>

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

// How a waiting thread notices signals. Python runs signal handlers only in the main thread,
// so other threads simply sleep until their deadline (a signal that interrupts them just
// makes them sleep again). The main thread reads the signal epoch and runs pending handlers
// before each sleep, then sleeps with the epoch as its interrupt word, so that no signal can
// slip in unnoticed before the sleep (signal_wake.hpp). Where the kernel lacks futex_waitv,
// the main thread sleeps in slices of at most kSignalSliceSeconds instead.
inline constexpr double kSignalSliceSeconds = 0.1;
bool in_main_thread();

class SignalWatch {
 public:
  SignalWatch();  // with the GIL held
  // With the GIL held, before each sleep. False when a signal handler raised (the exception
  // is set); with `run_handlers` false, pending handlers are left for later.
  bool before_sleep(bool run_handlers = true);
  // The deadline of the next sleep of a wait that must end by `deadline`.
  core::Deadline slice(const core::Deadline& deadline) const;
  // The interrupt word of the next sleep (nullptr: none) and the value it must keep.
  const std::atomic<uint32_t>* word() const { return word_; }
  uint32_t value() const { return value_; }

 private:
  bool main_thread_;
  bool sliced_ = false;
  const std::atomic<uint32_t>* word_ = nullptr;
  uint32_t value_ = 0;
};

// For tests only: the next sleep of any wait first pauses this long, after the wait last
// looked for pending signals and released the GIL, i.e. in the window signal_wake.hpp closes.
extern std::atomic<int64_t> g_delay_before_sleep_ns;
void delay_before_sleep();

// Runs `op(slice, spin)` (which returns Result and must not touch Python) with the GIL
// released, as often as needed: when it reports `interrupted` (a signal, or a main-thread
// slice that ended before `deadline`), it takes the GIL back, runs the signal handlers and,
// unless one raised (then `*raised` is set), calls `op` again. `deadline` stays fixed, so
// only the remaining time is waited. Only the first call spins. A C++ exception thrown by
// `op` is rethrown once the GIL is held again (never while it is released).
template <class Result, class Op>
Result run_sleeps(const core::Deadline& deadline, Op&& op, bool* raised, Result interrupted,
                  Result timed_out) {
  *raised = false;
  SignalWatch watch;
  core::Spin spin = core::Spin::kYes;  // only the first call spins (spin.hpp)
  while (true) {
    if (!watch.before_sleep()) {
      *raised = true;
      return interrupted;
    }
    const core::Deadline slice = watch.slice(deadline);
    Result r = timed_out;
    std::exception_ptr failure;
    Py_BEGIN_ALLOW_THREADS
    try {
      delay_before_sleep();
      core::ScopedInterruptWord interrupt(watch.word(), watch.value());
      r = op(slice, spin);
    } catch (...) {
      failure = std::current_exception();
    }
    Py_END_ALLOW_THREADS
    if (failure) std::rethrow_exception(failure);
    if (r == timed_out && !deadline.passed()) r = interrupted;  // only a slice ended
    if (r != interrupted) return r;
    spin = core::Spin::kNo;
  }
}

template <class Op>
core::Status run_blocking(const core::Deadline& deadline, Op&& op, bool* raised) {
  return run_sleeps(deadline, std::forward<Op>(op), raised, core::Status::kInterrupted,
                    core::Status::kTimedOut);
}

// Like run_blocking with no deadline, but never gives up: a pending exception from a signal
// handler is kept aside and restored once `op` succeeds (used to re-take a lock that must be
// held on exit). Returns kOk, or kOwnerDied when a robust lock was taken from a dead holder.
template <class Op>
core::Status run_blocking_uninterruptible(Op&& op) {
  PyObject *type = nullptr, *value = nullptr, *tb = nullptr;
  SignalWatch watch;
  core::Spin spin = core::Spin::kYes;  // only the first call spins (spin.hpp)
  while (true) {
    if (!watch.before_sleep(type == nullptr)) PyErr_Fetch(&type, &value, &tb);
    const core::Deadline slice = watch.slice(core::Deadline::never());
    core::Status s;
    Py_BEGIN_ALLOW_THREADS
    {
      delay_before_sleep();
      core::ScopedInterruptWord interrupt(watch.word(), watch.value());
      s = op(slice, spin);
    }
    Py_END_ALLOW_THREADS
    if (s == core::Status::kOk || s == core::Status::kOwnerDied) {
      if (type != nullptr) PyErr_Restore(type, value, tb);
      return s;
    }
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
