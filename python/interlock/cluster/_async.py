"""Awaiting the cluster's primitives on an asyncio event loop.

The cluster's operations are blocking RPCs to etcd, so an awaited one runs its synchronous
call in a thread of its own, started for that wait and ended with it, and the loop gets the
outcome through ``call_soon_threadsafe``. A waiting task therefore costs one thread while it
waits (not one of the loop's default executor's few workers, which a Barrier's parties could
exhaust and deadlock), and nothing once it is done. The thread sleeps where every cluster
wait sleeps: on the session's standing watch (``Primitive._wait_for_change``).

Cancellation. A cancelled task's thread is told to abandon its wait: at its next look at the
watch (within 0.25 s) ``_wait_for_change`` raises :class:`Abandoned`, and the wait leaves as
it leaves on Ctrl-C (its queue key deleted, a Barrier broken, a Condition's lock taken back).
What the thread acquired before it could notice is given back at once, in the thread: a
cancelled task never leaves a hold or a permit behind. A Condition waiter holds its lock
again before its CancelledError propagates, as asyncio.Condition's does.

Ownership. A cluster Lock's hold belongs to the thread that took it (a Condition checks it),
so an acquisition made in the wait's thread is handed to the awaiting task's thread before
the task resumes, and a Condition's hold goes to the wait's thread for the wait and back.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import Any, Callable, Iterator, Optional, TypeVar

_T = TypeVar("_T")
_here = threading.local()  # .abandon: the Event of the awaited call this thread runs


class Abandoned(BaseException):
    """Raised in a wait's thread when the task that awaited it was cancelled. A
    BaseException, as KeyboardInterrupt is: the wait cleans up as it does on Ctrl-C."""


def check_abandoned() -> None:
    """Raises Abandoned in a thread whose awaiting task was cancelled (and that is not inside
    :func:`finishing`); nothing elsewhere."""
    if abandoned() and not getattr(_here, "finishing", 0):
        raise Abandoned()


def abandoned() -> bool:
    """Whether this thread runs an awaited call whose task was cancelled."""
    abandon = getattr(_here, "abandon", None)
    return abandon is not None and abandon.is_set()


@contextlib.contextmanager
def finishing() -> Iterator[None]:
    """A part of a wait that must complete even for a cancelled task (a Condition taking its
    lock back): no Abandoned inside."""
    _here.finishing = getattr(_here, "finishing", 0) + 1
    try:
        yield
    finally:
        _here.finishing -= 1


async def in_thread(call: Callable[[], _T], give_back: Optional[Callable[[_T], None]] = None,
                    on_loop: Optional[Callable[[_T], None]] = None,
                    complete_on_cancel: bool = False) -> _T:
    """Runs `call()` in a thread of its own and returns (or raises) its outcome.

    - `give_back(result)`, run in that thread, undoes a result the cancelled task will never
      see (an acquisition made just as it was cancelled).
    - `on_loop(result)` runs on the loop thread before the task resumes with the result (it
      hands a hold to the task's thread).
    - `complete_on_cancel`: a cancelled task still waits for the call to end (it abandons the
      wait, which then finishes what it must) and runs `on_loop`, and only then raises
      CancelledError (Condition.wait_async)."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[Any] = loop.create_future()
    abandon = threading.Event()
    handover = threading.Lock()  # orders "delivered" against "cancelled"
    state = {"delivered": False, "cancelled": False}

    def settle(ok: bool, value: Any) -> None:  # on the loop
        if future.done():
            return
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)

    def run() -> None:
        _here.abandon = abandon
        try:
            value: Any = call()
            ok = True
        except Abandoned:
            value, ok = None, None
        except BaseException as exc:  # delivered to the task, which raises it
            value, ok = exc, False
        if ok is None and not complete_on_cancel:
            return  # abandoned: it cleaned up, and nobody waits for it
        with handover:
            cancelled = state["cancelled"] and not complete_on_cancel
            state["delivered"] = True
        if cancelled:
            if ok and give_back is not None:
                give_back(value)
            return
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody to tell
            loop.call_soon_threadsafe(settle, ok is not False, value)
            return
        if ok and give_back is not None:
            give_back(value)

    threading.Thread(target=run, name="interlock-cluster-await", daemon=True).start()
    try:
        result = await asyncio.shield(future)
    except asyncio.CancelledError:
        with handover:
            state["cancelled"] = True
            delivered = state["delivered"]
        abandon.set()
        if complete_on_cancel:
            while not future.done():  # the wait finishes (its lock taken back) first
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.shield(future)
            if future.exception() is None and on_loop is not None:
                on_loop(future.result())
        elif delivered and give_back is not None:
            # Delivered just before the cancel (the result is set, or about to be): the task
            # will not use it, so it goes back, off the loop (it is an RPC).
            def undo(done: "asyncio.Future[Any]") -> None:
                if done.exception() is None:
                    threading.Thread(target=give_back, args=(done.result(),),
                                     daemon=True).start()
            future.add_done_callback(undo)
        raise
    if on_loop is not None:
        on_loop(result)
    return result  # type: ignore[no-any-return]
