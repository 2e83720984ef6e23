"""Functions that the RWLock tests' children run (importable by spawn and forkserver
children)."""

import time


def read_together(rw, barrier, results):
    """Holds a read while every other reader reaches the barrier: only possible if readers
    share the lock."""
    assert rw.acquire_read(timeout=20)
    try:
        results.put(barrier.wait(timeout=20) >= 0)
    finally:
        rw.release_read()


def write_and_read(rw, counter, inside, rounds, results):
    """Writes increment `counter` in two steps, which only exclusion keeps whole; reads check
    that no writer is inside. `inside` counts writers (+1000) and readers (+1) holding."""
    bad = 0
    for i in range(rounds):
        if i % 3 == 0:
            with rw.write_lock():
                inside.value += 1000
                if inside.value != 1000:
                    bad += 1
                value = counter.value
                time.sleep(0.0001)
                counter.value = value + 1
                inside.value -= 1000
        else:
            with rw.read_lock():
                if inside.value >= 1000:
                    bad += 1
    results.put(bad)


def read_continuously(rw, stop, started, hold_seconds):
    """Takes and gives back read holds, each held `hold_seconds`, until `stop` is set."""
    started.release()
    while not stop.is_set():
        if rw.acquire_read(timeout=5):
            time.sleep(hold_seconds)
            rw.release_read()


def hold_write_until(rw, held, done):
    rw.acquire_write()
    held.set()
    done.wait(30)
    rw.release_write()


def hold_read_until(rw, held, done):
    rw.acquire_read()
    held.set()
    done.wait(30)
    rw.release_read()


def try_to_release(rw, results):
    """Reports what each release raises in a process that holds nothing."""
    for release in (rw.release_read, rw.release_write):
        try:
            release()
            results.put("released")
        except Exception as exc:
            results.put(type(exc).__name__)


def write_when_possible(rw, token, stop, writes):
    """Takes the write hold whenever it can and marks `token` while holding it."""
    while not stop.is_set():
        if rw.acquire_write(block=False):
            token.value = 2
            writes.value += 1
            rw.release_write()


def acquire_write_and_report(rw, results, timeout):
    got = rw.acquire_write(timeout=timeout)
    results.put(got)
    if got:
        rw.release_write()


def use_the_view(view, results):
    with view:
        results.put(view.locked())


def read_briefly_then_meet(rw, barrier, results):
    """Reads for a moment, then waits at the barrier with the others (outside the lock, so a
    process waiting for a robust lock's entry is not stuck behind those at the barrier)."""
    got = rw.acquire_read(timeout=60)
    if got:
        time.sleep(0.01)
        rw.release_read()
    results.put(got)
    barrier.wait(timeout=60)
