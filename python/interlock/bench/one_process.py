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


FLOORS = ["call floor", "lock floor"]


def _floor_objects() -> Dict[str, Any]:
    """The no-op objects of interlock._core: methods dispatched like a Lock's that do nothing
    (the call floor), or only a lock's two atomic instructions (the lock floor)."""
    from interlock import _core

    return {"call floor": _core._NoOp(), "lock floor": _core._AtomicNoOp()}


def run(peers: Dict[str, Peer], quick: bool) -> List[Row]:
    number = 20_000 if quick else 200_000
    repeats = 5 if quick else 9
    rows = []
    floors = _floor_objects()
    # Per repeat: the floors' pair and `with` times, measured next to the peers'.
    floor_pair: Dict[str, List[float]] = {name: [] for name in floors}
    floor_with: Dict[str, List[float]] = {name: [] for name in floors}
    peer_pair: Dict[str, List[float]] = {}
    peer_with: Dict[str, List[float]] = {}
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
        if operation in ("Lock acquire()+release()", "with Lock"):
            for name, obj in floors.items():
                envs[name] = setup(obj)
        for _ in range(repeats):  # interleaved, so drift hits every peer alike
            for name, env in envs.items():
                n = number // 200 if name == "manager" else number  # ~50 us per proxy call
                seconds = per_call(stmt, env, max(n, 50))
                if name in floors:
                    (floor_pair if stmt == "a(); r()" else floor_with)[name].append(seconds)
                    continue
                row.add(name, seconds)
                if operation == "Lock acquire()+release()":
                    peer_pair.setdefault(name, []).append(seconds)
                elif operation == "with Lock":
                    peer_with.setdefault(name, []).append(seconds)
        rows.append(row)
    rows += _floor_rows(floor_pair, floor_with, peer_pair, peer_with)
    return rows


def _floor_rows(floor_pair: Dict[str, List[float]], floor_with: Dict[str, List[float]],
                peer_pair: Dict[str, List[float]],
                peer_with: Dict[str, List[float]]) -> List[Row]:
    """Each peer's Lock as a multiple of the floors timed in the same repeats."""
    group = "interpreter floor (ratio to a no-op object, same run)"
    specs = [
        ("Lock acquire()+release() / no-op method pair", peer_pair, floor_pair["call floor"],
         1.2),
        ("Lock acquire()+release() / a lock's two atomics", peer_pair,
         floor_pair["lock floor"], None),
        ("with Lock / with a no-op", peer_with, floor_with["call floor"], 1.2),
    ]
    rows = []
    for operation, samples, floor, limit in specs:
        row = Row(group, operation, unit="x", limit=limit)
        for name, times in samples.items():
            if name == "manager":
                continue
            for mine, base in zip(times, floor):
                row.add(name, mine / base)
        rows.append(row)
    return rows


def call_floor(quick: bool) -> Dict[str, float]:
    """Seconds for two calls of the no-op objects' acquire and release: the interpreter's
    share of any acquire()+release() pair (call floor), and that plus a lock's two atomic
    instructions (lock floor)."""
    result = {}
    for name, obj in _floor_objects().items():
        env = _pair(obj)
        result[name] = min(per_call("a(); r()", env, 20_000 if quick else 200_000)
                           for _ in range(5))
    return result
