"""interlock.RLock: recursion, ownership and its errors."""

import threading

import pytest

import interlock
from interlock import synchronize

import workers
from conftest import run_child

NOT_OWNED = "attempt to release recursive lock not owned by thread"


def test_reentrant_acquire_and_matching_releases():
    lock = interlock.RLock()
    assert lock.acquire() and lock.acquire() and lock.acquire(False)
    assert repr(lock) == "<RLock(MainProcess, 3)>"
    lock.release()
    lock.release()
    assert lock.locked()
    lock.release()
    assert not lock.locked()
    assert repr(lock) == "<RLock(None, 0)>"


def test_release_of_unowned_rlock_raises_assertion_error():
    lock = interlock.RLock()
    with pytest.raises(AssertionError, match=NOT_OWNED):
        lock.release()


def test_release_by_another_thread_raises_and_keeps_lock():
    lock = interlock.RLock()
    lock.acquire()
    errors = []

    def other():
        try:
            lock.release()
        except AssertionError as exc:
            errors.append(str(exc))
        errors.append(lock.acquire(False))

    t = threading.Thread(target=other)
    t.start()
    t.join()
    assert errors == [NOT_OWNED, False]
    assert lock._is_mine()
    lock.release()


def test_release_by_another_process_raises(ctx):
    lock = synchronize.RLock(ctx=ctx)
    lock.acquire()
    results = ctx.Queue()
    assert run_child(ctx, workers.release_and_report, lock, results) == 0
    assert results.get(timeout=10) == ("AssertionError", NOT_OWNED)
    assert lock._is_mine()
    lock.release()


def test_other_thread_blocks_until_fully_released():
    lock = interlock.RLock()
    lock.acquire()
    lock.acquire()
    got = []
    t = threading.Thread(target=lambda: got.append(lock.acquire(timeout=0.2)))
    t.start()
    t.join()
    assert got == [False]
    lock.release()
    t = threading.Thread(target=lambda: got.append(lock.acquire(timeout=0.2)))
    t.start()
    t.join()
    assert got == [False, False]
    lock.release()
    t = threading.Thread(target=lambda: (got.append(lock.acquire(timeout=5)), lock.release()))
    t.start()
    t.join()
    assert got == [False, False, True]


def test_repr_other_holders(ctx):
    lock = synchronize.RLock(ctx=ctx)
    seen = []
    lock.acquire()
    t = threading.Thread(target=lambda: seen.append(repr(lock)))
    t.start()
    t.join()
    assert seen == ["<RLock(SomeOtherThread, nonzero)>"]
    results = ctx.Queue()
    assert run_child(ctx, workers.repr_from_child, lock, results) == 0
    assert results.get(timeout=10) == "<RLock(SomeOtherProcess, nonzero)>"
    lock.release()


def test_context_manager_nests():
    lock = interlock.RLock()
    with lock:
        with lock:
            assert lock._count() == 2
        assert lock._count() == 1
    assert not lock.locked()
