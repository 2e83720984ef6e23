"""interlock.Lock: the documented behaviour of multiprocessing.Lock, across threads and
processes."""

import threading
import time

import pytest

import interlock
from interlock import synchronize

import workers
from conftest import run_child


def test_acquire_release_and_locked():
    lock = interlock.Lock()
    assert not lock.locked()
    assert lock.acquire() is True
    assert lock.locked()
    lock.release()
    assert not lock.locked()


def test_nonblocking_acquire_of_held_lock_returns_false():
    lock = interlock.Lock()
    lock.acquire()
    assert lock.acquire(False) is False
    assert lock.acquire(block=False) is False
    # block=False ignores the timeout entirely.
    start = time.monotonic()
    assert lock.acquire(False, 5) is False
    assert time.monotonic() - start < 1.0
    lock.release()


def test_timeout_elapses_and_returns_false():
    lock = interlock.Lock()
    lock.acquire()
    start = time.monotonic()
    assert lock.acquire(timeout=0.2) is False
    elapsed = time.monotonic() - start
    assert 0.19 <= elapsed < 2.0
    assert lock.acquire(True, 0.05) is False


@pytest.mark.parametrize("timeout", [0, -1, -5.5, -1e300])
def test_zero_and_negative_timeouts_mean_try_once(timeout):
    lock = interlock.Lock()
    assert lock.acquire(timeout=timeout) is True
    start = time.monotonic()
    assert lock.acquire(timeout=timeout) is False
    assert time.monotonic() - start < 0.5


def test_none_timeout_waits_until_released():
    lock = interlock.Lock()
    lock.acquire()
    threading.Timer(0.2, lock.release).start()
    start = time.monotonic()
    assert lock.acquire(timeout=None) is True
    assert time.monotonic() - start >= 0.15


@pytest.mark.parametrize("timeout", [float("inf"), 1e300, 2.0**63])
def test_huge_timeouts_wait_forever(timeout):
    lock = interlock.Lock()
    lock.acquire()
    threading.Timer(0.1, lock.release).start()
    assert lock.acquire(timeout=timeout) is True


def test_release_of_unlocked_lock_raises_value_error():
    lock = interlock.Lock()
    with pytest.raises(ValueError, match="semaphore or lock released too many times"):
        lock.release()
    lock.acquire()
    lock.release()
    with pytest.raises(ValueError, match="released too many times"):
        lock.release()


def test_any_thread_may_release():
    lock = interlock.Lock()
    lock.acquire()
    t = threading.Thread(target=lock.release)
    t.start()
    t.join()
    assert not lock.locked()


def test_context_manager():
    lock = interlock.Lock()
    with lock as entered:
        assert entered is True
        assert lock.locked()
        assert lock.acquire(False) is False
    assert not lock.locked()


def test_context_manager_releases_on_exception():
    lock = interlock.Lock()
    with pytest.raises(KeyError):
        with lock:
            raise KeyError("x")
    assert not lock.locked()


def test_not_recursive():
    lock = interlock.Lock()
    lock.acquire()
    assert lock.acquire(timeout=0.05) is False
    lock.release()


def test_repr_forms():
    lock = interlock.Lock()
    assert repr(lock) == "<Lock(owner=None)>"
    lock.acquire()
    assert repr(lock) == "<Lock(owner=MainProcess)>"
    seen = []
    t = threading.Thread(target=lambda: seen.append(repr(lock)), name="Worker")
    t.start()
    t.join()
    assert seen == ["<Lock(owner=SomeOtherThread)>"]
    lock.release()

    def in_thread():
        with lock:
            seen.append(repr(lock))

    t = threading.Thread(target=in_thread, name="Worker")
    t.start()
    t.join()
    assert seen[-1] == "<Lock(owner=MainProcess|Worker)>"


def test_repr_names_another_process(ctx):
    lock = synchronize.Lock(ctx=ctx)
    held = ctx.Event()
    p = ctx.Process(target=workers.hold_for, args=(lock, held, 1.0))
    p.start()
    assert held.wait(30)
    assert repr(lock) == "<Lock(owner=SomeOtherProcess)>"
    p.join(30)
    assert repr(lock) == "<Lock(owner=None)>"


def test_blocks_other_process_until_released(ctx):
    lock = synchronize.Lock(ctx=ctx)
    results = ctx.Queue()
    lock.acquire()
    p = ctx.Process(target=workers.acquire_and_report, args=(lock, results, 0.3))
    p.start()
    assert results.get(timeout=30) is False  # timed out while we held it
    p.join(30)
    p = ctx.Process(target=workers.acquire_and_report, args=(lock, results, 30))
    p.start()
    time.sleep(0.2)
    lock.release()
    assert results.get(timeout=30) is True
    p.join(30)
    assert lock.locked()  # the child took it and exited holding it


def test_another_process_may_release(ctx):
    lock = synchronize.Lock(ctx=ctx)
    lock.acquire()
    assert run_child(ctx, workers.release_it, lock) == 0
    assert not lock.locked()
    results = ctx.Queue()
    assert run_child(ctx, workers.release_and_report, lock, results) == 0
    assert results.get(timeout=10) == ("ValueError", "semaphore or lock released too many times")


def test_mutual_exclusion_across_processes(ctx):
    lock = synchronize.Lock(ctx=ctx)
    counter = ctx.Value("i", 0, lock=False)
    procs = [
        ctx.Process(target=workers.add_under_lock, args=(lock, counter, 3000)) for _ in range(4)
    ]
    for p in procs:
        p.start()
    workers.add_under_lock(lock, counter, 3000)
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    assert counter.value == 5 * 3000


def test_mutual_exclusion_across_threads():
    lock = interlock.Lock()
    box = {"n": 0}

    def work():
        for _ in range(20000):
            with lock:
                n = box["n"]
                box["n"] = n + 1

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert box["n"] == 80000


def test_gil_is_released_while_blocked():
    lock = interlock.Lock()
    lock.acquire()
    done = []
    t = threading.Thread(target=lambda: done.append(lock.acquire(timeout=1.0)))
    t.start()
    # The main thread keeps running Python code while the other thread waits.
    spins = 0
    deadline = time.monotonic() + 0.3
    while time.monotonic() < deadline:
        spins += 1
    assert spins > 1000
    t.join()
    assert done == [False]
    lock.release()


def test_factory_and_class_agree():
    assert isinstance(interlock.Lock(), synchronize.Lock)
    assert isinstance(synchronize.Lock(ctx=None), synchronize.Lock)
