"""The CPU a waiter burns while it is blocked for one second (spinning must stay bounded)."""

from __future__ import annotations

import resource
from typing import Any, Dict, List

from .peers import FORK, Peer, Unsupported
from .timing import Row


def _blocked(lock: Any, out: Any, posix: bool) -> None:
    before = resource.getrusage(resource.RUSAGE_SELF)
    if posix:
        try:
            lock.acquire(1.0)  # posix_ipc: the first argument is the timeout
        except Exception:  # posix_ipc.BusyError when the timeout passes
            pass
    else:
        lock.acquire(timeout=1.0)
    after = resource.getrusage(resource.RUSAGE_SELF)
    out.put((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime))


def waiter_cpu(peer: Peer) -> float:
    lock, out = peer.make("Lock"), FORK.SimpleQueue()
    lock.acquire()
    child = FORK.Process(target=_blocked, args=(lock, out, peer.name == "posix_ipc"))
    child.start()
    cpu: float = out.get()
    child.join()
    lock.release()
    return cpu


def run(peers: Dict[str, Peer], quick: bool) -> List[Row]:
    row = Row("waiting", "CPU of a waiter blocked for 1 s", limit=0.005)
    for _ in range(1 if quick else 3):
        for name, peer in peers.items():
            if not peer.cross_process:
                continue
            try:
                row.add(name, waiter_cpu(peer))
            except Unsupported as exc:
                row.note(name, str(exc))
    if "manager" in row.samples:
        row.note("manager", "client side only; the server process's CPU is not counted")
    return [row]
