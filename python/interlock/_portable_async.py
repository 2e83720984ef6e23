"""The coroutine methods on the portable backend (docs/platforms.md), where no Waker exists:
a waiting task's wait runs in a thread of the loop's default executor, in short slices
(``_async_common.in_executor_thread``), so that a cancelled task's thread stops within a
slice and gives back anything it took after the cancellation. It costs a thread per waiting task, as
``run_in_executor`` does; the native core's Waker is what avoids that.

Condition and Barrier follow multiprocessing's Condition protocol (its three semaphores:
sleeping, wait and woken) with the waiting part in a thread of its own, not one of the
default executor's few workers: a ``notify()`` waits until each woken sleeper has counted
itself woken, so a sleeper queued behind busy workers would stall the notifier. The
condition's lock is always taken on the loop thread, since multiprocessing's Condition
checks that its caller's thread holds it; a thread only waits for the lock to come free.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any, Callable, Optional, TypeVar

from ._async_common import AsyncWith
from ._arguments import check_timeout
from ._async_common import RLockAsync as RLockAsync  # noqa: F401 (the RLock class)
from ._async_common import (SLICE, deadline_of, end_condition_wait, in_executor_thread,
                            wait_for)

_T = TypeVar("_T")


class LockAsync(AsyncWith):
    async def acquire_async(self, block: Any = True, timeout: Any = None) -> bool:
        """Await the lock (in an executor thread on this backend): see docs/asyncio.md."""
        lock: Any = self
        deadline = deadline_of(block, timeout)
        if lock.acquire(False):
            return True
        if deadline is not None and deadline <= time.monotonic():
            return False
        return await in_executor_thread(lambda seconds: bool(lock.acquire(True, seconds)),
                                        lock.release, deadline)


class EventAsync:
    async def wait_async(self, timeout: Any = None) -> bool:
        """Await the flag (in an executor thread on this backend): see docs/asyncio.md."""
        event: Any = self
        seconds = check_timeout(timeout)
        if event.is_set():
            return True
        if seconds == 0:
            return False
        deadline = None if seconds is None else time.monotonic() + seconds
        return await in_executor_thread(lambda s: bool(event.wait(s)), lambda: None,
                                        deadline)


def _in_own_thread(call: Callable[[], _T]) -> "asyncio.Future[_T]":
    """The outcome of call(), run in a new daemon thread started before this returns (a
    sleeper that a notify() on the loop thread waits for must not wait for the loop). A task
    that stops awaiting it leaves the call to run to its end: every call given here is
    harmless to finish."""
    loop = asyncio.get_running_loop()
    future: "asyncio.Future[_T]" = loop.create_future()

    def settle(ok: bool, value: Any) -> None:
        if not future.done():
            future.set_result(value) if ok else future.set_exception(value)

    def run() -> None:
        try:
            value: Any = call()
            ok = True
        except BaseException as exc:  # noqa: B902 -- delivered to the task
            value, ok = exc, False
        try:
            loop.call_soon_threadsafe(settle, ok, value)
        except RuntimeError:
            pass  # the loop is closed: nobody waits for it

    threading.Thread(target=run, name="interlock-portable-await", daemon=True).start()
    return future


async def _take_on_loop(lock: Any) -> None:
    """Acquires `lock` on the loop thread (so that it counts as this thread's): while it is
    held elsewhere, a thread waits for it to come free (takes it and gives it back), and the
    loop tries again."""
    while not lock.acquire(False):
        await asyncio.shield(_in_own_thread(lambda: lock.release() if lock.acquire() else None))


async def _take_back(lock: Any, count: int) -> Optional[BaseException]:
    """Acquires `lock` `count` times (an RLock's recursion) even through cancellation: the
    cancellation that came meanwhile, if any, for the caller to raise once it is held."""
    cancelled: Optional[BaseException] = None
    while True:
        try:
            await _take_on_loop(lock)
            break
        except asyncio.CancelledError as exc:
            cancelled = exc
    for _ in range(count - 1):
        lock.acquire()  # recursion on a held RLock: never waits
    return cancelled


async def condition_wait(cond: Any, deadline: Optional[float]) -> bool:
    """multiprocessing's ``Condition.wait`` for a task: True when notified, False once the
    deadline passed. The lock is held again when this returns or raises; a notify that a
    cancelled task consumed is passed on to another waiter."""
    lock = cond._lock
    if not lock._semlock._is_mine():
        raise AssertionError("must acquire() condition before using wait_async()")
    count = lock._semlock._count()
    cond._sleeping_count.release()
    for _ in range(count):
        lock.release()
    stop = threading.Event()

    def sleep() -> bool:
        try:
            while not stop.is_set():
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return bool(cond._wait_semaphore.acquire(False))
                if cond._wait_semaphore.acquire(True, SLICE if left is None else
                                                min(SLICE, left)):
                    return True
            return False
        finally:
            cond._woken_count.release()  # counted woken (or gone), as multiprocessing's does

    waiting = _in_own_thread(sleep)
    notified, error = False, None
    try:
        notified = await asyncio.shield(waiting)
    except asyncio.CancelledError as exc:
        error = exc
        stop.set()
        while not waiting.done():  # at most one slice: whether a notify was consumed
            try:
                await asyncio.shield(waiting)
            except asyncio.CancelledError:
                pass
        notified = waiting.result()
    return end_condition_wait(cond, notified, error, await _take_back(lock, count))


class ConditionAsync:
    async def __aenter__(self) -> bool:
        await _take_on_loop(_plain_lock(self))
        return True

    async def __aexit__(self, *exc: object) -> None:
        self.release()  # type: ignore[attr-defined]

    async def wait_async(self, timeout: Any = None) -> bool:
        """Await a notify (a thread sleeps for the task on this backend): see
        docs/asyncio.md. The lock (a ``Lock``) is held again when this returns or raises."""
        seconds = check_timeout(timeout)
        _plain_lock(self)
        return await condition_wait(self, None if seconds is None else
                                    time.monotonic() + seconds)

    async def wait_for_async(self, predicate: Callable[[], Any], timeout: Any = None) -> Any:
        """Await until ``predicate()`` is true, as ``wait_for()``: its last result."""
        seconds = check_timeout(timeout)
        _plain_lock(self)
        return await wait_for(self.wait_async, predicate,
                              None if seconds is None else time.monotonic() + seconds)


def _plain_lock(cond: Any) -> Any:
    from ._portable_sync import Lock

    if not isinstance(cond._lock, Lock):
        raise TypeError("only a Condition over a Lock can be awaited (an RLock cannot be)")
    return cond._lock


class BarrierAsync:
    async def wait_async(self, timeout: Any = None) -> int:
        """Await the other parties, as ``wait()``: this party's index, or
        ``threading.BrokenBarrierError`` when the barrier is or becomes broken or the timeout
        passes; a task cancelled while it waits breaks the barrier. threading's Barrier
        algorithm, run by the task over the barrier's shared state."""
        b: Any = self
        seconds = check_timeout(timeout if timeout is not None else b._timeout)
        deadline = None if seconds is None else time.monotonic() + seconds
        cond = b._cond
        await _take_on_loop(cond._lock)
        try:
            while b._state in (-1, 1):  # the last round still draining or resetting
                await self._wait_or_break(cond, deadline)
            if b._state < 0:
                raise threading.BrokenBarrierError
            index = b._count
            b._count += 1
            try:
                if index + 1 == b._parties:
                    b._release()  # runs the action; breaks the barrier if it raises
                else:
                    while b._state == 0:
                        await self._wait_or_break(cond, deadline)
                    if b._state < 0:
                        raise threading.BrokenBarrierError
                return int(index)
            finally:
                b._count -= 1
                b._exit()
        finally:
            cond.release()

    async def _wait_or_break(self, cond: Any, deadline: Optional[float]) -> None:
        b: Any = self
        try:
            timed_out = not await condition_wait(cond, deadline) and (
                deadline is not None and deadline <= time.monotonic())
        except asyncio.CancelledError:
            b._break()  # leaving on a cancellation breaks the round
            raise
        if timed_out:
            b._break()
            raise threading.BrokenBarrierError
