"""The RWLock stress test's worker processes (importable by spawn and forkserver children)."""

import random
import threading
import time

# The shared array's fields.
READERS_IN, WRITERS_IN, MOST_READERS, VIOLATIONS, LATE, OPS, WRITES, DONE = range(8)
FIELDS = 8
# How far past its timeout a timed acquire may return before it counts as a lost wake-up.
SLACK = 2.0


def _thread(rw, meter, shared, seed, seconds):
    rng = random.Random(seed)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        roll = rng.random()
        timeout = rng.choice([None, 0, 0.001, 0.01, 0.5])
        started = time.monotonic()
        if roll < 0.75:
            got = rw.acquire_read(timeout=timeout)
        else:
            got = rw.acquire_write(timeout=timeout)
        if timeout is not None and time.monotonic() - started > timeout + SLACK:
            with meter:
                shared[LATE] += 1
        if not got:
            continue
        writing = roll >= 0.75
        with meter:
            if writing:
                shared[WRITERS_IN] += 1
                shared[WRITES] += 1
                if shared[WRITERS_IN] != 1 or shared[READERS_IN] != 0:
                    shared[VIOLATIONS] += 1
            else:
                shared[READERS_IN] += 1
                shared[MOST_READERS] = max(shared[MOST_READERS], shared[READERS_IN])
                if shared[WRITERS_IN] != 0:
                    shared[VIOLATIONS] += 1
            shared[OPS] += 1
        time.sleep(rng.choice([0, 0, 0.0001, 0.001]))
        if writing and rng.random() < 0.3:  # downgrade: the writer becomes a reader at once
            with meter:
                shared[WRITERS_IN] -= 1
                shared[READERS_IN] += 1
            rw.downgrade()
            writing = False
            time.sleep(rng.choice([0, 0.0001]))
        with meter:
            if writing:
                shared[WRITERS_IN] -= 1
            else:
                shared[READERS_IN] -= 1
        if writing:
            rw.release_write()
        else:
            rw.release_read()


def worker(rw, meter, shared, seed, seconds, threads):
    pool = [threading.Thread(target=_thread, args=(rw, meter, shared, seed * 10 + t, seconds))
            for t in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    with meter:
        shared[DONE] += 1
