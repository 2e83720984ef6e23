"""interlock.cluster._watch: a process's standing watches on a real etcd, and their rare paths.
In each, a waiter must still wake correctly:

* compaction: the stream breaks, a set() (and a clear()) lands, and etcd compacts its history
  before the watch is re-opened, so the watch cannot resume (COMPACTED);
* a full buffer: more changes arrive than the buffer holds before the waiter reads them
  (OVERRUN);
* idle eviction: the watch a waiter is about to sleep on is closed as idle (EVICTED).

The moment each path needs is made by holding one step of the waiter or of the hub at a gate
(the server is real; only the order of the client's own steps is arranged)."""

import socket
import threading
import time

from interlock.cluster._watch import Watch, WatchState


def _until(predicate, timeout=30):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def _waiting(event, timeout=30):
    """Starts a thread in event.wait(timeout); its result goes to the returned list."""
    result = []
    thread = threading.Thread(target=lambda: result.append(event.wait(timeout)))
    thread.start()
    return thread, result


def _watch_of(cluster, event):
    return cluster._session().watches._standing.get((event._key("sets"), b""))


def test_a_live_watch_delivers_every_change_in_order(cluster):
    event = cluster.Event("in-order")
    hub = cluster._session().watches
    key = event._key("sets")
    w = hub.standing(key, b"", None)
    assert w.state is WatchState.LIVE and w.gap_free_after is not None
    start = w.gap_free_after
    for _ in range(5):
        event.set()
    _until(lambda: len(w.changes_after(start) or []) == 5)
    revisions = [e.kv.mod_revision for e in w.changes_after(start)]
    assert revisions == sorted(revisions) and len(set(revisions)) == 5


def test_a_waiter_wakes_for_a_set_that_etcd_compacted_away(cluster, etcd, monkeypatch):
    event = cluster.Event("compacted")
    hub = cluster._session().watches
    thread, result = _waiting(event)
    _until(lambda: _watch_of(cluster, event) is not None
           and _watch_of(cluster, event).waiting == 1)
    w = _watch_of(cluster, event)
    states = []
    real_compacted = w.compacted

    def compacted():
        states.append(WatchState.COMPACTED)
        real_compacted()
    monkeypatch.setattr(w, "compacted", compacted)
    gate = threading.Event()
    real_open = hub._open

    def held_open(watch, deadline=None):
        gate.wait(30)
        real_open(watch, deadline)
    monkeypatch.setattr(hub, "_open", held_open)
    w.stream.sock.shutdown(socket.SHUT_RDWR)  # the stream breaks, as when its member dies
    _until(lambda: w.state is WatchState.CATCHING_UP)
    event.set()
    event.clear()
    compacted_at = etcd.compact()
    gate.set()  # the watch re-opens from a revision that etcd no longer has
    thread.join(30)
    assert result == [True]
    assert states == [WatchState.COMPACTED]
    _until(lambda: w.state is WatchState.LIVE)  # re-created from now
    assert w.gap_free_after >= compacted_at


def test_a_waiter_behind_a_full_buffer_looks_again_and_sees_the_set(cluster, monkeypatch):
    monkeypatch.setattr(Watch, "BUFFER", 4)
    event = cluster.Event("overrun")
    gate, reached = threading.Event(), threading.Event()
    real_wait = event._wait_for_change

    def held_wait(*args, **kwargs):  # the waiter has read the flag and is about to sleep
        reached.set()
        gate.wait(30)
        return real_wait(*args, **kwargs)
    monkeypatch.setattr(event, "_wait_for_change", held_wait)
    cluster._session().watches.standing(event._key("sets"), b"", None)  # a BUFFER-4 watch
    thread, result = _waiting(event)
    assert reached.wait(30)
    for _ in range(10):  # ten set()s, each cleared at once: more than the buffer holds
        event.set()
        event.clear()
    w = _watch_of(cluster, event)
    _until(lambda: w.state is WatchState.OVERRUN)
    gate.set()
    thread.join(30)
    assert result == [True]


def test_a_watch_evicted_under_a_waiter_is_replaced(cluster, monkeypatch):
    event = cluster.Event("evicted")
    hub = cluster._session().watches
    monkeypatch.setattr(hub, "MAX_IDLE_WATCHES", 0)
    gate, reached = threading.Event(), threading.Event()
    real_standing = hub.standing
    got = []

    def held_standing(key, range_end, deadline):
        w = real_standing(key, range_end, deadline)
        if key == event._key("sets") and not got:
            got.append(w)
            reached.set()
            gate.wait(30)  # between getting the watch and sleeping on it: still idle
        return w
    monkeypatch.setattr(hub, "standing", held_standing)
    thread, result = _waiting(event)
    assert reached.wait(30)
    other = cluster.Event("evicted-other")
    real_standing(other._key("sets"), b"", None)  # a new watch: the idle one is evicted
    assert got[0].state is WatchState.EVICTED and got[0].stream is None
    gate.set()
    _until(lambda: _watch_of(cluster, event) not in (None, got[0])
           and _watch_of(cluster, event).waiting == 1)
    event.set()
    thread.join(30)
    assert result == [True]


def test_idle_watches_beyond_the_limit_are_closed_least_recently_used_first(cluster,
                                                                            monkeypatch):
    hub = cluster._session().watches
    monkeypatch.setattr(hub, "MAX_IDLE_WATCHES", 3)
    events = [cluster.Event(f"idle-{i}") for i in range(6)]
    watches = []
    for event in events:
        watches.append(hub.standing(event._key("sets"), b"", None))
        time.sleep(0.01)
    # Three idle watches are kept besides the one just made.
    assert [w.state for w in watches[:2]] == [WatchState.EVICTED] * 2
    assert [w.state for w in watches[2:]] == [WatchState.LIVE] * 4
    assert all(w.stream is None for w in watches[:2])
    thread, result = _waiting(events[0], 30)  # an evicted range: a new watch
    _until(lambda: _watch_of(cluster, events[0]) not in (None, watches[0]))
    events[0].set()
    thread.join(30)
    assert result == [True]


def test_a_closed_connection_cancels_its_watches_and_wakes_their_waiters(etcd):
    from interlock import cluster as cl
    from interlock.cluster import ClusterError

    c = cl.connect(etcd.endpoints, namespace=f"closing-{time.monotonic_ns()}", lease_ttl=3)
    event = c.Event("closing")
    raised = []

    def wait_and_report():
        try:
            event.wait(60)
        except ClusterError as exc:
            raised.append(exc)
    thread = threading.Thread(target=wait_and_report)
    thread.start()
    _until(lambda: _watch_of(c, event) is not None and _watch_of(c, event).waiting == 1)
    w = _watch_of(c, event)
    start = time.monotonic()
    c.close()
    thread.join(30)
    assert time.monotonic() - start < 10  # woken, not left to its 60 s
    assert w.state is WatchState.CANCELLED
    assert len(raised) == 1 and "closed" in str(raised[0])
