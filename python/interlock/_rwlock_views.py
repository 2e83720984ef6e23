"""The lock-like views of an :class:`interlock.synchronize.RWLock` (``read_lock()`` and
``write_lock()``) and its repr, the same for every backend: each view's ``acquire`` and
``release`` are the lock's own bound methods, so a view adds no call of its own to them."""

from __future__ import annotations

from typing import Any, Callable, Tuple


class _View:
    __slots__ = ("_rwlock", "acquire", "release")
    _side = ""

    acquire: Callable[..., bool]
    release: Callable[[], None]

    def __init__(self, rwlock: Any) -> None:
        self._rwlock = rwlock
        self.acquire = getattr(rwlock, "acquire_" + self._side)
        self.release = getattr(rwlock, "release_" + self._side)

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *args: object) -> None:
        self.release()

    def __reduce__(self) -> Tuple[Any, ...]:
        # The lock travels (under its own pickling rules) and the child makes the view again.
        return (type(self), (self._rwlock,))

    def __repr__(self) -> str:
        return f"<{type(self).__name__} of {self._rwlock!r}>"


class ReadLock(_View):
    """The read side of an RWLock, as a lock: ``acquire(block=True, timeout=None)``,
    ``release()``, ``locked()`` and ``with``. Many threads and processes may hold it at once."""

    __slots__ = ()
    _side = "read"

    def locked(self) -> bool:
        """True while any thread of any process holds a read (a snapshot)."""
        return bool(self._rwlock._readers() > 0)


class WriteLock(_View):
    """The write side of an RWLock, as a lock: ``acquire(block=True, timeout=None)``,
    ``release()``, ``locked()`` and ``with``. One thread holds it, and nobody reads meanwhile.
    A ``with`` block that calls ``downgrade()`` ends by releasing the read hold it then has."""

    __slots__ = ()
    _side = "write"

    def __exit__(self, *args: object) -> None:
        # A block that downgraded its write hold ends holding a read: that is what it gives back.
        rw = self._rwlock
        if rw._owns_write() or not rw._own_reads():
            rw.release_write()
        else:
            rw.release_read()

    def locked(self) -> bool:
        """True while a writer holds the lock (a snapshot)."""
        return bool(self._rwlock._write_locked())


class RWLockExtras:
    """The Python-level methods of the RWLock classes."""

    def read_lock(self) -> ReadLock:
        """The read side as a lock-like object (``with rw.read_lock(): ...``)."""
        return ReadLock(self)

    def write_lock(self) -> WriteLock:
        """The write side as a lock-like object (``with rw.write_lock(): ...``)."""
        return WriteLock(self)

    def __repr__(self) -> str:
        rw: Any = self
        try:
            if rw._owns_write():
                state = "writer=this thread"
            elif rw._write_locked():
                state = "writer=another thread"
            else:
                state = f"readers={rw._readers()}"
            waiting = rw._waiting_writers()
        except Exception:
            state, waiting = "unknown", "unknown"
        robust = ", robust=True" if rw.robust else ""
        return (f"<{type(self).__name__}({state}, waiting writers={waiting}, "
                f"prefer={rw.prefer!r}{robust})>")
