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
from interlock.cluster._primitive import get_prefix

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
    outcome, detected = cw.kill_holder_under_waiter(holder, waiter, results)
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


def test_a_waiter_handed_the_lock_that_dies_gives_owner_died_to_the_next(cluster, ctx):
    # The queue is: this process (holding), a child that will be handed the lock and killed
    # while holding it, and a second child behind it.
    lock = cluster.Lock("handed-then-dead")
    held, results = ctx.Event(), ctx.Queue()
    lock.acquire()
    doomed = ctx.Process(target=cw.hold, args=(lock, held, 3600))
    doomed.start()
    _wait_until_queued(lock, 2)
    nxt = ctx.Process(target=cw.acquire_and_report, args=(lock, results, 60))
    nxt.start()
    _wait_until_queued(lock, 3)
    lock.release()  # handed to the doomed child
    assert held.wait(60)
    os.kill(doomed.pid, signal.SIGKILL)
    doomed.join(10)
    outcome, _, _ = results.get(timeout=60)
    nxt.join(30)
    assert outcome == "owner died"


def _wait_until_queued(lock, n):
    """Until `n` keys (holder and waiters) are in the lock's queue."""
    deadline = time.monotonic() + 60
    while len(lock._read(get_prefix(lock._queue(), keys_only=True)).kvs(0)) < n:
        assert time.monotonic() < deadline
        time.sleep(0.05)


def _blind(lock):
    """Makes this process's waits on `lock` unable to see changes, so that every turn is
    decided by looking at the state again (the path taken after a watch gap)."""
    def cannot_vouch(key, range_end, after, deadline, done=None, wake_on=None):
        time.sleep(0.05)
        return False if deadline is not None and time.monotonic() > deadline else None
    lock._wait_for_change = cannot_vouch


def _acquire_in_thread(lock, timeout):
    outcome = []

    def run():
        try:
            outcome.append(lock.acquire(timeout=timeout))
        except OwnerDiedError:
            outcome.append("owner died")
    t = threading.Thread(target=run)
    t.start()
    return t, outcome


def test_a_turn_decided_by_a_look_tells_a_hand_off_from_a_death(cluster, ctx):
    # After a watch gap, the waiter judges from the holder record (and, for a hand-off, from
    # the queue as it was at the hand-off's revision) whether its predecessor released.
    lock = cluster.Lock("looks")
    _blind(lock)
    lock.acquire()
    t, outcome = _acquire_in_thread(lock, 60)
    _wait_until_queued(lock, 2)
    lock.release()  # handed to the thread: a clean hand-off
    t.join(60)
    assert outcome == [True]
    lock.release()

    # A holder killed while holding: the look finds its "held" record and no key.
    held = ctx.Event()
    holder = ctx.Process(target=cw.hold, args=(lock, held, 3600))
    holder.start()
    assert held.wait(60)
    t, outcome = _acquire_in_thread(lock, 60)
    _wait_until_queued(lock, 2)
    os.kill(holder.pid, signal.SIGKILL)
    holder.join(10)
    t.join(60)
    assert outcome == ["owner died"]
    lock.release()

    # Handed to a waiter that then died: the record says "handed", and at that revision a key
    # older than ours (the dead waiter's) was still there.
    held, go, results = ctx.Event(), ctx.Event(), ctx.Queue()
    first = ctx.Process(target=cw.hold_until_told, args=(lock, held, go, results))
    first.start()
    assert held.wait(60)
    held2 = ctx.Event()
    doomed = ctx.Process(target=cw.hold, args=(lock, held2, 3600))
    doomed.start()
    _wait_until_queued(lock, 2)
    t, outcome = _acquire_in_thread(lock, 60)
    _wait_until_queued(lock, 3)
    go.set()  # the first child releases: handed to the doomed one
    assert held2.wait(60)
    os.kill(doomed.pid, signal.SIGKILL)
    doomed.join(10)
    first.join(30)
    t.join(60)
    assert outcome == ["owner died"]
    assert results.get(timeout=10)[1] == "released"
    lock.release()


def test_a_waiter_whose_deadline_passes_as_the_lock_is_handed_to_it_holds_it(cluster):
    # A timed-out waiter leaves only if an older key remains; when none does, the lock was
    # handed to it and acquire() returns True holding it (never leaving it held by no one).
    lock = cluster.Lock("deadline")

    def sleep_past_the_deadline(key, range_end, after, deadline, done=None, wake_on=None):
        time.sleep(max(0.0, deadline - time.monotonic()) + 0.01)
        return False  # as if nothing had been seen before the deadline
    lock._wait_for_change = sleep_past_the_deadline
    lock.acquire()
    t, outcome = _acquire_in_thread(lock, 1.0)
    _wait_until_queued(lock, 2)
    lock.release()  # handed to the waiter, which learns it only after its deadline
    t.join(60)
    assert outcome == [True] and lock.locked()
    lock.release()
    assert not lock.locked()

    lock.acquire()  # still held when the deadline passes: the waiter leaves the queue
    t, outcome = _acquire_in_thread(lock, 0.5)
    t.join(60)
    assert outcome == [False]
    assert len(lock._read(get_prefix(lock._queue(), keys_only=True)).kvs(0)) == 1
    lock.release()


def test_a_release_whose_reply_was_lost_and_retried_is_not_a_lost_hold(cluster, etcd):
    # The first attempt of a release lands but its reply is lost; before the retry, the next
    # owner takes the lock and releases it (replacing the record the first attempt wrote).
    # The retry finds its key gone and its lease alive: its own release, not a lost hold.
    from interlock import cluster as cl

    other_connection = cl.connect(etcd.endpoints, namespace=cluster.namespace, lease_ttl=TTL)
    try:
        lock, other = cluster.Lock("retried"), other_connection.Lock("retried")
        lock.acquire()
        session = lock._session()
        real = session.call
        lost = []

        def reply_lost_once(path, body, deadline=None):
            if path == "/v3/kv/txn" and not lost:
                lost.append(real(path, body, deadline))
                other.acquire()
                other.release()
            return real(path, body, deadline)
        session.call = reply_lost_once
        try:
            lock.release()
        finally:
            del session.call
        assert lost and not lock.locked()
    finally:
        other_connection.close()


def _late_copy(lock, n):
    """What a stopped member that comes back applies late (a join whose attempt timed out
    there, answered elsewhere long ago): a queue key named by this process, on its lease,
    that no thread of it holds or waits with."""
    from interlock.cluster._primitive import put

    session = lock._session()
    # The copy's cause, which switches the process's sweep on: an attempt that got no answer
    # (tests/cluster/test_faults.py makes a real one, with a stopped member).
    session.transport.unanswered_txn = True
    lease = session.lease()
    key = lock._key("q", f"{lease:x}-late{n}")
    lock._txn([], [put(key, b"", lease)])
    return key


def test_a_late_copy_of_a_join_is_taken_out_when_its_process_joins(cluster):
    lock = cluster.Lock("late-copy")
    stray = _late_copy(lock, 1)
    assert lock.locked()  # to everyone else, the copy is an owner
    assert lock.acquire(timeout=10)  # no OwnerDiedError: the copy released as it left
    assert not lock._read(get_prefix(stray)).kvs(0)
    lock.release()
    assert not lock.locked()


def test_a_late_copy_that_lands_while_its_process_waits_is_taken_out(cluster, ctx):
    # Another process holds the lock; this one waits; the copy lands behind it, and a third
    # waiter (the child) queues behind the copy. When this process gets the lock and
    # releases it, the child must get it, not wait for the copy forever.
    lock = cluster.Lock("late-copy-waiting")
    held, go, told, results = ctx.Event(), ctx.Event(), ctx.Queue(), ctx.Queue()
    holder = ctx.Process(target=cw.hold_until_told, args=(lock, held, go, told))
    holder.start()
    assert held.wait(60)
    got = []
    waiter = threading.Thread(target=lambda: got.append(lock.acquire(timeout=60)))
    waiter.start()
    _until(lambda: _queued(lock) == 2)
    stray = _late_copy(lock, 2)
    child = ctx.Process(target=cw.acquire_and_report, args=(lock, results, 60))
    child.start()
    # The waiter sees the copy arrive on its watch and takes it out; the child queues.
    _until(lambda: not lock._read(get_prefix(stray)).kvs(0) and _queued(lock) == 3)
    go.set()  # the holder releases only now: the copy landed while this process waited
    waiter.join(60)
    assert got == [True]
    assert not lock._read(get_prefix(stray)).kvs(0)
    lock.release()
    assert results.get(timeout=60)[0] == "acquired"
    assert told.get(timeout=60)[1] == "released"
    child.join(30)
    holder.join(30)
    assert child.exitcode == 0 and holder.exitcode == 0


def test_a_late_copy_that_lands_before_a_waiters_watch_starts_is_taken_out(cluster, ctx):
    # The copy lands after this process's join and before the watch its waiter sleeps on
    # starts (the watch is new): the watch cannot deliver it, and the join's own read of the
    # keys named on this process's lease came before it, so the waiter's look must find it.
    lock = cluster.Lock("late-copy-look")
    held, go, told = ctx.Event(), ctx.Event(), ctx.Queue()
    holder = ctx.Process(target=cw.hold_until_told, args=(lock, held, go, told))
    holder.start()
    assert held.wait(60)
    hub, landed = lock._session().watches, []
    standing = hub.standing

    def standing_after_a_copy_lands(*args):
        if threading.current_thread() is waiter and not landed:
            landed.append(_late_copy(lock, 4))
        return standing(*args)
    hub.standing = standing_after_a_copy_lands
    got = []
    waiter = threading.Thread(target=lambda: got.append(lock.acquire(timeout=60)))
    waiter.start()
    _until(lambda: landed and not lock._read(get_prefix(landed[0])).kvs(0), timeout=10)
    go.set()
    waiter.join(60)
    assert got == [True]
    lock.release()
    assert told.get(timeout=60)[1] == "released"
    holder.join(30)
    assert holder.exitcode == 0


def test_a_late_copy_that_lands_while_its_process_holds_is_taken_out(cluster, ctx):
    # The copy lands behind this process's own hold, and the child queues behind the copy:
    # this process's release hands the lock to the copy, which must pass it on at once.
    lock = cluster.Lock("late-copy-holding")
    results = ctx.Queue()
    assert lock.acquire(timeout=10)
    stray = _late_copy(lock, 3)
    child = ctx.Process(target=cw.acquire_and_report, args=(lock, results, 60))
    child.start()
    _until(lambda: _queued(lock) == 3)
    lock.release()
    assert not lock._read(get_prefix(stray)).kvs(0)
    assert results.get(timeout=60)[0] == "acquired"  # not an OwnerDiedError either
    child.join(30)
    assert child.exitcode == 0


def _queued(lock):
    return len(lock._read(get_prefix(lock._queue(), keys_only=True)).kvs(0))


def _until(predicate, timeout=60):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_repr_has_multiprocessing_s_format(cluster, ctx):
    # As CPython 3.13's test_repr_lock and test_repr_rlock check it (the conformance run).
    lock, rlock = cluster.Lock("repr"), cluster.RLock("repr-r")
    assert repr(lock) == "<Lock(owner=None)>" and repr(rlock) == "<RLock(None, 0)>"
    with lock:
        assert repr(lock) == "<Lock(owner=MainProcess)>"
    rlock.acquire()
    rlock.acquire()
    assert repr(rlock) == "<RLock(MainProcess, 2)>"
    seen = []

    def in_thread():
        seen.append(repr(rlock))  # held by another thread of this process
        with lock:
            seen.append(repr(lock))
    thread = threading.Thread(target=in_thread, name="T1")
    thread.start()
    thread.join(30)
    assert seen == ["<RLock(SomeOtherThread, nonzero)>", "<Lock(owner=MainProcess|T1)>"]
    rlock.release()
    rlock.release()
    held = ctx.Event()
    holder = ctx.Process(target=cw.hold, args=(lock, held, 3))
    holder.start()
    assert held.wait(60)
    assert repr(lock) == "<Lock(owner=SomeOtherProcess)>"
    holder.join(30)
