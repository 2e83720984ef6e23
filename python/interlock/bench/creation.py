"""Creating primitives: time per creation, shared memory per primitive, and scale (how many
can be alive at once, at what time and memory cost)."""

from __future__ import annotations

import gc
import multiprocessing as mp
import time
from typing import Any, Dict, List, Tuple

from .peers import FACTORIES, Peer, Unsupported
from .timing import Row, per_call

KINDS = [("Lock", (), 0.05), ("RLock", (), None), ("Semaphore", (1,), None),
         ("Event", (), None), ("Condition", (), 0.02), ("Barrier", (2,), None)]


def creation_time(peers: Dict[str, Peer], quick: bool) -> List[Row]:
    repeats = 5 if quick else 9
    rows = []
    for kind, args, target in KINDS:
        row = Row("creation", f"create {kind}", target=target)
        makers: Dict[str, Any] = {}
        for name, peer in peers.items():
            try:
                peer.make(kind, *args)
                makers[name] = peer
            except Unsupported as exc:
                row.note(name, str(exc))
        for _ in range(repeats):
            for name, peer in makers.items():
                number = 20 if name == "manager" else (200 if quick else 1000)
                row.add(name, per_call("m(k, *a)", {"m": peer.make, "k": kind, "a": args}, number))
        rows.append(row)
    return rows


def _memory() -> Dict[str, int]:
    """This process's resident memory, split as the kernel reports it (bytes)."""
    fields = {}
    with open("/proc/self/status") as status:
        for line in status:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "RssShmem", "RssAnon"):
                fields[key] = int(value.split()[0]) * 1024
    return fields


def _touch(obj: Any, kind: str) -> None:
    """Use a primitive once, so that its memory is resident wherever it lives."""
    if kind in ("Lock", "RLock", "Semaphore"):
        obj.acquire()
        obj.release()
    elif kind == "Event":
        obj.is_set()
    elif kind == "Condition":
        with obj:
            obj.notify()
    elif kind == "Barrier":
        obj.n_waiting  # noqa: B018 (a property read touches the shared state)


def _populate(peer_name: str, kind: str, args: Tuple[Any, ...], count: int, out: Any) -> None:
    """Child: create `count` live primitives as a program would (``[Lock() for ...]``) and
    report the time, the memory growth, what destroying them gives back and what making them
    again costs; or how creation failed."""
    peer = FACTORIES[peer_name]()
    make = peer.factory(kind)
    gc.collect()
    before = _memory()
    start = time.perf_counter()
    try:
        held = [make(*args) for _ in range(count)]
    except Exception as exc:  # the failure itself is the result for this peer
        out.put({"failed_at": "?", "error": f"{type(exc).__name__}: {exc}"})
        return
    elapsed = time.perf_counter() - start
    for obj in held:
        _touch(obj, kind)
    after = _memory()
    del held
    gc.collect()
    destroyed = _memory()
    again = [make(*args) for _ in range(count)]
    for obj in again:
        _touch(obj, kind)
    remade = _memory()
    out.put({
        "seconds": elapsed,
        "rss": after["VmRSS"] - before["VmRSS"],
        "shmem": after["RssShmem"] - before["RssShmem"],
        "kept": destroyed["VmRSS"] - before["VmRSS"],
        "regrowth": remade["VmRSS"] - destroyed["VmRSS"],
    })
    del again
    peer.close()


def _measure(ctx: Any, peer_name: str, kind: str, args: Tuple[Any, ...], count: int) -> Any:
    out = ctx.SimpleQueue()
    child = ctx.Process(target=_populate, args=(peer_name, kind, args, count, out))
    child.start()
    result = out.get()
    child.join()
    return result


def scale(peers: Dict[str, Peer], quick: bool, notes: List[str]) -> List[Row]:
    """Live Locks at 10k, 100k and 1M (quick: 10k), then every primitive at 1M (quick:
    100k): creation time and resident memory per primitive, each count in a fresh process."""
    counts = [10_000] if quick else [10_000, 100_000, 1_000_000]
    ctx = mp.get_context("spawn")
    rows: List[Row] = []
    gave_up: Dict[str, str] = {}
    for count in counts:
        biggest = count == counts[-1]
        time_row = Row("scale", f"create each of {count:,} live Locks",
                       limit=1e-6 if biggest else None)
        mem_row = Row("scale", f"memory per Lock at {count:,} live", unit="B",
                      limit=128 if biggest else None)
        shm_row = Row("scale", f"shared memory per Lock at {count:,} live", unit="B")
        for name in peers:
            if name in gave_up:
                time_row.note(name, gave_up[name])
                continue
            if name == "manager":
                gave_up[name] = "not attempted (about 2 ms per proxy: see create Lock)"
                time_row.note(name, gave_up[name])
                continue
            result = _measure(ctx, name, "Lock", (), count)
            if "error" in result:
                gave_up[name] = f"failed: {result['error']}"
                time_row.note(name, gave_up[name])
                notes.append(f"scale: {name} failed at {count:,} Locks: {result['error']}")
                continue
            time_row.add(name, result["seconds"] / count)
            mem_row.add(name, result["rss"] / count)
            shm_row.add(name, result["shmem"] / count)
        rows += [time_row, mem_row, shm_row]

    count = 100_000 if quick else 1_000_000
    kept = Row("scale", f"memory per Lock still resident after destroying {count:,}", unit="B")
    regrowth = Row("scale", f"memory per Lock to make {count:,} again after that", unit="B")
    for name in ("interlock", "threading"):
        if name in peers:
            result = _measure(ctx, name, "Lock", (), count)
            kept.add(name, result["kept"] / count)
            regrowth.add(name, result["regrowth"] / count)
    for kind, args in [("RLock", ()), ("Semaphore", (1,)), ("Event", ()), ("Condition", ()),
                       ("Barrier", (2,))]:
        checked = kind in ("RLock", "Semaphore", "Event")
        time_row = Row("scale", f"create each of {count:,} live {kind}s")
        mem_row = Row("scale", f"memory per {kind} at {count:,} live", unit="B",
                      limit=128 if checked else None)
        for name in ("interlock", "threading"):
            if name not in peers:
                continue
            result = _measure(ctx, name, kind, args, count)
            time_row.add(name, result["seconds"] / count)
            mem_row.add(name, result["rss"] / count)
        for row in (time_row, mem_row):
            row.note("multiprocessing", "not attempted: one mapping per primitive, it fails "
                     "near 65,000 (see the Lock rows)")
        rows += [time_row, mem_row]
    return rows + [kept, regrowth]
