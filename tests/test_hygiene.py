"""Leaks and hygiene: descriptors, handles and resource-tracker warnings.

(The suite-wide /dev/shm check lives in conftest.py's pytest_sessionfinish; memory over a
million create/destroy cycles is tests/test_lifetime.py::test_churn_does_not_grow_memory.)
"""

import gc
import os
import subprocess
import sys
import textwrap

import pytest

import interlock
from interlock import synchronize

import workers
from conftest import run_child

from conftest import native_core

_core = native_core("slot handles to count")


def _fds():
    return len(os.listdir("/proc/self/fd"))


def test_descriptors_and_handles_return_to_their_count(ctx, tmp_path):
    def workload():
        objs = [synchronize.Lock(ctx=ctx), synchronize.RLock(robust=True, ctx=ctx),
                synchronize.Semaphore(2, ctx=ctx), synchronize.Event(ctx=ctx),
                synchronize.Condition(ctx=ctx), synchronize.Barrier(2, ctx=ctx)]
        assert run_child(ctx, workers.release_it, synchronize.Semaphore(0, ctx=ctx)) == 0
        with interlock.FileLock(tmp_path / "x.lock"):
            pass
        del objs

    workload()  # warm-up: multiprocessing's own helpers (tracker, forkserver) and an arena
    gc.collect()
    fds, handles = _fds(), _core._live_handles()
    for _ in range(3):
        workload()
    gc.collect()
    assert _core._live_handles() == handles
    # A spawn/forkserver child receives arena descriptors; none stay open here afterwards.
    assert _fds() == fds


@pytest.mark.parametrize("method", ["spawn", "forkserver"])
def test_no_resource_tracker_warnings(method):
    code = textwrap.dedent(f"""
        import multiprocessing as mp
        import interlock

        def child(lock, sem, cond):
            with lock, cond:
                sem.release()

        if __name__ == "__main__":
            ctx = interlock.get_context({method!r})
            args = (ctx.Lock(), ctx.Semaphore(0), ctx.Condition())
            procs = [ctx.Process(target=child, args=args) for _ in range(3)]
            for p in procs: p.start()
            for p in procs: p.join()
            q = ctx.Queue(); q.put(1); q.get()
    """)
    result = subprocess.run([sys.executable, "-W", "error", "-c", code], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "resource_tracker" not in result.stderr and "leaked" not in result.stderr, result.stderr
