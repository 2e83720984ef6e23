"""RWLock(robust=True): the holds of a process that dies come back, under every start method.
A lost write hold is reported to the next acquirer as OwnerDiedError; a dead reader is just
dropped."""

import multiprocessing as mp
import signal
import threading
import time

import pytest

import interlock
from interlock import OwnerDiedError, synchronize

import rwlock_workers
import workers
from conftest import kill_holder_under_waiter, native_only, run_child

ROBUST = native_only("robust locks")


def start_holder(ctx, view):
    held = ctx.Event()
    holder = ctx.Process(target=workers.acquire_and_hold, args=(view, held, 120))
    holder.start()
    assert held.wait(60)
    return holder


@ROBUST
@pytest.mark.parametrize("side", ["read", "write"])
def test_a_reader_waiting_behind_a_killed_writer_gets_owner_died(ctx, side):
    rw = synchronize.RWLock(robust=True, ctx=ctx)
    holder = start_holder(ctx, rw.write_lock())
    started, results = ctx.Event(), ctx.Queue()
    view = rw.read_lock() if side == "read" else rw.write_lock()
    waiter = ctx.Process(target=workers.acquire_robust_and_report,
                         args=(view, results, 60, started))
    outcome, waited, detected_after = kill_holder_under_waiter(holder, waiter, started,
                                                               results, 60)
    assert outcome == "owner died"
    assert waited < 50 and detected_after < 3.0  # at once; slack for a loaded machine
    assert waiter.exitcode == 0
    # The waiter released its hold after recovering; the loss is reported only once.
    assert rw.acquire_write(timeout=10) is True
    rw.release_write()


@ROBUST
def test_a_writer_waiting_behind_a_killed_reader_gets_in_without_an_error(ctx):
    rw = synchronize.RWLock(robust=True, ctx=ctx)
    holder = start_holder(ctx, rw.read_lock())
    assert rw._readers() == 1
    results = ctx.Queue()
    waiter = ctx.Process(target=workers.acquire_robust_and_report,
                         args=(rw.write_lock(), results, 60))
    waiter.start()
    deadline = time.monotonic() + 60
    while rw._waiting_writers() == 0 and time.monotonic() < deadline:
        time.sleep(0.001)
    holder.kill()
    outcome, waited, _ = results.get(timeout=60)
    waiter.join(30)
    holder.join(30)
    assert outcome == "acquired"  # a reader's death loses no write
    assert waited < 50
    # The waiter exited holding the write lock (acquire_robust_and_report keeps what it got):
    # that hold is lost, and reported.
    with pytest.raises(OwnerDiedError):
        rw.acquire_read(timeout=10)
    rw.release_read()
    assert rw._readers() == 0 and not rw._write_locked()


@ROBUST
def test_a_killed_waiting_writer_stops_holding_readers_back(ctx):
    rw = synchronize.RWLock(robust=True, ctx=ctx)  # prefer="writers"
    assert rw.acquire_read()
    try:
        never = ctx.Event()
        writer = ctx.Process(target=workers.acquire_and_hold, args=(rw.write_lock(), never, 120))
        writer.start()
        deadline = time.monotonic() + 60
        while rw._waiting_writers() == 0 and time.monotonic() < deadline:
            time.sleep(0.001)
        assert rw._waiting_writers() == 1
        other = threading.Thread(target=lambda: out.append(rw.acquire_read(timeout=30)))
        out = []
        other.start()
        time.sleep(0.2)
        assert out == []  # held back behind the waiting writer
        writer.kill()
        other.join(30)
        writer.join(30)
        assert out == [True]
        assert rw._waiting_writers() == 0
    finally:
        rw.release_read()
    assert rw._readers() == 1  # the other thread's hold, which it never gave back
    assert rw.acquire_write(timeout=0.05) is False


@ROBUST
@pytest.mark.parametrize("side", ["read", "write"])
def test_a_later_acquirer_learns_of_the_lost_write_even_without_waiting(side):
    fork = mp.get_context("fork")
    rw = interlock.RWLock(robust=True)
    assert run_child(fork, workers.hold_then_die, rw.write_lock(), fork.Event()) == -signal.SIGKILL
    acquire = rw.acquire_read if side == "read" else rw.acquire_write
    with pytest.raises(OwnerDiedError):
        acquire(False)
    if side == "read":
        assert rw._own_reads() == 1
        rw.release_read()
    else:
        assert rw._owns_write()
        rw.release_write()
    assert acquire(False) is True  # reported once; an ordinary lock again
    (rw.release_read if side == "read" else rw.release_write)()


@ROBUST
def test_a_reader_that_exits_without_releasing_is_dropped():
    fork = mp.get_context("fork")
    rw = interlock.RWLock(robust=True)
    assert run_child(fork, workers.acquire_then_exit, rw.read_lock()) == 0
    assert rw.acquire_write(timeout=10) is True
    rw.release_write()


@ROBUST
def test_the_with_statement_reports_the_dead_writer_holding_the_lock():
    fork = mp.get_context("fork")
    rw = interlock.RWLock(robust=True)
    run_child(fork, workers.hold_then_die, rw.write_lock(), fork.Event())
    with pytest.raises(OwnerDiedError):
        with rw.write_lock():
            pytest.fail("the body must not run")  # __enter__ raised
    assert rw._owns_write()  # as Lock's with: the hold is the caller's to give back
    rw.release_write()


def test_robust_is_checked_and_reported():
    assert interlock.RWLock().robust is False
    with pytest.raises(TypeError, match="robust must be a bool"):
        interlock.RWLock(robust=1)
    if not interlock.native:
        with pytest.raises(NotImplementedError):
            interlock.RWLock(robust=True)
        return
    rw = interlock.RWLock(robust=True, prefer="readers")
    assert rw.robust is True and rw.prefer == "readers"
    assert "robust=True" in repr(rw)
    assert "robust" not in repr(interlock.RWLock())


@ROBUST
def test_many_processes_read_together_and_a_writer_follows(ctx):
    """More reading processes than a robust lock has entries (24): the rest wait for an entry
    as for a writer, and every one gets its turn."""
    rw = synchronize.RWLock(robust=True, ctx=ctx)
    n = 30
    barrier = synchronize.Barrier(n, ctx=ctx)
    results = ctx.Queue()
    children = [ctx.Process(target=rwlock_workers.read_briefly_then_meet,
                            args=(rw, barrier, results)) for _ in range(n)]
    for p in children:
        p.start()
    assert sorted(results.get(timeout=120) for _ in children) == [True] * n
    for p in children:
        p.join(60)
        assert p.exitcode == 0
    assert rw.acquire_write(timeout=10) is True
    rw.release_write()
