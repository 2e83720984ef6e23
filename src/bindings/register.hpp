// register.hpp: one function per group of _core classes; module.cpp calls them in order.
#pragma once

#include <pybind11/pybind11.h>

namespace interlock::bindings {

namespace py = pybind11;

void register_runtime(py::module_& m);  // errors, fork hooks, constants
void register_primitive_runtime(py::module_& m);  // _import, the context resolver
void register_mutexes(py::module_& m);  // Lock, RLock
void register_semaphore(py::module_& m);
void register_event(py::module_& m);
void register_condition(py::module_& m);
void register_barrier(py::module_& m);
void register_rwlock(py::module_& m);
void register_file_lock(py::module_& m);
void register_floor(py::module_& m);  // _NoOp, the benchmark's floor
void register_async(py::module_& m);  // Waker, the _async_* steps (after the types)

// The Lock and RLock types (Condition checks its lock against them).
extern PyTypeObject* g_lock_type;
extern PyTypeObject* g_rlock_type;

}  // namespace interlock::bindings
