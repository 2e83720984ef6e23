"""The native backend of :mod:`interlock.synchronize`: the classes are the native types of
:mod:`interlock._core`. Construction, argument checks and every hot method (acquire, release,
``with``, wait, notify, is_set, ...) are implemented there, so that a primitive costs 32 bytes
of Python object and nothing else per process besides its 64-byte shared slot (docs/design.md,
"The Python object"). This module adds the cold, Python-level parts to those types: ``repr``,
the pickling rules and the views of CPython's private attributes that multiprocessing itself
and CPython's own tests read.
"""

from __future__ import annotations

import os
import threading
import time
from multiprocessing import process
from typing import Any, Callable, Optional, TypeVar

from . import _asyncio, _core
from ._async_common import AsyncWith, ConditionWith
from ._arguments import check_owner_check_interval
from ._rwlock_views import RWLockExtras
from ._sharing import Shareable

SEM_VALUE_MAX: int = _core.SEM_VALUE_MAX
OwnerDiedError = _core.OwnerDiedError
SegmentError = _core.SegmentError

Lock = _core.Lock
RLock = _core.RLock
Semaphore = _core.Semaphore
BoundedSemaphore = _core.BoundedSemaphore
Condition = _core.Condition
Event = _core.Event
Barrier = _core.Barrier
RWLock = _core.RWLock

_T = TypeVar("_T")


def set_owner_check_interval(seconds: float) -> None:
    """Where the kernel has no pidfds (Linux before 5.3), how long a waiter on a robust lock
    sleeps between checks of the holder's process (default 0.05 s, so a dead holder is noticed
    within 0.1 s). Elsewhere waiters are woken when the holder dies, and this is unused.
    Applies to this process."""
    _core._set_owner_check_interval(check_owner_check_interval(seconds))


# ---- reprs, in CPython's format ------------------------------------------------------------

def _thread_qualified_process_name() -> str:
    name = process.current_process().name
    thread_name = threading.current_thread().name
    if thread_name != "MainThread":
        name += "|" + thread_name
    return name


def _held_in_this_process(lock: Any) -> bool:
    """True if the lock is held by a thread of this process (live or not)."""
    return bool(lock._owner_pid() == os.getpid())


def _holder_name(lock: Any) -> str:
    """The owner as CPython's reprs name it."""
    if lock._is_mine():
        return _thread_qualified_process_name()
    if not lock.locked():
        return "None"
    if _held_in_this_process(lock):
        return "SomeOtherThread"
    return "SomeOtherProcess"


class _LockExtras:
    def __repr__(self) -> str:
        try:
            name = _holder_name(self)
        except Exception:
            name = "unknown"
        return f"<{type(self).__name__}(owner={name})>"


class _RLockExtras:
    def __repr__(self) -> str:
        try:
            lock: Any = self
            if lock._is_mine():
                name, count = _thread_qualified_process_name(), str(lock._count())
            elif not lock.locked():
                name, count = "None", "0"
            elif _held_in_this_process(self):
                name, count = "SomeOtherThread", "nonzero"
            else:
                name, count = "SomeOtherProcess", "nonzero"
        except Exception:
            name, count = "unknown", "unknown"
        return f"<{type(self).__name__}({name}, {count})>"


class _SemaphoreExtras:
    def __repr__(self) -> str:
        try:
            value: Any = self.get_value()  # type: ignore[attr-defined]
        except Exception:
            value = "unknown"
        return f"<{type(self).__name__}(value={value})>"


class _BoundedSemaphoreExtras:
    def __repr__(self) -> str:
        try:
            value: Any = self.get_value()  # type: ignore[attr-defined]
        except Exception:
            value = "unknown"
        bound = self.maxvalue  # type: ignore[attr-defined]
        return f"<{type(self).__name__}(value={value}, maxvalue={bound})>"


class _SemLockView:
    """The part of CPython's ``_semlock`` that multiprocessing itself calls (queues.py reads
    ``_semlock._get_value()`` and ``_semlock._is_zero()``), for primitives handed out through
    :func:`interlock.install`."""

    @property
    def _semlock(self) -> Any:
        return self

    def _get_value(self) -> int:
        get_value = getattr(self, "get_value", None)
        if get_value is not None:
            return int(get_value())
        return 0 if self.locked() else 1  # type: ignore[attr-defined]

    def _is_zero(self) -> bool:
        return self._get_value() == 0


class _Counter:
    """A read-only counter with a semaphore's ``get_value()`` (see Condition)."""

    __slots__ = ("get_value",)

    def __init__(self, get_value: Callable[[], int]) -> None:
        self.get_value = get_value


class _ConditionExtras:
    def wait_for(self, predicate: Callable[[], _T], timeout: Optional[float] = None) -> _T:
        """Wait until ``predicate()`` is true, or the timeout passes; return its last value."""
        result = predicate()
        if result:
            return result
        deadline = None if timeout is None else time.monotonic() + timeout
        while not result:
            if deadline is None:
                self.wait()  # type: ignore[attr-defined]
            else:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self.wait(remaining)  # type: ignore[attr-defined]
            result = predicate()
        return result

    # Read-only views in the shape of CPython's private counters, which CPython's own test
    # suite inspects: "sleeping - woken" is the number of waiters still waiting, and the wait
    # semaphore's value is the number of wake-ups handed out and not yet taken.
    @property
    def _sleeping_count(self) -> _Counter:
        return _Counter(self._waiting)  # type: ignore[attr-defined]

    @property
    def _woken_count(self) -> _Counter:
        return _Counter(lambda: 0)

    @property
    def _wait_semaphore(self) -> _Counter:
        return _Counter(self._pending_wakeups)  # type: ignore[attr-defined]

    def __repr__(self) -> str:
        try:
            waiting: Any = self._waiting()  # type: ignore[attr-defined]
        except Exception:
            waiting = "unknown"
        return f"<{type(self).__name__}({self._lock!r}, {waiting})>"  # type: ignore[attr-defined]


class _EventExtras:
    def __repr__(self) -> str:
        status = "set" if self.is_set() else "unset"  # type: ignore[attr-defined]
        return f"<{type(self).__qualname__} at {id(self):#x} {status}>"


class _BarrierExtras:
    def __repr__(self) -> str:
        cls = type(self)
        where = f"<{cls.__module__}.{cls.__qualname__} at {id(self):#x}"
        if self.broken:  # type: ignore[attr-defined]
            return f"{where}: broken>"
        return f"{where}: waiters={self.n_waiting}/{self.parties}>"  # type: ignore[attr-defined]


_NOT_GRAFTED = {"__module__", "__dict__", "__weakref__", "__doc__", "__qualname__", "__slots__"}


def _graft(cls: type, *sources: type) -> None:
    """Adds the methods and properties defined in ``sources`` to the native type ``cls``."""
    for source in sources:
        for name, value in vars(source).items():
            if name not in _NOT_GRAFTED:
                setattr(cls, name, value)


_graft(Lock, _LockExtras, _SemLockView, Shareable, _asyncio.LockAsync, AsyncWith)
_graft(RLock, _RLockExtras, _SemLockView, Shareable, _asyncio.RLockAsync)
_graft(Semaphore, _SemaphoreExtras, _SemLockView, Shareable, _asyncio.SemaphoreAsync,
       AsyncWith)
_graft(BoundedSemaphore, _BoundedSemaphoreExtras)
_graft(Condition, _ConditionExtras, Shareable, _asyncio.ConditionAsync, ConditionWith)
_graft(Event, _EventExtras, Shareable, _asyncio.EventAsync)
_graft(Barrier, _BarrierExtras, Shareable, _asyncio.BarrierAsync)
_graft(RWLock, RWLockExtras, Shareable)
