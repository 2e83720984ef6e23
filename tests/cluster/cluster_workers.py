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


def acquire_and_report(lock, results, timeout, started=None):
    """Reports what acquire(timeout=...) did: ("acquired"|"timeout"|"owner died", seconds).
    `started`, an Event, is set once the clock runs, just before the acquire."""
    from interlock import OwnerDiedError

    start = time.monotonic()
    if started is not None:
        started.set()
    try:
        outcome = "acquired" if lock.acquire(timeout=timeout) else "timeout"
    except OwnerDiedError:
        outcome = "owner died"
    results.put((outcome, time.monotonic() - start, getattr(lock, "token", None)))
    if outcome != "timeout":
        lock.release()


def hold_until_told(lock, held, go, results, owner=None):
    """Acquires `lock`, says so, waits for `go` (the parent stalls this process meanwhile),
    then reports whether the hold was lost and what release() did. `owner` has the hold's
    `token` and `lost` when `lock` is a view (an RWLock's write_lock())."""
    from interlock.cluster import LockLostError

    owner = lock if owner is None else owner
    lock.acquire()
    token = owner.token
    held.set()
    go.wait(60)
    lost = owner.lost
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


def semaphore_user(sem, inside_dir, rounds, results):
    """Takes a permit `rounds` times and records how many holders were inside at once: each
    holder creates a file of its own in `inside_dir` on entering and removes it before
    leaving, so a file there is a holder that has not released yet."""
    peak = 0
    mine = os.path.join(inside_dir, str(os.getpid()))
    for _ in range(rounds):
        with sem:
            open(mine, "w").close()
            peak = max(peak, len(os.listdir(inside_dir)))
            time.sleep(0.005)
            os.remove(mine)
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


def barrier_rounds(barrier, rounds, results):
    """Waits `rounds` times on `barrier` and reports the indices it got."""
    results.put([barrier.wait(60) for _ in range(rounds)])


def append_line(path):
    """A Barrier action: one line per run, appended atomically."""
    with open(path, "a") as f:
        f.write("ran\n")


def sleep_forever():
    time.sleep(3600)


def stress_hammer(lock, sem, in_lock, in_sem, seconds, seed, results):
    """Two threads of random acquires with random timeouts on a cluster Lock and a cluster
    Semaphore(2), counting how many are inside each (shared Values): reports the peaks."""
    import random
    import threading

    peaks = {"lock": 0, "sem": 0, "ops": 0}
    guard = threading.Lock()

    def enter(counter, key, work):
        with counter.get_lock():
            counter.value += 1
            now = counter.value
        with guard:
            peaks[key] = max(peaks[key], now)
        time.sleep(work)
        with counter.get_lock():
            counter.value -= 1

    def run(rng):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            primitive, counter, key = rng.choice([(lock, in_lock, "lock"), (sem, in_sem, "sem")])
            timeout = rng.choice([None, 0, -1, 0.05, 0.3, 2.0])
            got = primitive.acquire(timeout=timeout) if timeout is not None else \
                primitive.acquire()
            if got:
                try:
                    enter(counter, key, rng.random() * 0.01)
                finally:
                    primitive.release()
            with guard:
                peaks["ops"] += 1

    threads = [threading.Thread(target=run, args=(random.Random(seed * 10 + i),))
               for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    results.put(peaks)


def stress_ping_pong(cond, turn, me, rounds, results):
    """Takes turns with another process through a cluster Condition, for `rounds` rounds:
    each wait must be ended by the other's notify (a lost wake-up shows as a 30 s timeout)."""
    lost = 0
    for _ in range(rounds):
        with cond:
            while turn.value != me:
                if not cond.wait(30):
                    lost += 1
                    break
            turn.value = 1 - me
            cond.notify()
    results.put(("ping-pong", lost))


def read_and_meet(rw, barrier, results):
    """Takes a read hold, then waits at a local `barrier` with the other readers while holding
    it: every party gets through only if their holds overlap."""
    with rw.read_lock():
        results.put(barrier.wait(60) is not None)


def read_in_a_stream(rw, seconds, started, stop):
    """Overlapping read holds of 50 ms from two threads for `seconds`, or until `stop` is set:
    a stream of readers in which the lock is never free of readers for long."""
    import threading

    def reader(offset):
        time.sleep(offset)
        end = time.monotonic() + seconds
        while time.monotonic() < end and not stop.is_set():
            with rw.read_lock():
                started.set()
                time.sleep(0.05)

    threads = [threading.Thread(target=reader, args=(i * 0.025,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def kill_holder_under_waiter(holder, waiter, results):
    """(In the test process.) SIGKILLs `holder` while `waiter`, an acquire_and_report child,
    waits behind it; returns the waiter's outcome and how long after the kill it came."""
    import signal

    killed_at = time.monotonic()
    os.kill(holder.pid, signal.SIGKILL)
    holder.join(10)
    outcome, _, _ = results.get(timeout=60)
    detected = time.monotonic() - killed_at
    waiter.join(30)
    return outcome, detected
