// register_async.cpp: _core.Watcher (FutexRing, Waker) and the _async_* steps that
// interlock._asyncio runs on an event loop (core/watcher.hpp, core/async_wait.hpp). Cold
// code: a task calls these only when its primitive's non-blocking attempt failed, so
// pybind11's dispatch is no concern here.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

#include "bindings/object.hpp"
#include "bindings/register.hpp"
#include "core/async_wait.hpp"
#include "core/barrier.hpp"
#include "core/event.hpp"
#include "core/futex_ring.hpp"
#include "core/waker.hpp"

namespace interlock::bindings {

namespace {

namespace async_wait = core::async_wait;

// The native types whose objects the steps accept (looked up once the module has them).
PyTypeObject* g_semaphore_types[2] = {nullptr, nullptr};  // Semaphore, BoundedSemaphore
PyTypeObject* g_event_type = nullptr;
PyTypeObject* g_condition_type = nullptr;
PyTypeObject* g_barrier_type = nullptr;

// The slot behind `obj` if it is an initialized object of one of `types`; TypeError (or
// not_initialized()'s RuntimeError) otherwise.
core::Slot& slot_of_type(py::handle obj, std::initializer_list<PyTypeObject*> types,
                         const char* what) {
  for (PyTypeObject* type : types) {
    if (type != nullptr && PyObject_TypeCheck(obj.ptr(), type)) {
      core::Slot* slot = checked_slot(obj.ptr());
      if (slot == nullptr) throw py::error_already_set();
      return *slot;
    }
  }
  throw py::type_error(std::string("expected an interlock ") + what + ", not " +
                       Py_TYPE(obj.ptr())->tp_name);
}

// 1: watching; 0: nothing to watch, try again now; -1: this Watcher cannot take it.
int watch(core::Watcher& waker, const async_wait::Watch& w, uint64_t token) {
  if (w.word == nullptr) return 0;
  return waker.watch(w.word, w.expected, token) ? 1 : -1;
}

core::MutexState& any_lock(py::handle lock) {
  return slot_of_type(lock, {g_lock_type}, "Lock").body.mutex;
}

core::MutexState& plain_lock(py::handle lock) {
  core::MutexState& m = any_lock(lock);
  // relaxed: `robust` is set once, before the lock is shared.
  if (m.robust.load(std::memory_order_relaxed))
    throw py::value_error("a robust Lock goes through the _async_robust_lock_* steps");
  return m;
}

core::SemaphoreState& semaphore(py::handle sem) {
  return slot_of_type(sem, {g_semaphore_types[0], g_semaphore_types[1]}, "Semaphore")
      .body.semaphore;
}

core::EventState& event(py::handle ev) {
  return slot_of_type(ev, {g_event_type}, "Event").body.event;
}

core::ConditionState& condition(py::handle c) {
  return slot_of_type(c, {g_condition_type}, "Condition").body.condition;
}

// The condition's lock, which must be a plain Lock held by the calling thread (the steps
// that change the condition's bookkeeping run under it, as condition.hpp requires).
void check_condition_lock_held(py::handle c) {
  condition(c);  // the type check, first
  PyObject* lock = reinterpret_cast<ConditionObject*>(c.ptr())->lock;
  core::Slot* slot = lock == nullptr ? nullptr : slot_of(lock);
  if (slot == nullptr) {
    not_initialized(c.ptr());  // sets RuntimeError
    throw py::error_already_set();
  }
  if (!PyObject_TypeCheck(lock, g_lock_type))
    throw py::type_error("only a Condition over a Lock can be awaited (an RLock cannot be)");
  if (core::mutex::owner_tid(slot->body.mutex) != core::current_thread().tid) {
    // AssertionError, as wait() (multiprocessing's Condition asserts).
    PyErr_SetString(PyExc_AssertionError, "must acquire() condition before using wait_async()");
    throw py::error_already_set();
  }
}

core::BarrierState& barrier(py::handle b) {
  return slot_of_type(b, {g_barrier_type}, "Barrier").body.barrier;
}

// A barrier step's outcome, as Python sees it: the names of core::barrier::Outcome.
const char* outcome_name(core::barrier::Outcome o) {
  using O = core::barrier::Outcome;
  switch (o) {
    case O::kWait: return "wait";
    case O::kLast: return "last";
    case O::kReleased: return "released";
    case O::kBroken: return "broken";
    case O::kTimedOut: return "not yet";
    case O::kInterrupted: return "not yet";  // cannot happen without a sleep
  }
  return "broken";
}

}  // namespace

void register_async(py::module_& m) {
  // The module keeps these types alive.
  g_semaphore_types[0] = reinterpret_cast<PyTypeObject*>(m.attr("Semaphore").ptr());
  g_semaphore_types[1] = reinterpret_cast<PyTypeObject*>(m.attr("BoundedSemaphore").ptr());
  g_event_type = reinterpret_cast<PyTypeObject*>(m.attr("Event").ptr());
  g_condition_type = reinterpret_cast<PyTypeObject*>(m.attr("Condition").ptr());
  g_barrier_type = reinterpret_cast<PyTypeObject*>(m.attr("Barrier").ptr());
  py::class_<core::Watcher>(m, "Watcher",
                            "What sleeps on futex words for asyncio tasks: a FutexRing or a "
                            "Waker.")
      .def("unwatch", &core::Watcher::unwatch, py::arg("token"),
           "Removes a watch: True if it had not fired.")
      .def("take_fired",
           [](core::Watcher& w) {
             std::vector<uint64_t> out;
             w.take_fired(out);
             return out;
           },
           "The tokens that fired since the last call.")
      .def("watching", &core::Watcher::watching)
      .def("pause", &core::Watcher::pause, py::call_guard<py::gil_scoped_release>(),
           "Before a fork: stop any thread of its own, keeping the watches.")
      .def("resume", &core::Watcher::resume, "After a fork, in the parent: start it again.")
      .def("abandon", &core::Watcher::abandon,
           "In a fork child: let go of the parent's thread or ring.");
  py::class_<core::Waker, core::Watcher>(
      m, "Waker",
      "One thread asleep on up to Waker.CAPACITY futex words for asyncio tasks; writes the "
      "eventfd `notify_fd` when watches fire.")
      .def(py::init<int>(), py::arg("notify_fd"))
      .def_readonly_static("CAPACITY", &core::Waker::kCapacity)
      .def_static("supported", &core::Waker::supported);
  py::class_<core::FutexRing, core::Watcher>(
      m, "FutexRing",
      "io_uring futex waits for one event loop's tasks: no thread, no bound; fd() is "
      "readable while fired watches wait to be taken.")
      .def_static("open", &core::FutexRing::open,
                  "A new ring, or None where io_uring's futex waits are unavailable.")
      .def("fd", &core::FutexRing::fd);

  m.def("_async_lock_watch",
        [](py::handle lock, core::Watcher& waker, uint64_t token) {
          return watch(waker, async_wait::lock_prepare(plain_lock(lock)), token);
        });
  m.def("_async_lock_try",
        [](py::handle lock) { return async_wait::lock_try_after_wake(plain_lock(lock)); });
  m.def("_async_lock_pass_wake",
        [](py::handle lock) { async_wait::lock_pass_wake(plain_lock(lock)); });

  m.def("_async_lock_is_robust", [](py::handle lock) {
    return any_lock(lock).robust.load(std::memory_order_relaxed) != 0;  // set once
  });
  // (1 watching, 0 try now, -1 full, 2 look again shortly) and the death watch's ticket.
  m.def("_async_robust_lock_watch", [](py::handle lock, core::Watcher& waker,
                                       uint64_t token) -> py::tuple {
    async_wait::RobustWatch w = async_wait::robust_lock_prepare(any_lock(lock));
    if (w.poll) return py::make_tuple(2, -1);
    int outcome = watch(waker, w.watch, token);
    if (outcome != 1 && w.ticket >= 0) {
      core::death_watch::unwatch(w.ticket);
      w.ticket = -1;
    }
    return py::make_tuple(outcome, w.ticket);
  });
  m.def("_async_robust_lock_try", [](py::handle lock) {
    core::Status st = async_wait::robust_lock_try(any_lock(lock));
    return st == core::Status::kOk ? 1 : st == core::Status::kOwnerDied ? 2 : 0;
  });
  m.def("_async_death_unwatch", [](int ticket) {
    if (ticket >= 0) core::death_watch::unwatch(ticket);
  });

  m.def("_async_semaphore_join", [](py::handle s) { async_wait::semaphore_join(semaphore(s)); });
  m.def("_async_semaphore_watch", [](py::handle s, core::Watcher& waker, uint64_t token) {
    return watch(waker, async_wait::semaphore_prepare(semaphore(s)), token);
  });
  m.def("_async_semaphore_leave", [](py::handle s, bool pass_wake) {
    async_wait::semaphore_leave(semaphore(s), pass_wake);
  });

  m.def("_async_event_snapshot", [](py::handle e) { return core::event::snapshot(event(e)); });
  m.def("_async_event_join", [](py::handle e) { async_wait::event_join(event(e)); });
  m.def("_async_event_watch",
        [](py::handle e, core::Watcher& waker, uint64_t token, uint32_t since) {
          return watch(waker, async_wait::event_prepare(event(e), since), token);
        });
  m.def("_async_event_leave", [](py::handle e) { async_wait::event_leave(event(e)); });

  namespace barrier_ops = core::barrier;
  const core::Deadline past = core::Deadline::after(-1);
  m.def("_async_barrier_seen", [](py::handle b) { return async_wait::barrier_seen(barrier(b)); });
  m.def("_async_barrier_arrive", [past](py::handle b) {
    core::BarrierState& state = barrier(b);
    barrier_ops::Ticket t{0, 0};
    barrier_ops::Outcome o;
    {
      py::gil_scoped_release unlocked;  // `inner` may be held by a preempted process
      o = barrier_ops::arrive(state, past, &t);
    }
    return py::make_tuple(outcome_name(o), t.gen, t.index);
  });
  m.def("_async_barrier_check", [past](py::handle b, uint32_t gen, uint32_t index) {
    core::BarrierState& state = barrier(b);
    py::gil_scoped_release unlocked;
    return std::string(outcome_name(
        barrier_ops::await(state, barrier_ops::Ticket{gen, index}, past, core::Spin::kNo)));
  });
  m.def("_async_barrier_watch",
        [](py::handle b, core::Watcher& waker, uint64_t token, uint32_t seen) {
          return watch(waker, async_wait::barrier_watch(barrier(b), seen), token);
        });
  m.def("_async_barrier_time_out", [](py::handle b, uint32_t gen, uint32_t index) {
    core::BarrierState& state = barrier(b);
    py::gil_scoped_release unlocked;
    return std::string(outcome_name(barrier_ops::time_out(state, barrier_ops::Ticket{gen, index})));
  });
  m.def("_async_barrier_finish", [](py::handle b, uint32_t gen, uint32_t index, bool ok) {
    core::BarrierState& state = barrier(b);
    py::gil_scoped_release unlocked;
    return std::string(
        outcome_name(barrier_ops::finish_round(state, barrier_ops::Ticket{gen, index}, ok)));
  });

  m.def("_async_condition_enqueue", [](py::handle c) {
    check_condition_lock_held(c);
    return core::condition::enqueue(condition(c)).gen;
  });
  m.def("_async_condition_seen",
        [](py::handle c) { return async_wait::condition_seen(condition(c)); });
  m.def("_async_condition_try", [](py::handle c, uint32_t gen) {
    return core::condition::try_take(condition(c), core::condition::Ticket{gen});
  });
  m.def("_async_condition_watch",
        [](py::handle c, core::Watcher& waker, uint64_t token, uint32_t seen) {
          return watch(waker, async_wait::condition_watch(condition(c), seen), token);
        });
  m.def("_async_condition_withdraw", [](py::handle c, uint32_t gen) {
    check_condition_lock_held(c);
    return core::condition::withdraw(condition(c), core::condition::Ticket{gen});
  });
}

}  // namespace interlock::bindings
