// register_runtime.cpp: exceptions, process-lifetime hooks and layout constants.
#include <pybind11/pybind11.h>

#include "bindings/primitive_class.hpp"
#include "bindings/register.hpp"
#include "core/arena.hpp"
#include "core/errors.hpp"
#include "core/handle.hpp"

namespace interlock::bindings {

void register_runtime(py::module_& m) {
  py::register_exception<core::SegmentError>(m, "SegmentError", PyExc_ValueError);
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
  core::SlotHandle::install_fork_handlers();  // fork children own their inherited references
  m.def("_expect_python_fork", &core::SlotHandle::expect_python_fork,
        "os.register_at_fork 'before' hook: the coming fork keeps running Python.");
  m.def("_cancel_python_fork", &core::SlotHandle::cancel_python_fork,
        "os.register_at_fork 'after' hook: no fork is pending in this thread any more.");
  m.def("_attach_arena", &attach_arena, py::arg("fd"), py::arg("token"),
        "Map the arena behind fd (received from a parent) unless it is mapped already.");
  m.def("_release_all", &core::SlotHandle::release_all,
        "Process exit: drop the reference of every live primitive.");
  m.def("_live_handles", &core::SlotHandle::live_count, "Primitives alive in this process.");
  m.def(
      "_arena_count", [] { return core::ArenaSet::instance().arena_count(); },
      "Arenas mapped by this process.");
  m.attr("SLOT_SIZE") = sizeof(core::Slot);
  m.attr("ARENA_SLOTS") = core::kArenaSlots;
  m.attr("LAYOUT_VERSION") = core::kLayoutVersion;
}

}  // namespace interlock::bindings
