"""interlock.cluster Condition."""

import os
import signal
import threading
import time

import pytest

from cluster import cluster_workers as cw
from interlock.cluster import NotHeldError


def test_needs_the_lock(cluster):
    c = cluster.Condition("c")
    for call in (c.wait, c.notify, c.notify_all, lambda: c.wait_for(lambda: False)):
        with pytest.raises(RuntimeError):
            call()
    with pytest.raises(AssertionError):  # multiprocessing's exception type too
        c.notify()
    assert issubclass(NotHeldError, RuntimeError)


def test_wait_timeout_and_predicates(cluster):
    c = cluster.Condition("c")
    with c:
        start = time.monotonic()
        assert c.wait(0.3) is False
        assert time.monotonic() - start >= 0.25
        assert c.wait(-1) is False
        assert c.wait_for(lambda: 42, timeout=0) == 42
        assert c.wait_for(lambda: 0, timeout=0.2) == 0
        c.notify()  # nobody waits: nothing happens
        c.notify_all()
    assert not c._lock.locked()


def test_over_a_given_lock(cluster):
    lock = cluster.Lock("l")
    c = cluster.Condition("c", lock)
    with c:
        assert lock.locked()
    with pytest.raises(TypeError):
        cluster.Condition("c2", threading.Lock())


def test_notify_wakes_processes_one_at_a_time(cluster, ctx):
    c = cluster.Condition("n")
    results = ctx.Queue()
    readies = [ctx.Event() for _ in range(3)]
    waiters = [ctx.Process(target=cw.condition_waiter, args=(c, r, results, 60))
               for r in readies]
    for w, r in zip(waiters, readies):
        w.start()
        assert r.wait(60)
    _until(lambda: c._waiters() == 3)
    with c:
        c.notify()
    assert results.get(timeout=30) is True
    with c:
        c.notify(2)
    assert [results.get(timeout=30), results.get(timeout=30)] == [True, True]
    for w in waiters:
        w.join(30)
        assert w.exitcode == 0


def test_a_killed_waiter_never_blocks_notify_all(cluster, ctx):
    kill_a_waiter_then_notify_all(cluster.Condition("dead-waiter"), ctx)


def kill_a_waiter_then_notify_all(c, ctx):
    """Two processes wait on `c`; one is SIGKILLed. notify_all() returns at once (it never
    waits for anyone) and wakes the live one. (Also run on three members: test_faults.)"""
    results = ctx.Queue()
    ready_dead, ready_live = ctx.Event(), ctx.Event()
    dead = ctx.Process(target=cw.condition_waiter, args=(c, ready_dead, results, 3600))
    live = ctx.Process(target=cw.condition_waiter, args=(c, ready_live, results, 60))
    dead.start()
    assert ready_dead.wait(60)
    live.start()
    assert ready_live.wait(60)
    _until(lambda: c._waiters() == 2)
    os.kill(dead.pid, signal.SIGKILL)
    dead.join(10)
    start = time.monotonic()
    with c:
        c.notify_all()
    assert time.monotonic() - start < 2
    assert results.get(timeout=30) is True
    live.join(30)
    assert live.exitcode == 0


def _until(predicate, timeout=30):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition never reached"
        time.sleep(0.05)
