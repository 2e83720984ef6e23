#include "bindings/primitive_class.hpp"

#include <unistd.h>

#include "core/errors.hpp"

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
  auto token = state[0].cast<uint64_t>();
  auto index = state[1].cast<uint32_t>();
  auto generation = state[2].cast<uint32_t>();
  core::Arena* arena = core::ArenaSet::instance().find(token);
  if (arena == nullptr)
    throw core::SegmentError("the arena of this primitive is not mapped in this process");
  return SlotAddress{arena, index, generation};
}

void attach_arena(int fd, uint64_t token) {
  try {
    core::ArenaSet::instance().attach(fd, token);
  } catch (...) {
    close(fd);
    throw;
  }
}

}  // namespace interlock::bindings
