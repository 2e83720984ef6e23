"""interlock.cluster RWLock: readers share, a writer excludes, writers are not starved, a
downgrade is atomic, and the holds of killed processes come back. Real etcd, real processes."""

import os
import signal
import threading
import time

import pytest

from cluster import cluster_workers as cw
from interlock import OwnerDiedError, synchronize
from interlock import cluster as cl

TTL = 3.0  # the cluster fixture's lease TTL


def test_readers_share_a_writer_excludes_and_timeouts_hold(cluster):
    rw = cluster.RWLock("rw")
    assert rw.prefer == "writers" and rw.robust is True
    assert rw.acquire_read() is True
    assert rw.acquire_read(timeout=0) is True  # nested: never waits
    assert rw.read_lock().locked() and not rw.write_lock().locked()
    other = []

    def read_beside():
        other.append(rw.acquire_read(timeout=5))
        other.append(rw._readers())  # two threads, one hold each
        rw.release_read()

    t = threading.Thread(target=read_beside)
    t.start()
    t.join()
    assert other == [True, 2]
    assert rw.acquire_write(False) is False
    start = time.monotonic()
    assert rw.acquire_write(timeout=0.3) is False
    assert 0.25 < time.monotonic() - start < 5
    rw.release_read()
    rw.release_read()
    assert not rw.read_lock().locked()
    assert rw.acquire_write(timeout=-1) is True  # a negative timeout means zero
    assert rw.write_lock().locked() and isinstance(rw.token, int)
    first = rw.token
    assert rw.acquire_read(timeout=0.2) is False
    rw.release_write()
    assert rw.token is None
    with rw.write_lock():
        assert rw.token > first  # fencing tokens only grow
    assert not rw.write_lock().locked()


def test_misuse_raises_and_changes_nothing(cluster):
    rw = cluster.RWLock("misuse")
    with pytest.raises(ValueError):
        rw.release_read()
    with pytest.raises(ValueError):
        rw.release_write()
    with pytest.raises(ValueError):
        rw.downgrade()
    rw.acquire_read()
    err = []
    t = threading.Thread(target=lambda: err.append(pytest.raises(AssertionError, rw.release_read)))
    t.start()
    t.join()
    assert err and rw._readers() == 1
    rw.release_read()
    rw.acquire_write()
    t = threading.Thread(target=lambda: err.append(pytest.raises(AssertionError,
                                                                 rw.release_write)))
    t.start()
    t.join()
    assert len(err) == 2 and rw.write_lock().locked()
    rw.release_write()
    with pytest.raises(TypeError):
        rw.acquire_read("x")
    with pytest.raises(ValueError):
        rw.acquire_write(timeout=float("nan"))
    assert not rw.read_lock().locked() and not rw.write_lock().locked()


def test_prefer_and_kind_are_checked(cluster):
    with pytest.raises(ValueError, match="order of arrival"):
        cluster.RWLock("p", prefer="readers")
    with pytest.raises(ValueError):
        cluster.RWLock("p", prefer="fair")
    with pytest.raises(TypeError):
        cluster.RWLock("p", prefer=1)
    cluster.Lock("taken")
    with pytest.raises(ValueError, match="already a Lock"):
        cluster.RWLock("taken")
    assert "interlock.cluster.RWLock 'p'" in repr(cluster.RWLock("p"))


def test_readers_in_several_processes_hold_together(cluster, ctx):
    rw = cluster.RWLock("together")
    n = 3
    barrier, results = synchronize.Barrier(n, ctx=ctx), ctx.Queue()
    readers = [ctx.Process(target=cw.read_and_meet, args=(rw, barrier, results))
               for _ in range(n)]
    for p in readers:
        p.start()
    assert [results.get(timeout=90) for _ in readers] == [True] * n
    for p in readers:
        p.join(30)
        assert p.exitcode == 0


def test_a_writer_in_another_process_excludes_everyone(cluster, ctx):
    rw = cluster.RWLock("excludes")
    held = ctx.Event()
    holder = ctx.Process(target=cw.hold, args=(rw.write_lock(), held, 3))
    holder.start()
    assert held.wait(60)
    assert rw.acquire_read(timeout=0.3) is False
    assert rw.acquire_write(timeout=0.3) is False
    assert rw.acquire_read(timeout=30) is True  # once the writer has released
    rw.release_read()
    holder.join(30)
    assert holder.exitcode == 0


def test_a_writer_is_not_starved_by_a_stream_of_readers(cluster, ctx):
    rw = cluster.RWLock("stream")
    started, stop = ctx.Event(), ctx.Event()
    stream = ctx.Process(target=cw.read_in_a_stream, args=(rw, 12, started, stop))
    stream.start()
    assert started.wait(60)
    begin = time.monotonic()
    assert rw.acquire_write(timeout=30) is True
    waited = time.monotonic() - begin
    readers_still_streaming = stream.is_alive()
    rw.release_write()
    stop.set()
    stream.join(60)
    assert readers_still_streaming  # it got in while readers kept coming
    assert waited < 8


def test_downgrade_is_atomic_and_lets_waiting_readers_in(cluster, ctx):
    rw = cluster.RWLock("downgrade")
    rw.acquire_write()
    results, started = ctx.Queue(), ctx.Event()
    reader = ctx.Process(target=cw.acquire_and_report, args=(rw.read_lock(), results, 60))
    reader.start()
    _wait_until_queued(rw, 2)
    writer = ctx.Process(target=cw.acquire_and_report,
                         args=(rw.write_lock(), results, 60, started))
    writer.start()
    _wait_until_queued(rw, 3)
    rw.downgrade()
    assert rw._own_reads() == 1 and rw.token is None
    assert results.get(timeout=60)[0] == "acquired"  # the reader, beside our read
    time.sleep(0.5)
    assert results.empty()  # the writer still waits for our read hold
    rw.release_read()
    assert results.get(timeout=60)[0] == "acquired"
    reader.join(30)
    writer.join(30)


def _wait_until_queued(rw, n):
    deadline = time.monotonic() + 60
    while len(rw._snapshot()) < n:
        assert time.monotonic() < deadline, "the waiters did not join the queue"
        time.sleep(0.05)


def test_a_killed_writer_is_reported_once_to_the_next_reader(cluster, ctx):
    rw = cluster.RWLock("killed-writer")
    held, results = ctx.Event(), ctx.Queue()
    holder = ctx.Process(target=cw.hold, args=(rw.write_lock(), held, 3600))
    holder.start()
    assert held.wait(60)
    waiter = ctx.Process(target=cw.acquire_and_report, args=(rw.read_lock(), results, 60))
    waiter.start()
    _wait_until_queued(rw, 2)
    outcome, detected = cw.kill_holder_under_waiter(holder, waiter, results)
    assert outcome == "owner died"
    assert detected < TTL + 1 + 2  # the lease's TTL, with slack for a shared machine
    assert rw.acquire_write(timeout=10) is True  # reported once: this one is ordinary
    rw.release_write()


def test_a_killed_reader_is_dropped_without_an_error(cluster, ctx):
    rw = cluster.RWLock("killed-reader")
    held = ctx.Event()
    holder = ctx.Process(target=cw.hold, args=(rw.read_lock(), held, 3600))
    holder.start()
    assert held.wait(60)
    assert rw.acquire_write(timeout=0.2) is False
    os.kill(holder.pid, signal.SIGKILL)
    holder.join(10)
    assert rw.acquire_write(timeout=TTL + 10) is True  # no OwnerDiedError: nothing was lost
    rw.release_write()


def test_a_lost_write_hold_raises_on_release(cluster, ctx):
    rw = cluster.RWLock("stalled")
    held, go, results = ctx.Event(), ctx.Event(), ctx.Queue()
    holder = ctx.Process(target=cw.hold_until_told, args=(rw.write_lock(), held, go, results, rw))
    holder.start()
    assert held.wait(60)
    os.kill(holder.pid, signal.SIGSTOP)
    try:
        with pytest.raises(OwnerDiedError):
            rw.acquire_write(timeout=TTL + 15)
    finally:
        os.kill(holder.pid, signal.SIGCONT)
    go.set()
    lost, outcome, _ = results.get(timeout=60)
    holder.join(30)
    assert lost is True and outcome == "LockLostError"
    assert rw._owns_write()  # the stalled holder's release took nothing from us
    rw.release_write()


def test_a_writer_killed_on_a_three_member_cluster_frees_the_lock(etcd3):
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    c = cl.connect(etcd3.endpoints, namespace="rw-three", lease_ttl=TTL, timeout=20)
    try:
        rw = c.RWLock("three")
        held = ctx.Event()
        holder = ctx.Process(target=cw.hold, args=(rw.write_lock(), held, 3600))
        holder.start()
        assert held.wait(60)
        os.kill(holder.pid, signal.SIGKILL)
        holder.join(10)
        with pytest.raises(OwnerDiedError):
            rw.acquire_read(timeout=TTL + 15)
        assert rw._own_reads() == 1  # held: the error says the state may need repair
        rw.release_read()
        assert rw.acquire_write(timeout=10) is True
        rw.release_write()
    finally:
        c.close()
