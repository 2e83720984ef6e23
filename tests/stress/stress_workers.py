"""The stress test's worker processes (importable by spawn and forkserver children).

Each worker runs three threads doing random operations with random timeouts on shared
primitives, and writes what it saw into its own row of a shared int64 array (never through a
queue: a worker may be killed at any instruction). See test_stress.py for the invariants.
"""

import os
import random
import signal
import threading
import time

import interlock

# Layout of the shared int64 array.
COUNTER = 0  # the lock-protected counter (updated non-atomically)
PENDING = 1  # 1 + slot of the thread inside the counter's critical section, else 0
INSIDE = 2  # semaphore holders right now (guarded by the guard lock)
OVER = 3  # times more than `permits` holders were seen at once
LATE = 4  # timed waits that overran their timeout by more than SLACK
REPAIRS = 5  # OwnerDiedError recoveries
FLAG = 6  # the condition's shared value
HEADER = 8
ROW = 8  # per thread: [increments, ops, interrupts, done]

SLACK = 3.0  # seconds a timed wait may overrun on a loaded 2-CPU machine


def _take(lock, shared):
    """Acquire a robust lock (blocking); repair the counter if its holder died."""
    try:
        lock.acquire()
    except interlock.OwnerDiedError:
        _repair(shared)


def _repair(shared):
    # The dead holder may have died between the counter's update and its own tally.
    # Invariant to restore: COUNTER == sum of all per-thread increments.
    shared[PENDING] = 0
    total = 0
    for i in range(HEADER, len(shared), ROW):
        total += shared[i]
    shared[COUNTER] = total
    shared[REPAIRS] += 1


def _timed(shared, timeout, call):
    start = time.monotonic()
    result = call()
    if time.monotonic() - start > max(timeout, 0) + SLACK:
        shared[LATE] += 1  # racy, but only ever expected to stay 0
    return result


def thread_loop(p, shared, slot, seed, stop_at, permits, interruptible):
    rng = random.Random(seed)
    row = HEADER + slot * ROW
    while time.monotonic() < stop_at:
        op = rng.randrange(6)
        timeout = rng.choice([0, 0.001, 0.01, 0.05, 0.2, -1])
        shared[row + 1] += 1
        try:
            interruptible[0] = op in (0, 3, 4)  # waits whose ownership can be checked after
            if op == 0:  # robust Lock guarding a non-atomic counter
                try:
                    got = _timed(shared, timeout, lambda: p["lock"].acquire(timeout=timeout))
                except interlock.OwnerDiedError:
                    _repair(shared)
                    got = True
                interruptible[0] = False
                if got:
                    shared[PENDING] = slot + 1
                    value = shared[COUNTER]
                    if rng.random() < 0.1:
                        time.sleep(0.002)  # a window for the parent's targeted kills
                    shared[COUNTER] = value + 1
                    shared[row] += 1
                    shared[PENDING] = 0
                    p["lock"].release()
            elif op == 1:  # robust RLock, nested
                try:
                    got = p["rlock"].acquire(timeout=timeout)
                except interlock.OwnerDiedError:
                    got = True
                if got:
                    p["rlock"].acquire()
                    p["rlock"].release()
                    p["rlock"].release()
            elif op == 2:  # bounded semaphore: never more than `permits` holders
                if _timed(shared, timeout, lambda: p["sem"].acquire(timeout=timeout)):
                    _take(p["guard"], shared)
                    shared[INSIDE] += 1
                    if shared[INSIDE] > permits:
                        shared[OVER] += 1
                    p["guard"].release()
                    time.sleep(rng.choice([0, 0.0005]))
                    _take(p["guard"], shared)
                    shared[INSIDE] -= 1
                    p["guard"].release()
                    p["sem"].release()
            elif op == 3:  # condition over a robust lock: wait_for with a timeout, or notify
                cond = p["cond"]
                try:
                    cond.acquire()
                except interlock.OwnerDiedError:
                    pass
                try:
                    if rng.random() < 0.5:
                        seen = shared[FLAG]
                        _timed(shared, timeout,
                               lambda: cond.wait_for(lambda: shared[FLAG] != seen, timeout))
                    else:
                        shared[FLAG] += 1
                        cond.notify(rng.choice([1, 2]))
                except interlock.OwnerDiedError:
                    pass  # wait() took the lock back from a dead holder
                finally:
                    cond.release()
            elif op == 4:  # event wait with a timeout
                _timed(shared, timeout, lambda: p["event"].wait(timeout))
            else:  # event set/clear
                (p["event"].set if rng.random() < 0.5 else p["event"].clear)()
        except KeyboardInterrupt:
            shared[row + 2] += 1
            # An interrupted acquire holds nothing, but the signal may also have landed just
            # after it returned: release what this thread still owns.
            for name in ("lock",):
                if p[name]._is_mine():
                    shared[PENDING] = 0
                    p[name].release()
            if p["cond"]._lock._is_mine():
                p["cond"].release()
        finally:
            interruptible[0] = False
    shared[row + 3] = 1


def worker(index, p, shared, seed, seconds, permits, exit_while_waiting):
    """A worker process: two extra threads plus the main thread (the one SIGINT reaches)."""
    interruptible = [False]

    def on_sigint(signum, frame):
        if interruptible[0]:
            raise KeyboardInterrupt
    signal.signal(signal.SIGINT, on_sigint)
    p["go"].wait()  # untimed: must return once the parent sets it
    stop_at = time.monotonic() + seconds
    threads = [
        threading.Thread(
            target=thread_loop,
            args=(p, shared, index * 3 + t, seed * 10 + t, stop_at, permits, [False]),
            daemon=True,
        )
        for t in (1, 2)
    ]
    for t in threads:
        t.start()
    if exit_while_waiting:
        # A child that leaves while one of its threads waits on the condition.
        def wait_forever():
            try:
                p["cond"].acquire()
            except interlock.OwnerDiedError:
                pass
            p["cond"].wait(60)
        threading.Thread(target=wait_forever, daemon=True).start()
        time.sleep(seconds / 3)
        os._exit(0)
    thread_loop(p, shared, index * 3, seed * 10, stop_at, permits, interruptible)
    for t in threads:
        t.join()
    p["stop"].wait()  # untimed again: the parent sets it once every worker is done


# The Event pulse stress (test_event_pulse.py): the pulser's counters in a shared int64 array.
PULSES_BEGUN = 0  # pulses whose set() may have started
PULSES_DONE = 1  # pulses whose clear() has returned
PULSE_STOP = 2  # 1: the waiters are done, the pulser may stop


def event_pulser(event, counters, seed):
    """Pulses `event` (set() then clear() at once) every 5-30 ms until told to stop."""
    rng = random.Random(seed)
    while counters[PULSE_STOP] == 0:
        counters[PULSES_BEGUN] += 1
        event.set()
        event.clear()
        counters[PULSES_DONE] += 1
        time.sleep(rng.uniform(0.005, 0.03))


def event_pulse_waiter(event, counters, row, seconds, seed):
    """Three threads (the main one among them) wait on `event` in a loop for `seconds`, with
    long (50-300 ms) and short (0-2 ms) timeouts. Per thread, it records in `row`: [long
    waits, long waits that returned False although at least two whole pulses ran between
    the thread's look at PULSES_BEGUN before the call and its look at PULSES_DONE after it,
    short waits, short waits that returned True]."""

    def loop(t):
        rng = random.Random(seed * 10 + t)
        base = row + 4 * t
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            short = rng.random() < 0.3
            timeout = rng.uniform(0, 0.002) if short else rng.uniform(0.05, 0.3)
            begun = counters[PULSES_BEGUN]
            result = event.wait(timeout)
            done = counters[PULSES_DONE]
            if short:
                counters[base + 2] += 1
                counters[base + 3] += result
            else:
                counters[base] += 1
                # Pulse begun + 1 began after the first look and pulse begun + 2 ended before
                # the second. Both lay outside the wait only if the thread was held between a
                # look and the wait's own snapshot (or last look) for a whole pulse period of
                # 5-30 ms; and a wait of 50 ms or more spans a pulse anyway, unless the pulser
                # stalled for that long too. So False here is a lost pulse.
                if not result and done - begun >= 2:
                    counters[base + 1] += 1
            # A wait that found the Event set returns at once: pausing keeps a dozen threads
            # from spinning on it and starving the pulser between its set() and clear().
            time.sleep(rng.uniform(0, 0.001))

    others = [threading.Thread(target=loop, args=(t,)) for t in (1, 2)]
    for th in others:
        th.start()
    loop(0)
    for th in others:
        th.join()
