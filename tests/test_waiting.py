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
from conftest import native_only

# What the native core's waits do and CPython's cannot (docs/differences.md): the portable
# backend's waits are CPython's, so these are skipped there.
FUTEX_SLEEPS = native_only("futex sleeps to trace")
EARLY_SIGNALS = native_only("waits that a signal landing just before the sleep still ends")


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
@FUTEX_SLEEPS
def test_timed_waits_use_monotonic_absolute_deadlines(tmp_path):
    """A timed wait sleeps with an absolute CLOCK_MONOTONIC deadline, which a wall-clock
    change cannot move: FUTEX_WAIT_BITSET without FUTEX_CLOCK_REALTIME in other threads, and
    futex_waitv(..., CLOCK_MONOTONIC) in the main thread (which also sleeps on the signal
    word, see test_signal_arriving_before_the_sleep_is_not_lost)."""
    script = tmp_path / "waiter.py"
    script.write_text(textwrap.dedent("""
        import threading
        import interlock
        lock = interlock.Lock()
        lock.acquire()
        print(lock.acquire(timeout=0.2))
        t = threading.Thread(target=lambda: print(lock.acquire(timeout=0.2)))
        t.start()
        t.join()
    """))
    trace = tmp_path / "trace.txt"
    out = subprocess.run(
        ["strace", "-f", "-e", "trace=futex,futex_waitv", "-o", str(trace), sys.executable,
         str(script)],
        capture_output=True, text=True, timeout=60,
    )
    assert out.stdout.split() == ["False", "False"], out.stderr
    lines = trace.read_text().splitlines()
    # strace splits a call that blocks into "unfinished" and "resumed" lines: join them by pid.
    started = {}
    waits = []
    for line in lines:
        pid, _, rest = line.partition(" ")
        rest = rest.strip()
        if "<unfinished ...>" in rest:
            started[pid] = rest.split("<unfinished")[0]
        elif "resumed>" in rest and pid in started:
            waits.append(started.pop(pid) + rest.split("resumed>")[1])
        else:
            waits.append(rest)
    timed_out = [w for w in waits if "ETIMEDOUT" in w]
    in_main = [w for w in timed_out if w.startswith("futex_waitv(")]
    in_thread = [w for w in timed_out if "FUTEX_WAIT_BITSET" in w]
    assert in_main and in_thread, trace.read_text()[-3000:]
    assert all(", CLOCK_MONOTONIC) = " in w for w in in_main), in_main
    assert all("FUTEX_CLOCK_REALTIME" not in w for w in in_thread), in_thread
    # The deadline passed is an absolute monotonic time, i.e. close to CLOCK_MONOTONIC now,
    # not a wall-clock time.
    for wait in in_main + in_thread:
        seconds = int(wait.split("{tv_sec=")[-1].split(",")[0])
        assert abs(seconds - time.monotonic()) < 60


class _Interrupted(Exception):
    pass


def _raise_interrupted(*args):
    raise _Interrupted


@EARLY_SIGNALS
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


def _ctrl_c_latency(blocked, send_after, window=0.0):
    """Runs ``blocked()`` in the main thread, sends SIGINT after ``send_after`` seconds, and
    returns the seconds from the signal to the KeyboardInterrupt. ``window`` holds each sleep
    back that long after the wait's last look for pending signals, so that a signal sent
    during it lands exactly where an untimed sleep could lose it."""
    sent = []

    def send():
        sent.append(time.monotonic())
        os.kill(os.getpid(), signal.SIGINT)

    timer = threading.Timer(send_after, send)
    if window:
        from interlock import _core

        _core._test_delay_before_sleep(window)
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            blocked()  # untimed: a lost signal would hang here (the watchdog ends the test)
        return time.monotonic() - sent[0]
    finally:
        if window:
            _core._test_delay_before_sleep(0)
        timer.cancel()


def _untimed_waits():
    lock = interlock.Lock()
    lock.acquire()
    cond = interlock.Condition()
    cond.acquire()
    return {
        "Lock.acquire": lock.acquire,
        "Semaphore.acquire": interlock.Semaphore(0).acquire,
        "Event.wait": interlock.Event().wait,
        "Condition.wait": cond.wait,
        "Barrier.wait": interlock.Barrier(2).wait,
    }


@pytest.mark.parametrize("name", list(_untimed_waits()))
def test_ctrl_c_during_the_sleep_interrupts_within_100ms(name):
    watchdog = threading.Timer(10, os.kill, (os.getpid(), signal.SIGINT))
    watchdog.start()
    try:
        latency = _ctrl_c_latency(_untimed_waits()[name], send_after=0.2)
    finally:
        watchdog.cancel()
    assert latency < 0.1, f"{latency:.3f} s"


@EARLY_SIGNALS
@pytest.mark.parametrize("name", list(_untimed_waits()))
def test_ctrl_c_in_the_window_before_the_sleep_interrupts_within_100ms(name):
    """The signal lands after the wait last ran pending handlers and released the GIL, before
    it sleeps (held open for 0.3 s here): the sleep must end at once, not never."""
    watchdog = threading.Timer(10, os.kill, (os.getpid(), signal.SIGINT))
    watchdog.start()
    try:
        latency = _ctrl_c_latency(_untimed_waits()[name], send_after=0.1, window=0.3)
    finally:
        watchdog.cancel()
    assert latency < 0.2 + 0.1, f"{latency:.3f} s"  # the window's rest, then 100 ms


@EARLY_SIGNALS
def test_ctrl_c_in_the_window_without_futex_waitv_is_caught_by_slices():
    """On kernels without futex_waitv (forced here) the main thread sleeps in 100 ms slices."""
    code = textwrap.dedent("""
        import os, signal, threading, time
        import interlock
        from interlock import _core
        lock = interlock.Lock(); lock.acquire()
        _core._test_delay_before_sleep(0.3)
        sent = []
        threading.Timer(0.1, lambda: (sent.append(time.monotonic()),
                                      os.kill(os.getpid(), signal.SIGINT))).start()
        try:
            lock.acquire(timeout=10)
        except KeyboardInterrupt:
            print(time.monotonic() - sent[0])
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, env=dict(os.environ, INTERLOCK_NO_FUTEX_WAITV="1"))
    assert out.returncode == 0, out.stderr
    assert float(out.stdout) < 0.2 + 0.1 + 0.1  # the window's rest, a slice, and slack
