"""Make multiprocessing itself hand out interlock's primitives.

:func:`install` replaces the primitive factories of every multiprocessing context
(``multiprocessing.context.BaseContext.Lock`` and friends) and the module-level shortcuts
(``multiprocessing.Lock`` ...), so that ``multiprocessing.Lock()``,
``multiprocessing.get_context(m).Lock()`` and everything multiprocessing builds on them (Queue,
Pool, Value/Array with a lock, ...) use interlock. :func:`uninstall` restores the originals.
Both are idempotent.
"""

from __future__ import annotations

import multiprocessing
from multiprocessing import context
from typing import Any, Callable, Dict, Tuple

from . import synchronize

PRIMITIVES = ("Lock", "RLock", "Semaphore", "BoundedSemaphore", "Condition", "Event", "Barrier")

_saved: Dict[str, Tuple[Any, Any]] = {}


def _context_factory(name: str) -> Callable[..., Any]:
    cls = getattr(synchronize, name)

    def factory(self: context.BaseContext, *args: Any, **kwargs: Any) -> Any:
        return cls(*args, ctx=self.get_context(), **kwargs)

    factory.__name__ = name
    factory.__qualname__ = f"BaseContext.{name}"
    factory.__doc__ = f"Returns an interlock {name} (installed by interlock.install())."
    return factory


def installed() -> bool:
    """True while :func:`install` is in effect."""
    return bool(_saved)


def install() -> None:
    """Make multiprocessing's contexts create interlock primitives (idempotent)."""
    if _saved:
        return
    for name in PRIMITIVES:
        _saved[name] = (context.BaseContext.__dict__[name], getattr(multiprocessing, name))
        setattr(context.BaseContext, name, _context_factory(name))
        setattr(multiprocessing, name, getattr(context._default_context, name))


def uninstall() -> None:
    """Undo :func:`install` (idempotent)."""
    for name, (method, shortcut) in _saved.items():
        setattr(context.BaseContext, name, method)
        setattr(multiprocessing, name, shortcut)
    _saved.clear()
