"""interlock.cluster Barrier."""

import functools
import os
import signal
import threading
import time

import pytest

from cluster import cluster_workers as cw


def test_single_party_and_arguments(cluster):
    b = cluster.Barrier("one", 1)
    assert b.wait() == 0 and b.wait() == 0
    assert b.parties == 1 and b.n_waiting == 0 and not b.broken
    for parties, error in ((0, ValueError), (-1, ValueError), ("2", TypeError),
                           (2.0, TypeError)):
        with pytest.raises(error):
            cluster.Barrier("bad", parties)
    with pytest.raises(TypeError):
        cluster.Barrier("bad", 2, action=5)


def test_indices_are_unique_across_processes(cluster, ctx):
    b = cluster.Barrier("round", 3)
    results = ctx.Queue()
    parties = [ctx.Process(target=cw.barrier_party, args=(b, results, 60)) for _ in range(2)]
    for p in parties:
        p.start()
    mine = b.wait(60)
    theirs = [results.get(timeout=60) for _ in parties]
    for p in parties:
        p.join(30)
    assert sorted([mine, *theirs]) == [0, 1, 2]


def test_more_arrivals_than_parties_form_successive_rounds(cluster, ctx, tmp_path):
    # Six processes at a Barrier of two, once each: the parties that find a round full wait
    # for the next one; every round has one index 0 and one index 1, and its action runs once,
    # in one of its parties.
    ran = tmp_path / "actions"
    b = cluster.Barrier("crowd", 2, action=functools.partial(cw.append_line, str(ran)))
    results = ctx.Queue()
    procs = [ctx.Process(target=cw.barrier_rounds, args=(b, 1, results)) for _ in range(6)]
    for p in procs:
        p.start()
    indices = [i for _ in procs for i in results.get(timeout=120)]
    for p in procs:
        p.join(30)
    assert sorted(indices) == [0] * 3 + [1] * 3
    assert ran.read_text().count("ran") == 3
    assert not b.broken and b.n_waiting == 0


def test_timeout_abort_and_reset(cluster):
    b = cluster.Barrier("t", 2)
    start = time.monotonic()
    with pytest.raises(threading.BrokenBarrierError):
        b.wait(0.3)
    assert time.monotonic() - start < 10
    assert b.broken
    with pytest.raises(threading.BrokenBarrierError):
        b.wait(1)
    b.reset()
    assert not b.broken
    b.abort()
    assert b.broken
    b.reset()
    assert not b.broken


def _kill_a_waiting_party(b, ctx):
    """Starts a process that waits on `b`, and SIGKILLs it once it is waiting."""
    results = ctx.Queue()  # kept until the child has it: start() lets go of its arguments
    doomed = ctx.Process(target=cw.barrier_party, args=(b, results, 3600))
    doomed.start()
    deadline = time.monotonic() + 30
    while b.n_waiting < 1:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    os.kill(doomed.pid, signal.SIGKILL)
    doomed.join(10)


def test_a_killed_party_breaks_the_barrier_for_the_others(cluster, ctx):
    b = cluster.Barrier("dead-party", 3)
    _kill_a_waiting_party(b, ctx)
    killed_at = time.monotonic()
    with pytest.raises(threading.BrokenBarrierError):
        b.wait(60)
    assert time.monotonic() - killed_at < 3.0 + 1 + 3  # TTL + 1 s, and slack
    assert b.broken


def test_rounds_without_an_action_keep_their_indices_apart(cluster, ctx):
    # With no action, the arrival that completes a round ends it in its own transaction:
    # over many rounds, each round still hands out every index once.
    b = cluster.Barrier("many-rounds", 3)
    results = ctx.Queue()
    procs = [ctx.Process(target=cw.barrier_rounds, args=(b, 15, results)) for _ in range(2)]
    for p in procs:
        p.start()
    mine = [b.wait(60) for _ in range(15)]
    theirs = [results.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(30)
    for round_indices in zip(mine, *theirs):
        assert sorted(round_indices) == [0, 1, 2]
    assert not b.broken and b.n_waiting == 0


def test_a_round_without_an_action_costs_one_transaction_per_party(cluster):
    # Counted after a first round (which also reads the state and starts the watch): each
    # later round is the parties' arrivals and nothing else.
    b = cluster.Barrier("one-write-each", 3)
    session = b._session()
    calls, call = [], session.call
    warmed, counting = threading.Barrier(4), threading.Barrier(4)
    rounds = [[] for _ in range(3)]

    def party(mine):
        b.wait(60)
        warmed.wait(60)
        counting.wait(60)
        mine.extend(b.wait(60) for _ in range(5))
    threads = [threading.Thread(target=party, args=(mine,)) for mine in rounds]
    for t in threads:
        t.start()
    warmed.wait(60)
    session.call = lambda path, *args, **kwargs: calls.append(path) or call(path, *args,
                                                                            **kwargs)
    counting.wait(60)
    for t in threads:
        t.join(120)
    assert [sorted(r) for r in zip(*rounds)] == [[0, 1, 2]] * 5
    assert calls == ["/v3/kv/txn"] * 15


def test_a_party_gone_before_the_others_arrive_breaks_the_barrier(cluster, ctx):
    # The party's key vanished (its lease ended) before this arrival: the watch cannot show
    # its going, but the round's count of arrivals does. Nobody may be released.
    b = cluster.Barrier("gone-before", 2)
    _kill_a_waiting_party(b, ctx)
    deadline = time.monotonic() + 30
    while b.n_waiting > 0:  # its key goes with its lease
        assert time.monotonic() < deadline
        time.sleep(0.05)
    start = time.monotonic()
    with pytest.raises(threading.BrokenBarrierError):
        b.wait(30)
    assert time.monotonic() - start < 10  # at once, not at the timeout
    assert b.broken
