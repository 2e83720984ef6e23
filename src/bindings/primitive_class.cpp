#include "bindings/primitive_class.hpp"

#include <unistd.h>

namespace interlock::bindings {

py::tuple export_core_state(Primitive& p) {
  const core::SlotHandle& h = p.handle;
  py::tuple state = py::make_tuple(h.arena()->fd(), h.arena()->token(), h.index(), h.generation());
  p.handle.add_transfer_reference();
  return state;
}

SlotAddress import_core_state(const py::tuple& state, size_t expected_size) {
  if (state.size() != expected_size)
    throw py::value_error("malformed interlock state: expected " + std::to_string(expected_size) +
                          " items, got " + std::to_string(state.size()));
  int fd = state[0].cast<int>();
  auto token = state[1].cast<uint64_t>();
  auto index = state[2].cast<uint32_t>();
  auto generation = state[3].cast<uint32_t>();
  core::Arena* arena;
  try {
    arena = core::ArenaSet::instance().attach(fd, token);
  } catch (...) {
    close(fd);
    throw;
  }
  return SlotAddress{arena, index, generation};
}

}  // namespace interlock::bindings
