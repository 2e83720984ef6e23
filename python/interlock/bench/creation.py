"""Creating primitives: time per creation, shared memory per primitive, and scale (how many
can be alive at once, at what time and memory cost)."""

from __future__ import annotations

import multiprocessing as mp
import time
from typing import Any, Dict, List

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


def _populate(peer_name: str, count: int, out: Any) -> None:
    """Child: create `count` live Locks; report time, memory growth, or how it failed."""
    peer = FACTORIES[peer_name]()
    held = []
    before = _memory()
    start = time.perf_counter()
    try:
        for _ in range(count):
            held.append(peer.make("Lock"))
    except Exception as exc:  # the failure itself is the result for this peer
        out.put({"failed_at": len(held), "error": f"{type(exc).__name__}: {exc}"})
        return
    elapsed = time.perf_counter() - start
    for lock in held:  # use each once, so its memory is resident wherever it lives
        lock.acquire()
        lock.release()
    after = _memory()
    out.put({
        "seconds": elapsed,
        "rss": after["VmRSS"] - before["VmRSS"],
        "shmem": after["RssShmem"] - before["RssShmem"],
    })
    peer.close()


def scale(peers: Dict[str, Peer], quick: bool, notes: List[str]) -> List[Row]:
    """Live Locks at 10k, 100k and 1M (quick: 10k), each in a fresh process."""
    counts = [10_000] if quick else [10_000, 100_000, 1_000_000]
    ctx = mp.get_context("spawn")
    rows: List[Row] = []
    gave_up: Dict[str, str] = {}
    memory_rows: Dict[int, Row] = {}
    for count in counts:
        time_row = Row("scale", f"create {count:,} live Locks (total)")
        mem_row = memory_rows[count] = Row("scale", f"memory per Lock at {count:,} live", unit="B")
        shm_row = Row("scale", f"shared memory per Lock at {count:,} live", unit="B")
        for name in peers:
            if name in gave_up:
                time_row.note(name, gave_up[name])
                continue
            if name == "manager":
                gave_up[name] = "not attempted (about 2 ms per proxy: see create Lock)"
                time_row.note(name, gave_up[name])
                continue
            out = ctx.SimpleQueue()
            child = ctx.Process(target=_populate, args=(name, count, out))
            child.start()
            result = out.get()
            child.join()
            if "error" in result:
                gave_up[name] = f"failed after {result['failed_at']:,}: {result['error']}"
                time_row.note(name, gave_up[name])
                notes.append(f"scale: {name} {gave_up[name]}")
                continue
            time_row.add(name, result["seconds"])
            mem_row.add(name, result["rss"] / count)
            shm_row.add(name, result["shmem"] / count)
        rows += [time_row, mem_row, shm_row]
    return rows
