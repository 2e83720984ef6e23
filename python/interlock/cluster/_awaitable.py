"""The coroutine methods of the cluster's primitives (the same names as the native ones:
docs/asyncio.md). Each runs the synchronous operation in a thread of its own (_async.py)."""

from __future__ import annotations

import threading
from typing import Any, Callable, Optional, Tuple

from .._async_common import AsyncWith, ConditionWith
from .. import OwnerDiedError
from ._async import Abandoned, abandoned, in_thread

Outcome = Tuple[Any, Optional[BaseException]]


def _caught(call: Callable[[], Any]) -> Callable[[], Outcome]:
    """`call` made to return (result, None) or (None, the exception it raised): an error must
    reach the task only after the hold, if any, is the task's (OwnerDiedError comes with the
    lock held)."""
    def run() -> Outcome:
        try:
            return call(), None
        except BaseException as exc:  # noqa: B902 -- delivered to the task, which raises it
            return None, exc
    return run


def _raise_or_return(outcome: Outcome) -> Any:
    value, error = outcome
    if error is not None:
        raise error
    return value


def _held(lock: Any) -> bool:
    return lock._hold is not None  # this process holds it (by some thread)


def _move_hold_here(lock: Any) -> None:
    """This process's hold of `lock` becomes the calling thread's (Condition checks it)."""
    with lock._local:
        if lock._hold is not None:
            lock._hold.thread = threading.get_ident()


class LockAsync(AsyncWith):
    async def acquire_async(self, block: Any = True, timeout: Any = None) -> bool:
        """Await the lock without blocking the event loop, as ``acquire(block, timeout)``:
        True once held (by the awaiting task's thread), False once the timeout passed."""
        lock: Any = self

        def give_back(outcome: Outcome) -> None:
            if outcome[0] or isinstance(outcome[1], OwnerDiedError):
                lock.release()

        def adopt(outcome: Outcome) -> None:
            if outcome[0] or isinstance(outcome[1], OwnerDiedError):
                _move_hold_here(lock)

        outcome = await in_thread(_caught(lambda: lock.acquire(block, timeout)), give_back,
                                  adopt)
        return bool(_raise_or_return(outcome))


class SemaphoreAsync(AsyncWith):
    async def acquire_async(self, block: Any = True, timeout: Any = None) -> bool:
        """Await a permit without blocking the event loop, as ``acquire(block, timeout)``."""
        sem: Any = self

        def give_back(outcome: Outcome) -> None:
            if outcome[0]:
                sem.release()

        outcome = await in_thread(_caught(lambda: sem.acquire(block, timeout)), give_back)
        return bool(_raise_or_return(outcome))


class EventAsync:
    async def wait_async(self, timeout: Any = None) -> bool:
        """Await the flag without blocking the event loop, as ``wait(timeout)``."""
        event: Any = self
        return bool(_raise_or_return(await in_thread(_caught(lambda: event.wait(timeout)))))


class BarrierAsync:
    async def wait_async(self, timeout: Any = None) -> int:
        """Await the round without blocking the event loop, as ``wait(timeout)``: this
        party's index. A cancelled or timed-out wait breaks the barrier, as ``wait`` does."""
        barrier: Any = self
        return int(_raise_or_return(await in_thread(_caught(lambda: barrier.wait(timeout)))))


class ConditionAsync(ConditionWith):
    async def wait_async(self, timeout: Any = None) -> bool:
        """Await a notify without blocking the event loop, as ``wait(timeout)``. The lock (a
        cluster ``Lock``; a Condition over an RLock cannot be awaited) is given up meanwhile
        and is the awaiting task's thread's again when this returns, also when the task is
        cancelled, as asyncio.Condition's. A notify that a cancelled waiter received goes on
        to another waiter."""
        from ._lock import RLock

        cond: Any = self
        lock = cond._lock
        if isinstance(lock, RLock):
            raise TypeError("a Condition over an RLock cannot be awaited: an RLock is owned by "
                            "a thread, and the tasks of an event loop share their thread; "
                            "give the Condition a Lock")
        cond._check_owned("wait")

        def wait_there() -> bool:
            _move_hold_here(lock)  # the wait's thread holds it for the wait
            try:
                notified = bool(cond.wait(timeout))
            except Abandoned:
                return False  # cancelled: the wait has taken the lock back, in this thread
            if notified and abandoned():
                cond.notify(1)  # a notify this cancelled task cannot use goes to another
            return notified

        outcome = await in_thread(_caught(wait_there),
                                  on_loop=lambda outcome: _move_hold_here(lock),
                                  complete_on_cancel=True)
        return bool(_raise_or_return(outcome))

    async def wait_for_async(self, predicate: Callable[[], Any], timeout: Any = None) -> Any:
        """Await until ``predicate()`` is true, as ``wait_for()``: its last result."""
        from .._async_common import wait_for
        from ._primitive import deadline_of

        return await wait_for(self.wait_async, predicate, deadline_of(timeout))
