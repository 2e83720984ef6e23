"""The portable backend of :mod:`interlock.synchronize`: multiprocessing's own classes behind
interlock's API, for systems without the native core (docs/platforms.md).

Each class is a subclass of ``multiprocessing.synchronize``'s, so it shares, pickles and
behaves as multiprocessing's does: POSIX named semaphores on macOS and other Unixes, kernel
semaphores on Windows. What this module adds is interlock's API and argument checking:
``ctx`` is optional, a timeout is checked as the native backend checks it (NaN raises
ValueError, a negative one means zero, an infinite or huge one waits forever),
``Semaphore.release(n)``, ``locked()`` and ``set_owner_check_interval()``.

What it cannot add is documented as absent: ``robust=True`` raises NotImplementedError (a
dead holder's lock cannot be taken over without the native core), OwnerDiedError is never
raised, and the scale is multiprocessing's (one semaphore, and on POSIX one file descriptor,
per primitive). The behaviours docs/differences.md lists under "CPython" are this backend's.
"""

from __future__ import annotations

import multiprocessing
import operator
from multiprocessing import context
from multiprocessing import synchronize as _mp
from typing import Any, Callable, Optional

from . import _portable_async
from ._arguments import check_owner_check_interval, check_timeout

SEM_VALUE_MAX: int = int(getattr(_mp, "SEM_VALUE_MAX"))  # not in the type stubs

# Timeouts above this wait forever, as in the native backend (a timespec would overflow).
_FOREVER = 1e9

ROBUST_UNSUPPORTED = ("robust=True needs interlock's native core (Linux): on this system the "
                      "primitives are multiprocessing's own, and a lock whose holder died stays "
                      "held (docs/platforms.md)")


class OwnerDiedError(RuntimeError):
    """Raised by robust locks of the native backend; never raised by this one."""


class SegmentError(ValueError):
    """Raised by the native backend for a foreign shared segment; never raised by this one."""


def set_owner_check_interval(seconds: float) -> None:
    """Checked as the native backend checks it; there are no robust locks to apply it to."""
    check_owner_check_interval(seconds)


def _timeout(timeout: Any) -> Optional[float]:
    """A timeout as the native backend reads it: None or a number of seconds >= 0 (NaN and
    non-numbers refused, a huge one meaning forever)."""
    value = check_timeout(timeout)
    return None if value is None or value > _FOREVER else value


def _block(block: Any) -> bool:
    """``block`` as the native backend reads it: an int-like (bool included) that fits a C
    long, else TypeError or OverflowError."""
    value = operator.index(block)
    if not -(2**63) <= value < 2**63:
        raise OverflowError("block does not fit a C long")
    return value != 0


def _context(ctx: Optional[Any]) -> Any:
    if ctx is None:
        return multiprocessing.get_context()
    if not isinstance(ctx, context.BaseContext) and not hasattr(ctx, "get_start_method"):
        raise TypeError(f"ctx must be a multiprocessing context, not {type(ctx).__name__}")
    return ctx


def _check_robust(robust: Any) -> None:
    if not isinstance(robust, bool):  # as the native backend checks it
        raise TypeError(f"robust must be a bool, not {type(robust).__name__}")
    if robust:
        raise NotImplementedError(ROBUST_UNSUPPORTED)


def _check_value(value: Any) -> int:
    checked: int = operator.index(value)
    if checked < 0:
        raise ValueError("semaphore initial value must be >= 0")
    if checked > SEM_VALUE_MAX:
        raise OverflowError(f"semaphore initial value must be <= {SEM_VALUE_MAX}")
    return checked


class _SemLockAPI:
    """interlock's acquire/release/locked over a multiprocessing SemLock. multiprocessing binds
    ``acquire`` and ``release`` per instance (``_make_methods``), so ours are bound there too."""

    _semlock: Any

    def _make_methods(self) -> None:
        semlock = self._semlock

        def acquire(block: bool = True, timeout: Optional[float] = None) -> bool:
            return bool(semlock.acquire(_block(block), _timeout(timeout)))

        self.acquire = acquire
        self.release = semlock.release

    def locked(self) -> bool:
        """Whether some thread (of any process) holds it."""
        return bool(self._semlock._is_zero())

    def _is_mine(self) -> bool:
        """Whether the calling thread holds it (the native types' name for this)."""
        return bool(self._semlock._is_mine())

    def _count(self) -> int:
        """How many times the calling thread holds it."""
        return int(self._semlock._count())


class _LockAPI(_SemLockAPI):
    """Lock and RLock: ``robust`` is refused (NotImplementedError), and reads False."""

    def __init__(self, *, robust: bool = False, ctx: Optional[Any] = None) -> None:
        _check_robust(robust)
        super().__init__(ctx=_context(ctx))  # type: ignore[call-arg]  # multiprocessing's

    @property
    def robust(self) -> bool:
        return False


class Lock(_LockAPI, _portable_async.LockAsync, _mp.Lock):
    pass


class RLock(_LockAPI, _portable_async.RLockAsync, _mp.RLock):
    pass


class _SemaphoreAPI(_SemLockAPI, _portable_async.LockAsync):
    def _make_methods(self) -> None:
        super()._make_methods()
        release_one = self._semlock.release

        semlock = self._semlock
        bound = int(semlock.maxvalue)

        def release(n: int = 1) -> None:
            count = operator.index(n)
            if count < 1:
                raise ValueError("n must be one or more")
            # All or nothing where the value can be read (not on macOS): the bound is checked
            # before any permit is added. multiprocessing's own check still guards each one.
            if count > bound:
                raise ValueError("semaphore or lock released too many times")
            if count > 1:
                try:
                    value = int(semlock._get_value())
                except NotImplementedError:
                    value = None
                if value is not None and value + count > bound:
                    raise ValueError("semaphore or lock released too many times")
            for _ in range(count):
                release_one()

        self.release = release


class Semaphore(_SemaphoreAPI, _mp.Semaphore):
    def __init__(self, value: int = 1, *, ctx: Optional[Any] = None) -> None:
        super().__init__(_check_value(value), ctx=_context(ctx))


class BoundedSemaphore(_SemaphoreAPI, _mp.BoundedSemaphore):
    def __init__(self, value: int = 1, *, ctx: Optional[Any] = None) -> None:
        super().__init__(_check_value(value), ctx=_context(ctx))


class Condition(_portable_async.ConditionAsync, _mp.Condition):
    def __init__(self, lock: Optional[Any] = None, *, ctx: Optional[Any] = None) -> None:
        ctx = _context(ctx)
        # As in the native backend, only interlock's locks: multiprocessing's Condition would
        # take any object, and a thread lock or a Semaphore would break it later.
        if lock is not None and not isinstance(lock, (Lock, RLock)):
            raise TypeError(
                f"Condition() needs an interlock Lock or RLock, not {type(lock).__name__}")
        # multiprocessing would make its own RLock (ctx.RLock()); the default is ours.
        super().__init__(RLock(ctx=ctx) if lock is None else lock, ctx=ctx)

    def wait(self, timeout: Optional[float] = None) -> bool:
        """Release the lock, wait for a notify or the timeout, take the lock again."""
        return bool(super().wait(_timeout(timeout)))

    def wait_for(self, predicate: Callable[[], Any], timeout: Optional[float] = None) -> Any:
        """Wait until ``predicate()`` is true, or the timeout passes; return its last value."""
        return super().wait_for(predicate, _timeout(timeout))


class Event(_portable_async.EventAsync, _mp.Event):
    def __init__(self, *, ctx: Optional[Any] = None) -> None:
        super().__init__(ctx=_context(ctx))

    def wait(self, timeout: Optional[float] = None) -> bool:
        """Block until the flag is set; False on timeout."""
        return bool(super().wait(_timeout(timeout)))


class Barrier(_portable_async.BarrierAsync, _mp.Barrier):
    def __init__(self, parties: int, action: Optional[Callable[[], Any]] = None,
                 timeout: Optional[float] = None, *, ctx: Optional[Any] = None) -> None:
        parties = operator.index(parties)
        if parties < 1:
            raise ValueError("parties must be >= 1")
        if action is not None and not callable(action):
            raise TypeError(f"action must be callable or None, not {type(action).__name__}")
        super().__init__(parties, action, _timeout(timeout), ctx=_context(ctx))

    def wait(self, timeout: Optional[float] = None) -> int:
        """Wait for the other parties; return this party's index (0 to parties - 1)."""
        return int(super().wait(_timeout(timeout)))


# The public classes are interlock.synchronize's on both backends: a repr, a pickle by
# reference and type(x).__module__ name that module, whichever backend defined them.
for _cls in (Lock, RLock, Semaphore, BoundedSemaphore, Condition, Event, Barrier):
    _cls.__module__ = "interlock.synchronize"
del _cls
