"""The worker of tests/stress/test_thread_stress.py: several threads of one process doing
random operations with random timeouts on shared primitives, recording what the invariants
need. A module of its own so that spawn and forkserver children can import it.

The shared array: HEADER cells (the lock-protected counter, the semaphore's holders now, the
RLock's holder), then one ROW per thread, then the Barrier's table (one cell per round and
index, counting the parties that got that index in that round)."""

import os
import random
import threading
import time

HEADER = 3
# Per thread: operations done, counter increments, semaphore peak seen, the worst overrun of
# a timed wait (microseconds), ownership violations seen.
ROW = 5
BARRIER_ROUNDS = 20


def row_base(row):
    return HEADER + row * ROW


def barrier_base(rows):
    return HEADER + rows * ROW


def _timed(call, timeout):
    """Runs call(timeout); returns how far past its timeout it returned, in microseconds."""
    started = time.monotonic()
    call(timeout)
    return max(0, int((time.monotonic() - started - timeout) * 1e6))


def _thread(p, shared, row, rows, seed, stop_at):
    rng = random.Random(seed)
    ops = increments = peak = overrun = violations = 0
    me = (os.getpid() << 20) | (row + 1)  # unique per thread of every process
    while time.monotonic() < stop_at:
        op = rng.randrange(6)
        timeout = rng.random() / 100
        if op == 0:  # mutual exclusion: an unlocked read-modify-write would lose updates
            with p["lock"]:
                value = shared[0]
                if rng.random() < 0.05:
                    time.sleep(0)
                shared[0] = value + 1
            increments += 1
        elif op == 1:  # RLock: recursion, and while held it is this thread's alone
            with p["rlock"]:
                with p["rlock"]:
                    if not p["rlock"]._is_mine() or p["rlock"]._count() != 2:
                        violations += 1
                    shared[2] = me
                    time.sleep(0)
                    if shared[2] != me:
                        violations += 1
        elif op == 2:  # the semaphore's bound, seen from inside
            got = []
            overrun = max(overrun, _timed(lambda t: got.append(p["sem"].acquire(timeout=t)),
                                          timeout))
            if got[0]:
                with p["guard"]:
                    shared[1] += 1
                    peak = max(peak, shared[1])
                with p["guard"]:
                    shared[1] -= 1
                p["sem"].release()
        elif op == 3:  # Condition hand-offs with timed waits
            with p["cond"]:
                p["cond"].notify(rng.randrange(1, 3))
                overrun = max(overrun, _timed(p["cond"].wait, timeout))
        elif op == 4:  # Event pulses and timed waits
            if rng.random() < 0.5:
                p["event"].set()
                p["event"].clear()
            else:
                overrun = max(overrun, _timed(p["event"].wait, timeout))
        else:  # creation and destruction alongside (slots freed and reused)
            fresh = [type(p["lock"])(), type(p["event"])()]
            with fresh[0]:
                fresh[1].set()
            del fresh
        ops += 1
    # Barrier rounds, every thread of every process: each round hands out each index once.
    parties = p["barrier"].parties
    for r in range(BARRIER_ROUNDS):
        index = p["barrier"].wait(60)
        with p["guard"]:
            shared[barrier_base(rows) + r * parties + index] += 1
    base = row_base(row)
    with p["guard"]:
        shared[base] += ops
        shared[base + 1] += increments
        shared[base + 2] = max(shared[base + 2], peak)
        shared[base + 3] = max(shared[base + 3], overrun)
        shared[base + 4] += violations


def worker(index, threads, p, shared, seed, seconds):
    p["go"].wait()  # untimed: ends only if the parent's set() reaches it
    stop_at = time.monotonic() + seconds
    rows = p["barrier"].parties
    pool = [threading.Thread(target=_thread,
                             args=(p, shared, index * threads + t, rows,
                                   seed * 1000 + index * 10 + t, stop_at))
            for t in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
