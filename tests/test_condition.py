"""interlock.Condition: wait/notify semantics, exact wake counts, and dead waiters."""

import os
import signal
import threading
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import interlock
from interlock import synchronize

import workers
from conftest import native_only


def test_requires_interlock_lock():
    import multiprocessing as mp

    with pytest.raises(TypeError, match="interlock Lock or RLock"):
        interlock.Condition(mp.Lock())
    with pytest.raises(TypeError):
        interlock.Condition(threading.Lock())
    with pytest.raises(TypeError):
        interlock.Condition(interlock.Semaphore())
    interlock.Condition(interlock.Lock())
    interlock.Condition(interlock.RLock())


def test_wait_and_notify_need_the_lock():
    cond = interlock.Condition()
    with pytest.raises(AssertionError, match=r"must acquire\(\) condition before using wait\(\)"):
        cond.wait(0)
    with pytest.raises(AssertionError, match="lock is not owned"):
        cond.notify()
    with pytest.raises(AssertionError, match="lock is not owned"):
        cond.notify_all()


def test_wait_times_out_and_keeps_lock():
    for lock in (interlock.Lock(), interlock.RLock()):
        cond = interlock.Condition(lock)
        with cond:
            start = time.monotonic()
            assert cond.wait(0.1) is False
            assert time.monotonic() - start >= 0.09
            assert lock._is_mine()
            assert cond.wait(-1) is False
        assert not lock.locked()


def test_wait_releases_every_rlock_level_and_restores_them():
    cond = interlock.Condition()
    lock = cond._lock
    seen = []

    def notifier():
        with cond:  # only possible if the waiter dropped all three levels
            seen.append(lock._count())
            cond.notify()

    with cond:
        lock.acquire()
        lock.acquire()
        threading.Timer(0.1, notifier).start()
        assert cond.wait(10) is True
        assert lock._count() == 3
        lock.release()
        lock.release()
    assert seen == [1]
    assert not lock.locked()


def test_repr():
    cond = interlock.Condition()
    assert repr(cond) == "<Condition(<RLock(None, 0)>, 0)>"
    lock_cond = interlock.Condition(interlock.Lock())
    assert repr(lock_cond) == "<Condition(<Lock(owner=None)>, 0)>"


def test_wait_for_predicate():
    cond = interlock.Condition()
    state = {"ready": False}

    def setter():
        time.sleep(0.1)
        with cond:
            state["ready"] = True
            cond.notify_all()

    threading.Thread(target=setter).start()
    with cond:
        assert cond.wait_for(lambda: state["ready"], timeout=10) is True
        assert cond.wait_for(lambda: False, timeout=0.05) is False
        assert cond.wait_for(lambda: 7) == 7


def _start_thread_waiters(cond, count, results):
    ready = threading.Semaphore(0)
    threads = []
    for i in range(count):
        def waiter(i=i):
            with cond:
                ready.release()
                results.append((i, cond.wait(20)))
        t = threading.Thread(target=waiter)
        t.start()
        threads.append(t)
    for _ in range(count):
        assert ready.acquire(timeout=10)
    return threads


def _settle(results, expected, timeout=10.0):
    deadline = time.monotonic() + timeout
    while len(results) < expected and time.monotonic() < deadline:
        time.sleep(0.005)
    time.sleep(0.1)  # long enough for an over-wake to show
    return len(results)


def test_notify_wakes_exactly_n_threads():
    cond = interlock.Condition()
    results = []
    threads = _start_thread_waiters(cond, 5, results)
    with cond:
        cond.notify(2)
    assert _settle(results, 2) == 2
    with cond:
        cond.notify()
    assert _settle(results, 3) == 3
    with cond:
        cond.notify_all()
    assert _settle(results, 5) == 5
    assert all(ok for _, ok in results)
    for t in threads:
        t.join()


def test_notify_does_not_wake_later_waiters():
    cond = interlock.Condition()
    with cond:
        cond.notify(5)  # nobody waiting: must not be banked for later waiters
    with cond:
        assert cond.wait(0.1) is False


def test_notify_counts_across_processes(ctx):
    cond = synchronize.Condition(synchronize.Lock(ctx=ctx), ctx=ctx)
    ready, results = ctx.Semaphore(0), ctx.Queue()
    procs = [
        ctx.Process(target=workers.condition_wait_many, args=(cond, ready, results, 30, i))
        for i in range(4)
    ]
    for p in procs:
        p.start()
    for _ in procs:
        assert ready.acquire(timeout=30)
    with cond:
        cond.notify(2)
    woken = [results.get(timeout=30) for _ in range(2)]
    time.sleep(0.3)
    assert results.empty()  # no third waiter woke
    with cond:
        cond.notify_all()
    woken += [results.get(timeout=30) for _ in range(2)]
    assert sorted(w for w, _ in woken) == [0, 1, 2, 3]
    assert all(ok for _, ok in woken)
    for p in procs:
        p.join(30)


@native_only("notify() that never waits for its waiters: multiprocessing's waits until each "
             "woken waiter has woken, and one that was killed never does")
def test_notify_never_blocks_on_a_dead_waiter(ctx):
    cond = synchronize.Condition(ctx=ctx)
    ready = ctx.Semaphore(0)
    p = ctx.Process(target=workers.wait_on_condition_forever, args=(cond, ready))
    p.start()
    assert ready.acquire(timeout=30)
    time.sleep(0.1)
    os.kill(p.pid, signal.SIGKILL)
    p.join(30)
    start = time.monotonic()
    with cond:
        cond.notify()
        cond.notify_all()
    assert time.monotonic() - start < 1.0
    # A live waiter is still served afterwards.
    results = []
    threads = _start_thread_waiters(cond, 1, results)
    with cond:
        cond.notify()
    assert _settle(results, 1) == 1 and results[0][1] is True
    threads[0].join()


@settings(max_examples=25, deadline=None)
@given(st.lists(st.one_of(st.tuples(st.just("wait"), st.integers(1, 3)),
                          st.tuples(st.just("notify"), st.integers(0, 4)),
                          st.tuples(st.just("notify_all"), st.just(0))),
                min_size=1, max_size=6))
def test_notify_counts_property(ops):
    """Whatever the sequence, each notify(n) wakes min(n, waiting) waiters, no more."""
    cond = interlock.Condition()
    results, threads = [], []
    waiting = 0
    for op, arg in ops:
        if op == "wait":
            threads += _start_thread_waiters(cond, arg, results)
            waiting += arg
        else:
            n = waiting if op == "notify_all" else min(arg, waiting)
            with cond:
                if op == "notify_all":
                    cond.notify_all()
                else:
                    cond.notify(arg)
            waiting -= n
        expected = len(threads) - waiting
        deadline = time.monotonic() + 10
        while len(results) < expected and time.monotonic() < deadline:
            time.sleep(0.002)
        time.sleep(0.02)
        assert len(results) == expected
    with cond:
        cond.notify_all()
    for t in threads:
        t.join()
    assert all(ok for _, ok in results)
