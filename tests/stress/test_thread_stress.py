"""Thread stress: 3 processes x 4 threads doing random operations with random timeouts on
shared primitives, no faults. On a free-threaded CPython the threads of each process really
run in parallel, which is what this test is for (.ci/run runs it there, and under
ThreadSanitizer); on a GIL build it still mixes threads and processes. Checked at the end:

* mutual exclusion: the lock-protected counter equals every thread's increments;
* RLock ownership: while a thread holds it (twice), it is that thread's and nobody else's;
* the semaphore never admitted more than its value, and has every permit back;
* no lost wake-up: no timed wait overran its timeout by more than SLACK, and the untimed
  waits (the start Event, the Barrier) all returned;
* Barrier generations never mix: every round handed out each index exactly once;
* every thread made progress.

Quick by default; the long mode: INTERLOCK_STRESS_SECONDS=600.
"""

import os

import pytest

from interlock import synchronize

import thread_stress_workers as tw

pytestmark = pytest.mark.stress

SECONDS = float(os.environ.get("INTERLOCK_STRESS_SECONDS", "3"))
PROCESSES, THREADS, PERMITS = 3, 4, 2
# A timed wait may return late when the machine is loaded (these are shared 2-CPU VMs, and
# ThreadSanitizer slows everything down); a lost wake-up would not return before the timeout
# plus whatever the scheduler adds, which stays far below this.
SLACK = 2.0


def test_threads_of_several_processes(ctx):
    rows = PROCESSES * THREADS
    p = {
        "lock": synchronize.Lock(ctx=ctx),
        "rlock": synchronize.RLock(ctx=ctx),
        "guard": synchronize.Lock(ctx=ctx),
        "sem": synchronize.BoundedSemaphore(PERMITS, ctx=ctx),
        "cond": synchronize.Condition(ctx=ctx),
        "event": synchronize.Event(ctx=ctx),
        "go": synchronize.Event(ctx=ctx),
        "barrier": synchronize.Barrier(rows, ctx=ctx),
    }
    shared = ctx.RawArray("q", tw.barrier_base(rows) + tw.BARRIER_ROUNDS * rows)
    procs = [ctx.Process(target=tw.worker, args=(i, THREADS, p, shared, 7, SECONDS))
             for i in range(PROCESSES)]
    for proc in procs:
        proc.start()
    p["go"].set()
    for proc in procs:
        proc.join(SECONDS + 300)
        if proc.is_alive():
            proc.kill()
            pytest.fail("a stress worker did not finish")
        assert proc.exitcode == 0
    table = [shared[tw.row_base(r): tw.row_base(r) + tw.ROW] for r in range(rows)]
    ops = [row[0] for row in table]
    assert all(n > 0 for n in ops), ops
    assert shared[0] == sum(row[1] for row in table)
    assert sum(row[4] for row in table) == 0, "an RLock was held by two threads at once"
    peak = max(row[2] for row in table)
    assert 1 <= peak <= PERMITS
    assert shared[1] == 0 and p["sem"].get_value() == PERMITS
    worst = max(row[3] for row in table) / 1e6
    assert worst < SLACK, f"a timed wait overran its timeout by {worst:.3f} s"
    barrier = shared[tw.barrier_base(rows):]
    assert list(barrier) == [1] * (tw.BARRIER_ROUNDS * rows), "Barrier rounds mixed"
    print(f"\n{ctx.get_start_method()}: {sum(ops):,} operations in {SECONDS:g} s by "
          f"{rows} threads, semaphore peak {peak}, worst timed-wait overrun {worst * 1e3:.1f} ms")
