"""Drop-in counterparts of ``multiprocessing.synchronize``'s classes.

Each class takes the same arguments as multiprocessing's, with ``ctx`` optional (the default
context when None). The hot methods (acquire, release, ``with``, wait, notify, is_set, ...)
are implemented natively in :mod:`interlock._core`; this module adds construction checks,
``repr`` and the pickling rules.
"""

from __future__ import annotations

import operator
import os
import threading
import time
from multiprocessing import process
from typing import Any, Callable, Optional, TypeVar

from . import _core
from ._sharing import Shareable, is_fork_context

__all__ = [
    "OwnerDiedError",
    "set_owner_check_interval",
    "Lock",
    "RLock",
    "Semaphore",
    "BoundedSemaphore",
    "Condition",
    "Event",
    "Barrier",
    "SEM_VALUE_MAX",
]

SEM_VALUE_MAX: int = _core.SEM_VALUE_MAX

_T = TypeVar("_T")


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


class _SemLockView:
    """The part of CPython's ``_semlock`` that multiprocessing itself calls (queues.py reads
    ``_semlock._get_value()`` and ``_semlock._is_zero()``), for primitives handed out through
    :func:`interlock.install`."""

    __slots__ = ()

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


OwnerDiedError = _core.OwnerDiedError


def _robust_flag(robust: Any) -> bool:
    if not isinstance(robust, bool):
        raise TypeError(f"robust must be a bool, not {type(robust).__name__}")
    return robust


def set_owner_check_interval(seconds: float) -> None:
    """How long a waiter on a robust lock sleeps between checks of the holder's process
    (default 0.05 s, so a dead holder is noticed within 0.1 s). Applies to this process."""
    kind = type(seconds)
    if not (hasattr(kind, "__float__") or hasattr(kind, "__index__")) or isinstance(seconds, str):
        raise TypeError(f"must be real number, not {kind.__name__}")
    value = float(seconds)
    if not (0.001 <= value <= 3600):
        raise ValueError("the owner check interval must be between 0.001 and 3600 seconds")
    _core._set_owner_check_interval(value)


class Lock(_SemLockView, Shareable, _core.Lock):
    """A non-recursive lock shared between processes: see ``multiprocessing.Lock``.

    ``acquire(block=True, timeout=None)``, ``release()``, ``locked()`` and the context
    manager protocol. Any process or thread may release it; releasing it while unlocked
    raises ``ValueError``.

    With ``robust=True``, a holder whose process dies (even by SIGKILL) does not strand the
    others: a waiter or later acquirer takes the lock over within about 100 ms and gets
    :class:`OwnerDiedError`, holding the lock (see docs/reliability.md).
    """

    __slots__ = ()

    def __init__(self, *, robust: bool = False, ctx: Optional[Any] = None) -> None:
        super().__init__(is_fork_context(ctx), _robust_flag(robust))

    def __repr__(self) -> str:
        try:
            name = _holder_name(self)
        except Exception:
            name = "unknown"
        return f"<{type(self).__name__}(owner={name})>"


class RLock(_SemLockView, Shareable, _core.RLock):
    """A recursive lock shared between processes: see ``multiprocessing.RLock``.

    The owning thread may acquire it again without blocking and must release it once per
    acquisition; a release by anyone else raises ``AssertionError``. ``robust=True`` as for
    :class:`Lock`; the taker-over holds it at depth 1.
    """

    __slots__ = ()

    def __init__(self, *, robust: bool = False, ctx: Optional[Any] = None) -> None:
        super().__init__(is_fork_context(ctx), _robust_flag(robust))

    def __repr__(self) -> str:
        try:
            if self._is_mine():
                name, count = _thread_qualified_process_name(), str(self._count())
            elif not self.locked():
                name, count = "None", "0"
            elif _held_in_this_process(self):
                name, count = "SomeOtherThread", "nonzero"
            else:
                name, count = "SomeOtherProcess", "nonzero"
        except Exception:
            name, count = "unknown", "unknown"
        return f"<{type(self).__name__}({name}, {count})>"


def _semaphore_value(value: Any) -> int:
    number = operator.index(value)
    if number < 0:
        raise ValueError("semaphore initial value must be >= 0")
    if number > SEM_VALUE_MAX:
        raise OverflowError(f"semaphore value must be <= SEM_VALUE_MAX ({SEM_VALUE_MAX})")
    return number


class Semaphore(_SemLockView, Shareable, _core.Semaphore):
    """A counting semaphore shared between processes: see ``multiprocessing.Semaphore``.

    ``acquire(block=True, timeout=None)``, ``release(n=1)``, ``get_value()`` and the
    context manager protocol.
    """

    __slots__ = ()

    def __init__(self, value: int = 1, *, ctx: Optional[Any] = None) -> None:
        super().__init__(_semaphore_value(value), SEM_VALUE_MAX, is_fork_context(ctx))

    def __repr__(self) -> str:
        try:
            value: Any = self.get_value()
        except Exception:
            value = "unknown"
        return f"<{type(self).__name__}(value={value})>"


class BoundedSemaphore(Semaphore):
    """A semaphore that refuses to be released above its initial value.

    See ``multiprocessing.BoundedSemaphore``. The bound is checked atomically: a release
    that would pass it raises ``ValueError`` and changes nothing.
    """

    __slots__ = ()

    def __init__(self, value: int = 1, *, ctx: Optional[Any] = None) -> None:
        value = _semaphore_value(value)
        _core.Semaphore.__init__(self, value, value, is_fork_context(ctx))

    def __repr__(self) -> str:
        try:
            value: Any = self.get_value()
        except Exception:
            value = "unknown"
        return f"<{type(self).__name__}(value={value}, maxvalue={self.maxvalue})>"


class Condition(Shareable, _core.Condition):
    """A condition variable shared between processes: see ``multiprocessing.Condition``.

    ``lock`` must be an interlock :class:`Lock` or :class:`RLock` (a new RLock when None).
    ``notify()`` and ``notify_all()`` never block.
    """

    __slots__ = ()

    def __init__(self, lock: Optional[Any] = None, *, ctx: Optional[Any] = None) -> None:
        fork_ctx = is_fork_context(ctx)
        if lock is None:
            lock = RLock.__new__(RLock)
            _core.RLock.__init__(lock, fork_ctx)  # RLock(ctx=ctx), without resolving ctx again
        super().__init__(lock, fork_ctx)

    def wait_for(self, predicate: Callable[[], _T], timeout: Optional[float] = None) -> _T:
        """Wait until ``predicate()`` is true, or the timeout passes; return its last value."""
        result = predicate()
        if result:
            return result
        deadline = None if timeout is None else time.monotonic() + timeout
        while not result:
            if deadline is None:
                self.wait()
            else:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self.wait(remaining)
            result = predicate()
        return result

    # Read-only views in the shape of CPython's private counters, which CPython's own test
    # suite inspects: "sleeping - woken" is the number of waiters still waiting, and the wait
    # semaphore's value is the number of wake-ups handed out and not yet taken.
    @property
    def _sleeping_count(self) -> "_Counter":
        return _Counter(self._waiting)

    @property
    def _woken_count(self) -> "_Counter":
        return _Counter(lambda: 0)

    @property
    def _wait_semaphore(self) -> "_Counter":
        return _Counter(self._pending_wakeups)

    def __repr__(self) -> str:
        try:
            waiting: Any = self._waiting()
        except Exception:
            waiting = "unknown"
        return f"<{type(self).__name__}({self._lock!r}, {waiting})>"


class _Counter:
    """A read-only counter with a semaphore's ``get_value()`` (see Condition)."""

    __slots__ = ("get_value",)

    def __init__(self, get_value: Callable[[], int]) -> None:
        self.get_value = get_value


class Event(Shareable, _core.Event):
    """An event flag shared between processes: see ``multiprocessing.Event``.

    ``set()`` takes no lock, so it is safe in a signal handler.
    """

    __slots__ = ()

    def __init__(self, *, ctx: Optional[Any] = None) -> None:
        super().__init__(is_fork_context(ctx))

    def __repr__(self) -> str:
        status = "set" if self.is_set() else "unset"
        return f"<{type(self).__qualname__} at {id(self):#x} {status}>"


class Barrier(Shareable, _core.Barrier):
    """A reusable barrier shared between processes: see ``multiprocessing.Barrier``.

    ``wait(timeout=None)`` returns a distinct index in ``range(parties)``; ``action`` runs
    in one party per round before any is released; timeouts, ``abort()`` and ``reset()``
    raise ``threading.BrokenBarrierError`` in the waiting parties.
    """

    __slots__ = ()

    def __init__(
        self,
        parties: int,
        action: Optional[Callable[[], Any]] = None,
        timeout: Optional[float] = None,
        *,
        ctx: Optional[Any] = None,
    ) -> None:
        parties = operator.index(parties)
        if parties < 1:
            raise ValueError("parties must be > 0")
        if parties > SEM_VALUE_MAX:
            raise OverflowError(f"parties must be <= {SEM_VALUE_MAX}")
        if action is not None and not callable(action):
            raise TypeError(f"action must be callable or None, not {type(action).__name__}")
        if timeout is not None:
            timeout = float(timeout)
            if timeout != timeout:
                raise ValueError("timeout must be a number, not NaN")
        super().__init__(parties, action, timeout, is_fork_context(ctx))

    def __repr__(self) -> str:
        cls = type(self)
        where = f"<{cls.__module__}.{cls.__qualname__} at {id(self):#x}"
        if self.broken:
            return f"{where}: broken>"
        return f"{where}: waiters={self.n_waiting}/{self.parties}>"
