"""RWLock stress: P processes x T threads take read and write holds at random, with random
timeouts and downgrades. Invariants: a writer is never inside with anyone else, there are
never more readers inside than threads, no timed acquire overruns its timeout by more than a
slack, and the untimed ones all return (no lost wake-up); at the end the lock is free.

Quick by default; INTERLOCK_STRESS_SECONDS sets the length, as for tests/stress/test_stress.py.
"""

import multiprocessing as mp
import os

import pytest

from interlock import synchronize

import rwlock_stress_workers as rw_workers
from conftest import native_only

pytestmark = pytest.mark.stress

SECONDS = float(os.environ.get("INTERLOCK_STRESS_SECONDS", "3"))
THREADS = 3


@pytest.mark.parametrize("prefer, robust", [
    ("writers", False), ("readers", False),
    pytest.param("writers", True, marks=native_only("robust locks"))],
    ids=["writers", "readers", "robust"])
@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
def test_rwlock_invariants_hold(method, prefer, robust):
    ctx = mp.get_context(method)
    processes = 2 * (os.cpu_count() or 1)
    rw = synchronize.RWLock(prefer=prefer, robust=robust, ctx=ctx)
    meter = synchronize.Lock(ctx=ctx)
    shared = ctx.RawArray("q", rw_workers.FIELDS)
    procs = [ctx.Process(target=rw_workers.worker,
                         args=(rw, meter, shared, seed, SECONDS, THREADS), daemon=True)
             for seed in range(processes)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(SECONDS + 120)
        assert not p.is_alive(), "a worker hung: a wake-up was lost"
        assert p.exitcode == 0
    report = {name: shared[i] for i, name in enumerate(
        ["readers_in", "writers_in", "most_readers", "violations", "late", "ops", "writes",
         "done"])}
    assert report["done"] == processes, report
    assert report["violations"] == 0, report
    assert report["late"] == 0, report
    assert 0 < report["most_readers"] <= processes * THREADS, report
    assert report["readers_in"] == 0 and report["writers_in"] == 0, report
    assert report["ops"] > 0 and report["writes"] > 0, report
    assert rw._readers() == 0 and not rw.write_lock().locked() and rw._waiting_writers() == 0
