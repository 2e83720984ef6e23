"""interlock: fast, crash-aware replacements for multiprocessing's synchronization primitives.

The factories below behave like ``multiprocessing.Lock()`` and friends: they build the
classes of :mod:`interlock.synchronize` for the default multiprocessing context.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

from . import synchronize
from ._backend import BACKEND, NATIVE
from ._context import get_context
from ._install import install, uninstall
from .file_lock import FileLock, lockf
from .synchronize import SEM_VALUE_MAX, OwnerDiedError, SegmentError, set_owner_check_interval

__version__ = "0.2.0"

#: True when the primitives are interlock's native core (Linux: futexes in shared memory);
#: False when they are the portable backend (multiprocessing's own classes with interlock's
#: API, on other systems). See docs/platforms.md.
native: bool = NATIVE
#: "native" or "portable", as :data:`native` says.
backend: str = BACKEND

__all__ = [
    "Lock",
    "RLock",
    "Semaphore",
    "BoundedSemaphore",
    "Condition",
    "Event",
    "Barrier",
    "RWLock",
    "SEM_VALUE_MAX",
    "SegmentError",
    "OwnerDiedError",
    "set_owner_check_interval",
    "FileLock",
    "lockf",
    "install",
    "get_context",
    "uninstall",
    "synchronize",
    "native",
    "backend",
]


def Lock(*, robust: bool = False) -> synchronize.Lock:
    """A non-recursive lock shared between processes (``multiprocessing.Lock``).
    ``robust=True``: see :class:`interlock.synchronize.Lock` and :class:`OwnerDiedError`."""
    return synchronize.Lock(robust=robust)


def RLock(*, robust: bool = False) -> synchronize.RLock:
    """A recursive lock shared between processes (``multiprocessing.RLock``).
    ``robust=True``: see :class:`interlock.synchronize.Lock` and :class:`OwnerDiedError`."""
    return synchronize.RLock(robust=robust)


def Semaphore(value: int = 1) -> synchronize.Semaphore:
    """A counting semaphore shared between processes (``multiprocessing.Semaphore``)."""
    return synchronize.Semaphore(value)


def BoundedSemaphore(value: int = 1) -> synchronize.BoundedSemaphore:
    """A bounded semaphore shared between processes (``multiprocessing.BoundedSemaphore``)."""
    return synchronize.BoundedSemaphore(value)


def Condition(lock: Optional[Any] = None) -> synchronize.Condition:
    """A condition variable shared between processes (``multiprocessing.Condition``)."""
    return synchronize.Condition(lock)


def Event() -> synchronize.Event:
    """An event shared between processes (``multiprocessing.Event``)."""
    return synchronize.Event()


def Barrier(
    parties: int, action: Optional[Callable[[], Any]] = None, timeout: Optional[float] = None
) -> synchronize.Barrier:
    """A barrier shared between processes (``multiprocessing.Barrier``)."""
    return synchronize.Barrier(parties, action, timeout)


def RWLock(*, prefer: str = "writers", robust: bool = False) -> synchronize.RWLock:
    """A reader-writer lock shared between processes: many readers at once, or one writer.
    ``prefer="writers"`` (the default) holds new readers back while a writer waits, so writers
    are never starved; ``prefer="readers"`` lets readers in whenever no writer holds.
    ``robust=True``: the holds of a process that dies come back, and the next acquirer after a
    lost write hold gets :class:`OwnerDiedError`. See :class:`interlock.synchronize.RWLock`."""
    return synchronize.RWLock(prefer=prefer, robust=robust)
