// module.cpp: interlock._core, the compiled half of interlock.
#include <pybind11/pybind11.h>

#include "bindings/register.hpp"

// mod_gil_not_used: the module, and the native types it creates, are safe to run without
// the GIL (docs/design.md, "Free-threading"), so a free-threaded interpreter keeps it off.
PYBIND11_MODULE(_core, m, pybind11::mod_gil_not_used()) {
  m.doc() = "interlock's native core: primitives in shared memory (use the interlock package).";
  interlock::bindings::register_runtime(m);
  interlock::bindings::register_primitive_runtime(m);
  interlock::bindings::register_mutexes(m);
  interlock::bindings::register_semaphore(m);
  interlock::bindings::register_event(m);
  interlock::bindings::register_condition(m);
  interlock::bindings::register_barrier(m);
  interlock::bindings::register_rwlock(m);
  interlock::bindings::register_file_lock(m);
  interlock::bindings::register_floor(m);
  interlock::bindings::register_async(m);
}
