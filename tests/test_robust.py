"""Robust locks: a holder that dies does not strand the living (Lock/RLock(robust=True))."""

import multiprocessing as mp
import os
import signal
import time

import pytest

import interlock
from interlock import OwnerDiedError, synchronize

import workers
from conftest import run_child


@pytest.mark.parametrize("kind", ["Lock", "RLock"])
def test_waiter_takes_over_from_a_holder_killed_while_it_waits(ctx, kind):
    lock = getattr(synchronize, kind)(robust=True, ctx=ctx)
    held, results = ctx.Event(), ctx.Queue()
    waiter = ctx.Process(target=workers.acquire_robust_and_report, args=(lock, results, 30))
    holder = ctx.Process(target=workers.acquire_and_hold, args=(lock, held, 60))
    holder.start()
    assert held.wait(30)
    waiter.start()
    time.sleep(0.3)  # the waiter is asleep on the lock by now
    killed_at = time.monotonic()
    holder.kill()
    outcome, waited = results.get(timeout=30)
    detected_after = time.monotonic() - killed_at
    waiter.join(30)
    holder.join(30)
    assert outcome == "owner died"
    assert waited < 25  # it did not sit out its 30 s timeout
    assert detected_after < 2.0  # documented bound: 100 ms; slack for a loaded machine
    assert lock.acquire(timeout=5) is True  # the waiter released it after recovering
    lock.release()


@pytest.mark.parametrize("kind", ["Lock", "RLock"])
def test_later_acquirer_takes_over_and_holds_the_lock(kind):
    lock = getattr(interlock, kind)(robust=True)
    held = mp.get_context("fork").Event()
    assert run_child(mp.get_context("fork"), workers.hold_then_die, lock, held) == -signal.SIGKILL
    with pytest.raises(OwnerDiedError):
        lock.acquire(False)
    assert lock._is_mine()
    if kind == "RLock":
        assert lock._count() == 1
        assert repr(lock) == "<RLock(MainProcess, 1)>"
    lock.release()
    assert lock.acquire(False) is True  # an ordinary lock again
    lock.release()


def test_blocking_acquire_and_with_statement_report_the_dead_owner():
    fork = mp.get_context("fork")
    lock = interlock.Lock(robust=True)
    run_child(fork, workers.hold_then_die, lock, fork.Event())
    start = time.monotonic()
    with pytest.raises(OwnerDiedError):
        with lock:
            pytest.fail("the with body must not run: __enter__ raised")
    assert time.monotonic() - start < 1.0
    assert lock._is_mine()  # __enter__ raised, so __exit__ did not run: still ours
    lock.release()


def test_zombie_holder_counts_as_dead():
    fork = mp.get_context("fork")
    lock = interlock.Lock(robust=True)
    held = fork.Event()
    holder = fork.Process(target=workers.acquire_and_hold, args=(lock, held, 60))
    holder.start()
    assert held.wait(30)
    os.kill(holder.pid, signal.SIGKILL)
    time.sleep(0.2)  # dead but not reaped: a zombie
    with pytest.raises(OwnerDiedError):
        lock.acquire(timeout=5)
    lock.release()
    holder.join()


def test_live_holder_is_never_presumed_dead(ctx):
    lock = synchronize.Lock(robust=True, ctx=ctx)
    held = ctx.Event()
    holder = ctx.Process(target=workers.acquire_and_hold, args=(lock, held, 3))
    holder.start()
    assert held.wait(30)
    assert lock.acquire(timeout=0.5) is False  # several check intervals: holder alive
    assert lock.acquire(False) is False
    holder.join(30)  # it exits holding the lock: exit is death too
    with pytest.raises(OwnerDiedError):
        lock.acquire(timeout=5)
    lock.release()


def test_lock_released_by_another_process_is_not_an_owner_death(ctx):
    lock = synchronize.Lock(robust=True, ctx=ctx)
    lock.acquire()
    assert run_child(ctx, workers.release_it, lock) == 0  # Lock: anyone may release
    assert lock.acquire(timeout=1) is True  # no OwnerDiedError: nobody died holding it
    lock.release()


def test_condition_wait_reports_the_dead_owner_after_taking_the_lock_back():
    fork = mp.get_context("fork")
    cond = interlock.Condition(interlock.Lock(robust=True))
    held = fork.Event()
    with pytest.raises(OwnerDiedError):
        cond.acquire()
        holder = fork.Process(target=workers.hold_then_die, args=(cond, held))
        holder.start()  # it blocks on the condition's lock until wait() releases it
        cond.wait(timeout=3)
    holder.join()
    assert held.is_set()
    assert cond._lock._is_mine()  # wait() took the lock back before raising
    cond.release()


def test_default_is_not_robust_and_stays_locked():
    fork = mp.get_context("fork")
    lock = interlock.Lock()
    assert lock.robust is False
    run_child(fork, workers.hold_then_die, lock, fork.Event())
    assert lock.acquire(timeout=0.3) is False  # CPython's semantics: held forever


def test_arguments():
    with pytest.raises(TypeError, match="robust must be a bool"):
        interlock.Lock(robust=1)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        interlock.Lock(True)  # type: ignore[misc]
    for bad in (0, -1, float("nan"), float("inf"), 1e9):
        with pytest.raises(ValueError):
            interlock.set_owner_check_interval(bad)
    with pytest.raises(TypeError):
        interlock.set_owner_check_interval("0.1")  # type: ignore[arg-type]
    interlock.set_owner_check_interval(0.05)
    assert interlock.get_context("fork").Lock(robust=True).robust
    assert issubclass(OwnerDiedError, RuntimeError)


def test_check_interval_sets_detection_latency():
    """A waiter outside the main thread sleeps one whole interval between checks (the main
    thread also checks whenever it wakes to run signal handlers, every 100 ms)."""
    import threading

    fork = mp.get_context("fork")
    lock = interlock.Lock(robust=True)
    run_child(fork, workers.hold_then_die, lock, fork.Event())
    outcome = []

    def wait_for_it():
        start = time.monotonic()
        try:
            lock.acquire(timeout=5)
        except OwnerDiedError:
            outcome.append(time.monotonic() - start)

    interlock.set_owner_check_interval(0.5)
    try:
        thread = threading.Thread(target=wait_for_it)
        thread.start()
        thread.join(10)
    finally:
        interlock.set_owner_check_interval(0.05)
    assert len(outcome) == 1 and 0.45 <= outcome[0] < 3.0, outcome
    assert lock.locked()
    lock.release()
