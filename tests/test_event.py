"""interlock.Event."""

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import interlock
from interlock import synchronize

import workers
from conftest import native_only

# multiprocessing's Event deadlocks there and can miss a pulse (docs/differences.md): the
# portable backend skips these.
SET_IN_HANDLER = native_only("deadlock-free Event.set() from a signal handler that interrupted it")
PULSE = native_only("pulse-proof Event waits (a set() that a clear() follows at once)")


def _until_waiting(event, n, timeout=30):
    """Returns once n threads (of any process) are inside event.wait(): each has taken its
    snapshot, so a pulse from now on must end every one of their waits."""
    deadline = time.monotonic() + timeout
    while event._waiters() < n:
        assert time.monotonic() < deadline, f"{event._waiters()} of {n} waiters arrived"
        time.sleep(0.001)


def test_set_clear_is_set():
    e = interlock.Event()
    assert not e.is_set()
    e.set()
    assert e.is_set()
    e.set()
    assert e.is_set()
    e.clear()
    assert not e.is_set()


def test_wait_returns_flag():
    e = interlock.Event()
    start = time.monotonic()
    assert e.wait(0.1) is False
    assert time.monotonic() - start >= 0.09
    assert e.wait(0) is False
    assert e.wait(-3) is False
    e.set()
    assert e.wait() is True
    assert e.wait(0) is True


def test_set_wakes_all_waiting_threads():
    e = interlock.Event()
    results = []
    threads = [threading.Thread(target=lambda: results.append(e.wait(10))) for _ in range(4)]
    for t in threads:
        t.start()
    time.sleep(0.1)
    e.set()
    for t in threads:
        t.join()
    assert results == [True] * 4


def test_repr():
    e = interlock.Event()
    assert repr(e) == f"<Event at {id(e):#x} unset>"
    e.set()
    assert repr(e) == f"<Event at {id(e):#x} set>"


@SET_IN_HANDLER
def test_set_from_signal_handler_while_waiting_on_same_event():
    """cpython#126434: the handler interrupts wait() on the same Event and sets it."""
    e = interlock.Event()
    old = signal.signal(signal.SIGALRM, lambda *a: e.set())
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.1)
        start = time.monotonic()
        assert e.wait(10) is True
        assert time.monotonic() - start < 5
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


@SET_IN_HANDLER
def test_set_from_signal_handler_during_is_set_loop():
    e = interlock.Event()
    old = signal.signal(signal.SIGALRM, lambda *a: e.set())
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.05)
        deadline = time.monotonic() + 10
        while not e.is_set() and time.monotonic() < deadline:
            pass
        assert e.is_set()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def test_cross_process_wait(ctx):
    e = synchronize.Event(ctx=ctx)
    results = ctx.Queue()
    p = ctx.Process(target=workers.event_wait_and_report, args=(e, results, 30))
    p.start()
    time.sleep(0.2)
    e.set()
    assert results.get(timeout=30) is True
    p.join(30)
    e.clear()
    p = ctx.Process(target=workers.event_wait_and_report, args=(e, results, 0.2))
    p.start()
    assert results.get(timeout=30) is False
    p.join(30)


def test_ping_pong(ctx):
    ping, pong = synchronize.Event(ctx=ctx), synchronize.Event(ctx=ctx)
    p = ctx.Process(target=workers.event_ping, args=(ping, pong, 100))
    p.start()
    for _ in range(100):
        ping.set()
        assert pong.wait(30)
        pong.clear()
    p.join(30)
    assert p.exitcode == 0


@PULSE
def test_pulse_wakes_every_waiting_thread():
    """set() at once followed by clear() ends every wait that had started (threading.Event's
    guarantee; CPython's multiprocessing.Event loses such pulses: cpython#95826)."""
    e = interlock.Event()
    for _ in range(100):
        results = []
        threads = [threading.Thread(target=lambda: results.append(e.wait(30))) for _ in range(5)]
        for t in threads:
            t.start()
        _until_waiting(e, 5)
        e.set()
        e.clear()
        for t in threads:
            t.join()
        assert results == [True] * 5
        assert not e.is_set()


@PULSE
def test_pulse_wakes_the_main_thread_with_signal_handling():
    e = interlock.Event()
    for _ in range(50):
        pulser = threading.Thread(target=lambda: (_until_waiting(e, 1), e.set(), e.clear()))
        pulser.start()
        assert e.wait(30) is True
        pulser.join()


@PULSE
def test_pulse_from_a_signal_handler_that_interrupted_the_wait():
    """The handler runs in the middle of the main thread's wait (which then resumes with the
    snapshot it took when it started) and pulses the Event it waits on."""
    e = interlock.Event()
    old = signal.signal(signal.SIGUSR1, lambda *a: (e.set(), e.clear()))
    try:
        main = threading.get_ident()
        for _ in range(20):
            sender = threading.Thread(
                target=lambda: (_until_waiting(e, 1), signal.pthread_kill(main, signal.SIGUSR1)))
            sender.start()
            assert e.wait(30) is True
            sender.join()
    finally:
        signal.signal(signal.SIGUSR1, old)


@PULSE
def test_pulse_in_slices_without_futex_waitv():
    """Without futex_waitv the main thread sleeps in slices: a pulse between two slices is kept."""
    code = textwrap.dedent("""
        import threading, time
        import interlock
        e = interlock.Event()
        def pulse():
            while e._waiters() < 1:
                time.sleep(0.001)
            time.sleep(0.15)  # past the first 100 ms slice, so the pulse may land between slices
            e.set(); e.clear()
        for _ in range(5):
            t = threading.Thread(target=pulse)
            t.start()
            assert e.wait(30) is True
            t.join()
        print("ok")
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, env=dict(os.environ, INTERLOCK_NO_FUTEX_WAITV="1"))
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


@PULSE
def test_pulse_wakes_waiters_in_other_processes(ctx):
    """Two processes with three threads each (their main threads among them) wait; every
    round, once all six are inside wait(), the parent pulses: all six return True."""
    procs_n, threads, rounds = 2, 3, 30
    e = synchronize.Event(ctx=ctx)
    go = synchronize.Semaphore(0, ctx=ctx)
    results = ctx.Queue()
    procs = [ctx.Process(target=workers.event_pulse_waiters, args=(e, go, results, threads, rounds))
             for _ in range(procs_n)]
    for p in procs:
        p.start()
    try:
        for _ in range(rounds):
            for _ in range(procs_n * threads):
                go.release()
            _until_waiting(e, procs_n * threads)
            e.set()
            e.clear()
            got = [results.get(timeout=60) for _ in range(procs_n * threads)]
            assert got == [True] * (procs_n * threads)
    finally:
        for p in procs:
            p.join(60)
            if p.is_alive():
                p.kill()
    assert [p.exitcode for p in procs] == [0] * procs_n
    results.close()
    results.join_thread()
