"""interlock.Event."""

import signal
import threading
import time

import interlock
from interlock import synchronize

import workers


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
