"""The ``asyncio`` group: awaiting interlock's primitives against what asyncio code does today,
``loop.run_in_executor(None, mp_primitive.acquire)`` (a thread of the loop's executor blocks
in the call). Rows:

* an Event's wake latency, from ``set()`` in another process to the resumed task (target: at
  most half the executor's);
* a Lock handed between the tasks of two processes: time per acquisition;
* 10,000 idle waiting tasks (1,000 with --quick): CPU per second and memory, against a thread
  blocked per waiter (target: at least 10x less memory; CPU no more than the threads');
* a FileLock handed between the tasks of two processes, beside filelock's ``AsyncFileLock``
  (when filelock is installed) and the executor approach on the same FileLock.

The cluster's rows (on etcd, beside redis-py's asyncio Lock) are in awaiting_cluster.py.

Every measurement runs in a forked child, so that its resources count the waiters alone.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import multiprocessing as mp
import os
import resource
import tempfile
import time
from typing import Any, Awaitable, Callable, Dict, List

from .peers import FORK
from .timing import Row

PEERS = ("interlock", "executor")


def _rss_kib() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS"):
                return int(line.split()[1])
    return 0


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _in_child(body: Callable[..., Any], *args: Any) -> Any:
    results = FORK.Queue()
    child = FORK.Process(target=lambda: results.put(body(*args)))
    child.start()
    out = results.get(timeout=600)
    child.join(60)
    return out


def _primitives(peer: str) -> Any:
    if peer == "interlock":
        from interlock import synchronize
        return synchronize
    return mp.get_context("fork")


async def _wait_event(peer: str, event: Any) -> None:
    if peer == "interlock":
        await event.wait_async()
    else:
        await asyncio.get_running_loop().run_in_executor(None, event.wait)


def _setter(event: Any, go: Any, stamp: Any, rounds: int) -> None:
    for _ in range(rounds):
        go.get()
        time.sleep(0.002)  # the task is asleep by now
        stamp.value = time.monotonic()
        event.set()


async def median_wake(event: Any, wait: Callable[[], Awaitable[Any]], go: Any, stamp: Any,
                      rounds: int) -> float:
    """The median time from the setter's stamp to the resumed task, over `rounds` rounds of:
    clear `event`, start awaiting `wait()`, tell the setter (`go`) to stamp and set it."""
    latencies: List[float] = []
    for i in range(rounds):
        event.clear()
        task = asyncio.ensure_future(wait())
        await asyncio.sleep(0)
        go.put(i)
        await task
        latencies.append(time.monotonic() - stamp.value)
    latencies.sort()
    return latencies[len(latencies) // 2]


def wake_latency(peer: str, rounds: int) -> float:
    def body() -> float:
        prims = _primitives(peer)
        event, go, stamp = prims.Event(), FORK.Queue(), FORK.Value("d", 0.0, lock=False)
        setter = FORK.Process(target=_setter, args=(event, go, stamp, rounds))
        setter.start()

        median = asyncio.run(median_wake(event, lambda: _wait_event(peer, event), go, stamp,
                                         rounds))
        setter.join(30)
        return median
    return float(_in_child(body))


async def _take(peer: str, lock: Any) -> None:
    if peer == "interlock":
        await lock.acquire_async()
    else:
        await asyncio.get_running_loop().run_in_executor(None, lock.acquire)


def _hand_off_side(peer: str, lock: Any, times: int, start: Any) -> None:
    async def main() -> None:
        for _ in range(times):
            await _take(peer, lock)
            await asyncio.sleep(0)  # holds across a loop turn, as real code would
            lock.release()
    start.wait(60)
    asyncio.run(main())


def hand_off(peer: str, times: int) -> float:
    def body() -> float:
        prims = _primitives(peer)
        lock, start = prims.Lock(), FORK.Event()
        sides = [FORK.Process(target=_hand_off_side, args=(peer, lock, times, start))
                 for _ in range(2)]
        for p in sides:
            p.start()
        began = time.perf_counter()
        start.set()
        for p in sides:
            p.join(600)
        return (time.perf_counter() - began) / (2 * times)
    return float(_in_child(body))


async def _file_take(peer: str, lock: Any) -> None:
    if peer == "executor":
        await asyncio.get_running_loop().run_in_executor(None, lock.acquire)
    else:
        await lock.acquire_async() if peer == "interlock" else await lock.acquire()


def _file_side(peer: str, path: str, times: int, start: Any, out: Any) -> None:
    if peer == "filelock":
        import filelock
        lock: Any = filelock.AsyncFileLock(path)  # its defaults: what its users get
    else:
        from interlock import FileLock
        lock = FileLock(path)

    async def main() -> float:
        began = time.perf_counter()
        for _ in range(times):
            await _file_take(peer, lock)
            await asyncio.sleep(0)
            if peer == "filelock":
                await lock.release()
            else:
                lock.release()
        return time.perf_counter() - began
    start.wait(60)
    out.put(asyncio.run(main()))


def file_hand_off(peer: str, times: int) -> float:
    """Seconds per acquisition while two processes' tasks take turns with one file lock."""
    with tempfile.TemporaryDirectory(prefix="interlock-bench-") as home:
        path = os.path.join(home, "lock")
        start, out = FORK.Event(), FORK.Queue()
        sides = [FORK.Process(target=_file_side, args=(peer, path, times, start, out))
                 for _ in range(2)]
        for p in sides:
            p.start()
        start.set()
        elapsed = float(max(out.get(timeout=600) for _ in sides))
        for p in sides:
            p.join(60)
    return elapsed / (2 * times)


def _have_filelock() -> bool:
    try:
        import filelock  # noqa: F401
    except ImportError:
        return False
    return True


# Idle waiting tasks per Event in the idle-waiters row. Each of multiprocessing's Events maps
# five semaphores, so 10,000 of them beside 10,000 threads would pass the kernel's default
# limit of 65,530 mappings per process (vm.max_map_count) and fail with MemoryError.
TASKS_PER_EVENT = 10


def idle_waiters(peer: str, n: int) -> Dict[str, float]:
    def body() -> Dict[str, float]:
        prims = _primitives(peer)
        events = [prims.Event() for _ in range(n // TASKS_PER_EVENT)]

        async def main() -> Dict[str, float]:
            loop = asyncio.get_running_loop()
            if peer != "interlock":
                loop.set_default_executor(concurrent.futures.ThreadPoolExecutor(n))
            base = _rss_kib()
            tasks = [asyncio.ensure_future(_wait_event(peer, events[i % len(events)]))
                     for i in range(n)]
            await asyncio.sleep(1.0)  # every waiter is asleep by now
            cpu0, wall0 = _cpu(), time.monotonic()
            await asyncio.sleep(1.0)
            cpu = (_cpu() - cpu0) / (time.monotonic() - wall0)
            memory = (_rss_kib() - base) * 1024.0
            for e in events:
                e.set()
            await asyncio.gather(*tasks)
            return {"cpu": cpu, "memory": memory}

        return asyncio.run(main())
    return dict(_in_child(body))


def run(quick: bool, notes: List[str]) -> List[Row]:
    rounds = 50 if quick else 300
    times = 300 if quick else 3_000
    idle = 1_000 if quick else 10_000
    trials = 3 if quick else 5
    latency = Row("asyncio", "Event wake latency, set() in another process to the resumed task",
                  target=0.5)
    handoff = Row("asyncio", "Lock hand-off between two processes' tasks (per acquisition)")
    on = f"{idle:,} idle waiting tasks on {idle // TASKS_PER_EVENT:,} Events"
    cpu = Row("asyncio", f"{on}: CPU time per second", target=1.0)
    memory = Row("asyncio", f"{on}: memory", unit="B", target=0.1)
    files = Row("asyncio", "FileLock hand-off between two processes' tasks (per acquisition)")
    for row in (latency, handoff, cpu, memory, files):
        row.baseline = "executor"
    file_peers = PEERS + (("filelock",) if _have_filelock() else ())
    if "filelock" not in file_peers:
        notes.append("asyncio group: filelock is missing, so its AsyncFileLock column is "
                     "empty (pip install filelock)")
    for _ in range(trials):
        for peer in PEERS:
            latency.add(peer, wake_latency(peer, rounds))
            handoff.add(peer, hand_off(peer, times))
        for peer in file_peers:
            files.add(peer, file_hand_off(peer, max(50, times // 10)))
    for peer in PEERS:
        figures = idle_waiters(peer, idle)
        cpu.add(peer, figures["cpu"])
        memory.add(peer, figures["memory"])
    notes.append("asyncio group: executor = loop.run_in_executor(None, multiprocessing's "
                 "blocking call), a thread per waiting task; for the FileLock row, the "
                 "blocking acquire() of interlock's FileLock")
    notes.append("asyncio group: filelock = filelock's AsyncFileLock with its defaults (a "
                 "non-blocking try in an executor thread, then a sleep of about its "
                 "poll_interval, 50 ms, before the next)")
    rows = [latency, handoff, cpu, memory, files]
    from . import awaiting_cluster
    return rows + awaiting_cluster.run(quick, notes)
