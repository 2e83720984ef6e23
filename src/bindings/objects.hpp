// objects.hpp: the C++ objects behind the _core classes.
//
// Each holds a SlotHandle (its reference to the shared slot) and the per-process extras that
// the Python-level API needs. pybind11 owns them through a unique_ptr, so their address is
// stable for the life of the Python object.
#pragma once

#include <pybind11/pybind11.h>

#include "core/handle.hpp"

namespace interlock::bindings {

namespace py = pybind11;

struct Primitive {
  Primitive(core::Kind kind, bool fork_ctx) : handle(kind), fork_ctx(fork_ctx) {}
  Primitive(core::Arena* arena, uint32_t index, core::Kind kind, uint32_t generation)
      : handle(arena, index, kind, generation), fork_ctx(false) {}
  core::SlotHandle handle;
  bool fork_ctx;  // created for a fork context: may not be pickled for spawn children
};

struct LockObject : Primitive {
  static constexpr bool kRecursive = false;
  static constexpr core::Kind kKind = core::Kind::kLock;
  using Primitive::Primitive;
  core::MutexState& state() { return handle.slot()->body.mutex; }
};

struct RLockObject : Primitive {
  static constexpr bool kRecursive = true;
  static constexpr core::Kind kKind = core::Kind::kRLock;
  using Primitive::Primitive;
  core::MutexState& state() { return handle.slot()->body.mutex; }
};

struct SemaphoreObject : Primitive {
  using Primitive::Primitive;
  core::SemaphoreState& state() { return handle.slot()->body.semaphore; }
};

struct EventObject : Primitive {
  using Primitive::Primitive;
  core::EventState& state() { return handle.slot()->body.event; }
};

struct ConditionObject : Primitive {
  using Primitive::Primitive;
  core::ConditionState& state() { return handle.slot()->body.condition; }
  core::MutexState& lock_state() { return lock_native->handle.slot()->body.mutex; }
  py::object lock;                  // the Lock or RLock (keeps it alive)
  Primitive* lock_native = nullptr;  // its C++ object
  bool lock_recursive = false;      // RLock (true) or Lock (false)
};

struct BarrierObject : Primitive {
  using Primitive::Primitive;
  core::BarrierState& state() { return handle.slot()->body.barrier; }
  py::object action;   // None or a callable run by the party that completes a round
  py::object timeout;  // None or the default timeout, in seconds
};

}  // namespace interlock::bindings
