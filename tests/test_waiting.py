"""Waits: signal handlers run during them, Ctrl-C interrupts them, and they follow the
monotonic clock."""

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import interlock


def _blocked_primitives():
    lock = interlock.Lock()
    lock.acquire()
    rlock = interlock.RLock()
    threading.Thread(target=rlock.acquire).start()
    time.sleep(0.05)
    cond = interlock.Condition()
    cond.acquire()
    held_cond = interlock.Condition()
    threading.Thread(target=held_cond.acquire).start()
    bounded = interlock.BoundedSemaphore(1)
    bounded.acquire()
    time.sleep(0.05)
    return {
        "Lock.acquire": lambda t: lock.acquire(timeout=t),
        "RLock.acquire": lambda t: rlock.acquire(timeout=t),
        "Semaphore.acquire": lambda t: interlock.Semaphore(0).acquire(timeout=t),
        "BoundedSemaphore.acquire": lambda t: bounded.acquire(timeout=t),
        "Condition.acquire": lambda t: held_cond.acquire(timeout=t),
        "Event.wait": lambda t: interlock.Event().wait(t),
        "Condition.wait": lambda t: cond.wait(t),
    }


@pytest.mark.parametrize("name", list(_blocked_primitives()))
def test_signal_handler_runs_and_wait_resumes_with_remaining_time(name):
    blocked = _blocked_primitives()[name]
    calls = []
    old = signal.signal(signal.SIGALRM, lambda *a: calls.append(time.monotonic()))
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.1)
        start = time.monotonic()
        assert blocked(0.5) is False
        elapsed = time.monotonic() - start
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    assert len(calls) == 1
    assert calls[0] - start < 0.4  # the handler ran during the wait, not after it
    assert 0.45 <= elapsed < 2.0  # and the wait went on for the time that remained


@pytest.mark.parametrize("name", list(_blocked_primitives()))
def test_ctrl_c_raises_keyboard_interrupt_promptly(name):
    blocked = _blocked_primitives()[name]
    threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGINT)).start()
    start = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        blocked(30)  # a lost signal would end in a timeout, not a hang
    assert time.monotonic() - start < 3


def test_condition_wait_holds_lock_again_after_interrupt():
    cond = interlock.Condition()
    with cond:
        threading.Timer(0.1, os.kill, (os.getpid(), signal.SIGINT)).start()
        with pytest.raises(KeyboardInterrupt):
            cond.wait(30)
        assert cond._lock._is_mine()
        assert cond._lock._count() == 1
    assert repr(cond) == "<Condition(<RLock(None, 0)>, 0)>"


@pytest.mark.skipif(shutil.which("strace") is None, reason="needs strace")
def test_timed_waits_use_monotonic_absolute_deadlines(tmp_path):
    """A timed wait sleeps in FUTEX_WAIT_BITSET without FUTEX_CLOCK_REALTIME: an absolute
    CLOCK_MONOTONIC deadline, which a wall-clock change cannot move."""
    script = tmp_path / "waiter.py"
    script.write_text(textwrap.dedent("""
        import interlock
        lock = interlock.Lock()
        lock.acquire()
        print(lock.acquire(timeout=0.2))
    """))
    trace = tmp_path / "trace.txt"
    out = subprocess.run(
        ["strace", "-f", "-e", "trace=futex", "-o", str(trace), sys.executable, str(script)],
        capture_output=True, text=True, timeout=60,
    )
    assert out.stdout.strip() == "False", out.stderr
    waits = [line for line in trace.read_text().splitlines() if "FUTEX_WAIT_BITSET" in line
             and "ETIMEDOUT" in line]
    assert waits, trace.read_text()[-2000:]
    assert all("FUTEX_CLOCK_REALTIME" not in line for line in waits)
    # The deadline passed is an absolute monotonic time, i.e. close to CLOCK_MONOTONIC now,
    # not a wall-clock time.
    seconds = int(waits[0].split("{tv_sec=")[1].split(",")[0])
    assert abs(seconds - time.monotonic()) < 60


class _Interrupted(Exception):
    pass


def _raise_interrupted(*args):
    raise _Interrupted


@pytest.mark.parametrize("wait", ["Event.wait", "Lock.acquire", "Barrier.wait"])
def test_signal_arriving_before_the_sleep_is_not_lost(wait):
    """A signal that lands after the GIL was released but before the thread sleeps in the
    kernel (e.g. during the spin) must still interrupt an untimed wait promptly."""
    old = signal.signal(signal.SIGINT, _raise_interrupted)
    try:
        for delay in [0, 0.00002, 0.00005, 0.0001, 0.0002, 0.0005, 0.001, 0.002] * 2:
            event, lock, barrier = interlock.Event(), interlock.Lock(), interlock.Barrier(2)
            lock.acquire()
            blocked = {"Event.wait": event.wait, "Lock.acquire": lock.acquire,
                       "Barrier.wait": barrier.wait}[wait]
            go = threading.Event()

            def killer():
                go.wait()
                if delay:
                    time.sleep(delay)
                os.kill(os.getpid(), signal.SIGINT)

            t = threading.Thread(target=killer)
            t.start()
            # If the signal were lost, this would end the wait after 5 s.
            watchdog = threading.Timer(5.0, lambda: (event.set(), lock.release(), barrier.abort()))
            watchdog.start()
            start = time.monotonic()
            try:
                go.set()
                blocked()
                outcome = "returned"
            except _Interrupted:
                outcome = "interrupted"
            except threading.BrokenBarrierError:
                outcome = "returned"
            elapsed = time.monotonic() - start
            watchdog.cancel()
            t.join()
            assert outcome == "interrupted", f"signal after {delay}s was lost ({elapsed:.2f}s)"
            assert elapsed < 1.0, f"signal after {delay}s took {elapsed:.2f}s to interrupt"
    finally:
        signal.signal(signal.SIGINT, old)
