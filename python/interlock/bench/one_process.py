"""Uncontended operations in one process: what a call costs when nobody else is involved."""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Tuple

from .peers import Peer, Unsupported
from .timing import Row, per_call

# (operation, kind, constructor args, setup, statement, target ratio from the issues)
# `setup(obj)` returns the timeit environment; None peers: see `skip`.
Setup = Callable[[Any], Dict[str, Any]]


def _pair(obj: Any) -> Dict[str, Any]:
    return {"a": obj.acquire, "r": obj.release}


def _held(obj: Any) -> Dict[str, Any]:
    obj.acquire()
    return {"a": obj.acquire, "r": obj.release}


def _obj(obj: Any) -> Dict[str, Any]:
    return {"o": obj}


def _event(obj: Any) -> Dict[str, Any]:
    return {"i": obj.is_set, "s": obj.set, "c": obj.clear}


OPERATIONS: List[Tuple[str, str, Tuple[Any, ...], Setup, str, Optional[float], Tuple[str, ...]]] = [
    ("Lock acquire()+release()", "Lock", (), _pair, "a(); r()", 0.6, ()),
    ("with Lock", "Lock", (), _obj, "with o: pass", 0.35, ()),
    ("Lock acquire(timeout=1.0)+release()", "Lock", (), _pair, "a(timeout=1.0); r()", 0.5,
     ("posix_ipc",)),
    ("Lock acquire(False) failing", "Lock", (), _held, "a(False)", None, ("posix_ipc",)),
    ("RLock nested acquire()+release()", "RLock", (), _held, "a(); r()", None, ()),
    ("Semaphore acquire()+release()", "Semaphore", (1,), _pair, "a(); r()", None, ()),
    ("Event.is_set()", "Event", (), _event, "i()", 0.1, ()),
    ("Event.set()+clear()", "Event", (), _event, "s(); c()", 0.1, ()),
    ("with cond: notify_all() (no waiters)", "Condition", (), _obj,
     "with o: o.notify_all()", 0.2, ()),
]


def run(peers: Dict[str, Peer], quick: bool) -> List[Row]:
    number = 20_000 if quick else 200_000
    repeats = 5 if quick else 9
    rows = []
    for operation, kind, args, setup, stmt, target, excluded in OPERATIONS:
        row = Row("one process, uncontended", operation, target=target)
        envs: Dict[str, Dict[str, Any]] = {}
        for name, peer in peers.items():
            if name in excluded:
                row.note(name, "no equivalent call")
                continue
            try:
                envs[name] = setup(peer.make(kind, *args))
            except Unsupported as exc:
                row.note(name, str(exc))
        for _ in range(repeats):  # interleaved, so drift hits every peer alike
            for name, env in envs.items():
                n = number // 200 if name == "manager" else number  # ~50 us per proxy call
                row.add(name, per_call(stmt, env, max(n, 50)))
        rows.append(row)
    return rows


def call_floor(quick: bool) -> float:
    """Seconds for two calls of a no-op C method: the interpreter's share of any
    acquire()+release() pair, before the call does any work."""
    f: Callable[[], int] = ().__len__
    return min(per_call("f(); f()", {"f": f}, 20_000 if quick else 200_000) for _ in range(5))
