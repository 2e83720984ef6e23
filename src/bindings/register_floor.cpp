// register_floor.cpp: interlock._core._NoOp, the interpreter's floor for the benchmark.
//
// Its acquire/release/__enter__/__exit__ are dispatched exactly as a Lock's are (METH_FASTCALL
// | METH_KEYWORDS methods of a native type) and do nothing, so a benchmark that times them
// next to a Lock's measures what any lock call costs before it does any work. _AtomicNoOp
// does only the two read-modify-write instructions every lock needs (a compare-and-swap to
// take it, an exchange to give it back) on a word of its own: the floor of a lock call.
#include <Python.h>

#include <atomic>
#include <cstdint>
#include <utility>

#include "bindings/native.hpp"
#include "bindings/register.hpp"

namespace interlock::bindings {

namespace {

PyObject* noop_true(PyObject*, PyObject* const*, Py_ssize_t, PyObject*) { Py_RETURN_TRUE; }
PyObject* noop_none(PyObject*, PyObject* const*, Py_ssize_t, PyObject*) { Py_RETURN_NONE; }

PyMethodDef noop_methods[] = {
    {"acquire", as_cfunction(noop_true), kFastFlags, "Returns True."},
    {"release", as_cfunction(noop_none), kFastFlags, "Returns None."},
    {"__enter__", as_cfunction(noop_true), kFastFlags, "Returns True."},
    {"__exit__", as_cfunction(noop_none), kFastFlags, "Returns None."},
    {nullptr, nullptr, 0, nullptr}};

PyType_Slot noop_slots[] = {
    {Py_tp_doc, const_cast<char*>("A lock-shaped object whose methods do nothing (benchmark floor).")},
    {Py_tp_methods, noop_methods},
    {Py_tp_new, reinterpret_cast<void*>(PyType_GenericNew)},
    {0, nullptr}};

PyType_Spec noop_spec = {"interlock._core._NoOp", sizeof(PyObject), 0, Py_TPFLAGS_DEFAULT,
                         noop_slots};

struct AtomicNoOp {
  PyObject_HEAD
  std::atomic<uint32_t> word;
};

PyObject* atomic_acquire(PyObject* self, PyObject* const*, Py_ssize_t, PyObject*) {
  uint32_t expected = 0;
  // acquire: as a lock's CAS (the instruction is what is measured).
  reinterpret_cast<AtomicNoOp*>(self)->word.compare_exchange_strong(
      expected, 1, std::memory_order_acquire, std::memory_order_relaxed);
  Py_RETURN_TRUE;
}

PyObject* atomic_release(PyObject* self, PyObject* const*, Py_ssize_t, PyObject*) {
  // release: as a lock's unlocking exchange.
  reinterpret_cast<AtomicNoOp*>(self)->word.exchange(0, std::memory_order_release);
  Py_RETURN_NONE;
}

PyMethodDef atomic_methods[] = {
    {"acquire", as_cfunction(atomic_acquire), kFastFlags, "A compare-and-swap; True."},
    {"release", as_cfunction(atomic_release), kFastFlags, "An exchange; None."},
    {"__enter__", as_cfunction(atomic_acquire), kFastFlags, "A compare-and-swap; True."},
    {"__exit__", as_cfunction(atomic_release), kFastFlags, "An exchange; None."},
    {nullptr, nullptr, 0, nullptr}};

PyType_Slot atomic_slots[] = {
    {Py_tp_doc, const_cast<char*>("A lock-shaped object doing only a lock's two atomics.")},
    {Py_tp_methods, atomic_methods},
    {Py_tp_new, reinterpret_cast<void*>(PyType_GenericNew)},
    {0, nullptr}};

PyType_Spec atomic_spec = {"interlock._core._AtomicNoOp", sizeof(AtomicNoOp), 0,
                           Py_TPFLAGS_DEFAULT, atomic_slots};

}  // namespace

void register_floor(py::module_& m) {
  for (auto [spec, name] : {std::pair{&noop_spec, "_NoOp"}, {&atomic_spec, "_AtomicNoOp"}}) {
    PyObject* type = PyType_FromSpec(spec);
    if (type == nullptr) throw py::error_already_set();
    m.add_object(name, py::reinterpret_steal<py::object>(type));
  }
}

}  // namespace interlock::bindings
