"""interlock.cluster Event."""

import time

from cluster import cluster_workers as cw


def test_set_clear_wait(cluster):
    e = cluster.Event("e")
    assert not e.is_set()
    assert e.wait(0) is False and e.wait(-1) is False
    start = time.monotonic()
    assert e.wait(0.3) is False
    assert time.monotonic() - start >= 0.25
    e.set()
    assert e.is_set() and e.wait() is True and e.wait(0) is True
    e.clear()
    assert not e.is_set()
    assert "unset" in repr(e)


def test_set_wakes_waiters_in_other_processes(cluster, ctx):
    e = cluster.Event("wake")
    results = ctx.Queue()
    waiters = [ctx.Process(target=cw.wait_event, args=(e, 60, results)) for _ in range(3)]
    for w in waiters:
        w.start()
    setter = ctx.Process(target=cw.set_event_later, args=(e, 1.0))
    setter.start()
    outcomes = [results.get(timeout=60) for _ in waiters]
    for p in waiters + [setter]:
        p.join(30)
    assert all(ok for ok, _ in outcomes)
    assert all(waited < 30 for _, waited in outcomes)


def test_a_set_followed_at_once_by_clear_still_wakes_a_waiter(cluster, ctx):
    e = cluster.Event("pulse")
    results = ctx.Queue()
    w = ctx.Process(target=cw.wait_event, args=(e, 30, results))
    w.start()
    time.sleep(1.0)
    e.set()
    e.clear()
    ok, waited = results.get(timeout=60)
    w.join(30)
    assert ok is True and waited < 25
