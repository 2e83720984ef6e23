"""interlock.install() / uninstall(): multiprocessing hands out interlock's primitives."""

import multiprocessing as mp
import pathlib
import subprocess
import sys

import pytest

import interlock
from interlock import synchronize
from conftest import START_METHODS

EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples"


def test_install_patches_contexts_and_shortcuts_and_uninstall_restores():
    original = mp.Lock
    try:
        interlock.install()
        interlock.install()  # idempotent
        assert isinstance(mp.Lock(), synchronize.Lock)
        for method in ["fork", "spawn", "forkserver"]:
            ctx = mp.get_context(method)
            assert isinstance(ctx.RLock(), synchronize.RLock)
            assert isinstance(ctx.Semaphore(2), synchronize.Semaphore)
            assert isinstance(ctx.BoundedSemaphore(2), synchronize.BoundedSemaphore)
            assert isinstance(ctx.Condition(), synchronize.Condition)
            assert isinstance(ctx.Event(), synchronize.Event)
            assert isinstance(ctx.Barrier(2), synchronize.Barrier)
            lock = ctx.Lock()
            assert lock._is_fork_ctx == (method == "fork")
        q = mp.Queue()
        assert isinstance(q._rlock, synchronize.Lock)
        q.put(1)
        assert q.get(timeout=10) == 1 and q.qsize() == 0 and q.empty()
        value = mp.Value("i", 0)
        assert isinstance(value.get_lock(), synchronize.RLock)
    finally:
        interlock.uninstall()
        interlock.uninstall()  # idempotent
    assert mp.Lock == original
    assert not isinstance(mp.Lock(), synchronize.Lock)


@pytest.mark.parametrize("method", START_METHODS)
def test_multiprocessing_program_runs_unchanged_after_install(method):
    """examples/drop_in.py is a plain multiprocessing program (Pool, Queue, JoinableQueue,
    Value, Barrier) plus the line ``interlock.install()``."""
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "drop_in.py"), method],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "all ran on interlock" in result.stdout
