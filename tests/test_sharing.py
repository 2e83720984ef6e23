"""Sharing primitives with children: inheritance, Process args, Pool initargs, pickling rules,
and the slot reference counts that keep a slot from being reused while in use."""

import gc
import multiprocessing as mp
import pickle

import pytest

import interlock
from interlock import synchronize

import workers
from conftest import run_child

from conftest import native_core

_core = native_core("shared arenas to send between processes")

INHERITED = None


def _use_inherited():
    INHERITED.acquire()
    INHERITED.release()


def _pool_init(lock):
    global POOL_LOCK
    POOL_LOCK = lock


def _pool_task(x):
    with POOL_LOCK:
        return x * x


def test_pickling_outside_spawning_is_refused():
    for obj in [interlock.Lock(), interlock.RLock(), interlock.Semaphore(),
                interlock.BoundedSemaphore(), interlock.Condition(), interlock.Event(),
                interlock.Barrier(2)]:
        name = type(obj).__name__
        with pytest.raises(RuntimeError, match=f"^{name} objects should only be shared between "
                                               "processes through inheritance$"):
            pickle.dumps(obj)


def test_fork_context_primitive_refused_for_spawn_child():
    lock = synchronize.Lock(ctx=mp.get_context("fork"))
    spawn = mp.get_context("spawn")
    p = spawn.Process(target=workers.release_it, args=(lock,))
    with pytest.raises(RuntimeError, match="A SemLock created in a fork context"):
        p.start()


def test_inheritance_under_fork():
    global INHERITED
    INHERITED = interlock.Lock()
    assert run_child(mp.get_context("fork"), _use_inherited) == 0
    assert not INHERITED.locked()


def test_pool_initializer(ctx):
    lock = synchronize.Lock(ctx=ctx)
    with ctx.Pool(2, initializer=_pool_init, initargs=(lock,)) as pool:
        assert pool.map(_pool_task, range(6)) == [x * x for x in range(6)]
    assert not lock.locked()


def test_child_sees_same_slot(ctx):
    lock = synchronize.Lock(ctx=ctx)
    results = ctx.Queue()
    assert run_child(ctx, workers.slot_info_in_child, lock, results) == 0
    token, index, generation, _ = results.get(timeout=10)
    assert (token, index, generation) == lock._slot_info()[:3]


def test_reference_counts_return_after_children_exit(ctx):
    lock = synchronize.Lock(ctx=ctx)
    assert lock._slot_info()[3] == 1
    for _ in range(3):
        assert run_child(ctx, workers.release_and_report, lock, ctx.Queue()) == 0
    assert lock._slot_info()[3] == 1


def test_slot_not_reused_while_a_child_still_uses_it(ctx):
    """The parent drops its Lock while a child holds it; the slot must stay reserved."""
    lock = synchronize.Lock(ctx=ctx)
    held = ctx.Event()
    p = ctx.Process(target=workers.hold_for, args=(lock, held, 1.0))
    p.start()
    assert held.wait(30)
    token, index, generation, refs = lock._slot_info()
    assert refs == 2
    del lock
    gc.collect()
    fresh = [synchronize.Lock(ctx=ctx) for _ in range(64)]
    assert all(f._slot_info()[:2] != (token, index) for f in fresh)
    p.join(30)
    assert p.exitcode == 0


def test_slots_are_recycled_once_unused():
    before = _core._arena_count()
    for _ in range(3 * _core.ARENA_SLOTS):
        interlock.Lock()  # created and dropped at once
    assert _core._arena_count() - before <= 1


def test_unpickled_copy_keeps_working_after_reduce_in_spawned_child(ctx):
    cond = synchronize.Condition(synchronize.Lock(ctx=ctx), ctx=ctx)
    ready, results = ctx.Semaphore(0), ctx.Queue()
    p = ctx.Process(target=workers.condition_wait, args=(cond, ready, results, 30))
    p.start()
    assert ready.acquire(timeout=30)
    with cond:
        cond.notify()
    assert results.get(timeout=30) is True
    p.join(30)


def test_subprocesses_take_no_references():
    """A fork that goes on to exec (subprocess; Python 3.9 forks for it) must not count
    references for a child that will never drop them."""
    import subprocess
    import sys

    lock = interlock.Lock()
    before = lock._slot_info()[3]
    for _ in range(3):
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        subprocess.run(["true"], check=True, close_fds=False)
    assert lock._slot_info()[3] == before
