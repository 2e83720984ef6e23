"""Threads of one process: what free-threaded CPython changes. Uncontended calls against
``threading`` (the issue's bound: no more than threading.Lock on the same interpreter), a
Lock contended by 2 and 4 threads, and Event and Condition ping-pong between two threads and
between two processes. On a GIL build the contended rows mostly measure the GIL; on a
free-threaded build (3.13t) the threads really run at once.
"""

from __future__ import annotations

import functools
import threading
import time
from typing import Any, Callable, Dict, List, Tuple

from . import between_processes
from .peers import Peer, Unsupported
from .timing import Row, per_call

PEERS = ("interlock", "multiprocessing", "threading")


def _thread(target: Callable[..., None], *args: Any) -> threading.Thread:
    thread = threading.Thread(target=target, args=args, daemon=True)
    thread.start()
    return thread


def contended(peer: Peer, threads: int, rounds: int) -> float:
    """Seconds per acquire+release when `threads` threads take one Lock in turns: from the
    first thread's start to the last one's end, as each thread clocks itself (the launching
    thread may not even run again before they are done)."""
    lock = peer.make("Lock")
    start_line = threading.Barrier(threads)
    spans: List[Tuple[float, float]] = []

    def body() -> None:
        acquire, release = lock.acquire, lock.release
        start_line.wait()
        began = time.perf_counter()
        for _ in range(rounds):
            acquire()
            release()
        spans.append((began, time.perf_counter()))  # list.append is atomic on every build

    pool = [_thread(body) for _ in range(threads)]
    for thread in pool:
        thread.join()
    first = min(began for began, _ in spans)
    last = max(ended for _, ended in spans)
    return (last - first) / (threads * rounds)


def _contended_rounds(threads: int, rounds: int, peer: Peer) -> float:
    return contended(peer, threads, rounds)


def run(peers: Dict[str, Peer], quick: bool) -> List[Row]:
    number = 20_000 if quick else 200_000
    rounds = 2_000 if quick else 20_000
    trials = 3 if quick else 5
    chosen = {name: peers[name] for name in PEERS if name in peers}
    rows: List[Row] = []

    def measure(row: Row, call: Callable[[Peer], float], cross_process: bool = False) -> None:
        usable = {}
        for name, peer in chosen.items():
            if cross_process and not peer.cross_process:
                row.note(name, "threads only")
                continue
            usable[name] = peer
        for _ in range(trials):
            for name, peer in usable.items():
                try:
                    row.add(name, call(peer))
                except Unsupported as exc:
                    row.note(name, str(exc))
        rows.append(row)

    def uncontended(kind: str, *args: Any) -> Callable[[Peer], float]:
        def call(peer: Peer) -> float:
            obj = peer.make(kind, *args)
            return per_call("a(); r()", {"a": obj.acquire, "r": obj.release}, number)
        return call

    # Targets (issue 18): uncontended, and 4 threads contending, at most 0.75x threading's
    # time; every contended and ping-pong row at least 2x faster than multiprocessing's.
    for kind, args in (("Lock", ()), ("Semaphore", (1,))):
        row = Row("threads", f"{kind} acquire()+release(), uncontended", target=0.75)
        row.baseline = "threading"  # the bound is threading's lock on this interpreter
        measure(row, uncontended(kind, *args))
    for n in (2, 4):
        row = Row("threads", f"Lock contended by {n} threads (per acquire+release)", target=0.5)
        measure(row, functools.partial(_contended_rounds, n, rounds))
        if n == 4:  # the same figures, against threading
            versus = Row("threads", f"Lock contended by {n} threads, against threading",
                         target=0.75)
            versus.baseline = "threading"
            versus.samples, versus.notes = row.samples, row.notes
            rows.append(versus)
    measure(Row("threads", "Event ping-pong between threads (round trip)", target=0.5),
            lambda peer: between_processes.event_ping_pong(peer, rounds, launch=_thread))
    measure(Row("threads", "Condition ping-pong between threads (round trip)", target=0.5),
            lambda peer: between_processes.condition_ping_pong(peer, rounds, launch=_thread))
    measure(Row("threads", "Event ping-pong between processes (round trip)", target=0.5),
            lambda peer: between_processes.event_ping_pong(peer, rounds), cross_process=True)
    measure(Row("threads", "Condition ping-pong between processes (round trip)", target=0.5),
            lambda peer: between_processes.condition_ping_pong(peer, rounds),
            cross_process=True)
    return rows
