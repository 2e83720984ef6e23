"""``interlock.get_context()``: multiprocessing contexts whose primitives are interlock's.

Each returned context is an instance of a subclass of multiprocessing's own concrete context
class (fork, spawn or forkserver), so everything else about it (Process, Queue, Pool, Value,
Manager, start method) is multiprocessing's. Only the seven primitive factories differ, and
because multiprocessing builds its queues, pools and shared values through the context it is
given (``ctx.Lock()``, ``ctx.Condition()`` ...), those use interlock underneath as well.
"""

from __future__ import annotations

import multiprocessing
from multiprocessing import context
from typing import Any, Callable, Dict, Optional

from . import synchronize

PRIMITIVES = ("Lock", "RLock", "Semaphore", "BoundedSemaphore", "Condition", "Event", "Barrier")
# interlock's own primitives, which the contexts offer beside multiprocessing's seven.
EXTRA_PRIMITIVES = ("RWLock",)


def primitive_factory(name: str, owner: str) -> Callable[..., Any]:
    """A context method that builds ``interlock.synchronize.<name>`` for that context."""
    cls = getattr(synchronize, name)

    def factory(self: context.BaseContext, *args: Any, **kwargs: Any) -> Any:
        return cls(*args, ctx=self.get_context(), **kwargs)

    factory.__name__ = name
    factory.__qualname__ = f"{owner}.{name}"
    factory.__doc__ = (f"Returns an interlock {name} for this context"
                       + (f" (see multiprocessing.{name})." if name in PRIMITIVES else "."))
    return factory


def _interlock_context_class(base: type) -> type:
    namespace: Dict[str, Any] = {
        name: primitive_factory(name, f"Interlock{base.__name__}")
        for name in PRIMITIVES + EXTRA_PRIMITIVES
    }

    def get_context(self: context.BaseContext, method: Optional[str] = None) -> Any:
        return self if method is None else get_context_for(method)

    namespace["get_context"] = get_context
    namespace["__module__"] = __name__
    namespace["__doc__"] = f"multiprocessing's {base.__name__} with interlock's primitives."
    return type(f"Interlock{base.__name__}", (base,), namespace)


_contexts: Dict[str, context.BaseContext] = {}


def get_context_for(method: str) -> context.BaseContext:
    if not isinstance(method, str):
        raise TypeError(f"method must be a str or None, not {type(method).__name__}")
    found = _contexts.get(method)
    if found is None:
        base = multiprocessing.get_context(method)  # ValueError for an unknown method
        # setdefault: two threads racing here get the same context (atomic on every build).
        found = _contexts.setdefault(method, _interlock_context_class(type(base))())
    return found


def get_context(method: Optional[str] = None) -> context.BaseContext:
    """Like ``multiprocessing.get_context(method)``, but the context's Lock, RLock,
    Semaphore, BoundedSemaphore, Condition, Event and Barrier are interlock's, and so are
    the primitives inside the Queues, Pools and Values it makes. It also has ``RWLock()``,
    interlock's reader-writer lock.

    ``method`` is "fork", "spawn", "forkserver" or None for multiprocessing's default start
    method (which, as with ``multiprocessing.get_context()``, fixes that default).
    """
    if method is None:
        method = multiprocessing.get_context().get_start_method()
    return get_context_for(method)
