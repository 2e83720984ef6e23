"""The ``rwlock`` group: interlock's RWLock against what users have today (one Lock for both
readers and writers) and the file-based reader-writer locks (filelock.ReadWriteLock,
fasteners.InterProcessReaderWriterLock, interlock.FileLock in shared mode). Rows:

* read and write acquire+release, uncontended, against interlock's own Lock (target: a read
  within 1.5x a Lock's), and the read row against each file-based lock (target: 10x faster);
* read-mostly throughput with 4 processes, 95% reads, each hold doing about 20 us of work, so
  that readers can overlap: time per operation against a Lock used for both (target: at least
  1.5x the Lock's throughput, a ratio of 0.67 or less);
* a writer's acquire latency while 3 processes read without pause.
"""

from __future__ import annotations

import os
import tempfile
import time
from typing import Any, Callable, Dict, List, Optional

from .peers import FORK, Unsupported
from .timing import Row, per_call

WORK_SECONDS = 20e-6


class RWPeer:
    """A reader-writer lock as acquire_read/release_read/acquire_write/release_write.
    `make()` runs in the process that uses it (file locks open their file per process)."""

    name = ""

    def __init__(self, make: Callable[[], Dict[str, Callable[[], Any]]]) -> None:
        self.make = make


def _interlock_rwlock() -> Callable[[], Dict[str, Callable[[], Any]]]:
    from interlock import synchronize

    rw = synchronize.RWLock(ctx=FORK)
    return lambda: {"ar": rw.acquire_read, "rr": rw.release_read,
                    "aw": rw.acquire_write, "rw": rw.release_write}


def _one_lock(lock: Any) -> Callable[[], Dict[str, Callable[[], Any]]]:
    return lambda: {"ar": lock.acquire, "rr": lock.release,
                    "aw": lock.acquire, "rw": lock.release}


def _file_lock(path: str) -> Callable[[], Dict[str, Callable[[], Any]]]:
    def make() -> Dict[str, Callable[[], Any]]:
        import interlock

        shared, exclusive = interlock.FileLock(path, shared=True), interlock.FileLock(path)
        return {"ar": shared.acquire, "rr": shared.release,
                "aw": exclusive.acquire, "rw": exclusive.release}
    return make


def _filelock_rw(path: str) -> Callable[[], Dict[str, Callable[[], Any]]]:
    try:
        from filelock import ReadWriteLock
    except ImportError as exc:
        raise Unsupported("filelock >= 3.16 is not installed (pip install .[bench])") from exc

    def make() -> Dict[str, Callable[[], Any]]:
        lock = ReadWriteLock(path, is_singleton=False)
        return {"ar": lock.acquire_read, "rr": lock.release,
                "aw": lock.acquire_write, "rw": lock.release}
    return make


def _fasteners_rw(path: str) -> Callable[[], Dict[str, Callable[[], Any]]]:
    try:
        import fasteners
    except ImportError as exc:
        raise Unsupported("fasteners is not installed (pip install .[bench])") from exc

    def make() -> Dict[str, Callable[[], Any]]:
        lock = fasteners.InterProcessReaderWriterLock(path)
        return {"ar": lock.acquire_read_lock, "rr": lock.release_read_lock,
                "aw": lock.acquire_write_lock, "rw": lock.release_write_lock}
    return make


FILE_PEERS = ("FileLock(shared=True)", "filelock.ReadWriteLock", "fasteners")


def _peers(directory: str, notes: List[str]) -> Dict[str, Callable[[], Dict[str, Any]]]:
    import interlock

    made: Dict[str, Callable[[], Dict[str, Any]]] = {
        "interlock": _interlock_rwlock(),
        "interlock Lock": _one_lock(interlock.get_context("fork").Lock()),
        "multiprocessing Lock": _one_lock(FORK.Lock()),
        "FileLock(shared=True)": _file_lock(os.path.join(directory, "interlock.lock")),
    }
    for name, build in (("filelock.ReadWriteLock", _filelock_rw),
                        ("fasteners", _fasteners_rw)):
        try:
            made[name] = build(os.path.join(directory, name + ".lock"))
        except Unsupported as exc:
            notes.append(f"rwlock group: {name} skipped: {exc}")
    return made


def _work() -> None:
    end = time.perf_counter() + WORK_SECONDS
    while time.perf_counter() < end:
        pass


def _mixed_worker(make: Callable[[], Dict[str, Any]], ops: int, seed: int, start: Any,
                  spans: Any, slot: int) -> None:
    import random

    calls = make()
    ar, rr, aw, rw = calls["ar"], calls["rr"], calls["aw"], calls["rw"]
    rng = random.Random(seed)
    reads = [rng.random() < 0.95 for _ in range(ops)]
    start.wait()
    began = time.perf_counter()
    for read in reads:
        if read:
            ar()
            _work()
            rr()
        else:
            aw()
            _work()
            rw()
    spans[2 * slot], spans[2 * slot + 1] = began, time.perf_counter()


def read_mostly(make: Callable[[], Dict[str, Any]], processes: int, ops: int) -> float:
    """Seconds per operation, all processes together, from the first start to the last end."""
    start = FORK.Event()
    spans = FORK.RawArray("d", 2 * processes)
    procs = [FORK.Process(target=_mixed_worker, args=(make, ops, seed, start, spans, seed))
             for seed in range(processes)]
    for p in procs:
        p.start()
    time.sleep(0.2)  # every child is at the start line
    start.set()
    for p in procs:
        p.join(120)
    if any(p.exitcode != 0 for p in procs):
        raise Unsupported("a worker failed")
    first = min(float(x) for x in spans[0::2])
    last = max(float(x) for x in spans[1::2])
    return (last - first) / (processes * ops)


def _reader_stream(make: Callable[[], Dict[str, Any]], stop: Any, ready: Any) -> None:
    calls = make()
    ar, rr = calls["ar"], calls["rr"]
    ready.release()
    while not stop.is_set():
        ar()
        _work()
        rr()


def writer_latency(make: Callable[[], Dict[str, Any]], readers: int, rounds: int) -> float:
    """Median seconds from a writer's acquire call to holding, while `readers` processes take
    read holds back to back."""
    stop, ready = FORK.Event(), FORK.Semaphore(0)
    procs = [FORK.Process(target=_reader_stream, args=(make, stop, ready))
             for _ in range(readers)]
    for p in procs:
        p.start()
    try:
        for _ in procs:
            ready.acquire()
        calls = make()
        aw, rw = calls["aw"], calls["rw"]
        waits = []
        for _ in range(rounds):
            time.sleep(0.001)
            began = time.perf_counter()
            aw()
            waits.append(time.perf_counter() - began)
            rw()
    finally:
        stop.set()
        for p in procs:
            p.join(60)
    waits.sort()
    return float(waits[len(waits) // 2])


def run(quick: bool, notes: List[str]) -> List[Row]:
    number = 20_000 if quick else 200_000
    file_number = 500 if quick else 5_000
    trials = 3 if quick else 5
    ops = 500 if quick else 5_000
    rounds = 50 if quick else 300
    rows: List[Row] = []
    with tempfile.TemporaryDirectory(prefix="interlock-bench-rw-") as directory:
        peers = _peers(directory, notes)

        def measure(row: Row, call: Callable[[str, Callable[[], Dict[str, Any]]], float],
                    only: Optional[List[str]] = None) -> None:
            for _ in range(trials):
                for name, make in peers.items():
                    if only is not None and name not in only:
                        continue
                    try:
                        row.add(name, call(name, make))
                    except Unsupported as exc:
                        row.note(name, str(exc))
            rows.append(row)

        def uncontended(side: str) -> Callable[[str, Callable[[], Dict[str, Any]]], float]:
            def call(name: str, make: Callable[[], Dict[str, Any]]) -> float:
                calls = make()
                n = file_number if name in FILE_PEERS else number
                return per_call("a(); r()", {"a": calls["a" + side], "r": calls["r" + side]}, n)
            return call

        for side, what in (("r", "read"), ("w", "write")):
            row = Row("rwlock", f"RWLock {what} acquire()+release(), uncontended",
                      target=1.5 if side == "r" else None)
            row.baseline = "interlock Lock"
            measure(row, uncontended(side))
            if side == "r":
                for peer in FILE_PEERS:  # the same figures, against each file-based lock
                    if peer in row.samples:
                        versus = Row("rwlock", f"RWLock read, against {peer}", target=0.1)
                        versus.baseline = peer
                        versus.samples, versus.notes = row.samples, row.notes
                        rows.append(versus)
        row = Row("rwlock", "4 processes, 95% reads, 20 us holds (per operation)",
                  target=1 / 1.5)
        row.baseline = "interlock Lock"
        measure(row, lambda name, make: read_mostly(make, 4, ops if name not in FILE_PEERS
                                                    else ops // 5))
        row = Row("rwlock", "writer's wait for the lock, 3 processes reading non-stop")
        row.baseline = "interlock Lock"
        measure(row, lambda name, make: writer_latency(make, 3, rounds),
                only=["interlock", "interlock Lock", "multiprocessing Lock",
                      "FileLock(shared=True)"])
    return rows
