"""interlock.Semaphore and BoundedSemaphore."""

import threading
import time

import pytest

import interlock
from interlock import synchronize

import workers


def test_counts_down_and_refuses_at_zero():
    sem = interlock.Semaphore(2)
    assert sem.get_value() == 2
    assert sem.acquire() and sem.acquire(block=False)
    assert sem.get_value() == 0
    assert sem.acquire(False) is False
    assert sem.acquire(timeout=0.05) is False
    sem.release()
    assert sem.get_value() == 1


def test_default_value_is_one_and_zero_is_allowed():
    assert interlock.Semaphore().get_value() == 1
    assert interlock.Semaphore(0).get_value() == 0
    assert interlock.BoundedSemaphore().get_value() == 1


def test_release_n_like_threading():
    sem = interlock.Semaphore(0)
    sem.release(3)
    assert sem.get_value() == 3
    with pytest.raises(ValueError, match="n must be one or more"):
        sem.release(0)


def test_value_up_to_sem_value_max():
    sem = interlock.Semaphore(interlock.SEM_VALUE_MAX)
    assert sem.get_value() == interlock.SEM_VALUE_MAX
    with pytest.raises(ValueError, match="released too many times"):
        sem.release()
    assert sem.acquire(False)
    sem.release()
    assert sem.get_value() == interlock.SEM_VALUE_MAX


def test_bounded_semaphore_refuses_release_past_initial_value():
    sem = interlock.BoundedSemaphore(2)
    with pytest.raises(ValueError, match="semaphore or lock released too many times"):
        sem.release()
    sem.acquire()
    sem.release()
    with pytest.raises(ValueError):
        sem.release()
    sem.acquire()
    with pytest.raises(ValueError):
        sem.release(2)  # would pass the bound: nothing changes
    assert sem.get_value() == 1


def test_bound_check_is_atomic_under_racing_releasers(ctx):
    """Many processes release a drained BoundedSemaphore at once: exactly `bound` succeed."""
    bound = 50
    sem = synchronize.BoundedSemaphore(bound, ctx=ctx)
    for _ in range(bound):
        assert sem.acquire(False)
    results = ctx.Queue()
    procs = [
        ctx.Process(target=workers.release_n_times, args=(sem, bound, results)) for _ in range(3)
    ]
    for p in procs:
        p.start()
    total = sum(results.get(timeout=60) for _ in procs)
    for p in procs:
        p.join(30)
    assert total == bound
    assert sem.get_value() == bound


def test_reprs():
    assert repr(interlock.Semaphore(3)) == "<Semaphore(value=3)>"
    assert repr(interlock.BoundedSemaphore(2)) == "<BoundedSemaphore(value=2, maxvalue=2)>"
    sem = interlock.BoundedSemaphore(2)
    sem.acquire()
    assert repr(sem) == "<BoundedSemaphore(value=1, maxvalue=2)>"


def test_context_manager():
    sem = interlock.Semaphore(1)
    with sem:
        assert sem.get_value() == 0
    assert sem.get_value() == 1


def test_waiter_is_woken_by_release_from_thread():
    sem = interlock.Semaphore(0)
    threading.Timer(0.1, sem.release).start()
    start = time.monotonic()
    assert sem.acquire(timeout=10)
    assert time.monotonic() - start < 5


def test_permits_are_conserved_across_processes(ctx):
    sem = synchronize.Semaphore(2, ctx=ctx)
    inside = ctx.Value("i", 0)
    max_inside = ctx.Value("i", 0)
    procs = [
        ctx.Process(target=workers.take_and_return_permits, args=(sem, 500, inside, max_inside))
        for _ in range(4)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    assert sem.get_value() == 2
    assert 1 <= max_inside.value <= 2


def test_ping_pong_between_processes(ctx):
    ping, pong = synchronize.Semaphore(0, ctx=ctx), synchronize.Semaphore(0, ctx=ctx)
    p = ctx.Process(target=workers.sem_ping, args=(ping, pong, 200))
    p.start()
    for _ in range(200):
        ping.release()
        assert pong.acquire(timeout=30)
    p.join(30)
    assert p.exitcode == 0
    assert ping.get_value() == 0 and pong.get_value() == 0
