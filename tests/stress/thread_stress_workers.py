"""The worker of tests/stress/test_thread_stress.py: several threads of one process doing
random operations on shared primitives, recording what the invariants need. A module of
its own so that spawn and forkserver children can import it."""

import random
import threading
import time

# The shared array, per thread: operations done, counter increments, semaphore peak seen.
ROW = 3


def _thread(p, shared, row, seed, stop_at):
    rng = random.Random(seed)
    ops = increments = peak = 0
    while time.monotonic() < stop_at:
        op = rng.randrange(6)
        if op == 0:  # mutual exclusion: an unlocked read-modify-write would lose updates
            with p["lock"]:
                value = shared[0]
                if rng.random() < 0.05:
                    time.sleep(0)
                shared[0] = value + 1
            increments += 1
        elif op == 1:  # recursion
            with p["rlock"], p["rlock"]:
                pass
        elif op == 2:  # the semaphore's bound, seen from inside
            if p["sem"].acquire(timeout=rng.random() / 100):
                with p["guard"]:
                    shared[1] += 1
                    peak = max(peak, shared[1])
                with p["guard"]:
                    shared[1] -= 1
                p["sem"].release()
        elif op == 3:  # Condition hand-offs
            with p["cond"]:
                p["cond"].notify(rng.randrange(1, 3))
                p["cond"].wait(rng.random() / 200)
        elif op == 4:  # Event pulses
            if rng.random() < 0.5:
                p["event"].set()
                p["event"].clear()
            else:
                p["event"].wait(rng.random() / 200)
        else:  # creation and destruction alongside (slots freed and reused)
            fresh = [type(p["lock"])(), type(p["event"])()]
            with fresh[0]:
                fresh[1].set()
            del fresh
        ops += 1
    base = 2 + row * ROW
    with p["guard"]:
        shared[base] += ops
        shared[base + 1] += increments
        shared[base + 2] = max(shared[base + 2], peak)


def worker(index, threads, p, shared, seed, seconds):
    p["go"].wait()
    stop_at = time.monotonic() + seconds
    pool = [threading.Thread(target=_thread,
                             args=(p, shared, index * threads + t, seed * 1000 + index * 10 + t,
                                   stop_at))
            for t in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
