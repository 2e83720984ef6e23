"""Functions that test children run. They live in a module of their own so that spawn and
forkserver children can import them."""

import os
import time


def acquire_and_report(lock, results, timeout):
    results.put(lock.acquire(timeout=timeout))


def hold_for(lock, held, seconds):
    lock.acquire()
    held.set()
    time.sleep(seconds)
    lock.release()


def release_it(lock):
    lock.release()


def release_and_report(lock, results):
    try:
        lock.release()
        results.put("released")
    except Exception as exc:
        results.put((type(exc).__name__, str(exc)))


def repr_from_child(obj, results):
    results.put(repr(obj))


def add_under_lock(lock, counter, rounds):
    for _ in range(rounds):
        with lock:
            value = counter.value
            # A pause inside the critical section makes a broken lock lose updates.
            if value % 97 == 0:
                time.sleep(0)
            counter.value = value + 1


def take_and_return_permits(sem, rounds, inside, max_inside):
    for _ in range(rounds):
        with sem:
            with inside.get_lock():
                inside.value += 1
                if inside.value > max_inside.value:
                    max_inside.value = inside.value
            with inside.get_lock():
                inside.value -= 1


def release_n_times(sem, n, results):
    ok = 0
    for _ in range(n):
        try:
            sem.release()
            ok += 1
        except ValueError:
            pass
    results.put(ok)


def slot_info_in_child(obj, results):
    results.put(obj._slot_info())


def kill_self_holding(lock):
    lock.acquire()
    os._exit(0)


def event_wait_and_report(event, results, timeout):
    results.put(event.wait(timeout))


def condition_wait(cond, ready, results, timeout):
    with cond:
        ready.release()
        results.put(cond.wait(timeout))


def barrier_wait(barrier, results, timeout):
    try:
        results.put(barrier.wait(timeout))
    except Exception as exc:
        results.put(type(exc).__name__)


def sem_ping(ping, pong, rounds):
    for _ in range(rounds):
        ping.acquire()
        pong.release()


def condition_wait_many(cond, ready, results, timeout, who):
    with cond:
        ready.release()
        ok = cond.wait(timeout)
    results.put((who, ok))


def wait_on_condition_forever(cond, ready):
    with cond:
        ready.release()
        cond.wait()


def barrier_rounds(barrier, rounds, results, timeout):
    out = []
    for _ in range(rounds):
        out.append(barrier.wait(timeout))
    results.put(out)


def count_action(counter):
    with counter.get_lock():
        counter.value += 1


def barrier_wait_forever(barrier):
    barrier.wait()


def event_ping(ping, pong, rounds):
    for _ in range(rounds):
        ping.wait()
        ping.clear()
        pong.set()


def file_lock_hold(path, held, seconds, shared=False):
    import interlock

    lock = interlock.FileLock(path, shared=shared)
    lock.acquire()
    held.set()
    time.sleep(seconds)
    lock.release()


def file_lock_hold_until_killed(path, held):
    import interlock

    lock = interlock.FileLock(path)
    lock.acquire()
    held.set()
    time.sleep(600)


def file_lock_try(path, results, timeout, shared=False, start=0, length=0):
    import interlock

    lock = interlock.FileLock(path, shared=shared, start=start, length=length)
    results.put(lock.acquire(timeout=timeout))


def file_lock_stress(path, seed, rounds, log):
    """Random exclusive/shared/ranged holds from 2 threads; each hold records its interval."""
    import random
    import threading

    import interlock

    def worker(wseed):
        rng = random.Random(wseed)
        for _ in range(rounds):
            shared = rng.random() < 0.5
            start = rng.choice([0, 0, 10, 20])
            length = rng.choice([0, 10, 15])
            lock = interlock.FileLock(path, shared=shared, start=start, length=length)
            if lock.acquire(timeout=rng.choice([None, 0, 0.01, 0.05])):
                t0 = time.monotonic()
                time.sleep(rng.random() * 0.002)
                t1 = time.monotonic()
                lock.release()
                log.put((os.getpid(), wseed, shared, start, length, t0, t1))
            lock.close()

    threads = [threading.Thread(target=worker, args=(seed * 10 + i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    log.put(None)


def primitive_modules(results):
    """Which implementation multiprocessing hands out in this child."""
    import multiprocessing

    results.put(
        {
            name: type(getattr(multiprocessing, name)(*args)).__module__
            for name, args in [("Lock", ()), ("RLock", ()), ("Semaphore", ()), ("Event", ())]
        }
    )


def add_to_value(value, times):
    for _ in range(times):
        with value.get_lock():
            value.value += 1


def cube(x):
    return x * x * x


def joinable_consumer(tasks, results):
    while True:
        item = tasks.get()
        tasks.task_done()
        if item is None:
            return
        results.put(item * 2)


def acquire_then_exit(lock):
    """Takes the lock and exits normally without giving it back."""
    lock.acquire()


def hold_then_die(lock, held):
    """Takes the lock, says so, and dies by SIGKILL while holding it."""
    import signal

    lock.acquire()
    held.set()
    os.kill(os.getpid(), signal.SIGKILL)


def hold_until_told_then_die(lock, held, die):
    """Takes the lock, says so, and dies by SIGKILL holding it once told to."""
    import signal

    lock.acquire()
    held.set()
    die.wait(60)
    os.kill(os.getpid(), signal.SIGKILL)


def hold_until_told(lock, held, release, stay):
    """Takes the lock, says so, releases it when told, then stays alive until told."""
    lock.acquire()
    held.set()
    release.wait(60)
    lock.release()
    stay.wait(60)


def acquire_then_die(lock):
    """Waits for the lock (robust) and dies by SIGKILL as soon as it holds it."""
    import signal

    lock.acquire()
    os.kill(os.getpid(), signal.SIGKILL)


def acquire_robust_and_report(lock, results, timeout, started=None):
    """Acquires `lock`, setting `started` (if given) just before; puts (outcome, seconds it
    waited, the monotonic time it returned at). The monotonic clock is the system's, so the
    parent can compare that time with its own readings."""
    import interlock

    if started is not None:
        started.set()
    start = time.monotonic()
    try:
        got = lock.acquire(timeout=timeout)
        now = time.monotonic()
        results.put(("acquired" if got else "timeout", now - start, now))
    except interlock.OwnerDiedError:
        now = time.monotonic()
        results.put(("owner died", now - start, now))
        lock.release()


def acquire_and_hold(lock, held, seconds):
    lock.acquire()
    held.set()
    time.sleep(seconds)


def event_pulse_waiters(event, go, results, threads, rounds):
    """`threads` threads of this process (the main thread among them) each wait on `event`
    once per round, after taking a `go` permit, and put what wait() returned."""
    import threading

    def loop():
        for _ in range(rounds):
            go.acquire()
            results.put(event.wait(60))

    others = [threading.Thread(target=loop) for _ in range(threads - 1)]
    for t in others:
        t.start()
    loop()
    for t in others:
        t.join()
