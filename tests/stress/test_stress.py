"""Stress under faults: 2 x cores worker processes (three threads each) do random operations
with random timeouts on every primitive, while the parent kills, interrupts and terminates
some of them. Invariants checked at the end:

* mutual exclusion: the lock-protected counter equals the sum of every thread's increments
  (robust locks: a holder killed mid-update is repaired by whoever gets OwnerDiedError);
* semaphore: never more holders than permits; without faults, every permit is back;
* no lost wake-ups: no timed wait overran its timeout by more than a slack, and the untimed
  waits (the start and stop Events) all returned;
* Barrier: every round hands out each index exactly once (separate test).

Quick by default (a few seconds per start method, part of the normal test run). The long
mode: INTERLOCK_STRESS_SECONDS=600 python -m pytest tests/stress -k faults
"""

import multiprocessing as mp
import os
import random
import signal
import time

import pytest

import interlock
from interlock import synchronize

import stress_workers as sw

# CI runs these once, on the default interpreter (.ci/run).
pytestmark = pytest.mark.stress

SECONDS = float(os.environ.get("INTERLOCK_STRESS_SECONDS", "4"))
PERMITS = 3


def _primitives(ctx):
    def robust_lock():
        return synchronize.Lock(robust=True, ctx=ctx)

    return {
        "lock": robust_lock(),
        "rlock": synchronize.RLock(robust=True, ctx=ctx),
        "guard": robust_lock(),
        "sem": synchronize.BoundedSemaphore(PERMITS, ctx=ctx),
        "cond": synchronize.Condition(robust_lock(), ctx=ctx),
        "event": synchronize.Event(ctx=ctx),
        "go": synchronize.Event(ctx=ctx),
        "stop": synchronize.Event(ctx=ctx),
    }


def _run(ctx, seconds, faults, seed):
    rng = random.Random(seed)
    workers = 2 * (os.cpu_count() or 1)
    spares = int(seconds) + 1 if faults else 0  # replacements for killed workers
    p = _primitives(ctx)
    shared = ctx.RawArray("q", sw.HEADER + sw.ROW * 3 * (workers + spares))
    exiting = {0} if faults else set()  # worker 0 leaves while one of its threads waits
    procs = {}

    def start(i, run_for):
        procs[i] = ctx.Process(
            target=sw.worker,
            args=(i, p, shared, seed * 100 + i, run_for, PERMITS, i in exiting),
            daemon=True,
        )
        procs[i].start()

    for i in range(workers):
        start(i, seconds)
    p["go"].set()
    killed = set()
    started = time.monotonic()
    deadline = started + seconds
    while time.monotonic() < deadline:
        time.sleep(rng.uniform(0.05, 0.3))
        live = [i for i, proc in procs.items() if i not in exiting and i not in killed]
        if not faults or not live:
            continue
        action = rng.random()
        if action < 0.6:
            os.kill(procs[rng.choice(live)].pid, signal.SIGINT)  # interrupts a wait, if any
            continue
        holder = shared[sw.PENDING] - 1  # the thread inside the counter's critical section
        victim = holder // 3 if holder >= 0 and holder // 3 in live else rng.choice(live)
        remaining = deadline - time.monotonic()
        if remaining < 1 or len(procs) >= workers + spares:
            continue
        os.kill(procs[victim].pid, signal.SIGKILL if action < 0.9 else signal.SIGTERM)
        killed.add(victim)
        start(len(procs), remaining)
    # Every survivor finishes its loop, then waits (untimed) on `stop`.
    survivors = [i for i in procs if i not in killed and i not in exiting]
    finish_by = time.monotonic() + 60 + sw.SLACK
    for i in survivors:
        for t in range(3):
            while shared[sw.HEADER + (i * 3 + t) * sw.ROW + 3] != 1:
                assert time.monotonic() < finish_by, f"worker {i} thread {t} never finished"
                time.sleep(0.01)
    p["stop"].set()
    for i, proc in procs.items():
        proc.join(60)
        assert not proc.is_alive(), f"worker {i} hung in an untimed wait"
        if i in survivors:
            assert proc.exitcode == 0, (i, proc.exitcode)

    increments = sum(shared[i] for i in range(sw.HEADER, len(shared), sw.ROW))
    ops = sum(shared[i + 1] for i in range(sw.HEADER, len(shared), sw.ROW))
    report = {
        "ops": ops,
        "increments": increments,
        "repairs": shared[sw.REPAIRS],
        "interrupts": sum(shared[i + 2] for i in range(sw.HEADER, len(shared), sw.ROW)),
        "killed": len(killed),
        "seconds": round(time.monotonic() - started, 1),
    }
    if p["lock"].acquire(timeout=5) is False:
        pytest.fail(f"the counter's lock is stuck: {report}")
    p["lock"].release()
    assert shared[sw.PENDING] == 0 or killed, report
    if shared[sw.PENDING]:
        sw._repair(shared)  # the last holder was killed and nobody needed the lock since
    counted = sum(shared[i] for i in range(sw.HEADER, len(shared), sw.ROW))
    assert shared[sw.COUNTER] == counted, report
    assert shared[sw.OVER] == 0, report
    assert shared[sw.LATE] == 0, report
    if not faults:
        assert p["sem"].get_value() == PERMITS, report
        assert shared[sw.INSIDE] == 0, report
    else:
        assert p["sem"].get_value() <= PERMITS, report
    assert ops > 0 and increments > 0, report
    return report


@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
def test_invariants_hold_without_faults(method):
    report = _run(mp.get_context(method), SECONDS, faults=False, seed=1)
    print(method, report)


@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
def test_invariants_hold_under_faults(method):
    report = _run(mp.get_context(method), SECONDS, faults=True, seed=2)
    print(method, report)


def _barrier_party(barrier, rounds, log, slot):
    for r in range(rounds):
        log[slot * rounds + r] = barrier.wait(timeout=60)


@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
def test_barrier_indices_are_unique_in_every_round(method):
    ctx = mp.get_context(method)
    parties = 2 * (os.cpu_count() or 1)
    rounds = 200
    barrier = interlock.get_context(method).Barrier(parties)
    log = ctx.RawArray("i", parties * rounds)
    procs = [ctx.Process(target=_barrier_party, args=(barrier, rounds, log, i))
             for i in range(parties)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(120)
        assert proc.exitcode == 0
    for r in range(rounds):
        assert sorted(log[i * rounds + r] for i in range(parties)) == list(range(parties)), r
