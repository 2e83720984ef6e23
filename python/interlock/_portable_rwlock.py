"""The portable backend's RWLock (docs/platforms.md): the native one's API and policies, built
on a multiprocessing Condition and a small shared array, for systems without the native core.

The shared array holds the readers holding, the writers waiting, and the write holder's pid
and native thread id (0 when none). Every change is made under the condition's lock, and
every change that can let a waiter in notifies all waiters, who re-check. Each process keeps
its threads' read holds, to refuse a release of a hold the thread does not have.
"""

from __future__ import annotations

import os
import threading
import time
from multiprocessing import context
from multiprocessing import synchronize as _mp
from typing import Any, Dict, Optional, Tuple

from ._rwlock_views import RWLockExtras

_READERS, _WAITING, _WRITER_PID, _WRITER_TID = range(4)


def check_prefer(prefer: Any) -> str:
    if not isinstance(prefer, str):
        raise TypeError(f"prefer must be a str, not {type(prefer).__name__}")
    if prefer not in ("writers", "readers"):
        raise ValueError(f"prefer must be 'writers' or 'readers', not {prefer!r}")
    return prefer


class RWLock(RWLockExtras):
    def __init__(self, *, prefer: str = "writers", robust: bool = False,
                 ctx: Optional[Any] = None) -> None:
        from ._portable_sync import _check_robust, _context  # no import cycle

        self._prefer = check_prefer(prefer)
        _check_robust(robust)
        ctx = _context(ctx)
        self._cond = _mp.Condition(ctx.Lock(), ctx=ctx)
        self._state = ctx.Array("q", 4, lock=False)
        self._holds: Dict[int, int] = {}  # native thread id -> read holds, this process only
        self._pid = os.getpid()

    @property
    def prefer(self) -> str:
        return self._prefer

    @property
    def robust(self) -> bool:
        return False

    def __getstate__(self) -> Tuple[Any, ...]:
        context.assert_spawning(self)
        return (self._prefer, self._cond, self._state)

    def __setstate__(self, state: Tuple[Any, ...]) -> None:
        self._prefer, self._cond, self._state = state
        self._holds, self._pid = {}, os.getpid()

    # -- this thread's holds

    def _my_holds(self) -> Dict[int, int]:
        if self._pid != os.getpid():  # a fork child: the parent's holds are not its own
            self._holds, self._pid = {}, os.getpid()
        return self._holds

    def _is_writer(self) -> bool:
        s = self._state
        return bool(s[_WRITER_PID] == os.getpid() and s[_WRITER_TID] == threading.get_native_id())

    # -- waiting

    def _wait(self, ready: Any, block: Any, timeout: Any) -> bool:
        """With the condition's lock held: waits until ready(), per block and timeout."""
        from ._portable_sync import _block, _timeout

        blocking, limit = _block(block), _timeout(timeout)
        if ready():
            return True
        if not blocking or limit == 0:
            return False
        deadline = None if limit is None else time.monotonic() + limit
        while not ready():
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return False
            self._cond.wait(remaining)
        return True

    def acquire_read(self, block: bool = True, timeout: Optional[float] = None) -> bool:
        """Take a read hold; False if the timeout elapsed (or, with block=False, if a reader
        cannot enter now)."""
        holds = self._my_holds()
        tid = threading.get_native_id()
        nested = holds.get(tid, 0) > 0
        s = self._state

        def ready() -> bool:
            return bool(s[_WRITER_PID] == 0 and (
                nested or self._prefer == "readers" or s[_WAITING] == 0))

        with self._cond:
            if not self._wait(ready, block, timeout):
                return False
            s[_READERS] += 1
        holds[tid] = holds.get(tid, 0) + 1
        return True

    def release_read(self) -> None:
        """Give back one of the calling thread's read holds."""
        holds = self._my_holds()
        tid = threading.get_native_id()
        with self._cond:
            if holds.get(tid, 0) == 0:
                if self._state[_READERS] == 0:
                    raise ValueError("release_read: the lock is not held for reading")
                raise AssertionError(
                    "release_read: the calling thread does not hold the lock for reading")
            holds[tid] -= 1
            if holds[tid] == 0:
                del holds[tid]
            self._state[_READERS] -= 1
            if self._state[_READERS] == 0:
                self._cond.notify_all()

    def acquire_write(self, block: bool = True, timeout: Optional[float] = None) -> bool:
        """Take the write hold; False if the timeout elapsed (or, with block=False, if anyone
        holds the lock)."""
        s = self._state

        def ready() -> bool:
            return bool(s[_WRITER_PID] == 0 and s[_READERS] == 0)

        with self._cond:
            s[_WAITING] += 1
            try:
                got = self._wait(ready, block, timeout)
            finally:
                s[_WAITING] -= 1
            if not got:
                self._cond.notify_all()  # readers held back by this writer may enter
                return False
            s[_WRITER_PID], s[_WRITER_TID] = os.getpid(), threading.get_native_id()
        return True

    def _check_writer(self, what: str) -> None:
        if self._state[_WRITER_PID] == 0:
            raise ValueError(f"{what}: the lock is not held for writing")
        if not self._is_writer():
            raise AssertionError(f"{what}: the calling thread does not hold the lock for writing")

    def release_write(self) -> None:
        """Give back the calling thread's write hold."""
        with self._cond:
            self._check_writer("release_write")
            self._state[_WRITER_PID] = self._state[_WRITER_TID] = 0
            self._cond.notify_all()

    def downgrade(self) -> None:
        """Turn the calling thread's write hold into a read hold, atomically."""
        holds = self._my_holds()
        tid = threading.get_native_id()
        with self._cond:
            self._check_writer("downgrade")
            self._state[_WRITER_PID] = self._state[_WRITER_TID] = 0
            self._state[_READERS] += 1
            self._cond.notify_all()
        holds[tid] = holds.get(tid, 0) + 1

    # -- snapshots, as the native type names them

    def _readers(self) -> int:
        return int(self._state[_READERS])

    def _write_locked(self) -> bool:
        return bool(self._state[_WRITER_PID] != 0)

    def _waiting_writers(self) -> int:
        return int(self._state[_WAITING])

    def _own_reads(self) -> int:
        return self._my_holds().get(threading.get_native_id(), 0)

    def _owns_write(self) -> bool:
        return self._is_writer()


RWLock.__module__ = "interlock.synchronize"
