"""What awaiting a primitive means on either backend: the argument checks, the RLock's
refusal (see docs/asyncio.md), and waiting in an executor thread where no Waker can watch
(the portable backend, FileLock)."""

from __future__ import annotations

import asyncio
import operator
import threading
import time
from typing import Any, Awaitable, Callable, Optional

from ._arguments import check_timeout


def deadline_of(block: Any, timeout: Any) -> Optional[float]:
    """The monotonic deadline of an ``acquire(block, timeout)``: None for none, now for
    ``block=False`` (after checking both arguments as the synchronous calls do)."""
    seconds = check_timeout(timeout)
    if not isinstance(block, bool):
        block = bool(operator.index(block))
    if not block:
        return time.monotonic()
    return None if seconds is None else time.monotonic() + seconds


class AsyncWith:
    """``async with x:`` for a primitive with ``acquire_async()`` and ``release()``: the
    hold is taken without blocking the loop and given back on the way out."""

    async def __aenter__(self) -> bool:
        return bool(await self.acquire_async())  # type: ignore[attr-defined]

    async def __aexit__(self, *exc: object) -> None:
        self.release()  # type: ignore[attr-defined]


class ConditionWith:
    """``async with cond:`` for a Condition whose lock can be awaited: the lock is taken
    without blocking the loop and given back on the way out."""

    async def __aenter__(self) -> bool:
        return bool(await self._lock.acquire_async())  # type: ignore[attr-defined]

    async def __aexit__(self, *exc: object) -> None:
        self.release()  # type: ignore[attr-defined]


class RLockAsync:
    async def acquire_async(self, block: Any = True, timeout: Any = None) -> bool:
        """Refused: an RLock belongs to a thread, and every task of an event loop runs in
        one, so two tasks would re-enter each other's hold. Await a Lock instead."""
        raise TypeError("an RLock cannot be awaited: it is owned by a thread, and the tasks "
                        "of an event loop share their thread; use a Lock")

    async def __aenter__(self) -> bool:
        return await self.acquire_async()

    async def __aexit__(self, *exc: object) -> None:
        raise TypeError("an RLock cannot be awaited")  # pragma: no cover (never entered)


SLICE = 0.1


async def in_executor_thread(take: Callable[[float], bool], give_back: Callable[[], None],
                             deadline: Optional[float]) -> bool:
    """Runs take(seconds) in an executor thread until it succeeds or the deadline passes.
    A task cancelled meanwhile leaves nothing taken: its thread stops at the next slice, and
    what it took after the cancellation is given back."""
    cancelled = threading.Event()

    def run() -> bool:
        while not cancelled.is_set():
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return take(0)
            if take(SLICE if left is None else min(SLICE, left)):
                if cancelled.is_set():
                    give_back()
                    return False
                return True
        return False

    future = asyncio.get_running_loop().run_in_executor(None, run)
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        cancelled.set()

        def undo(done: "asyncio.Future[bool]") -> None:
            if not done.cancelled() and done.exception() is None and done.result():
                give_back()  # it took just before it could see the cancellation
        future.add_done_callback(undo)
        raise


async def wait_for(wait: Callable[[Optional[float]], Awaitable[Any]],
                   predicate: Callable[[], Any], deadline: Optional[float]) -> Any:
    """``Condition.wait_for`` for a task, on any backend: awaits ``wait(seconds_left)`` until
    ``predicate()`` is true or the monotonic deadline passes; the predicate's last result."""
    result = predicate()
    while not result:
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            break
        await wait(left)
        result = predicate()
    return result


def end_condition_wait(cond: Any, notified: bool, error: Optional[BaseException],
                       cancelled: Optional[BaseException]) -> bool:
    """The end of a task's Condition wait, its lock held again: a notify it consumed but
    leaves without (an error, or a cancellation) goes on to another waiter; then the error or
    the cancellation is raised, else whether it was notified is returned."""
    if notified and (error is not None or cancelled is not None):
        cond.notify(1)
    if error is not None:
        raise error
    if cancelled is not None:
        raise cancelled
    return notified
