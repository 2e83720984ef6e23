"""Child-process bodies of the cluster tests (importable by spawn and forkserver children).

Each takes cluster primitives as arguments: they reach the child by inheritance (fork) or by
pickling (spawn, forkserver), and reconnect there with a lease of the child's own."""

import os
import time


def hold(lock, held, seconds):
    """Acquires `lock`, says so, and holds it for `seconds` (or until killed)."""
    lock.acquire()
    held.set()
    time.sleep(seconds)
    lock.release()


def acquire_and_report(lock, results, timeout):
    """Reports what acquire(timeout=...) did: ("acquired"|"timeout"|"owner died", seconds)."""
    from interlock import OwnerDiedError

    start = time.monotonic()
    try:
        outcome = "acquired" if lock.acquire(timeout=timeout) else "timeout"
    except OwnerDiedError:
        outcome = "owner died"
    results.put((outcome, time.monotonic() - start, lock.token))
    if outcome != "timeout":
        lock.release()


def hold_until_told(lock, held, go, results):
    """Acquires `lock`, says so, waits for `go` (the parent stalls this process meanwhile),
    then reports whether the hold was lost and what release() did."""
    from interlock.cluster import LockLostError

    lock.acquire()
    token = lock.token
    held.set()
    go.wait(60)
    lost = lock.lost
    try:
        lock.release()
        outcome = "released"
    except LockLostError:
        outcome = "LockLostError"
    results.put((lost, outcome, token))


def add_under_lock(lock, path, times):
    """`times` read-modify-write increments of the number in the file at `path`, each under
    `lock`: the total is exact only if the lock excludes."""
    for _ in range(times):
        with lock:
            with open(path) as f:
                value = int(f.read() or "0")
            with open(path, "w") as f:
                f.write(str(value + 1))


def semaphore_user(sem, inside_path, rounds, results):
    """Takes a permit `rounds` times and records how many holders were inside at once (each
    holder appends its pid to a file and removes it on leaving)."""
    peak = 0
    for _ in range(rounds):
        with sem:
            with open(inside_path, "a") as f:
                f.write(f"{os.getpid()}\n")
            with open(inside_path) as f:
                peak = max(peak, len([line for line in f if line.strip()]))
            time.sleep(0.005)
            with open(inside_path) as f:
                lines = [line for line in f if line.strip() != str(os.getpid())]
            with open(inside_path, "w") as f:
                f.writelines(lines)
    results.put(peak)


def set_event_later(event, delay):
    time.sleep(delay)
    event.set()


def wait_event(event, timeout, results):
    start = time.monotonic()
    results.put((event.wait(timeout), time.monotonic() - start))


def condition_waiter(cond, ready, results, timeout):
    """Waits on `cond` (holding its lock), after saying it is about to."""
    with cond:
        ready.set()
        results.put(cond.wait(timeout))


def barrier_party(barrier, results, timeout):
    import threading

    try:
        results.put(barrier.wait(timeout))
    except threading.BrokenBarrierError:
        results.put("broken")


def sleep_forever():
    time.sleep(3600)
