"""The asyncio group's cluster rows: interlock.cluster's awaitable primitives on a real etcd
(one member on loopback, data on disk), against the executor approach on the same primitives
(``run_in_executor(None, primitive.wait)``) and redis-py's asyncio Lock on a real redis-server
(when redis-server and the redis package are installed). Rows:

* a cluster Event's wake latency, from ``set()`` in another process to the resumed task;
* a cluster Lock handed between the tasks of two processes: time per acquisition.

The workers run in spawned processes: each opens its own connection to the servers.
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import time
import uuid
from typing import Any, List, Optional

from .awaiting import median_wake
from .timing import Row

GROUP = "asyncio"
CTX = mp.get_context("spawn")


# ---- workers (module level: spawned children import them) --------------------------------

class _RedisLock:
    """redis-py's asyncio Lock, opened in the process that uses it (clients do not pickle)."""

    def __init__(self, port: int, name: str) -> None:
        self.port, self.name = port, name

    def open(self) -> Any:
        import redis.asyncio

        # Its defaults but for the lease: a 60 s expiry, as the cluster's rows use for redis.
        return redis.asyncio.Redis(host="127.0.0.1", port=self.port).lock(self.name, timeout=60)


async def _take(peer: str, lock: Any) -> None:
    if peer == "executor":
        await asyncio.get_running_loop().run_in_executor(None, lock.acquire)
    elif peer == "interlock":
        await lock.acquire_async()
    else:
        await lock.acquire()


async def _give(peer: str, lock: Any) -> None:
    if peer == "redis":
        await lock.release()
    else:
        lock.release()


def _lock_side(peer: str, lock: Any, times: int, ready: Any, start: Any, out: Any) -> None:
    async def main() -> float:
        held = lock.open() if peer == "redis" else lock
        await _take(peer, held)  # connected and warm before the clock starts
        await _give(peer, held)
        ready.put(True)
        start.wait(120)
        began = time.perf_counter()
        for _ in range(times):
            await _take(peer, held)
            await asyncio.sleep(0)  # holds across a loop turn, as real code would
            await _give(peer, held)
        return time.perf_counter() - began
    out.put(asyncio.run(main()))


def _setter(event: Any, go: Any, stamp: Any, rounds: int) -> None:
    event.is_set()  # connected before the first round
    go.put(None)
    for _ in range(rounds):
        go.get()
        time.sleep(0.02)  # the task's watch is in place by now
        stamp.value = time.monotonic()
        event.set()


# ---- measurements -------------------------------------------------------------------------

def hand_off(peer: str, lock: Any, times: int) -> float:
    """Seconds per acquisition while two processes' tasks take turns with one lock."""
    ready, start, out = CTX.Queue(), CTX.Event(), CTX.Queue()
    sides = [CTX.Process(target=_lock_side, args=(peer, lock, times, ready, start, out))
             for _ in range(2)]
    for p in sides:
        p.start()
    for _ in sides:
        ready.get(timeout=120)
    start.set()
    elapsed = float(max(out.get(timeout=600) for _ in sides))
    for p in sides:
        p.join(60)
    return elapsed / (2 * times)


def wake_latency(peer: str, event: Any, rounds: int) -> float:
    """The median time from set() in another process to the awaiting task's resumption."""
    go, stamp = CTX.Queue(), CTX.Value("d", 0.0, lock=False)
    setter = CTX.Process(target=_setter, args=(event, go, stamp, rounds))
    setter.start()
    go_ready = go.get(timeout=120)
    assert go_ready is None

    async def wait() -> None:
        if peer == "interlock":
            await event.wait_async()
        else:
            await asyncio.get_running_loop().run_in_executor(None, event.wait)

    median = asyncio.run(median_wake(event, wait, go, stamp, rounds))
    setter.join(60)
    return median


# ---- the rows ------------------------------------------------------------------------------

def run(quick: bool, notes: List[str]) -> List[Row]:
    from .cluster import _redis_server, etcd_missing

    missing = etcd_missing()
    if missing is not None:
        notes.append(f"asyncio group: the cluster rows are skipped: {missing}")
        return []
    from .. import cluster as cl
    from ..cluster.testing import EtcdCluster

    rounds = 10 if quick else 50
    times = 10 if quick else 100
    trials = 1 if quick else 3
    latency = Row(GROUP, "cluster Event wake latency, set() in another process to the resumed "
                         "task (etcd x1)")
    handoff = Row(GROUP, "cluster Lock hand-off between two processes' tasks, per acquisition "
                         "(etcd x1)")
    for row in (latency, handoff):
        row.baseline = "executor"
    server: Optional[Any] = _redis_server()
    if server is None:
        notes.append("asyncio group: redis-server or the redis package is missing; the "
                     "redis column is empty (apt-get install redis-server; pip install redis)")
    else:
        notes.append("asyncio group: redis = redis-py's asyncio Lock on a real redis-server, "
                     "its defaults (a retry every 0.1 s while the lock is taken)")
    try:
        with EtcdCluster(members=1) as etcd:
            c = cl.connect(etcd.endpoints, namespace=f"bench-{uuid.uuid4().hex[:8]}")
            try:
                for _ in range(trials):
                    for peer in ("interlock", "executor"):
                        latency.add(peer, wake_latency(peer, c.Event(f"e-{uuid.uuid4().hex}"),
                                                       rounds))
                        handoff.add(peer, hand_off(peer, c.Lock(f"h-{uuid.uuid4().hex}"),
                                                   times))
                    if server is not None:
                        port = server[1].connection_pool.connection_kwargs["port"]
                        handoff.add("redis", hand_off("redis", _RedisLock(port, uuid.uuid4().hex),
                                                      times))
            finally:
                c.close()
    finally:
        if server is not None:
            server[1].close()
            server[0].kill()
            server[0].wait()
    notes.append("asyncio group: the cluster's awaited calls each run in a thread of their "
                 "own (etcd's watch is a network stream, not a futex word), so their latency "
                 "is about the executor's; their gain is that a cancelled task leaves nothing "
                 "held")
    return [latency, handoff]
