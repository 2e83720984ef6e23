"""interlock._lifecycle: the one owner of what fork and exit do (docs/design.md, "The process
life cycle"). The stage order, the hooks' isolation, a fork while other threads are busy
with primitives, and that no other module registers fork hooks of its own."""

import os
import pathlib
import re
import threading

import pytest

from interlock import _lifecycle, synchronize

import lifecycle_workers
from conftest import native_core

_core = native_core("fork steps to order")

ROOT = pathlib.Path(__file__).resolve().parent.parent


@pytest.fixture
def only_this_tests_hooks(monkeypatch):
    """An empty hook registry for the test: only the hooks it registers run at its forks."""
    hooks = {stage: {phase: () for phase in ("before", "after_in_parent", "after_in_child")}
             for stage in _lifecycle.STAGES}
    monkeypatch.setattr(_lifecycle, "_hooks", hooks)


def _fork_and_collect(calls):
    """Forks; the child reports the calls its hooks recorded through a pipe. Returns the
    parent's and the child's lists."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(read_end)
            os.write(write_end, repr(calls).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        child_calls = eval(pipe.read().decode())  # our own repr of a list of tuples
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    return list(calls), child_calls


def test_stages_run_top_down_before_and_bottom_up_after(only_this_tests_hooks):
    calls = []
    for stage in _lifecycle.STAGES:
        _lifecycle.register(stage, before=lambda s=stage: calls.append(("before", s)),
                            after_in_parent=lambda s=stage: calls.append(("parent", s)),
                            after_in_child=lambda s=stage: calls.append(("child", s)))
    parent, child = _fork_and_collect(calls)
    down = list(reversed(_lifecycle.STAGES))
    up = list(_lifecycle.STAGES)
    assert parent == [("before", s) for s in down] + [("parent", s) for s in up]
    assert child == [("before", s) for s in down] + [("child", s) for s in up]


def test_hooks_within_a_stage_run_in_registration_order(only_this_tests_hooks):
    calls = []
    for n in range(3):
        _lifecycle.register("file_lock", before=lambda n=n: calls.append(("before", n)),
                            after_in_child=lambda n=n: calls.append(("child", n)))
    parent, child = _fork_and_collect(calls)
    assert parent == [("before", 0), ("before", 1), ("before", 2)]
    assert child == parent + [("child", 0), ("child", 1), ("child", 2)]


def test_a_failing_hook_does_not_stop_the_others(only_this_tests_hooks):
    calls = []

    def broken():
        raise OSError("first")

    _lifecycle.register("cluster", before=broken)
    _lifecycle.register("cluster", before=lambda: calls.append("second ran"))
    with pytest.raises(OSError, match="first"):
        _lifecycle._Trampoline("cluster", "before")()
    assert calls == ["second ran"]


def test_register_validates_its_arguments():
    with pytest.raises(ValueError, match="unknown life-cycle stage 'nope'"):
        _lifecycle.register("nope", before=print)
    with pytest.raises(TypeError, match="before must be callable, not int"):
        _lifecycle.register("core", before=1)


def test_the_package_has_one_fork_hook_owner_per_layer():
    """Only _lifecycle.py calls os.register_at_fork, and only lifecycle.cpp pthread_atfork."""
    python_hooks = [p.relative_to(ROOT).as_posix()
                    for p in (ROOT / "python").rglob("*.py")
                    if re.search(r"\bregister_at_fork\(", p.read_text())]
    native_hooks = [p.relative_to(ROOT).as_posix()
                    for p in (ROOT / "src").rglob("*.[ch]pp")
                    if re.search(r"\bpthread_atfork\(", p.read_text())]
    assert python_hooks == ["python/interlock/_lifecycle.py"]
    assert native_hooks == ["src/core/lifecycle.cpp"]


def test_a_fork_child_inherits_exactly_the_references_alive_at_the_fork():
    locks = [synchronize.Lock() for _ in range(5)]
    before = _core._live_handles()
    to_parent, from_child = os.pipe()
    to_child, from_parent = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.write(from_child, str(_core._live_handles()).encode())
            os.read(to_child, 1)
            _core._release_all()  # what a multiprocessing child's exit does
        finally:
            os._exit(0)
    os.close(from_child)
    try:
        in_child = int(os.read(to_parent, 64))
        # The child's references were counted into each slot inside fork() ...
        assert [lock._slot_info()[3] for lock in locks] == [2] * 5
    finally:
        os.write(from_parent, b"x")
        os.waitpid(pid, 0)
        for fd in (to_parent, to_child, from_parent):
            os.close(fd)
    assert in_child == before
    # ... and dropped when it left.
    assert [lock._slot_info()[3] for lock in locks] == [1] * 5


# CPython 3.12 and newer warn when a multi-threaded process forks (when they can count its
# threads); forking while other threads run is what this test is about.
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded, use of fork:"
                            "DeprecationWarning")
def test_children_start_and_work_while_threads_are_busy(ctx, tmp_path):
    """Forks (and spawns) while two threads create, share and drop primitives and a third
    takes a FileLock: every child finds its primitives whole and can make new ones."""
    stop = threading.Event()
    counts = []
    threads = [threading.Thread(target=lifecycle_workers.churn, args=(stop, counts))
               for _ in range(2)]
    threads.append(threading.Thread(target=lifecycle_workers.file_lock_churn,
                                    args=(stop, tmp_path / "busy.lock", counts)))
    for thread in threads:
        thread.start()
    try:
        results = ctx.SimpleQueue()
        for _ in range(4):
            lock, sem, event = synchronize.Lock(ctx=ctx), synchronize.Semaphore(0, ctx=ctx), \
                synchronize.Event(ctx=ctx)
            child = ctx.Process(target=lifecycle_workers.use_primitives,
                                args=(lock, sem, event, results))
            child.start()
            assert results.get() == ("ok", True)
            child.join(60)
            assert child.exitcode == 0
            assert sem.acquire(timeout=10) and event.is_set()
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert len(counts) == 3 and all(n > 0 for n in counts)
