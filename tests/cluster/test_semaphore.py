"""interlock.cluster Semaphore and BoundedSemaphore."""

import os
import signal
import time

import pytest

from cluster import cluster_workers as cw
from interlock.cluster import LockLostError


def test_counting_and_timeouts(cluster):
    s = cluster.Semaphore("s", 2)
    assert s.get_value() == 2
    assert s.acquire() and s.acquire(timeout=1)
    assert s.get_value() == 0
    assert s.acquire(False) is False
    assert s.acquire(timeout=-1) is False
    start = time.monotonic()
    assert s.acquire(timeout=0.3) is False
    assert time.monotonic() - start >= 0.25
    s.release()
    assert s.get_value() == 1
    s.release(1)
    s.release()  # an unbounded semaphore may grow past its initial value
    assert s.get_value() == 3
    with s:
        assert s.get_value() == 2


def test_bounded_semaphore_refuses_over_release(cluster):
    b = cluster.BoundedSemaphore("b", 2)
    with pytest.raises(ValueError, match="released too many times"):
        b.release()
    b.acquire()
    b.release()
    with pytest.raises(ValueError):
        b.release()
    assert b.get_value() == 2 and b.maxvalue == 2


@pytest.mark.parametrize("value, error", [(-1, ValueError), (2 ** 31, OverflowError),
                                          ("2", TypeError), (1.5, TypeError)])
def test_bad_initial_values(cluster, value, error):
    with pytest.raises(error):
        cluster.Semaphore("bad", value)


def test_release_n_validates(cluster):
    s = cluster.Semaphore("s", 0)
    with pytest.raises(ValueError):
        s.release(0)
    with pytest.raises(TypeError):
        s.release("1")
    s.release(3)
    assert s.get_value() == 3


def test_a_release_wakes_a_waiting_process(cluster, ctx):
    s = cluster.Semaphore("wake", 0)
    results, started = ctx.Queue(), ctx.Event()
    child = ctx.Process(target=cw.acquire_and_report, args=(s, results, 60, started))
    child.start()
    # The release comes a second after the child's clock started (a spawned child can take
    # longer than that to start on a loaded machine): it must have waited for it.
    assert started.wait(60)
    time.sleep(1.0)
    s.release()
    outcome, waited, _ = results.get(timeout=60)
    child.join(30)
    assert outcome == "acquired" and waited >= 0.5


def test_permits_bound_holders_across_processes(cluster, ctx, tmp_path):
    s = cluster.BoundedSemaphore("bound", 2)
    inside = tmp_path / "inside"
    inside.mkdir()
    results = ctx.Queue()
    children = [ctx.Process(target=cw.semaphore_user, args=(s, str(inside), 6, results))
                for _ in range(4)]
    for c in children:
        c.start()
    peaks = [results.get(timeout=120) for _ in children]
    for c in children:
        c.join(30)
    assert max(peaks) <= 2
    assert s.get_value() == 2


def test_a_dead_holders_permit_returns(cluster, ctx):
    s = cluster.Semaphore("dead", 1)
    held = ctx.Event()
    holder = ctx.Process(target=cw.hold, args=(s, held, 3600))
    holder.start()
    assert held.wait(60)
    assert s.get_value() == 0
    os.kill(holder.pid, signal.SIGKILL)
    holder.join(10)
    start = time.monotonic()
    assert s.acquire(timeout=30)
    assert time.monotonic() - start < 3.0 + 3  # lease TTL + slack
    s.release()


def test_a_lost_permit_makes_release_raise(etcd, cluster):
    from interlock import cluster as cl

    other = cl.connect(etcd.endpoints, namespace=cluster.namespace, lease_ttl=3)
    try:
        s = other.Semaphore("lost", 1)
        assert s.acquire()
        other._session().revoke()  # the lease ends as if it had expired
        assert cluster.Semaphore("lost", 1).get_value() == 1
        with pytest.raises(LockLostError):
            s.release()
        assert cluster.Semaphore("lost", 1).get_value() == 1  # nothing was added
    finally:
        other.close()
