"""Thread stress: 3 processes x 4 threads doing random operations on shared primitives, no
faults. On a free-threaded CPython the threads of each process really run in parallel, which
is what this test is for (.ci/run runs it there); on a GIL build it still mixes threads and
processes. Checked at the end: the lock-protected counter equals every thread's increments,
the semaphore never admitted more than its value and has every permit back, and every thread
made progress.

Quick by default; longer with INTERLOCK_STRESS_SECONDS=600.
"""

import os

import pytest

from interlock import synchronize

import thread_stress_workers as tw

pytestmark = pytest.mark.stress

SECONDS = float(os.environ.get("INTERLOCK_STRESS_SECONDS", "3"))
PROCESSES, THREADS, PERMITS = 3, 4, 2


def test_threads_of_several_processes(ctx):
    p = {
        "lock": synchronize.Lock(ctx=ctx),
        "rlock": synchronize.RLock(ctx=ctx),
        "guard": synchronize.Lock(ctx=ctx),
        "sem": synchronize.BoundedSemaphore(PERMITS, ctx=ctx),
        "cond": synchronize.Condition(ctx=ctx),
        "event": synchronize.Event(ctx=ctx),
        "go": synchronize.Event(ctx=ctx),
    }
    rows = PROCESSES * THREADS
    shared = ctx.RawArray("q", 2 + tw.ROW * rows)
    procs = [ctx.Process(target=tw.worker, args=(i, THREADS, p, shared, 7, SECONDS))
             for i in range(PROCESSES)]
    for proc in procs:
        proc.start()
    p["go"].set()
    for proc in procs:
        proc.join(SECONDS + 120)
        if proc.is_alive():
            proc.kill()
            pytest.fail("a stress worker did not finish")
        assert proc.exitcode == 0
    table = [shared[2 + r * tw.ROW: 2 + (r + 1) * tw.ROW] for r in range(rows)]
    ops = [row[0] for row in table]
    assert all(n > 0 for n in ops), ops
    assert shared[0] == sum(row[1] for row in table)
    assert max(row[2] for row in table) <= PERMITS
    assert shared[1] == 0 and p["sem"].get_value() == PERMITS
    print(f"\n{ctx.get_start_method()}: {sum(ops):,} operations in {SECONDS:g} s, "
          f"semaphore peak {max(row[2] for row in table)}")
