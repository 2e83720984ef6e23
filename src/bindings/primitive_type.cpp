#include "bindings/primitive_type.hpp"

#include <structmember.h>

#include <atomic>
#include <new>
#include <string>
#include <vector>

#include "bindings/native.hpp"
#include "core/errors.hpp"
#include "core/references.hpp"

namespace interlock::bindings {

PyObject* g_segment_error = nullptr;

namespace {

// The primitive types made so far, most derived last (BoundedSemaphore after Semaphore).
struct Registered {
  PyTypeObject* type;
  const PrimitiveTypeSpec* spec;
};
std::vector<Registered>& registered() {
  static auto* types = new std::vector<Registered>();  // lives as long as the types
  return *types;
}

// The spec of the primitive type `type` is (or derives from); nullptr if none.
const PrimitiveTypeSpec* spec_of(PyTypeObject* type) {
  auto& all = registered();
  for (auto it = all.rbegin(); it != all.rend(); ++it)
    if (it->type == type) return it->spec;
  for (auto it = all.rbegin(); it != all.rend(); ++it)
    if (PyType_IsSubtype(type, it->type)) return it->spec;
  return nullptr;
}

// ---- construction ---------------------------------------------------------------------------

// Runs the type's init once per object (object.hpp, "Publication protocol"): claims `bits`,
// and gives the claim back when init fails before publishing a slot.
int run_init(const PrimitiveTypeSpec* spec, PyObject* self, PyObject* const* args,
             Py_ssize_t nargs, PyObject* kwnames) {
  auto* obj = reinterpret_cast<PrimitiveObject*>(self);
  uintptr_t expected = 0;
  // relaxed: the claim orders nothing; publish_bits' release store does.
  if (!__atomic_compare_exchange_n(&obj->bits, &expected, kInitializing, false,
                                   __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
    PyErr_Format(PyExc_RuntimeError,
                 "%s object is already initialized (its __init__ runs only once)",
                 Py_TYPE(self)->tp_name);
    return -1;
  }
  int rc = spec->init(self, args, nargs, kwnames);
  if (rc < 0 && load_bits(self) == kInitializing)
    __atomic_store_n(&obj->bits, uintptr_t{0}, __ATOMIC_RELAXED);  // relaxed: nothing published
  return rc;
}

// tp_init: the same init, with the tuple and dict turned into vectorcall form.
int primitive_init(PyObject* self, PyObject* args, PyObject* kwargs) {
  const PrimitiveTypeSpec* spec = spec_of(Py_TYPE(self));
  const Py_ssize_t nargs = PyTuple_GET_SIZE(args);
  const Py_ssize_t nkw = kwargs == nullptr ? 0 : PyDict_GET_SIZE(kwargs);
  std::vector<PyObject*> stack(static_cast<size_t>(nargs + nkw));
  for (Py_ssize_t i = 0; i < nargs; ++i) stack[static_cast<size_t>(i)] = PyTuple_GET_ITEM(args, i);
  PyObject* kwnames = nullptr;
  if (nkw > 0) {
    kwnames = PyTuple_New(nkw);
    if (kwnames == nullptr) return -1;
    Py_ssize_t pos = 0, k = 0;
    PyObject *key, *value;
    while (PyDict_Next(kwargs, &pos, &key, &value)) {
      Py_INCREF(key);
      PyTuple_SET_ITEM(kwnames, k, key);
      stack[static_cast<size_t>(nargs + k)] = value;
      ++k;
    }
  }
  int rc = run_init(spec, self, stack.data(), nargs, kwnames);
  Py_XDECREF(kwnames);
  return rc;
}

// `Type(...)`: allocate and init in one step, without building an argument tuple.
PyObject* primitive_vectorcall(PyObject* callable, PyObject* const* args, size_t nargsf,
                               PyObject* kwnames) {
  auto* type = reinterpret_cast<PyTypeObject*>(callable);
  for (const Registered& r : registered())
    if (r.type == type) return construct(type, args, PyVectorcall_NARGS(nargsf), kwnames);
  // A subclass that inherited this entry point: take the general route (its own __new__ and
  // __init__ run).
  PyObject* tuple = PyTuple_New(PyVectorcall_NARGS(nargsf));
  if (tuple == nullptr) return nullptr;
  for (Py_ssize_t i = 0; i < PyVectorcall_NARGS(nargsf); ++i) {
    Py_INCREF(args[i]);
    PyTuple_SET_ITEM(tuple, i, args[i]);
  }
  PyObject* dict = nullptr;
  if (kwnames != nullptr && PyTuple_GET_SIZE(kwnames) > 0) {
    dict = PyDict_New();
    for (Py_ssize_t k = 0; dict != nullptr && k < PyTuple_GET_SIZE(kwnames); ++k)
      if (PyDict_SetItem(dict, PyTuple_GET_ITEM(kwnames, k),
                         args[PyVectorcall_NARGS(nargsf) + k]) < 0)
        Py_CLEAR(dict);
    if (dict == nullptr) {
      Py_DECREF(tuple);
      return nullptr;
    }
  }
  PyObject* result = PyType_Type.tp_call(callable, tuple, dict);
  Py_DECREF(tuple);
  Py_XDECREF(dict);
  return result;
}

void primitive_dealloc(PyObject* self) {
  PyTypeObject* type = Py_TYPE(self);
  if (PyType_IS_GC(type)) PyObject_GC_UnTrack(self);
  auto* obj = reinterpret_cast<PrimitiveObject*>(self);
  if (obj->weakrefs != nullptr) PyObject_ClearWeakRefs(self);
  const PrimitiveTypeSpec* spec = spec_of(type);
  if (spec != nullptr && spec->clear != nullptr) spec->clear(self);
  if (core::Slot* slot = slot_of(self)) core::references::release(slot);
  obj->bits = 0;
  type->tp_free(self);
  Py_DECREF(type);  // instances of heap types own a reference to their type
}

// ---- members every primitive has ---------------------------------------------------------

PyObject* get_is_fork_ctx(PyObject* self, void*) {
  return PyBool_FromLong(has_flag(self, kFlagForkContext));
}

PyObject* m_slot_info(PyObject* self, PyObject*) {
  core::Slot* slot = checked_slot(self);
  if (slot == nullptr) return nullptr;
  core::Arena* arena = core::Arena::of(slot);
  return Py_BuildValue("(KIIk)", static_cast<unsigned long long>(arena->token()),
                       arena->index_of(slot), core::references::generation(slot),
                       static_cast<unsigned long>(
                           slot->header.refs.load(std::memory_order_relaxed)));  // a snapshot
}

PyObject* m_export(PyObject* self, PyObject*) {
  core::Slot* slot = checked_slot(self);
  if (slot == nullptr) return nullptr;
  core::Arena* arena = core::Arena::of(slot);
  PyObject* items = Py_BuildValue("[iKII]", arena->fd(),
                                  static_cast<unsigned long long>(arena->token()),
                                  arena->index_of(slot), core::references::generation(slot));
  if (items == nullptr) return nullptr;
  const PrimitiveTypeSpec* spec = spec_of(Py_TYPE(self));
  if (spec->export_extras != nullptr && spec->export_extras(self, items) < 0) {
    Py_DECREF(items);
    return nullptr;
  }
  PyObject* state = PyList_AsTuple(items);
  Py_DECREF(items);
  if (state != nullptr) core::references::add_transfer(slot);  // adopted by the receiver
  return state;
}

PyMethodDef common_methods[] = {
    {"_slot_info", m_slot_info, METH_NOARGS,
     "(arena token, slot index, generation, reference count): for tests and debugging."},
    {"_export", m_export, METH_NOARGS,
     "(fd, token, index, generation, *extras) for pickling; adds a reference for the "
     "receiving process (see interlock/_sharing.py)."},
    {nullptr, nullptr, 0, nullptr}};

PyGetSetDef common_getsets[] = {
    {"_is_fork_ctx", get_is_fork_ctx, nullptr,
     "True when created for a fork context (then it may not be pickled for a spawned child).",
     nullptr},
    {nullptr, nullptr, nullptr, nullptr, nullptr}};

PyMemberDef weakref_members[] = {
    {"__weaklistoffset__", T_PYSSIZET, offsetof(PrimitiveObject, weakrefs), READONLY, nullptr},
    {nullptr, 0, 0, 0, nullptr}};

template <class Def, class IsEnd>
Def* concatenated(const Def* first, const Def* second, IsEnd is_end) {
  std::vector<Def> all;
  for (const Def* d = first; d != nullptr && !is_end(*d); ++d) all.push_back(*d);
  for (const Def* d = second; d != nullptr && !is_end(*d); ++d) all.push_back(*d);
  all.push_back(Def{});
  Def* out = new Def[all.size()];  // static storage: the type keeps pointing at it
  for (size_t i = 0; i < all.size(); ++i) out[i] = all[i];
  return out;
}

// ---- the multiprocessing context -----------------------------------------------------------

// Set once at import (set_context_resolver), then only read.
PyObject* g_default_context = nullptr;  // multiprocessing.context._default_context
PyObject* g_resolver = nullptr;         // interlock._sharing.is_fork_context
PyObject* g_actual_context_name = nullptr;  // the interned "_actual_context"

// Two one-entry caches, each one atomic word, so that threads running without the GIL never
// see a pointer with another pointer's answer: the context object's address with the answer
// (is it the fork context?) in bit 0 (objects are at least 8-byte aligned). A cached object
// is kept alive for good: contexts are a handful of long-lived objects, and never freeing
// one means its address cannot come back as another object's (no ABA).
std::atomic<uintptr_t> g_cached_actual{0};  // the default context's last _actual_context
std::atomic<uintptr_t> g_cached_ctx{0};     // the last context passed explicitly

// The cached answer for `ctx`: 1 or 0, or -1 when `ctx` is not the cached object.
int cached_answer(const std::atomic<uintptr_t>& cache, PyObject* ctx) {
  // relaxed: the word carries its own answer, and the object it names never dies.
  const uintptr_t word = cache.load(std::memory_order_relaxed);
  if ((word & ~uintptr_t{1}) != reinterpret_cast<uintptr_t>(ctx)) return -1;
  return static_cast<int>(word & 1);
}

void remember(std::atomic<uintptr_t>& cache, PyObject* ctx, int is_fork) {
  Py_INCREF(ctx);  // never released: see above
  // relaxed: as in cached_answer; a racing remember of another context just wins or loses.
  cache.store(reinterpret_cast<uintptr_t>(ctx) | static_cast<uintptr_t>(is_fork != 0),
              std::memory_order_relaxed);
}

}  // namespace

PyObject* not_initialized(PyObject* self) {
  PyErr_Format(PyExc_RuntimeError, "%s object is not initialized (its __init__ did not run)",
               Py_TYPE(self)->tp_name);
  return nullptr;
}

void set_error_from_current_exception() {
  try {
    throw;
  } catch (const core::SegmentError& e) {
    PyErr_SetString(g_segment_error != nullptr ? g_segment_error : PyExc_ValueError, e.what());
  } catch (const core::OsError& e) {
    // OSError(errno, text) picks the matching subclass (FileNotFoundError, ...).
    PyObject* exc = PyObject_CallFunction(PyExc_OSError, "is", e.error_number(), e.what());
    if (exc != nullptr) {
      PyErr_SetObject(reinterpret_cast<PyObject*>(Py_TYPE(exc)), exc);
      Py_DECREF(exc);
    }
  } catch (const std::bad_alloc&) {
    PyErr_NoMemory();
  } catch (const std::exception& e) {
    PyErr_SetString(PyExc_RuntimeError, e.what());
  } catch (...) {
    PyErr_SetString(PyExc_RuntimeError, "unknown C++ exception in interlock's core");
  }
}

PyTypeObject* make_primitive_type(py::module_& m, const char* attr,
                                  const PrimitiveTypeSpec& spec) {
  const bool gc = spec.traverse != nullptr;
  std::vector<PyType_Slot> slots = {
      {Py_tp_doc, const_cast<char*>(spec.doc)},
      {Py_tp_dealloc, reinterpret_cast<void*>(primitive_dealloc)},
      {Py_tp_new, reinterpret_cast<void*>(PyType_GenericNew)},
      {Py_tp_init, reinterpret_cast<void*>(primitive_init)},
      {Py_tp_methods, concatenated(spec.methods, common_methods,
                                   [](const PyMethodDef& d) { return d.ml_name == nullptr; })},
      {Py_tp_getset, concatenated(spec.getsets, common_getsets,
                                  [](const PyGetSetDef& d) { return d.name == nullptr; })},
  };
  if (spec.base == nullptr) slots.push_back({Py_tp_members, weakref_members});
  if (gc) {
    slots.push_back({Py_tp_traverse, reinterpret_cast<void*>(spec.traverse)});
    slots.push_back({Py_tp_clear, reinterpret_cast<void*>(spec.clear)});
  }
  slots.push_back({0, nullptr});
  unsigned int flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | (gc ? Py_TPFLAGS_HAVE_GC : 0);
  PyType_Spec type_spec = {spec.name, spec.basicsize, 0, flags, slots.data()};
  PyObject* bases = nullptr;
  if (spec.base != nullptr) {
    bases = PyTuple_Pack(1, reinterpret_cast<PyObject*>(spec.base));
    if (bases == nullptr) throw py::error_already_set();
  }
  PyObject* type = PyType_FromSpecWithBases(&type_spec, bases);
  Py_XDECREF(bases);
  if (type == nullptr) throw py::error_already_set();
  auto* tp = reinterpret_cast<PyTypeObject*>(type);
  tp->tp_vectorcall = primitive_vectorcall;
  registered().push_back({tp, new PrimitiveTypeSpec(spec)});
  m.add_object(attr, py::reinterpret_steal<py::object>(type));
  return tp;
}

core::Slot* new_slot(core::Kind kind) {
  core::Slot* fresh = nullptr;
  if (!call_core([&] { fresh = core::references::create(kind); })) return nullptr;
  return fresh;
}

void publish_slot(PyObject* self, core::Slot* slot, uintptr_t flags) {
  publish_bits(self, reinterpret_cast<uintptr_t>(slot) | flags);
}

int attach_new_slot(PyObject* self, core::Kind kind, uintptr_t flags) {
  core::Slot* fresh = new_slot(kind);
  if (fresh == nullptr) return -1;
  publish_slot(self, fresh, flags);
  return 0;
}

PyObject* construct(PyTypeObject* type, PyObject* const* args, Py_ssize_t nargs,
                    PyObject* kwnames) {
  PyObject* self = type->tp_alloc(type, 0);
  if (self == nullptr) return nullptr;
  if (run_init(spec_of(type), self, args, nargs, kwnames) < 0) {
    Py_DECREF(self);
    return nullptr;
  }
  return self;
}

void set_context_resolver(PyObject* default_context, PyObject* resolver) {
  // At import, before any primitive is made (and tests that call it again run alone).
  if (g_actual_context_name == nullptr) {
    g_actual_context_name = PyUnicode_InternFromString("_actual_context");
    if (g_actual_context_name == nullptr) throw py::error_already_set();
  }
  Py_XINCREF(default_context);
  Py_XSETREF(g_default_context, default_context);
  Py_XINCREF(resolver);
  Py_XSETREF(g_resolver, resolver);
  g_cached_actual.store(0, std::memory_order_relaxed);  // relaxed: see cached_answer
  g_cached_ctx.store(0, std::memory_order_relaxed);
}

int is_fork_context(PyObject* ctx) {
  if (g_resolver == nullptr) return 0;  // not configured (only the core's own tests)
  const bool default_ctx = ctx == nullptr || ctx == Py_None;
  // A concrete context is a long-lived object whose start method never changes: remember the
  // last one (the context factories of interlock.get_context() pass theirs on every creation).
  if (!default_ctx) {
    const int cached = cached_answer(g_cached_ctx, ctx);
    if (cached >= 0) return cached;
  }
  PyObject* actual = nullptr;
  if (default_ctx && g_default_context != nullptr) {
    // The fast path: the default context was resolved before and has not changed since.
    actual = PyObject_GetAttr(g_default_context, g_actual_context_name);
    if (actual == nullptr) return -1;
    const int cached = actual == Py_None ? -1 : cached_answer(g_cached_actual, actual);
    if (cached >= 0) {
      Py_DECREF(actual);
      return cached;
    }
  }
  PyObject* answer = PyObject_CallOneArg(g_resolver, default_ctx ? Py_None : ctx);
  int is_fork = answer == nullptr ? -1 : PyObject_IsTrue(answer);
  Py_XDECREF(answer);
  if (is_fork >= 0 && !default_ctx && ctx != g_default_context)  // (its method may change)
    remember(g_cached_ctx, ctx, is_fork);
  // Resolving may itself have fixed the default context; cache what it was before.
  if (is_fork >= 0 && actual != nullptr && actual != Py_None)
    remember(g_cached_actual, actual, is_fork);
  Py_XDECREF(actual);
  return is_fork;
}

void register_primitive_runtime(py::module_& m) {
  m.def(
      "_import",
      [](py::handle cls, uint64_t token, uint32_t index, uint32_t generation, py::args extras) {
        if (!PyType_Check(cls.ptr())) throw py::type_error("_import() needs a primitive type");
        auto* type = reinterpret_cast<PyTypeObject*>(cls.ptr());
        const PrimitiveTypeSpec* spec = spec_of(type);
        if (spec == nullptr)
          throw py::type_error(std::string("not an interlock primitive type: ") + type->tp_name);
        if (static_cast<Py_ssize_t>(extras.size()) != spec->extra_count)
          throw py::value_error("malformed interlock state: expected " +
                                std::to_string(spec->extra_count) + " extra items, got " +
                                std::to_string(extras.size()));
        core::Slot* slot = core::references::adopt(token, index, spec->kind, generation);
        PyObject* self = type->tp_alloc(type, 0);
        if (self == nullptr) {
          core::references::release(slot);
          throw py::error_already_set();
        }
        auto obj = py::reinterpret_steal<py::object>(self);
        uintptr_t flags = 0;
        if (spec->import_extras != nullptr &&
            spec->import_extras(self, PySequence_Fast_ITEMS(extras.ptr()), spec->extra_count,
                                &flags) < 0) {
          core::references::release(slot);  // (the object has no slot to drop it with)
          throw py::error_already_set();
        }
        publish_slot(self, slot, flags);  // (a new object: nobody else can see it yet)
        return obj;
      },
      "Rebuild a primitive from the state _export() gave (the arena must be attached).");
  m.def(
      "_set_context_resolver",
      [](py::handle default_context, py::handle resolver) {
        set_context_resolver(default_context.ptr(), resolver.ptr());
      },
      "Tell the core how to resolve a primitive's multiprocessing context (at import).");
}

}  // namespace interlock::bindings
