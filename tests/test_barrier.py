"""interlock.Barrier: indices, action, breaking, reset, timeouts and dead parties."""

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


def test_parties_validation():
    with pytest.raises(ValueError):
        interlock.Barrier(0)
    with pytest.raises(ValueError):
        interlock.Barrier(-2)
    with pytest.raises(TypeError):
        interlock.Barrier(2.0)
    with pytest.raises(TypeError):
        interlock.Barrier(2, action=5)
    with pytest.raises(ValueError):
        interlock.Barrier(2, timeout=float("nan"))
    b = interlock.Barrier(3)
    assert b.parties == 3 and b.n_waiting == 0 and not b.broken


def test_single_party_returns_zero():
    b = interlock.Barrier(1)
    assert [b.wait() for _ in range(3)] == [0, 0, 0]


def _run_threads(barrier, parties, rounds, timeout=10):
    out, errors = [], []

    def party():
        try:
            for _ in range(rounds):
                out.append(barrier.wait(timeout))
        except Exception as exc:
            errors.append(type(exc))

    threads = [threading.Thread(target=party) for _ in range(parties)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out, errors


@settings(max_examples=15, deadline=None)
@given(parties=st.integers(1, 5), rounds=st.integers(1, 4))
def test_indices_distinct_per_round_property(parties, rounds):
    b = interlock.Barrier(parties)
    out, errors = _run_threads(b, parties, rounds)
    assert errors == []
    assert sorted(out) == sorted(list(range(parties)) * rounds)


def test_action_runs_once_per_round_before_release():
    b_counter = []
    b = interlock.Barrier(3, action=lambda: b_counter.append(len(b_counter)))
    out, errors = _run_threads(b, 3, 4)
    assert errors == [] and len(b_counter) == 4


def test_action_exception_breaks_barrier():
    def boom():
        raise ZeroDivisionError

    b = interlock.Barrier(2, action=boom)
    out, errors = _run_threads(b, 2, 1)
    assert sorted(e.__name__ for e in errors) == ["BrokenBarrierError", "ZeroDivisionError"]
    assert b.broken
    with pytest.raises(threading.BrokenBarrierError):
        b.wait()


def test_timeout_breaks_and_reset_repairs():
    b = interlock.Barrier(2)
    start = time.monotonic()
    with pytest.raises(threading.BrokenBarrierError):
        b.wait(0.1)
    assert time.monotonic() - start < 5
    assert b.broken and b.n_waiting == 0
    b.reset()
    assert not b.broken
    out, errors = _run_threads(b, 2, 1)
    assert errors == [] and sorted(out) == [0, 1]


def test_default_timeout_applies():
    b = interlock.Barrier(2, timeout=0.1)
    with pytest.raises(threading.BrokenBarrierError):
        b.wait()


def test_abort_wakes_waiters():
    b = interlock.Barrier(3)
    errors = []
    t = threading.Thread(target=lambda: errors.append(_wait_catch(b)))
    t.start()
    time.sleep(0.1)
    assert b.n_waiting == 1
    b.abort()
    t.join()
    assert errors == ["BrokenBarrierError"]
    assert b.broken


def _wait_catch(b, timeout=10):
    try:
        return b.wait(timeout)
    except threading.BrokenBarrierError:
        return "BrokenBarrierError"


def test_reset_breaks_current_waiters():
    b = interlock.Barrier(3)
    results = []
    threads = [threading.Thread(target=lambda: results.append(_wait_catch(b))) for _ in range(2)]
    for t in threads:
        t.start()
    while b.n_waiting < 2:
        time.sleep(0.01)
    b.reset()
    for t in threads:
        t.join()
    assert results == ["BrokenBarrierError"] * 2
    assert not b.broken and b.n_waiting == 0
    out, errors = _run_threads(b, 3, 1)
    assert errors == [] and sorted(out) == [0, 1, 2]


@native_only("repr of interlock's own (multiprocessing's is the default object repr)")
def test_repr():
    b = interlock.Barrier(2)
    assert repr(b) == f"<interlock.synchronize.Barrier at {id(b):#x}: waiters=0/2>"
    b.abort()
    assert repr(b) == f"<interlock.synchronize.Barrier at {id(b):#x}: broken>"


def test_brokenbarriererror_is_threadings():
    assert interlock.synchronize.Barrier.wait.__doc__
    b = interlock.Barrier(2)
    b.abort()
    try:
        b.wait()
    except threading.BrokenBarrierError as exc:
        assert type(exc) is threading.BrokenBarrierError


def test_rounds_across_processes_with_action(ctx):
    counter = ctx.Value("i", 0)
    b = synchronize.Barrier(3, action=_Action(counter), ctx=ctx)
    results = ctx.Queue()
    procs = [ctx.Process(target=workers.barrier_rounds, args=(b, 5, results, 30))
             for _ in range(2)]
    for p in procs:
        p.start()
    mine = [b.wait(30) for _ in range(5)]
    theirs = [results.get(timeout=30) for _ in procs]
    for p in procs:
        p.join(30)
    for r in range(5):
        assert sorted([mine[r], theirs[0][r], theirs[1][r]]) == [0, 1, 2]
    assert counter.value == 5


class _Action:
    def __init__(self, counter):
        self.counter = counter

    def __call__(self):
        workers.count_action(self.counter)


@native_only("survival of a party's death: multiprocessing's Barrier can hang once a waiter "
             "was killed")
def test_party_killed_while_waiting_breaks_round_for_timed_waiters(ctx):
    b = synchronize.Barrier(3, ctx=ctx)
    p = ctx.Process(target=workers.barrier_wait_forever, args=(b,))
    p.start()
    deadline = time.monotonic() + 30
    while b.n_waiting < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(p.pid, signal.SIGKILL)
    p.join(30)
    start = time.monotonic()
    with pytest.raises(threading.BrokenBarrierError):
        b.wait(0.3)
    assert time.monotonic() - start < 5
    assert b.broken


def test_party_died_before_arriving_breaks_round_for_timed_waiters(ctx):
    b = synchronize.Barrier(2, ctx=ctx)
    p = ctx.Process(target=os._exit, args=(0,))
    p.start()
    p.join(30)
    with pytest.raises(threading.BrokenBarrierError):
        b.wait(0.3)


def test_many_parties_complete_rounds(ctx):
    parties = 2 * (os.cpu_count() or 2)
    b = synchronize.Barrier(parties, ctx=ctx)
    results = ctx.Queue()
    procs = [ctx.Process(target=workers.barrier_rounds, args=(b, 20, results, 60))
             for _ in range(parties - 1)]
    for p in procs:
        p.start()
    mine = [b.wait(60) for _ in range(20)]
    theirs = [results.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(30)
    for r in range(20):
        assert sorted([mine[r]] + [t[r] for t in theirs]) == list(range(parties))


@native_only("breaking of the barrier by an interrupted wait (threading's Barrier does not "
             "break it, and neither does multiprocessing's)")
def test_ctrl_c_in_wait_raises_and_breaks_barrier():
    b = interlock.Barrier(2)
    threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGINT)).start()
    start = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        b.wait(30)  # a lost signal would end in BrokenBarrierError, not a hang
    assert time.monotonic() - start < 3
    assert b.broken  # the other party is not left waiting for one that has gone


def test_pickling_keeps_action_and_timeout(ctx):
    counter = ctx.Value("i", 0)
    b = synchronize.Barrier(2, action=_Action(counter), timeout=30, ctx=ctx)
    results = ctx.Queue()
    p = ctx.Process(target=workers.barrier_wait, args=(b, results, None))
    p.start()
    assert b.wait() in (0, 1)
    assert results.get(timeout=30) in (0, 1)
    p.join(30)
    assert counter.value == 1
