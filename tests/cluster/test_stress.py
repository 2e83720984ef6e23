"""Stress: processes x threads hammer a cluster Lock, Semaphore(2) and Condition with random
timeouts. Checks mutual exclusion, the permit bound and that no wake-up is lost.

Quick by default (CI); the long mode: INTERLOCK_CLUSTER_STRESS_SECONDS=60 python -m pytest
tests/cluster/test_stress.py."""

import multiprocessing as mp
import os

import pytest

from cluster import cluster_workers as cw

SECONDS = float(os.environ.get("INTERLOCK_CLUSTER_STRESS_SECONDS", "8"))

pytestmark = pytest.mark.stress


def test_processes_and_threads_hammer_lock_semaphore_and_condition(cluster):
    ctx = mp.get_context("spawn")
    lock, sem, cond = cluster.Lock("l"), cluster.Semaphore("s", 2), cluster.Condition("c")
    in_lock, in_sem, turn = ctx.Value("i", 0), ctx.Value("i", 0), ctx.Value("i", 0)
    results = ctx.Queue()
    hammers = [ctx.Process(target=cw.stress_hammer,
                           args=(lock, sem, in_lock, in_sem, SECONDS, seed, results))
               for seed in range(3)]
    rounds = max(20, int(SECONDS * 5))
    pair = [ctx.Process(target=cw.stress_ping_pong, args=(cond, turn, me, rounds, results))
            for me in (0, 1)]
    for p in hammers + pair:
        p.start()
    reports = [results.get(timeout=SECONDS + 300) for _ in hammers + pair]
    for p in hammers + pair:
        p.join(60)
        assert p.exitcode == 0
    peaks = [r for r in reports if isinstance(r, dict)]
    pings = [r for r in reports if isinstance(r, tuple)]
    print(f"stress {SECONDS:g} s: {sum(p['ops'] for p in peaks)} operations; "
          f"peak holders: lock {max(p['lock'] for p in peaks)}, "
          f"semaphore {max(p['sem'] for p in peaks)}; ping-pong rounds {rounds} x 2")
    assert max(p["lock"] for p in peaks) == 1  # mutual exclusion
    assert max(p["sem"] for p in peaks) <= 2  # the permit bound
    assert all(p["ops"] > 0 for p in peaks)
    assert pings == [("ping-pong", 0)] * 2  # every wait was ended by a notify
    assert not lock.locked() and sem.get_value() == 2
