#include "bindings/native.hpp"

#include "bindings/signal_wake.hpp"
#include "core/futex.hpp"
#include "core/thread_identity.hpp"

#include <time.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <utility>

namespace interlock::bindings {

namespace {

// The position of keyword `key` among `names`, or -1. Keyword names at call sites are
// interned, so a pointer comparison with the interned parameter name usually decides.
// The interned str for a parameter name (static storage), made once and kept forever.
// The cache is per thread, so threads running without the GIL never share an entry (the
// interned strings themselves are the same in every thread).
PyObject* interned_name(const char* name) {
  thread_local std::pair<const char*, PyObject*> cache[16];
  for (auto& entry : cache) {
    if (entry.first == name) return entry.second;
    if (entry.first == nullptr) {
      PyObject* str = PyUnicode_InternFromString(name);
      if (str == nullptr) {
        PyErr_Clear();
        return nullptr;
      }
      entry = {name, str};
      return str;
    }
  }
  return nullptr;  // cache full: fall back to comparing characters
}

int keyword_index(PyObject* key, const char* const* names, int nparams) {
  for (int i = 0; i < nparams; ++i)
    if (interned_name(names[i]) == key) return i;
  for (int i = 0; i < nparams; ++i)
    if (PyUnicode_CompareWithASCIIString(key, names[i]) == 0) return i;
  return -1;
}

}  // namespace

bool bind_arguments(const char* fname, const char* const* names, int nparams, int npositional,
                    PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames,
                    PyObject** slots) {
  for (int i = 0; i < nparams; ++i) slots[i] = nullptr;
  if (nargs > npositional) {
    if (npositional == 0)
      PyErr_Format(PyExc_TypeError, "%s() takes no positional arguments", fname);
    else if (npositional == nparams)  // CPython's wording for SemLock.acquire and friends
      PyErr_Format(PyExc_TypeError, "%s() takes at most %d argument%s (%zd given)", fname,
                   nparams, nparams == 1 ? "" : "s", nargs);
    else
      PyErr_Format(PyExc_TypeError, "%s() takes at most %d positional argument%s (%zd given)",
                   fname, npositional, npositional == 1 ? "" : "s", nargs);
    return false;
  }
  for (Py_ssize_t i = 0; i < nargs; ++i) slots[i] = args[i];
  if (kwnames == nullptr) return true;
  Py_ssize_t nkw = PyTuple_GET_SIZE(kwnames);
  for (Py_ssize_t k = 0; k < nkw; ++k) {
    PyObject* key = PyTuple_GET_ITEM(kwnames, k);
    int idx = keyword_index(key, names, nparams);
    if (idx < 0) {
      PyErr_Format(PyExc_TypeError, "%s() got an unexpected keyword argument '%U'", fname, key);
      return false;
    }
    if (slots[idx] != nullptr) {
      PyErr_Format(PyExc_TypeError, "argument for %s() given by name ('%s') and position (%d)",
                   fname, names[idx], idx + 1);
      return false;
    }
    slots[idx] = args[nargs + k];
  }
  return true;
}

namespace {

// `block` is int-like, as CPython's SemLock.acquire requires.
bool parse_block(PyObject* obj, bool* out) {
  if (obj == Py_True || obj == Py_False) {
    *out = obj == Py_True;
    return true;
  }
  PyObject* index = PyNumber_Index(obj);
  if (index == nullptr) return false;
  int overflow = 0;
  long value = PyLong_AsLongAndOverflow(index, &overflow);
  Py_DECREF(index);
  if (value == -1 && PyErr_Occurred()) return false;
  if (overflow != 0 || value > INT32_MAX || value < INT32_MIN) {
    PyErr_SetString(PyExc_OverflowError, "Python int too large to convert to C int");
    return false;
  }
  *out = value != 0;
  return true;
}

}  // namespace

bool parse_timeout(PyObject* obj, WaitArgs* out) {
  if (obj == nullptr || obj == Py_None) {
    out->has_timeout = false;
    return true;
  }
  double t = PyFloat_AsDouble(obj);  // TypeError "must be real number, not X", like CPython
  if (t == -1.0 && PyErr_Occurred()) return false;
  if (std::isnan(t)) {
    PyErr_SetString(PyExc_ValueError, "timeout must be a number, not NaN");
    return false;
  }
  out->has_timeout = true;
  out->timeout = t;
  return true;
}

bool in_main_thread() {
  // The process's initial thread, where Python runs signal handlers, has tid == pid.
  const core::ThreadIdentity& me = core::current_thread();
  return me.tid == me.pid;
}

std::atomic<int64_t> g_delay_before_sleep_ns{0};  // relaxed: a test setting

void delay_before_sleep() {
  if (g_delay_before_sleep_ns.load(std::memory_order_relaxed) == 0) return;
  int64_t ns = g_delay_before_sleep_ns.exchange(0, std::memory_order_relaxed);  // once
  if (ns <= 0) return;
  timespec t{static_cast<time_t>(ns / 1'000'000'000), static_cast<long>(ns % 1'000'000'000)};
  while (nanosleep(&t, &t) != 0 && errno == EINTR) {
  }
}

SignalWatch::SignalWatch()
    : main_thread_(in_main_thread()),
      sliced_(main_thread_ && !core::interrupt_word_supported()) {}

bool SignalWatch::before_sleep(bool run_handlers) {
  if (!main_thread_) return true;
  if (!sliced_) {
    word_ = &signal_wake::epoch();
    // acquire, pairing with the handler's release increment: if this reads a signal's
    // increment, the trip flag that CPython's handler set before it is visible to the
    // PyErr_CheckSignals below (a weakly ordered CPU could show the increment first). Read
    // before the pending handlers run, so any later signal changes the value that
    // futex_waitv compares.
    value_ = word_->load(std::memory_order_acquire);
  }
  if (run_handlers && PyErr_CheckSignals() < 0) return false;
  if (!sliced_) signal_wake::prepare();  // after the handlers, which may install new ones
  return true;
}

core::Deadline SignalWatch::slice(const core::Deadline& deadline) const {
  if (!sliced_) return deadline;
  return core::Deadline::earlier(deadline, core::Deadline::after(kSignalSliceSeconds));
}

bool parse_wait_args_slow(const char* fname, const char* const* names, int nparams,
                          PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames,
                          WaitArgs* out) {
  PyObject* slots[2];
  if (!bind_arguments(fname, names, nparams, nparams, args, nargs, kwnames, slots)) return false;
  PyObject* timeout = slots[nparams - 1];
  if (nparams == 2 && slots[0] != nullptr && !parse_block(slots[0], &out->block)) return false;
  return parse_timeout(timeout, out);
}

bool parse_count_arg(const char* fname, const char* name, PyObject* const* args, Py_ssize_t nargs,
                     PyObject* kwnames, long long default_value, long long* out) {
  *out = default_value;
  if (nargs == 0 && kwnames == nullptr) return true;
  PyObject* slot;
  const char* names[] = {name};
  if (!bind_arguments(fname, names, 1, 1, args, nargs, kwnames, &slot)) return false;
  if (slot == nullptr) return true;
  PyObject* index = PyNumber_Index(slot);
  if (index == nullptr) return false;
  int overflow = 0;
  long long value = PyLong_AsLongLongAndOverflow(index, &overflow);
  Py_DECREF(index);
  if (value == -1 && PyErr_Occurred()) return false;
  if (overflow > 0) value = INT64_MAX;
  if (overflow < 0) value = INT64_MIN;
  *out = value;
  return true;
}

bool refuse_args(const char* fname) {
  PyErr_Format(PyExc_TypeError, "%s() takes no arguments", fname);
  return false;
}

PyObject* raise_released_too_many_times() {
  PyErr_SetString(PyExc_ValueError, "semaphore or lock released too many times");
  return nullptr;
}

}  // namespace interlock::bindings
