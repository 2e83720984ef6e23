"""Free-threaded CPython (docs/free-threading.md): the module keeps the GIL off, and the
state that the GIL used to serialise stays whole when threads really run in parallel. The
thread tests run on every build; on a GIL build they check the same invariants with
interleaving only at the GIL's switch points."""

import subprocess
import sys
import sysconfig
import textwrap
import threading

import pytest

import interlock
from interlock import synchronize

from conftest import native_core

_core = native_core("free-threading declaration to check")

FREE_THREADED = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))
THREADS = 8


def _run_in_threads(target, n=THREADS):
    """Runs target(i) in n threads released together; re-raises the first failure."""
    start = threading.Barrier(n)
    errors = []

    def body(i):
        start.wait()
        try:
            target(i)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=body, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]


@pytest.mark.skipif(not FREE_THREADED, reason="needs a free-threaded CPython (3.13t or later)")
def test_importing_and_using_everything_keeps_the_gil_disabled(tmp_path):
    code = textwrap.dedent(f"""
        import sys
        import interlock
        from interlock import synchronize
        objs = [synchronize.Lock(), synchronize.RLock(robust=True), synchronize.Semaphore(2),
                synchronize.BoundedSemaphore(1), synchronize.Event(),
                synchronize.Condition(), synchronize.Barrier(1)]
        for lock in objs[:4]:
            with lock:
                pass
        objs[4].set(); objs[4].wait(0)
        with objs[5]:
            objs[5].notify_all()
        objs[6].wait()
        ctx = interlock.get_context("spawn")
        q = ctx.Queue(); q.put(1); assert q.get() == 1; q.close(); q.join_thread()
        with interlock.FileLock({str(tmp_path / "f.lock")!r}):
            pass
        print(sys._is_gil_enabled())
    """)
    result = subprocess.run([sys.executable, "-W", "error", "-c", code], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False", result.stdout + result.stderr


def test_init_runs_once_per_object():
    for obj in (synchronize.Lock(), synchronize.Semaphore(3), synchronize.Event(),
                synchronize.Condition(), synchronize.Barrier(2)):
        info = obj._slot_info()
        with pytest.raises(RuntimeError, match="already initialized"):
            obj.__init__()
        assert obj._slot_info() == info  # the object keeps its slot


def test_failed_init_can_be_retried():
    sem = synchronize.Semaphore.__new__(synchronize.Semaphore)
    with pytest.raises(ValueError):
        sem.__init__(-1)
    with pytest.raises(RuntimeError, match="not initialized"):
        sem.acquire()
    sem.__init__(2)
    assert sem.get_value() == 2


def test_racing_inits_give_one_slot():
    for _ in range(50):
        lock = synchronize.Lock.__new__(synchronize.Lock)
        outcomes = []

        def init(_):
            try:
                lock.__init__()
                outcomes.append("ok")
            except RuntimeError as exc:
                outcomes.append(str(exc))

        _run_in_threads(init, 4)
        assert outcomes.count("ok") == 1, outcomes
        assert all("already initialized" in o for o in outcomes if o != "ok")
        assert lock.acquire(False) and lock._slot_info()[3] == 1


def test_lock_serialises_threads():
    lock, counter, rounds = synchronize.Lock(), [0], 20_000

    def add(_):
        for _ in range(rounds):
            with lock:
                counter[0] += 1  # not atomic without the lock on a free-threaded build

    _run_in_threads(add)
    assert counter[0] == THREADS * rounds


def test_semaphore_admits_at_most_its_value():
    sem, inside, peak, guard = synchronize.BoundedSemaphore(3), [0], [0], threading.Lock()

    def enter(_):
        for _ in range(5_000):
            with sem:
                with guard:
                    inside[0] += 1
                    peak[0] = max(peak[0], inside[0])
                with guard:
                    inside[0] -= 1

    _run_in_threads(enter)
    assert 1 <= peak[0] <= 3 and sem.get_value() == 3


def test_creation_and_destruction_from_many_threads_keep_counts():
    before = _core._live_handles()

    def churn(_):
        for _ in range(2_000):
            objs = [synchronize.Lock(), synchronize.Event(), synchronize.Condition()]
            with objs[2]:
                pass
            del objs

    _run_in_threads(churn)
    assert _core._live_handles() == before


def test_explicit_contexts_resolve_correctly_from_many_threads():
    contexts = [interlock.get_context(m) for m in ("fork", "spawn", "forkserver")]

    def make(i):
        for n in range(3_000):
            ctx = contexts[(i + n) % 3]
            assert synchronize.Lock(ctx=ctx)._is_fork_ctx == (ctx.get_start_method() == "fork")

    _run_in_threads(make)


def test_threads_pickling_one_arena_share_its_reference():
    from interlock import _sharing
    lock = synchronize.Lock()
    fd, token, index, generation = lock._export()
    _core._import(type(lock), token, index, generation)  # adopt the transfer reference back
    refs = []
    _run_in_threads(lambda _: refs.append(_sharing.ArenaRef.get(fd, token)))
    assert len({id(ref) for ref in refs}) == 1


def test_barrier_rounds_from_many_threads():
    barrier, rounds = synchronize.Barrier(THREADS), 200
    seen = [[] for _ in range(rounds)]

    def run(_):
        for r in range(rounds):
            seen[r].append(barrier.wait(10))

    _run_in_threads(run)
    assert all(sorted(indices) == list(range(THREADS)) for indices in seen)


def test_condition_hand_off_between_threads():
    cond, items, taken = synchronize.Condition(), [], []
    total = 4_000

    def producer(_):
        for n in range(total // (THREADS // 2)):
            with cond:
                items.append(n)
                cond.notify()

    def consumer(_):
        for _ in range(total // (THREADS // 2)):
            with cond:
                assert cond.wait_for(lambda: items, 10)
                taken.append(items.pop())

    _run_in_threads(lambda i: (producer if i % 2 else consumer)(i))
    assert len(taken) == total and not items
