// register_barrier.cpp: _core.Barrier.
#include <pybind11/pybind11.h>

#include "bindings/native.hpp"
#include "bindings/objects.hpp"
#include "bindings/primitive_class.hpp"
#include "bindings/register.hpp"
#include "core/barrier.hpp"

namespace interlock::bindings {

namespace {

using core::barrier::Outcome;
namespace barrier = core::barrier;

const char* const kWaitNames[] = {"timeout"};

PyObject* broken_barrier_error() {
  static PyObject* cls = [] {
    py::object c = py::module_::import("threading").attr("BrokenBarrierError");
    return c.release().ptr();  // kept for the life of the process
  }();
  return cls;
}

PyObject* raise_broken() {
  PyErr_SetNone(broken_barrier_error());
  return nullptr;
}

// Runs a barrier step `step(slice)` without the GIL, in main-thread slices (native.hpp),
// running signal handlers between them. Returns kInterrupted only when a handler raised (the
// exception is set), and kTimedOut only once `deadline` itself has passed.
template <class Step>
Outcome run_step(const core::Deadline& deadline, Step&& step) {
  const bool main_thread = in_main_thread();
  core::Spin spin = core::Spin::kYes;  // only the first slice spins (spin.hpp)
  while (true) {
    const core::Deadline slice = next_slice(deadline, main_thread);
    Outcome o;
    Py_BEGIN_ALLOW_THREADS
    o = step(slice, spin);
    Py_END_ALLOW_THREADS
    if (o == Outcome::kTimedOut && !deadline.passed()) o = Outcome::kInterrupted;
    if (o != Outcome::kInterrupted) return o;
    if (PyErr_CheckSignals() < 0) return o;
    spin = core::Spin::kNo;
  }
}

// Breaks the barrier while keeping the current exception.
void abort_keeping_error(core::BarrierState& b) {
  PyObject *type, *value, *tb;
  PyErr_Fetch(&type, &value, &tb);
  Py_BEGIN_ALLOW_THREADS
  barrier::abort(b);
  Py_END_ALLOW_THREADS
  PyErr_Restore(type, value, tb);
}

PyObject* b_wait(PyObject* self, PyObject* const* args, Py_ssize_t nargs, PyObject* kw) {
  auto* obj = native<BarrierObject>(self);
  if (obj == nullptr) return nullptr;
  WaitArgs a;
  if (!parse_wait_args("wait", kWaitNames, 1, args, nargs, kw, &a)) return nullptr;
  if (!a.has_timeout && !parse_timeout(obj->timeout.ptr(), &a)) return nullptr;
  core::BarrierState& b = obj->state();
  core::Deadline deadline = a.deadline();
  barrier::Ticket ticket{0, 0};

  Outcome o = run_step(deadline, [&](const core::Deadline& slice, core::Spin) {
    return barrier::arrive(b, slice, &ticket);
  });
  if (o == Outcome::kInterrupted) return nullptr;
  if (o == Outcome::kTimedOut) {
    // Could not even join (a full round's action ran past our timeout): break, as on timeout.
    Py_BEGIN_ALLOW_THREADS
    barrier::abort(b);
    Py_END_ALLOW_THREADS
    return raise_broken();
  }
  if (o == Outcome::kLast) {
    bool ok = true;
    if (!obj->action.is_none()) {
      PyObject* r = PyObject_CallObject(obj->action.ptr(), nullptr);
      ok = r != nullptr;
      Py_XDECREF(r);
    }
    Outcome done;
    Py_BEGIN_ALLOW_THREADS
    done = barrier::finish_round(b, ticket, ok);
    Py_END_ALLOW_THREADS
    if (!ok) return nullptr;  // the action's exception; the barrier is broken
    if (done != Outcome::kReleased) return raise_broken();
    return PyLong_FromUnsignedLong(ticket.index);
  }
  if (o == Outcome::kWait) {
    o = run_step(deadline, [&](const core::Deadline& slice, core::Spin spin) {
      return barrier::await(b, ticket, slice, spin);
    });
    if (o == Outcome::kInterrupted) {
      // Leaving on an exception breaks the round, so nobody waits for this party.
      abort_keeping_error(b);
      return nullptr;
    }
    if (o == Outcome::kTimedOut) {
      Py_BEGIN_ALLOW_THREADS
      o = barrier::time_out(b, ticket);
      Py_END_ALLOW_THREADS
    }
    if (o == Outcome::kReleased) return PyLong_FromUnsignedLong(ticket.index);
  }
  return raise_broken();
}

PyMethodDef barrier_methods[] = {
    {"wait", as_cfunction(b_wait), kFastFlags,
     "wait(timeout=None) -> int\n\nWait for all parties; returns this party's index."},
    {nullptr, nullptr, 0, nullptr}};

struct BarrierExtra {
  static constexpr size_t kSize = 2;
  static py::tuple save(BarrierObject& self) { return py::make_tuple(self.action, self.timeout); }
  static std::unique_ptr<BarrierObject> load(SlotAddress a, const py::tuple& state) {
    auto obj =
        std::make_unique<BarrierObject>(a.arena, a.index, core::Kind::kBarrier, a.generation);
    obj->action = state[kImportPrefix];
    obj->timeout = state[kImportPrefix + 1];
    return obj;
  }
};

}  // namespace

void register_barrier(py::module_& m) {
  auto cls = define_primitive<BarrierObject, BarrierExtra>(
      m, "Barrier", "A reusable barrier in shared memory (core of interlock.synchronize.Barrier).");
  cls.def(py::init([](uint32_t parties, py::object action, py::object timeout, bool fork_ctx) {
            if (parties < 1 || parties > 0x7fffffffu)
              throw py::value_error("parties must be between 1 and 2147483647");
            auto obj = std::make_unique<BarrierObject>(core::Kind::kBarrier, fork_ctx);
            barrier::init(obj->state(), parties);
            obj->action = std::move(action);
            obj->timeout = std::move(timeout);
            return obj;
          }),
          py::arg("parties"), py::arg("action") = py::none(), py::arg("timeout") = py::none(),
          py::arg("fork_ctx") = false);
  cls.def_property_readonly("parties", [](BarrierObject& self) { return self.state().parties; });
  // The inner lock is held only for a few instructions, so these read it with the GIL held.
  cls.def_property_readonly("n_waiting",
                            [](BarrierObject& self) { return barrier::n_waiting(self.state()); });
  cls.def_property_readonly("broken",
                            [](BarrierObject& self) { return barrier::is_broken(self.state()); });
  cls.def_property_readonly("_action", [](BarrierObject& self) { return self.action; });
  cls.def_property_readonly("_timeout", [](BarrierObject& self) { return self.timeout; });
  cls.def(
      "abort", [](BarrierObject& self) { barrier::abort(self.state()); },
      py::call_guard<py::gil_scoped_release>(),
      "Break the barrier: current and future waiters get BrokenBarrierError until reset().");
  cls.def(
      "reset", [](BarrierObject& self) { barrier::reset(self.state()); },
      py::call_guard<py::gil_scoped_release>(),
      "Return to the empty state; parties waiting now get BrokenBarrierError.");
  install_methods(cls, barrier_methods);
}

}  // namespace interlock::bindings
