"""Robust locks: a holder that dies does not strand the living (Lock/RLock(robust=True))."""

import multiprocessing as mp
import os
import signal
import time

import pytest

import interlock
from interlock import OwnerDiedError, synchronize

import workers
from conftest import kill_holder_under_waiter, native_only, run_child

ROBUST = native_only("robust locks")


@ROBUST
@pytest.mark.parametrize("kind", ["Lock", "RLock"])
def test_waiter_takes_over_from_a_holder_killed_while_it_waits(ctx, kind):
    lock = getattr(synchronize, kind)(robust=True, ctx=ctx)
    held, started, results = ctx.Event(), ctx.Event(), ctx.Queue()
    waiter = ctx.Process(target=workers.acquire_robust_and_report,
                         args=(lock, results, 30, started))
    holder = ctx.Process(target=workers.acquire_and_hold, args=(lock, held, 60))
    holder.start()
    assert held.wait(30)
    outcome, waited, detected_after = kill_holder_under_waiter(holder, waiter, started,
                                                               results, 30)
    assert outcome == "owner died"
    assert waited < 25  # it did not sit out its 30 s timeout
    assert detected_after < 2.0  # documented bound: 100 ms; slack for a loaded machine
    assert lock.acquire(timeout=5) is True  # the waiter released it after recovering
    lock.release()


@ROBUST
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


@ROBUST
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


@ROBUST
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


@ROBUST
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


@ROBUST
def test_lock_released_by_another_process_is_not_an_owner_death(ctx):
    lock = synchronize.Lock(robust=True, ctx=ctx)
    lock.acquire()
    assert run_child(ctx, workers.release_it, lock) == 0  # Lock: anyone may release
    assert lock.acquire(timeout=1) is True  # no OwnerDiedError: nobody died holding it
    lock.release()


@ROBUST
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
    assert issubclass(OwnerDiedError, RuntimeError)
    if interlock.native:
        assert interlock.get_context("fork").Lock(robust=True).robust
    else:
        with pytest.raises(NotImplementedError, match="native core"):
            interlock.Lock(robust=True)


@ROBUST
def test_a_sleeping_waiter_is_woken_by_the_holders_death_not_by_polling():
    """The waiter sleeps until the holder's process ends (a pidfd watch), not in slices: with
    the fallback poll interval set to an hour, it still takes over within moments."""
    import threading

    fork = mp.get_context("fork")
    lock = interlock.Lock(robust=True)
    held, die = fork.Event(), fork.Event()
    holder = fork.Process(target=workers.hold_until_told_then_die, args=(lock, held, die))
    holder.start()
    assert held.wait(30)
    outcome = []

    def wait_for_it():
        try:
            lock.acquire(timeout=30)
            outcome.append("acquired")
        except OwnerDiedError:
            outcome.append(time.monotonic())

    interlock.set_owner_check_interval(3600)
    try:
        thread = threading.Thread(target=wait_for_it)
        thread.start()
        deadline = time.monotonic() + 10
        while interlock._core._death_watches() != 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert interlock._core._death_watches() == 1  # asleep, watching the holder
        killed_at = time.monotonic()
        die.set()  # it dies by SIGKILL, holding the lock
        thread.join(20)
    finally:
        interlock.set_owner_check_interval(0.05)
    holder.join(10)
    assert len(outcome) == 1 and outcome[0] != "acquired", outcome
    assert outcome[0] - killed_at < 3.0  # documented: at once; slack for a loaded machine
    assert interlock._core._death_watches() == 0
    assert lock.locked()  # held by the waiter thread, which took it over
    lock.release()


@ROBUST
def test_waiters_follow_a_new_holder_that_then_dies():
    """A robust lock's release wakes every sleeper, so a sleeper that did not get the lock
    watches whoever did: here the new holder is another waiter's process, which dies holding
    it, while the first holder lives on."""
    import threading

    fork = mp.get_context("fork")
    lock = interlock.Lock(robust=True)
    held, release, stay = fork.Event(), fork.Event(), fork.Event()
    first = fork.Process(target=workers.hold_until_told, args=(lock, held, release, stay))
    first.start()
    assert held.wait(30)
    second = fork.Process(target=workers.acquire_then_die, args=(lock,))
    second.start()
    outcomes = []

    def waiter():
        for _ in range(50):  # take and give back until the second process got it and died
            try:
                if not lock.acquire(timeout=60):
                    outcomes.append("timeout")
                    return
            except OwnerDiedError:
                outcomes.append("owner died")
                outcomes.append(time.monotonic())
                lock.release()
                return
            lock.release()
            time.sleep(0.01)
        outcomes.append("never")

    thread = threading.Thread(target=waiter)
    deadline = time.monotonic() + 10
    while interlock._core._death_watches() != 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.2)  # the second process is asleep on the lock by now
    thread.start()
    time.sleep(0.2)
    released_at = time.monotonic()
    release.set()  # the first holder releases; it stays alive until the end
    thread.join(70)
    second.join(10)
    stay.set()
    first.join(10)
    assert outcomes[:1] == ["owner died"], outcomes
    # Noticed when the second process died, not at the end of the waiter's 60 s timeout.
    assert outcomes[1] - released_at < 10
    assert second.exitcode == -signal.SIGKILL


@ROBUST
def test_without_a_death_watch_waiters_poll_at_the_check_interval():
    """Where pidfds are unavailable (forced here), a waiter looks at its holder every interval
    instead of watching it, and still takes over."""
    code = """
import multiprocessing as mp, threading, time
import interlock
from interlock import OwnerDiedError
import workers

fork = mp.get_context("fork")
lock = interlock.Lock(robust=True)
held, die = fork.Event(), fork.Event()
p = fork.Process(target=workers.hold_until_told_then_die, args=(lock, held, die))
p.start(); held.wait(30)
outcome, watches = [], []
def wait_for_it():
    try:
        lock.acquire(timeout=10)
    except OwnerDiedError:
        outcome.append(time.monotonic())
interlock.set_owner_check_interval(0.5)
t = threading.Thread(target=wait_for_it)
t.start(); time.sleep(0.7)
watches.append(interlock._core._death_watches())
killed = time.monotonic(); die.set(); t.join(20); p.join()
print(outcome[0] - killed, watches[0])
"""
    import subprocess
    import sys

    env = dict(os.environ, INTERLOCK_NO_DEATH_WATCH="1",
               PYTHONPATH=os.path.dirname(workers.__file__))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, env=env)
    assert out.returncode == 0, out.stderr
    detected_after, watches = out.stdout.split()
    assert float(detected_after) < 3.0  # within an interval (0.5 s), plus slack
    assert watches == "0"  # it polled: nothing watched
