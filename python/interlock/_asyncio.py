"""Awaiting interlock's primitives on an asyncio event loop (native backend).

A task first tries its operation inline (no thread hop: an uncontended ``acquire_async``
costs one non-blocking ``acquire``). When it must wait, it announces itself on the primitive
as a sleeping thread would and hands the primitive's futex word to its event loop's watcher:
a :class:`_core.FutexRing` (io_uring futex waits, Linux 6.7+), whose descriptor the loop
polls, or else :class:`_core.Waker` threads that each sleep on up to ``Waker.CAPACITY`` words
at once and write the loop's eventfd when some of them are woken. The loop's reader
callback completes the futures of the watches that fired, and each task tries its operation
again, on the loop. The watcher never acquires anything for anyone, so a task cancelled at
any moment leaves no hold and loses no permit: it only withdraws its watch, and passes on a
wake-up it consumed.

Threads: none with a FutexRing; else one per ``Waker.CAPACITY`` (127) watches per event
loop (10,000 tasks waiting on 10,000 primitives use 79 threads). Tasks waiting on one word
share nothing but it.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import time
import weakref
from typing import Any, Callable, Dict, List, Optional

from ._async_common import AsyncWith, ConditionWith
from . import _core, _lifecycle
from ._arguments import check_timeout
from ._async_common import RLockAsync as RLockAsync  # noqa: F401 (grafted on RLock)
from ._async_common import deadline_of, end_condition_wait, wait_for

_tokens = itertools.count(1)
# (waker, token) -> 1 watching, 0 try now, -1 this Waker is full, 2 look again shortly
Step = Callable[[Any, int], int]
_POLL = "poll"
POLL_SECONDS = 0.002  # a robust lock's holder not yet recorded: a few instructions away


class _LoopWakers:
    """The Watchers of one event loop (its FutexRing, else Wakers and the eventfd they write),
    and the futures they complete."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        # No strong reference to the loop: when it is collected, so are its Watchers (the
        # Wakers' threads joined, the ring closed) and the eventfd, by the finalizer.
        self.loop = weakref.ref(loop)
        self.fds: List[int] = []  # the Wakers' eventfd, once there is a Waker
        self.wakers: List[Any] = []
        self.waiting: Dict[int, asyncio.Future[bool]] = {}
        ring = _core.FutexRing.open()
        if ring is not None:
            self.wakers.append(ring)
            loop.add_reader(ring.fd(), self._drain)
        self.finalizer = weakref.finalize(loop, _shut, self.wakers, self.fds)

    def _new_waker(self) -> Any:
        """A thread Waker (no FutexRing here, or it refused a watch), writing the eventfd."""
        if not self.fds:
            fd = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
            self.fds.append(fd)
            loop = self.loop()
            assert loop is not None  # a task of it is watching
            loop.add_reader(fd, self._drain)
        waker = _core.Waker(self.fds[0])
        self.wakers.append(waker)
        return waker

    def watch(self, step: Step, future: "asyncio.Future[bool]") -> Any:
        """Runs `step` on a Watcher with room: (token, watcher) when watching, None when there
        is nothing to watch (try the operation again), _POLL when nothing can be watched yet
        (look again shortly)."""
        token = next(_tokens)
        for waker in self.wakers + [None]:
            if waker is None:
                waker = self._new_waker()
            outcome = step(waker, token)
            if outcome == 1:
                self.waiting[token] = future
                self._complete(waker)  # what a ring took in while it submitted (rare)
                return token, waker
            if outcome == 0:
                return None
            if outcome == 2:
                return _POLL
        raise RuntimeError("a new Waker refused a watch")  # pragma: no cover

    def unwatch(self, token: int, waker: Any) -> bool:
        """Withdraws a watch: True if it had not fired (no wake-up was consumed for it)."""
        self.waiting.pop(token, None)
        still_waiting = bool(waker.unwatch(token))
        # A FutexRing takes in every completion while it removes a watch, after which its
        # descriptor is no longer readable: complete what fired meanwhile now.
        self._complete(waker)
        return still_waiting

    def _drain(self) -> None:
        for fd in self.fds:
            try:
                os.eventfd_read(fd)
            except BlockingIOError:
                pass
        for waker in self.wakers:
            self._complete(waker)

    def _complete(self, waker: Any) -> None:
        for token in waker.take_fired():
            future = self.waiting.pop(token, None)
            if future is not None and not future.done():
                future.set_result(True)


def _shut(wakers: List[Any], fds: List[int]) -> None:
    """A loop's Watchers and eventfd, once the loop is gone."""
    wakers.clear()  # each Waker joins its thread; a FutexRing closes
    for fd in fds:
        os.close(fd)


_by_loop: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopWakers]" = (
    weakref.WeakKeyDictionary())


def _wakers_of(loop: asyncio.AbstractEventLoop) -> _LoopWakers:
    wakers = _by_loop.get(loop)
    if wakers is None:
        wakers = _by_loop[loop] = _LoopWakers(loop)
    return wakers


def _all_wakers() -> List[Any]:
    return [waker for wakers in list(_by_loop.values()) for waker in wakers.wakers]


def _pause_before_fork() -> None:
    """No Waker thread runs across a fork: the process forks single-threaded (as far as
    interlock goes), and the parent's watches wait in the tables meanwhile."""
    for waker in _all_wakers():
        waker.pause()


def _resume_in_parent() -> None:
    """The Wakers start again from their loop, once the fork call has returned: CPython 3.13+
    counts the process's threads just after the parent's fork hooks, and warns of a fork of a
    multi-threaded process if a Waker thread is already back. Watches wait meanwhile."""
    for loop, wakers in list(_by_loop.items()):
        def resume(wakers: _LoopWakers = wakers) -> None:
            for waker in wakers.wakers:
                waker.resume()
        try:
            loop.call_soon_threadsafe(resume)
        except RuntimeError:  # the loop is closed: nothing waits for its Wakers
            resume()


def _forget_in_child() -> None:
    """The child's Wakers would watch for the parent's tasks: drop them (paused, they have no
    thread to join); the child makes its own on first use."""
    for wakers in list(_by_loop.values()):
        wakers.finalizer.detach()  # the eventfd stays open for the child's copy of the loop
        wakers.wakers.clear()
        wakers.waiting.clear()
    _by_loop.clear()


_lifecycle.register("core", before=_pause_before_fork, after_in_parent=_resume_in_parent,
                    after_in_child=_forget_in_child)


def _expire(future: "asyncio.Future[bool]") -> None:
    if not future.done():
        future.set_result(False)  # timed out: the task takes a last look


async def wait(attempt: Callable[[], bool], step: Step, deadline: Optional[float],
               leave: Callable[[bool], None] = lambda woken: None,
               after_watch: Callable[[], None] = lambda: None) -> bool:
    """Tries `attempt()` until it succeeds (True) or the deadline passes (False), watching
    through `step` in between. `leave(woken)` runs once at the end: `woken` when the last
    watch fired and the operation was not completed for it (its wake-up must go on).
    `after_watch()` runs after each watch ends, however it ends."""
    loop = asyncio.get_running_loop()
    wakers = _wakers_of(loop)
    woken = False
    try:
        while True:
            if attempt():
                woken = False
                return True
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return False
            future: asyncio.Future[bool] = loop.create_future()
            watched = wakers.watch(step, future)
            if watched is None:
                continue  # the word moved meanwhile: try again at once
            if watched == _POLL:
                after_watch()
                await asyncio.sleep(POLL_SECONDS if left is None else min(left, POLL_SECONDS))
                continue
            token, waker = watched
            timer = None if left is None else loop.call_later(left, _expire, future)
            try:
                fired = await future
            except BaseException:
                woken = not wakers.unwatch(token, waker)
                raise
            finally:
                if timer is not None:
                    timer.cancel()
                after_watch()
            if not fired:
                woken = not wakers.unwatch(token, waker)
                if attempt():  # a last look, as the synchronous waits take
                    woken = False
                    return True
                return False
            woken = True
    finally:
        leave(woken)


# ---- the coroutine methods of the native types (grafted by _native_sync) --------------------

def _pass_lock_wake(lock: Any, woken: bool) -> None:
    if woken:
        _core._async_lock_pass_wake(lock)


async def _acquire_robust(lock: Any, deadline: Optional[float]) -> bool:
    """A robust Lock: the watch also registers the holder's process with the death watch,
    which wakes the lock word when it ends; the task then takes the lock over."""
    ticket, died = [-1], [False]

    def step(waker: Any, token: int) -> int:
        outcome, ticket[0] = _core._async_robust_lock_watch(lock, waker, token)
        return int(outcome)

    def attempt() -> bool:
        result = int(_core._async_robust_lock_try(lock))
        died[0] = result == 2
        return result != 0

    def unwatch_holder() -> None:
        _core._async_death_unwatch(ticket[0])
        ticket[0] = -1

    if not await wait(attempt, step, deadline, after_watch=unwatch_holder):
        return False
    if died[0]:
        raise _core.OwnerDiedError(
            "the previous holder's process died while holding the lock; the lock is now held "
            "by the caller, and the state it protects may need repair")
    return True


class LockAsync(AsyncWith):
    async def acquire_async(self, block: Any = True, timeout: Any = None) -> bool:
        """Await the lock without blocking the event loop: True once acquired, False when
        `block` is false or the timeout passed first (a negative timeout means zero)."""
        lock: Any = self
        deadline = deadline_of(block, timeout)
        if lock.acquire(False):
            return True  # inline: no thread hop (a robust lock may raise OwnerDiedError)
        if deadline is not None and deadline <= time.monotonic():
            return False
        if _core._async_lock_is_robust(lock):
            return await _acquire_robust(lock, deadline)
        return await wait(lambda: bool(_core._async_lock_try(lock)),
                          lambda waker, token: int(_core._async_lock_watch(lock, waker, token)),
                          deadline,
                          lambda woken: _pass_lock_wake(lock, woken))


class SemaphoreAsync(AsyncWith):
    async def acquire_async(self, block: Any = True, timeout: Any = None) -> bool:
        """Await a permit without blocking the event loop: True once taken, False when
        `block` is false or the timeout passed first."""
        sem: Any = self
        deadline = deadline_of(block, timeout)
        if sem.acquire(False):
            return True
        if deadline is not None and deadline <= time.monotonic():
            return False
        _core._async_semaphore_join(sem)
        return await wait(lambda: bool(sem.acquire(False)),
                          lambda waker, token: int(_core._async_semaphore_watch(sem, waker,
                                                                                token)),
                          deadline,
                          lambda woken: _core._async_semaphore_leave(sem, woken))


class EventAsync:
    async def wait_async(self, timeout: Any = None) -> bool:
        """Await the flag without blocking the event loop: True if it was set when the wait
        started or at any moment since (even if clear() followed at once), False once the
        timeout passed."""
        event: Any = self
        seconds = check_timeout(timeout)
        since = int(_core._async_event_snapshot(event))
        if since & 1:
            return True
        if seconds == 0:
            return False
        deadline = None if seconds is None else time.monotonic() + seconds
        _core._async_event_join(event)
        watch = _EventWatch(event, since)
        return await wait(watch.changed, watch.step, deadline, watch.leave)


class _EventWatch:
    """One Event.wait_async's view of the flag: whether its epoch moved since the wait began
    (`since`, the snapshot's value then). A slotted object rather than three closures: an
    idle waiting task costs about a fifth less memory so (10,000 of them are benchmarked)."""

    __slots__ = ("event", "since")

    def __init__(self, event: Any, since: int) -> None:
        self.event, self.since = event, since

    def changed(self) -> bool:
        return int(_core._async_event_snapshot(self.event)) != self.since

    def step(self, waker: Any, token: int) -> int:
        return int(_core._async_event_watch(self.event, waker, token, self.since))

    def leave(self, woken: bool) -> None:
        _core._async_event_leave(self.event)


class ConditionAsync(ConditionWith):
    async def wait_async(self, timeout: Any = None) -> bool:
        """Await a notify without blocking the event loop, as ``wait()``: the lock (a
        ``Lock``; a Condition over an RLock cannot be awaited) is given up meanwhile and held
        again when this returns, also when the task is cancelled (as asyncio.Condition
        does). True when notified, False once the timeout passed."""
        cond: Any = self
        seconds = check_timeout(timeout)
        gen = int(_core._async_condition_enqueue(cond))  # checks the lock and its holder
        lock = cond._lock
        lock.release()
        deadline = None if seconds is None else time.monotonic() + seconds
        seen = [0]

        def attempt() -> bool:
            seen[0] = int(_core._async_condition_seen(cond))  # before the look: see async_wait
            return bool(_core._async_condition_try(cond, gen))

        notified, error = False, None
        try:
            notified = await wait(
                attempt,
                lambda waker, token: int(_core._async_condition_watch(cond, waker, token,
                                                                      seen[0])),
                deadline)
        except BaseException as exc:  # noqa: B902 -- the lock comes back first, whatever it is
            error = exc
        cancelled = await _take_back(lock)
        if not notified:
            notified = bool(_core._async_condition_withdraw(cond, gen))
        return end_condition_wait(cond, notified, error, cancelled)

    async def wait_for_async(self, predicate: Callable[[], Any],
                             timeout: Any = None) -> Any:
        """Await until ``predicate()`` is true, as ``wait_for()``: its last result."""
        seconds = check_timeout(timeout)
        return await wait_for(self.wait_async, predicate,
                              None if seconds is None else time.monotonic() + seconds)


async def _take_back(lock: Any) -> Optional[BaseException]:
    """Acquires `lock` however long it takes, even through cancellation: the cancellation
    that came meanwhile, if any, for the caller to raise once the lock is held."""
    cancelled: Optional[BaseException] = None
    while True:
        try:
            await lock.acquire_async()
            return cancelled
        except asyncio.CancelledError as exc:
            cancelled = exc


class BarrierAsync:
    async def wait_async(self, timeout: Any = None) -> int:
        """Await the other parties without blocking the event loop, as ``wait()``: this
        party's index, or ``threading.BrokenBarrierError`` when the barrier is or becomes
        broken, or the timeout (``timeout``, else the barrier's own) passes; a task that is
        cancelled while it waits breaks the barrier, as a thread leaving on an exception
        does."""
        import threading

        b: Any = self
        seconds = check_timeout(timeout if timeout is not None else b._timeout)
        deadline = None if seconds is None else time.monotonic() + seconds
        seen = [0]

        def watch(waker: Any, token: int) -> int:
            return int(_core._async_barrier_watch(b, waker, token, seen[0]))

        # Joining waits only while a full round's action runs.
        joined: List[Any] = []

        def arrive() -> bool:
            seen[0] = int(_core._async_barrier_seen(b))
            outcome, gen, index = _core._async_barrier_arrive(b)
            joined[:] = [outcome, gen, index]
            return bool(outcome != "not yet")

        try:
            if not await wait(arrive, watch, deadline):
                b.abort()  # could not even join in time: break, as on a timeout
                raise threading.BrokenBarrierError
        except asyncio.CancelledError:
            b.abort()
            raise
        outcome, gen, index = joined
        if outcome == "broken":
            raise threading.BrokenBarrierError
        if outcome == "last":
            action, ok = b._action, True
            try:
                if action is not None:
                    action()
            except BaseException:
                ok = False
                raise
            finally:
                finished = _core._async_barrier_finish(b, gen, index, ok)
            if finished != "released":
                raise threading.BrokenBarrierError
            return int(index)
        verdict: List[str] = []

        def resolved() -> bool:
            seen[0] = int(_core._async_barrier_seen(b))
            verdict[:] = [_core._async_barrier_check(b, gen, index)]
            return verdict[0] != "not yet"

        try:
            done = await wait(resolved, watch, deadline)
        except BaseException:
            b.abort()  # leaving on an exception (a cancellation) breaks the round
            raise
        result = verdict[0] if done else _core._async_barrier_time_out(b, gen, index)
        if result != "released":
            raise threading.BrokenBarrierError
        return int(index)
