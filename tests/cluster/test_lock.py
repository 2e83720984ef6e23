"""interlock.cluster Lock and RLock: multiprocessing's semantics, fencing tokens, and what
happens when a holder dies or loses its lease. Real etcd, real processes."""

import os
import signal
import threading
import time

import pytest

from cluster import cluster_workers as cw
from interlock import OwnerDiedError
from interlock.cluster import LockLostError

TTL = 3.0  # the cluster fixture's lease TTL


def test_acquire_release_and_timeouts(cluster):
    lock = cluster.Lock("l")
    assert not lock.locked() and lock.token is None
    assert lock.acquire() is True
    assert lock.locked() and isinstance(lock.token, int)
    assert lock.acquire(False) is False
    assert lock.acquire(timeout=0) is False
    assert lock.acquire(timeout=-5) is False  # a negative timeout means zero
    assert lock.acquire(False, 10) is False  # block=False ignores the timeout
    start = time.monotonic()
    assert lock.acquire(timeout=0.3) is False
    assert 0.25 < time.monotonic() - start < 5
    lock.release()
    assert not lock.locked() and lock.token is None
    with pytest.raises(ValueError, match="released too many times"):
        lock.release()
    with lock:
        assert lock.locked()
    assert not lock.locked()


@pytest.mark.parametrize("bad, error", [("x", TypeError), (None, TypeError), (1.5, TypeError)])
def test_block_must_be_int_like(cluster, bad, error):
    with pytest.raises(error):
        cluster.Lock("l").acquire(bad)


@pytest.mark.parametrize("bad, error", [("1", TypeError), (float("nan"), ValueError)])
def test_bad_timeouts(cluster, bad, error):
    lock = cluster.Lock("l")
    with pytest.raises(error):
        lock.acquire(timeout=bad)
    assert not lock.locked()  # a refused call took nothing


def test_any_thread_may_release_a_lock(cluster):
    lock = cluster.Lock("l")
    lock.acquire()
    t = threading.Thread(target=lock.release)
    t.start()
    t.join()
    assert not lock.locked()


def test_fencing_tokens_increase_with_every_acquisition(cluster):
    lock = cluster.Lock("l")
    tokens = []
    for _ in range(5):
        with lock:
            tokens.append(lock.token)
    other = cluster.Lock("other")
    with other:
        tokens.append(other.token)  # one revision sequence for the whole cluster
    assert tokens == sorted(tokens) and len(set(tokens)) == len(tokens)


def test_rlock_is_recursive_and_owned(cluster):
    r = cluster.RLock("r")
    assert r.acquire() and r.acquire(timeout=1)
    assert r._count() == 2 and r._is_owned()
    errors = []

    def stranger():
        try:
            r.release()
        except AssertionError as exc:
            errors.append(str(exc))
        errors.append(r.acquire(timeout=0.2))

    t = threading.Thread(target=stranger)
    t.start()
    t.join()
    assert errors == ["attempt to release recursive lock not owned by thread", False]
    r.release()
    assert r.locked()
    r.release()
    assert not r.locked()
    with pytest.raises(AssertionError):
        r.release()


def test_a_lock_waited_for_by_another_process_is_handed_over(cluster, ctx):
    lock = cluster.Lock("handoff")
    results = ctx.Queue()
    lock.acquire()
    first = lock.token
    child = ctx.Process(target=cw.acquire_and_report, args=(lock, results, 60))
    child.start()
    time.sleep(1.0)
    lock.release()
    outcome, waited, token = results.get(timeout=60)
    child.join(30)
    assert outcome == "acquired" and token > first
    assert child.exitcode == 0


def test_mutual_exclusion_between_processes(cluster, ctx, tmp_path):
    lock = cluster.Lock("counter")
    path = tmp_path / "counter"
    path.write_text("0")
    children = [ctx.Process(target=cw.add_under_lock, args=(lock, str(path), 15))
                for _ in range(3)]
    for c in children:
        c.start()
    for c in children:
        c.join(120)
        assert c.exitcode == 0
    assert path.read_text() == "45"


def test_sigkill_of_the_holder_hands_the_lock_over_with_owner_died(cluster, ctx):
    lock = cluster.Lock("robust")
    held, results = ctx.Event(), ctx.Queue()
    holder = ctx.Process(target=cw.hold, args=(lock, held, 3600))
    holder.start()
    assert held.wait(60)
    waiter = ctx.Process(target=cw.acquire_and_report, args=(lock, results, 60))
    waiter.start()
    time.sleep(0.5)
    killed_at = time.monotonic()
    os.kill(holder.pid, signal.SIGKILL)
    holder.join(10)
    outcome, _, _ = results.get(timeout=60)
    detected = time.monotonic() - killed_at
    waiter.join(30)
    assert outcome == "owner died"
    assert detected < TTL + 1 + 2  # the target is TTL + 1 s; slack for a shared machine
    assert not lock.locked()  # the waiter released after recovering


def test_rlock_holder_killed_gives_owner_died_to_the_next(cluster, ctx):
    lock = cluster.RLock("robust-r")
    held = ctx.Event()
    holder = ctx.Process(target=cw.hold, args=(lock, held, 3600))
    holder.start()
    assert held.wait(60)
    os.kill(holder.pid, signal.SIGKILL)
    holder.join(10)
    with pytest.raises(OwnerDiedError):
        lock.acquire(timeout=TTL + 10)
    assert lock._is_owned() and lock._count() == 1
    lock.release()


def test_a_stalled_holder_loses_its_hold_and_release_raises(cluster, ctx):
    """The holder is stopped (SIGSTOP) for longer than its lease: etcd expires the lease, the
    next acquirer takes the lock with OwnerDiedError; the holder, resumed, sees `lost` and its
    release() raises LockLostError without touching the new owner's hold."""
    lock = cluster.Lock("stalled")
    held, go, results = ctx.Event(), ctx.Event(), ctx.Queue()
    holder = ctx.Process(target=cw.hold_until_told, args=(lock, held, go, results))
    holder.start()
    assert held.wait(60)
    os.kill(holder.pid, signal.SIGSTOP)
    try:
        with pytest.raises(OwnerDiedError):
            lock.acquire(timeout=TTL + 15)
        mine = lock.token
    finally:
        os.kill(holder.pid, signal.SIGCONT)
    go.set()
    lost, outcome, their_token = results.get(timeout=60)
    holder.join(30)
    assert lost is True
    assert outcome == "LockLostError"
    assert mine > their_token
    assert lock.locked() and lock.token == mine  # our hold survived their release()
    lock.release()


def test_lock_lost_error_is_a_cluster_error():
    from interlock.cluster import ClusterError

    assert issubclass(LockLostError, ClusterError)


def test_ctrl_c_interrupts_a_blocked_acquire(cluster):
    lock = cluster.Lock("ctrl-c")
    other = cluster.Lock("ctrl-c")
    assert other is lock  # one object per name and process
    lock.acquire()
    timer = threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    start = time.monotonic()
    try:
        with pytest.raises(KeyboardInterrupt):
            lock.acquire(timeout=30)
    finally:
        timer.join()
    assert time.monotonic() - start < 5
    lock.release()
    assert not lock.locked()  # the interrupted waiter left the queue
