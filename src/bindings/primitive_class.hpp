// primitive_class.hpp: what every _core class shares: pickling state and cold accessors.
//
// The exported state of a primitive starts with (fd, token, index, generation): the arena's
// descriptor, its identity, the slot and its generation. Exporting adds a reference to the
// slot for the receiving process to adopt (arena.hpp, "Slot lifetime"). The Python layer
// (interlock/_sharing.py) turns (fd, token) into one picklable arena object per arena, so an
// arena travels once per child however many of its primitives do, and maps it in the child
// (attach_arena) before the primitive's state, now starting (token, index, generation), is
// imported.
#pragma once

#include <pybind11/pybind11.h>

#include <memory>
#include <utility>

#include "bindings/objects.hpp"
#include "core/arena.hpp"

namespace interlock::bindings {

inline constexpr size_t kExportPrefix = 4;  // fd, token, index, generation
inline constexpr size_t kImportPrefix = 3;  // token, index, generation

// (fd, token, index, generation) of `p`, after adding a transfer reference.
py::tuple export_core_state(Primitive& p);

// The arena and slot named by the first kImportPrefix items of `state`; the arena must have
// been attached already. Throws SegmentError (or TypeError/ValueError for a malformed state).
struct SlotAddress {
  core::Arena* arena;
  uint32_t index;
  uint32_t generation;
};
SlotAddress import_core_state(const py::tuple& state, size_t expected_size);

// Maps the arena behind `fd` in this process (closing `fd` when it is not needed).
void attach_arena(int fd, uint64_t token);

// Defines a _core class for T with the members every primitive has, and pickling whose
// extra state (after the core state) `Extra` describes:
//   static py::tuple Extra::save(T&);                       // items appended to the state
//   static std::unique_ptr<T> Extra::load(SlotAddress, const py::tuple& state);
template <class T, class Extra>
py::class_<T> define_primitive(py::module_& m, const char* name, const char* doc) {
  py::class_<T> cls(m, name, doc);
  cls.def_property_readonly(
      "_is_fork_ctx", [](const T& self) { return self.fork_ctx; },
      "True when created for a fork context (then it may not be pickled for a spawned child).");
  cls.def(
      "_slot_info",
      [](const T& self) {
        return py::make_tuple(self.handle.arena()->token(), self.handle.index(),
                              self.handle.generation(),
                              self.handle.slot()->header.refs.load(std::memory_order_relaxed));
      },
      "(arena token, slot index, generation, reference count): for tests and debugging.");
  cls.def(py::pickle(
      [](T& self) {
        py::tuple core_state = export_core_state(self);
        return py::reinterpret_steal<py::tuple>(
            PySequence_Concat(core_state.ptr(), Extra::save(self).ptr()));
      },
      [](const py::tuple& state) {
        SlotAddress address = import_core_state(state, kImportPrefix + Extra::kSize);
        return Extra::load(address, state);
      }));
  return cls;
}

// Extra state for primitives that have none.
template <class T, core::Kind K>
struct NoExtraState {
  static constexpr size_t kSize = 0;
  static py::tuple save(T&) { return py::tuple(); }
  static std::unique_ptr<T> load(SlotAddress a, const py::tuple&) {
    return std::make_unique<T>(a.arena, a.index, K, a.generation);
  }
};

}  // namespace interlock::bindings
