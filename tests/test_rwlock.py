"""interlock.RWLock: readers share, a writer excludes, the policies, downgrade, misuse, and
all of it between real processes under every start method."""

import math
import os
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import interlock
from interlock import synchronize

import rwlock_workers as workers
from conftest import native_only


@pytest.fixture(params=[False, pytest.param(True, marks=native_only("robust locks"))],
                ids=["plain", "robust"])
def robust(request):
    """The process-level semantics hold for robust RWLocks too (their protocol differs)."""
    return request.param


def in_thread(f):
    """Runs f() in another thread and returns what it returned (or raises what it raised)."""
    out = {}

    def run():
        try:
            out["value"] = f()
        except BaseException as exc:  # handed back to the caller
            out["error"] = exc

    t = threading.Thread(target=run)
    t.start()
    t.join(30)
    assert not t.is_alive()
    if "error" in out:
        raise out["error"]
    return out.get("value")


# ---- one process ----------------------------------------------------------------------------

def test_readers_share_and_a_writer_excludes():
    rw = interlock.RWLock()
    assert rw.acquire_read() and rw.acquire_read(block=False)  # a nested read
    assert in_thread(lambda: rw.acquire_read(timeout=1) and (rw.release_read() or True))
    assert in_thread(lambda: rw.acquire_write(block=False)) is False
    assert rw.read_lock().locked() and not rw.write_lock().locked()
    rw.release_read()
    rw.release_read()
    assert rw.acquire_write(block=False)
    assert rw.write_lock().locked() and not rw.read_lock().locked()
    assert in_thread(lambda: rw.acquire_read(block=False)) is False
    assert in_thread(lambda: rw.acquire_write(timeout=0.05)) is False
    rw.release_write()
    assert not rw.write_lock().locked() and not rw.read_lock().locked()


def test_views_are_locks_and_with_releases_on_exception():
    rw = interlock.RWLock()
    read, write = rw.read_lock(), rw.write_lock()
    assert read.acquire(True, None) is True
    read.release()
    with pytest.raises(KeyError):
        with write:
            assert write.locked()
            raise KeyError
    assert not write.locked()
    with read as got:
        assert got is True and read.locked()
    assert not read.locked()
    assert "ReadLock of <RWLock(" in repr(read)


def test_repr_names_the_state():
    rw = interlock.RWLock(prefer="readers")
    assert repr(rw) == "<RWLock(readers=0, waiting writers=0, prefer='readers')>"
    with rw.read_lock():
        assert "readers=1" in repr(rw)
    with rw.write_lock():
        assert "writer=this thread" in repr(rw)
        assert "writer=another thread" in in_thread(lambda: repr(rw))


def test_timeouts_hold_and_a_negative_one_means_zero():
    rw = interlock.RWLock()
    rw.acquire_write()
    start = time.monotonic()
    assert in_thread(lambda: rw.acquire_read(timeout=0.2)) is False
    assert time.monotonic() - start >= 0.2
    start = time.monotonic()
    assert in_thread(lambda: rw.acquire_write(timeout=-5)) is False
    assert in_thread(lambda: rw.acquire_read(True, -1)) is False
    assert time.monotonic() - start < 5
    rw.release_write()
    assert rw.acquire_read(timeout=-1)  # free: a zero timeout still takes it
    rw.release_read()


def test_a_waiting_writer_holds_back_new_readers_but_not_nested_ones():
    rw = interlock.RWLock()
    assert rw.prefer == "writers"
    rw.acquire_read()
    results = []
    writer = threading.Thread(target=lambda: results.append(rw.acquire_write(timeout=10)))
    writer.start()
    deadline = time.monotonic() + 10
    while rw._waiting_writers() == 0 and time.monotonic() < deadline:
        time.sleep(0.001)
    assert rw._waiting_writers() == 1
    assert in_thread(lambda: rw.acquire_read(block=False)) is False  # a new reader waits
    assert rw.acquire_read(block=False)  # a nested read does not (it would deadlock)
    rw.release_read()
    rw.release_read()  # the last reader lets the writer in
    writer.join(10)
    assert results == [True]
    assert rw._owns_write() is False and rw.write_lock().locked()
    with pytest.raises(AssertionError):
        rw.release_write()  # the writer thread's hold; it ended holding it
    assert rw._waiting_writers() == 0


SLICED_WRITER = textwrap.dedent("""
    import threading, time
    import interlock
    rw = interlock.RWLock(robust={robust})
    held, done, late = threading.Event(), threading.Event(), []
    def first_reader():
        rw.acquire_read(); held.set(); done.wait(); rw.release_read()
    def late_reader():
        while rw._waiting_writers() == 0:
            time.sleep(0.001)
        time.sleep(0.25)  # past two of the writer's 100 ms slices
        late.append(rw.acquire_read(timeout=0.35))  # spans more slice ends
        done.set()
    threads = [threading.Thread(target=first_reader), threading.Thread(target=late_reader)]
    threads[0].start(); held.wait(); threads[1].start()
    assert rw.acquire_write(timeout=30) is True  # the main thread: it waits in slices
    assert late == [False], late  # held back for the writer's whole wait
    assert rw._waiting_writers() == 0
    rw.release_write()
    for t in threads:
        t.join()
    threads[0] = threading.Thread(target=first_reader)
    held.clear(); done.clear(); threads[0].start(); held.wait()
    assert rw.acquire_write(timeout=0.35) is False  # gives up after several slices
    assert rw._waiting_writers() == 0  # and withdrew
    assert rw.acquire_read(block=False) is True  # so readers enter again
    rw.release_read(); done.set(); threads[0].join()
    print("ok")
""")


def test_a_writer_waiting_in_slices_holds_readers_back_throughout(robust):
    """Without futex_waitv a main-thread writer sleeps in 100 ms slices, to run signal
    handlers in between: its announcement must stay up across them, or readers slip in."""
    out = subprocess.run([sys.executable, "-c", SLICED_WRITER.format(robust=robust)],
                         capture_output=True, text=True, timeout=120,
                         env=dict(os.environ, INTERLOCK_NO_FUTEX_WAITV="1"))
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


def test_prefer_readers_lets_a_reader_pass_a_waiting_writer():
    rw = interlock.RWLock(prefer="readers")
    rw.acquire_read()
    results = []
    writer = threading.Thread(target=lambda: results.append(rw.acquire_write(timeout=10)) or
                              rw.release_write())
    writer.start()
    deadline = time.monotonic() + 10
    while rw._waiting_writers() == 0 and time.monotonic() < deadline:
        time.sleep(0.001)
    assert in_thread(lambda: rw.acquire_read(block=False) and (rw.release_read() or True))
    rw.release_read()
    writer.join(10)
    assert results == [True]


def test_downgrade_keeps_writers_out_and_the_with_block_releases_the_read():
    rw = interlock.RWLock()
    with rw.write_lock():
        rw.downgrade()
        assert rw._own_reads() == 1 and not rw.write_lock().locked()
        assert in_thread(lambda: rw.acquire_write(block=False)) is False
        assert in_thread(lambda: rw.acquire_read(block=False) and (rw.release_read() or True))
    assert not rw.read_lock().locked() and not rw.write_lock().locked()


def test_misuse_raises_what_lock_and_rlock_misuse_raise_and_changes_nothing():
    rw = interlock.RWLock()
    with pytest.raises(ValueError, match="not held for reading"):
        rw.release_read()
    with pytest.raises(ValueError, match="not held for writing"):
        rw.release_write()
    with pytest.raises(ValueError, match="not held for writing"):
        rw.downgrade()
    rw.acquire_read()
    with pytest.raises(AssertionError, match="does not hold the lock for reading"):
        in_thread(rw.release_read)
    assert rw._readers() == 1
    rw.release_read()
    rw.acquire_write()
    for call in (rw.release_write, rw.downgrade):
        with pytest.raises(AssertionError, match="does not hold the lock for writing"):
            in_thread(call)
    assert rw.write_lock().locked()
    with pytest.raises(ValueError, match="not held for reading"):
        rw.release_read()  # the writer has no read hold
    rw.release_write()


@pytest.mark.parametrize("bad, error", [(1, TypeError), (None, TypeError), ("Writers", ValueError),
                                        ("fair", ValueError)])
def test_prefer_is_checked(bad, error):
    with pytest.raises(error, match="prefer must be"):
        interlock.RWLock(prefer=bad)


def test_arguments_are_checked_as_lock_checks_them():
    rw = interlock.RWLock()
    with pytest.raises(ValueError):
        rw.acquire_read(timeout=math.nan)
    with pytest.raises(TypeError):
        rw.acquire_write(timeout="1")
    with pytest.raises(TypeError):
        rw.acquire_read(1, 2, 3)
    with pytest.raises(TypeError):
        rw.release_read(1)
    with pytest.raises(TypeError):
        synchronize.RWLock(ctx=42)
    with pytest.raises(TypeError):
        synchronize.RWLock("writers")  # keyword-only


def test_context_gives_rwlocks():
    for method in ("fork", "spawn", "forkserver"):
        rw = interlock.get_context(method).RWLock(prefer="readers")
        assert isinstance(rw, synchronize.RWLock) and rw.prefer == "readers"


# ---- between processes --------------------------------------------------------------------

def test_readers_run_together(ctx, robust):
    rw = synchronize.RWLock(ctx=ctx, robust=robust)
    barrier = synchronize.Barrier(3, ctx=ctx)
    results = ctx.Queue()
    children = [ctx.Process(target=workers.read_together, args=(rw, barrier, results))
                for _ in range(3)]
    for p in children:
        p.start()
    assert [results.get(timeout=60) for _ in children] == [True] * 3
    for p in children:
        p.join(30)
        assert p.exitcode == 0
    assert rw._readers() == 0


def test_a_writer_excludes_everyone(ctx, robust):
    rw = synchronize.RWLock(ctx=ctx, robust=robust)
    counter = ctx.Value("i", 0, lock=False)
    inside = ctx.Value("i", 0, lock=False)
    results = ctx.Queue()
    rounds = 300
    children = [ctx.Process(target=workers.write_and_read,
                            args=(rw, counter, inside, rounds, results)) for _ in range(3)]
    for p in children:
        p.start()
    assert [results.get(timeout=120) for _ in children] == [0, 0, 0]
    for p in children:
        p.join(30)
        assert p.exitcode == 0
    assert counter.value == 3 * len(range(0, rounds, 3))


def test_a_writer_is_not_starved_by_a_stream_of_readers(ctx, robust):
    rw = synchronize.RWLock(ctx=ctx, robust=robust)  # prefer="writers"
    stop = synchronize.Event(ctx=ctx)
    started = synchronize.Semaphore(0, ctx=ctx)
    readers = [ctx.Process(target=workers.read_continuously, args=(rw, stop, started, 0.005))
               for _ in range(3)]
    for p in readers:
        p.start()
    try:
        for _ in readers:
            assert started.acquire(timeout=60)
        time.sleep(0.2)  # the readers' holds overlap: the lock is never free of readers long
        start = time.monotonic()
        got = rw.acquire_write(timeout=10)
        waited = time.monotonic() - start
        assert got, "the writer was starved"
        assert rw._readers() == 0
        rw.release_write()
        assert waited < 10
    finally:
        stop.set()
        for p in readers:
            p.join(30)
    assert all(p.exitcode == 0 for p in readers)


def test_timeouts_hold_across_processes(ctx, robust):
    rw = synchronize.RWLock(ctx=ctx, robust=robust)
    held, done = synchronize.Event(ctx=ctx), synchronize.Event(ctx=ctx)
    p = ctx.Process(target=workers.hold_write_until, args=(rw, held, done))
    p.start()
    try:
        assert held.wait(60)
        start = time.monotonic()
        assert rw.acquire_read(timeout=0.2) is False
        assert rw.acquire_write(timeout=0.2) is False
        assert time.monotonic() - start >= 0.4
        assert rw.acquire_read(block=False) is False
    finally:
        done.set()
        p.join(30)
    assert p.exitcode == 0
    assert rw.acquire_write(timeout=10)
    rw.release_write()


def test_downgrade_is_atomic(ctx, robust):
    rw = synchronize.RWLock(ctx=ctx, robust=robust)
    token = ctx.Value("i", 0, lock=False)
    writes = ctx.Value("i", 0, lock=False)
    stop = synchronize.Event(ctx=ctx)
    p = ctx.Process(target=workers.write_when_possible, args=(rw, token, stop, writes))
    p.start()
    try:
        deadline = time.monotonic() + 60
        while writes.value == 0 and time.monotonic() < deadline:
            time.sleep(0.001)
        for _ in range(200):
            assert rw.acquire_write(timeout=30)
            token.value = 1
            rw.downgrade()
            time.sleep(0.0002)  # the child tries to write meanwhile
            assert token.value == 1, "a writer entered between the write hold and the read"
            rw.release_read()
    finally:
        stop.set()
        p.join(30)
    assert p.exitcode == 0
    assert writes.value > 0


def test_another_process_cannot_release_our_holds(ctx):
    rw = synchronize.RWLock(ctx=ctx)
    results = ctx.Queue()
    rw.acquire_read()
    p = ctx.Process(target=workers.try_to_release, args=(rw, results))
    p.start()
    assert [results.get(timeout=60) for _ in range(2)] == ["AssertionError", "ValueError"]
    p.join(30)
    rw.release_read()
    rw.acquire_write()
    p = ctx.Process(target=workers.try_to_release, args=(rw, results))
    p.start()
    assert [results.get(timeout=60) for _ in range(2)] == ["ValueError", "AssertionError"]
    p.join(30)
    assert rw._owns_write()
    rw.release_write()


def test_a_reader_in_another_process_lets_a_waiting_writer_in_when_it_leaves(ctx, robust):
    rw = synchronize.RWLock(ctx=ctx, robust=robust)
    held, done = synchronize.Event(ctx=ctx), synchronize.Event(ctx=ctx)
    results = ctx.Queue()
    reader = ctx.Process(target=workers.hold_read_until, args=(rw, held, done))
    reader.start()
    assert held.wait(60)
    writer = ctx.Process(target=workers.acquire_write_and_report, args=(rw, results, 60))
    writer.start()
    deadline = time.monotonic() + 60
    while rw._waiting_writers() == 0 and time.monotonic() < deadline:
        time.sleep(0.001)
    assert rw.acquire_read(block=False) is False  # held back behind the waiting writer
    done.set()
    assert results.get(timeout=60) is True
    for p in (reader, writer):
        p.join(30)
        assert p.exitcode == 0


def test_views_travel_to_children(ctx):
    rw = synchronize.RWLock(ctx=ctx)
    results = ctx.Queue()
    for view in (rw.read_lock(), rw.write_lock()):
        p = ctx.Process(target=workers.use_the_view, args=(view, results))
        p.start()
        assert results.get(timeout=60) is True
        p.join(30)
        assert p.exitcode == 0
    assert not rw.read_lock().locked() and not rw.write_lock().locked()


def test_a_fork_child_does_not_inherit_the_parents_read_holds():
    import multiprocessing as mp

    ctx = mp.get_context("fork")
    rw = synchronize.RWLock(ctx=ctx)
    results = ctx.Queue()
    rw.acquire_read()
    p = ctx.Process(target=workers.try_to_release, args=(rw, results))
    p.start()
    assert results.get(timeout=60) == "AssertionError"
    results.get(timeout=60)
    p.join(30)
    assert rw._readers() == 1
    rw.release_read()
