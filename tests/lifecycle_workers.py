"""Functions that tests/test_lifecycle.py runs in children and in busy threads. They live in a
module of their own so that spawn and forkserver children can import them."""

import interlock
from interlock import synchronize


def use_primitives(lock, sem, event, results):
    """A child's check that what it inherited or received works, and that it can make more."""
    with lock:
        sem.release()
    event.set()
    fresh = [synchronize.Lock(), synchronize.Semaphore(1), synchronize.Event()]
    with fresh[0], fresh[1]:
        fresh[2].set()
    results.put(("ok", fresh[2].is_set()))


def churn(stop, counts):
    """Until `stop` is set: make and drop primitives of every kind, and export and adopt back
    (as pickling for a child does), so that slots are freed, reused and new arenas mapped
    while another thread forks."""
    from interlock import _core
    n = 0
    while not stop.is_set():
        objs = [synchronize.Lock(), synchronize.RLock(), synchronize.Semaphore(2),
                synchronize.Event(), synchronize.Condition(), synchronize.Barrier(2)]
        if n % 8 == 0:
            # Many at once: forces new slots (and now and then a new arena) to be mapped.
            objs.extend(synchronize.Lock() for _ in range(300))
        for obj in objs[:2]:
            _, token, index, generation, *extras = obj._export()
            # Adopt the transfer reference back, as the receiving process would.
            _core._import(type(obj), token, index, generation, *extras)
        with objs[0], objs[1]:
            objs[2].acquire()
            objs[2].release()
        del objs
        n += 1
    counts.append(n)


def file_lock_churn(stop, path, counts):
    """Until `stop` is set: take and give back a FileLock, from a thread."""
    n = 0
    lock = interlock.FileLock(path)
    while not stop.is_set():
        with lock:
            n += 1
    counts.append(n)
