"""Waiting: the CPU an idle waiter burns, how soon Ctrl-C reaches a blocked main thread, and how
soon a robust lock's waiter finds that its holder died.

Every measurement runs in a freshly forked process, so that its resource usage counts the
waiter alone (and, for interlock's robust lock, the watcher thread that wakes it).
"""

from __future__ import annotations

import os
import resource
import signal
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

from .peers import FORK, Peer, Unsupported
from .timing import Row

# (label, kind, constructor args, robust)
KINDS: List[Tuple[str, str, Tuple[Any, ...], bool]] = [
    ("Lock.acquire()", "Lock", (), False),
    ("RLock.acquire()", "RLock", (), False),
    ("Semaphore.acquire()", "Semaphore", (0,), False),
    ("Event.wait()", "Event", (), False),
    ("Condition.wait()", "Condition", (), False),
    ("Barrier(2).wait()", "Barrier", (2,), False),
    ("robust Lock.acquire()", "Lock", (), True),
]

Block = Callable[[Optional[float]], Any]


class _Waitable:
    """A primitive of one peer, blocked so that a child's wait on it sleeps: `block(timeout)`
    is the waiter's call, `unblock()` the parent's call that ends an untimed wait, and
    `warm_up()` a short wait on a spare one, so that what is measured is a waiter's cost once
    its thread and process have waited before (a long-lived waiter's steady state)."""

    def __init__(self, peer: Peer, kind: str, args: Tuple[Any, ...], robust: bool) -> None:
        self.posix = peer.name == "posix_ipc"
        self.kind = kind
        self.obj = self._blocked(peer, kind, args, robust)
        self.spare = self._blocked(peer, kind, args, robust)

    @staticmethod
    def _blocked(peer: Peer, kind: str, args: Tuple[Any, ...], robust: bool) -> Any:
        if robust:
            if peer.name == "interlock":
                from interlock import synchronize

                obj = synchronize.Lock(robust=True, ctx=FORK)
            elif peer.name == "multiprocessing":
                obj = peer.make("Lock")  # CPython has no robust lock: its plain Lock
            else:
                raise Unsupported(f"{peer.name} has no robust lock")
        else:
            obj = peer.make(kind, *args)
        if kind in ("Lock", "RLock"):
            obj.acquire()  # held by the parent
        return obj

    def warm_up(self) -> None:
        self._block(self.spare, 0.001)

    def block(self, timeout: Optional[float]) -> None:
        self._block(self.obj, timeout)

    def _block(self, obj: Any, timeout: Optional[float]) -> None:
        kind = self.kind
        if kind in ("Lock", "RLock", "Semaphore"):
            if self.posix:
                try:
                    obj.acquire(timeout)  # posix_ipc: the timeout is the first argument
                except Exception:  # posix_ipc.BusyError when the timeout passes
                    pass
            else:
                obj.acquire(timeout=timeout)
        elif kind == "Event":
            obj.wait(timeout)
        elif kind == "Condition":
            with obj:
                obj.wait(timeout)
        elif kind == "Barrier":
            try:
                obj.wait(timeout)
            except threading.BrokenBarrierError:
                pass

    def unblock(self) -> None:
        obj, kind = self.obj, self.kind
        if kind in ("Lock", "RLock", "Semaphore"):
            obj.release()
        elif kind == "Event":
            obj.set()
        elif kind == "Condition":
            with obj:
                obj.notify_all()
        elif kind == "Barrier":
            obj.wait()


def _wait_for(flag: Any) -> None:
    """Until a child sets a shared flag (polled, so that waiting costs the child nothing)."""
    while not flag.value:
        time.sleep(0.001)


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _idle_child(waitable: _Waitable, seconds: float, timed: bool, in_thread: bool,
                ready: Any, out: Any) -> None:
    result: List[float] = []

    def body() -> None:
        waitable.warm_up()
        before, start = _cpu(), time.monotonic()
        ready.value = 1
        waitable.block(seconds if timed else None)
        result.append((_cpu() - before) / (time.monotonic() - start))

    if in_thread:
        thread = threading.Thread(target=body)
        thread.start()
        thread.join()
    else:
        body()
    out.put(result[0])


def idle_cpu(peer: Peer, kind: str, args: Tuple[Any, ...], robust: bool, seconds: float,
             timed: bool, in_thread: bool) -> float:
    """CPU seconds per second that a waiter burns while blocked for about `seconds`."""
    waitable = _Waitable(peer, kind, args, robust)
    ready, out = FORK.RawValue("i", 0), FORK.SimpleQueue()
    child = FORK.Process(target=_idle_child,
                         args=(waitable, seconds, timed, in_thread, ready, out))
    child.start()
    _wait_for(ready)
    if not timed:
        time.sleep(seconds)
        waitable.unblock()
    cpu: float = out.get()
    child.join()
    return cpu


def _ctrl_c_child(waitable: _Waitable, send_after: float, window: float, out: Any) -> None:
    if window:
        from interlock import _core

        _core._test_delay_before_sleep(window)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    sent: List[float] = []
    start = time.monotonic()

    def send() -> None:
        sent.append(time.monotonic())
        os.kill(os.getpid(), signal.SIGINT)

    timer = threading.Timer(send_after, send)
    timer.start()
    try:
        waitable.block(30.0)
        out.put(None)  # not interrupted: the signal was lost until the timeout
    except KeyboardInterrupt:
        # From the moment the wait could act on it: the signal, or the end of the window.
        out.put(time.monotonic() - max(sent[0], start + window))
    timer.join()


def ctrl_c_latency(peer: Peer, window: float) -> float:
    """Seconds from SIGINT to KeyboardInterrupt in a main thread blocked in Lock.acquire():
    the signal lands 0.2 s into the sleep, or (window > 0) inside the window before it."""
    waitable = _Waitable(peer, "Lock", (), False)
    out = FORK.SimpleQueue()
    send_after = 0.05 if window else 0.2
    child = FORK.Process(target=_ctrl_c_child, args=(waitable, send_after, window, out))
    child.start()
    latency = out.get()
    child.join()
    waitable.unblock()
    if latency is None:
        raise Unsupported("the signal was lost: the wait ran to its 30 s timeout")
    return float(latency)


def _hold_until_killed(lock: Any, held: Any) -> None:
    lock.acquire()
    held.value = 1
    time.sleep(60)


def _take_over(lock: Any, ready: Any, out: Any) -> None:
    from interlock import OwnerDiedError

    ready.value = 1
    try:
        lock.acquire(timeout=30)
        out.put(None)
    except OwnerDiedError:
        out.put(time.monotonic())


def robust_takeover_latency() -> float:
    """Seconds from the SIGKILL of a robust Lock's holder to its waiter holding the lock."""
    from interlock import synchronize

    lock = synchronize.Lock(robust=True, ctx=FORK)
    held, ready, out = FORK.RawValue("i", 0), FORK.RawValue("i", 0), FORK.SimpleQueue()
    holder = FORK.Process(target=_hold_until_killed, args=(lock, held))
    holder.start()
    _wait_for(held)
    waiter = FORK.Process(target=_take_over, args=(lock, ready, out))
    waiter.start()
    _wait_for(ready)
    time.sleep(0.2)  # asleep on the lock by now
    killed = time.monotonic()
    holder.kill()
    detected = out.get()
    waiter.join()
    holder.join()
    if detected is None:
        raise RuntimeError("the waiter never took the lock over")
    return float(detected - killed)


def run(peers: Dict[str, Peer], quick: bool) -> List[Row]:
    seconds = 0.3 if quick else 1.0
    trials = 1 if quick else 3
    cross = {name: peer for name, peer in peers.items()
             if peer.cross_process and name != "manager"}
    rows: List[Row] = []
    for label, kind, args, robust in KINDS:
        for in_thread in (False, True):
            for timed in (True, False):
                where = "another thread" if in_thread else "the main thread"
                how = "timeout" if timed else "no timeout"
                row = Row("idle waiters (CPU per second blocked)",
                          f"{label} in {where}, {how}", target=2.0)
                usable = {}
                for name, peer in cross.items():
                    try:
                        _Waitable(peer, kind, args, robust)
                        usable[name] = peer
                    except Unsupported as exc:
                        row.note(name, str(exc))
                if robust and "multiprocessing" in usable:
                    row.note("multiprocessing", "no robust lock: its plain Lock")
                for _ in range(trials):
                    for name, peer in usable.items():
                        row.add(name, idle_cpu(peer, kind, args, robust, seconds, timed,
                                               in_thread))
                rows.append(row)

    during = Row("Ctrl-C", "SIGINT during the sleep -> KeyboardInterrupt", limit=0.1)
    window = Row("Ctrl-C", "SIGINT in the window before the sleep -> KeyboardInterrupt",
                 limit=0.1)
    takeover = Row("robust locks", "holder SIGKILLed -> waiter holds the lock", limit=0.1)
    for _ in range(trials):
        for name in ("interlock", "multiprocessing"):
            if name in cross:
                during.add(name, ctrl_c_latency(cross[name], 0.0))
        if "interlock" in cross:
            window.add("interlock", ctrl_c_latency(cross["interlock"], 0.2))
            takeover.add("interlock", robust_takeover_latency())
    window.note("multiprocessing", "its window cannot be aimed at from outside; a signal "
                "landing there is lost until the wait's timeout (forever without one)")
    takeover.note("multiprocessing", "no robust locks: the lock stays held forever")
    return rows + [during, window, takeover]
