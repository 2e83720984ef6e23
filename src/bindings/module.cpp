// module.cpp: interlock._core, the compiled half of interlock.
#include <pybind11/pybind11.h>

#include "bindings/register.hpp"

PYBIND11_MODULE(_core, m) {
  m.doc() = "interlock's native core: primitives in shared memory (use the interlock package).";
  interlock::bindings::register_runtime(m);
  interlock::bindings::register_primitive_runtime(m);
  interlock::bindings::register_mutexes(m);
  interlock::bindings::register_semaphore(m);
  interlock::bindings::register_event(m);
  interlock::bindings::register_condition(m);
  interlock::bindings::register_barrier(m);
  interlock::bindings::register_file_lock(m);
  interlock::bindings::register_floor(m);
}
