// register_runtime.cpp: exceptions, process-lifetime hooks and layout constants.
#include <pybind11/pybind11.h>

#include <unistd.h>

#include "bindings/native.hpp"
#include "bindings/primitive_type.hpp"
#include "bindings/register.hpp"
#include "core/arena.hpp"
#include "core/death_watch.hpp"
#include "core/errors.hpp"
#include "core/lifecycle.hpp"
#include "core/references.hpp"

namespace interlock::bindings {

void register_runtime(py::module_& m) {
  auto segment_error = py::register_exception<core::SegmentError>(m, "SegmentError",
                                                                   PyExc_ValueError);
  g_segment_error = segment_error.ptr();  // kept alive by the module
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const core::OsError& e) {
      // OSError(errno, text) picks the matching subclass (FileNotFoundError, ...).
      PyObject* exc = PyObject_CallFunction(PyExc_OSError, "is", e.error_number(), e.what());
      if (exc != nullptr) {
        PyErr_SetObject(reinterpret_cast<PyObject*>(Py_TYPE(exc)), exc);
        Py_DECREF(exc);
      }
    }
  });
  core::lifecycle::install();  // fork children own their inherited references
  m.def(
      "_before_python_fork",
      [] {
        core::lifecycle::announce_python_fork();
        core::death_watch::quiesce();  // an idle watcher thread must not make us multi-threaded
      },
      "The 'before' step of interlock._lifecycle's core stage: this thread's coming fork keeps "
      "running Python.");
  m.def("_after_python_fork", &core::lifecycle::withdraw_python_fork,
        "The 'after' step of the core stage: no fork is pending in this thread any more.");
  m.def(
      "_attach_arena",
      [](int fd, uint64_t token) {
        try {
          core::ArenaSet::instance().attach(fd, token);
        } catch (...) {
          close(fd);
          throw;
        }
      },
      py::arg("fd"), py::arg("token"),
      "Map the arena behind fd (received from a parent) unless it is mapped already.");
  m.def("_release_all", &core::references::release_all,
        "Process exit: drop the reference of every live primitive.");
  m.def("_live_handles", &core::references::live_count,
        "References to primitives this process holds.");
  m.def(
      "_test_delay_before_sleep",
      [](double seconds) {
        g_delay_before_sleep_ns.store(static_cast<int64_t>(seconds * 1e9),
                                      std::memory_order_relaxed);
      },
      py::arg("seconds"),
      "Tests only: pause the next sleep between its last look for signals and the sleep.");
  m.def("_death_watches", &core::death_watch::watched_count,
        "Robust-lock waiters of this process that watch a holder's process now.");
  m.def(
      "_arena_count", [] { return core::ArenaSet::instance().arena_count(); },
      "Arenas mapped by this process.");
  m.attr("SLOT_SIZE") = sizeof(core::Slot);
  m.attr("ARENA_SLOTS") = core::kArenaSlots;
  m.attr("LAYOUT_VERSION") = core::kLayoutVersion;
}

}  // namespace interlock::bindings
