"""interlock.get_context(): multiprocessing contexts whose primitives are interlock's, and
everything multiprocessing builds on them (queues, pools, shared values, executors)."""

import concurrent.futures
import multiprocessing as mp
import pickle

import pytest

import interlock
from interlock import synchronize

import workers
from conftest import START_METHODS

METHODS = START_METHODS


@pytest.fixture(params=METHODS)
def ictx(request):
    return interlock.get_context(request.param)


def test_context_is_multiprocessings_with_interlock_primitives(ictx):
    base = type(mp.get_context(ictx.get_start_method()))
    assert isinstance(ictx, base)
    assert interlock.get_context(ictx.get_start_method()) is ictx
    assert ictx.get_context() is ictx
    for name, args in [
        ("Lock", ()),
        ("RLock", ()),
        ("Semaphore", (2,)),
        ("BoundedSemaphore", (2,)),
        ("Condition", ()),
        ("Event", ()),
        ("Barrier", (2,)),
    ]:
        obj = getattr(ictx, name)(*args)
        assert isinstance(obj, getattr(synchronize, name)), name
    assert ictx.Lock()._is_fork_ctx == (ictx.get_start_method() == "fork")
    # multiprocessing's own factories are untouched
    assert not isinstance(mp.get_context(ictx.get_start_method()).Lock(), synchronize.Lock)


def test_default_and_bad_methods():
    assert interlock.get_context().get_start_method() == mp.get_start_method()
    with pytest.raises(ValueError):
        interlock.get_context("no-such-method")
    with pytest.raises(TypeError):
        interlock.get_context(3)  # type: ignore[arg-type]


def test_queues_use_interlock_end_to_end(ictx):
    q = ictx.Queue()
    assert isinstance(q._rlock, synchronize.Lock)
    assert isinstance(q._sem, synchronize.BoundedSemaphore)
    jq = ictx.JoinableQueue()
    sq = ictx.SimpleQueue()
    assert isinstance(sq._rlock, synchronize.Lock)
    p = ictx.Process(target=workers.joinable_consumer, args=(jq, q))
    p.start()
    for n in range(20):
        jq.put(n)
    jq.put(None)
    jq.join()  # task_done() went through an interlock Condition and Semaphore
    assert sorted(q.get(timeout=30) for _ in range(20)) == [2 * n for n in range(20)]
    p.join(30)
    assert p.exitcode == 0
    sq.put("x")
    assert sq.get() == "x"


def test_pool_and_shared_values_use_interlock(ictx):
    value = ictx.Value("i", 0)
    array = ictx.Array("d", 4)
    assert isinstance(value.get_lock(), synchronize.RLock)
    assert isinstance(array.get_lock(), synchronize.RLock)
    procs = [ictx.Process(target=workers.add_to_value, args=(value, 500)) for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    assert value.value == 1500
    with ictx.Pool(2) as pool:
        assert pool.map(workers.cube, range(8)) == [x**3 for x in range(8)]


def test_process_pool_executor(ictx):
    with concurrent.futures.ProcessPoolExecutor(max_workers=2, mp_context=ictx) as ex:
        assert list(ex.map(workers.cube, range(6))) == [x**3 for x in range(6)]


def test_context_primitives_travel_to_their_children(ictx):
    results = ictx.Queue()
    lock = ictx.Lock()
    p = ictx.Process(target=workers.acquire_and_report, args=(lock, results, 5))
    p.start()
    assert results.get(timeout=30) is True
    p.join(30)
    assert lock.locked()  # taken in the child, shared with us


def test_fork_primitive_refused_by_spawn_child():
    lock = interlock.get_context("fork").Lock()
    spawn = interlock.get_context("spawn")
    p = spawn.Process(target=workers.release_it, args=(lock,))
    with pytest.raises(RuntimeError, match="fork context"):
        p.start()


def test_pickling_outside_spawning_refused(ictx):
    with pytest.raises(RuntimeError, match="inheritance"):
        pickle.dumps(ictx.Lock())


@pytest.mark.parametrize("method", ["spawn", "forkserver"])
def test_spawned_children_see_install(method):
    """install() in the parent (not at import time of __main__) reaches spawned and
    forkserver children before any user code runs there, so no child mixes the two."""
    ctx = mp.get_context(method)
    interlock.install()
    try:
        results = ctx.SimpleQueue()
        p = ctx.Process(target=workers.primitive_modules, args=(results,))
        p.start()
        modules = results.get()
        p.join(30)
    finally:
        interlock.uninstall()
    assert set(modules.values()) == {"interlock.synchronize"}, modules
    # and after uninstall() new children are back on multiprocessing's primitives
    results = ctx.SimpleQueue()
    p = ctx.Process(target=workers.primitive_modules, args=(results,))
    p.start()
    modules = results.get()
    p.join(30)
    assert set(modules.values()) == {"multiprocessing.synchronize"}, modules
