"""Awaiting the primitives (interlock._asyncio): the event loop never blocks, tasks and
threads and other processes share one primitive, cancellation loses nothing, and the watcher
threads stay bounded. Real processes under fork, spawn and forkserver."""

import asyncio
import os
import random
import threading
import time
import warnings

import pytest

import interlock
from interlock import synchronize

import asyncio_workers
import workers
from conftest import native_only

pytestmark = native_only("awaitable primitives")


def run(coro):
    return asyncio.run(coro)


def os_threads():
    return len(os.listdir("/proc/self/task"))


def test_acquire_async_is_inline_when_free_and_times_out_when_held():
    async def main():
        lock = interlock.Lock()
        assert await lock.acquire_async() is True
        assert await lock.acquire_async(False) is False
        assert await lock.acquire_async(timeout=-1) is False  # a negative timeout means zero
        start = time.monotonic()
        assert await lock.acquire_async(timeout=0.2) is False
        assert 0.15 < time.monotonic() - start < 5
        lock.release()
        async with lock:
            assert lock.locked()
        assert not lock.locked()
        with pytest.raises(TypeError):
            await lock.acquire_async("x")
        with pytest.raises(ValueError):
            await lock.acquire_async(timeout=float("nan"))
    run(main())


def test_the_loop_keeps_running_while_a_task_waits():
    async def main():
        lock = interlock.Lock()
        lock.acquire()
        waiter = asyncio.create_task(lock.acquire_async())
        ticks = 0
        for _ in range(20):
            await asyncio.sleep(0.01)
            ticks += 1
        assert ticks == 20 and not waiter.done()
        threading.Thread(target=lock.release).start()
        assert await asyncio.wait_for(waiter, 10) is True
        lock.release()
    run(main())


def test_an_rlock_refuses_to_be_awaited():
    async def main():
        with pytest.raises(TypeError, match="owned by a thread"):
            await interlock.RLock().acquire_async()
        with pytest.raises(TypeError):
            async with interlock.RLock():
                pass
    run(main())


def test_a_thousand_tasks_wake_when_another_process_sets_the_event(ctx):
    event, ready = synchronize.Event(ctx=ctx), synchronize.Event(ctx=ctx)
    setter = ctx.Process(target=asyncio_workers.set_event_later, args=(event, ready, 0.2))
    setter.start()

    async def main():
        tasks = [asyncio.create_task(event.wait_async(60)) for _ in range(1000)]
        while event._waiters() < 1000:
            await asyncio.sleep(0.01)
        ready.set()
        return await asyncio.gather(*tasks)

    assert run(main()) == [True] * 1000
    setter.join(30)
    assert setter.exitcode == 0 and event._waiters() == 0


def test_a_pulse_wakes_awaiting_tasks():
    async def main():
        event = interlock.Event()
        tasks = [asyncio.create_task(event.wait_async(30)) for _ in range(10)]
        while event._waiters() < 10:
            await asyncio.sleep(0.01)
        event.set()
        event.clear()  # at once: the set() still counts
        assert await asyncio.gather(*tasks) == [True] * 10
        assert await event.wait_async(0.05) is False
    run(main())


def test_tasks_and_a_synchronous_process_exclude_each_other(ctx):
    lock = synchronize.Lock(ctx=ctx)
    counter = ctx.Value("i", 0, lock=False)
    results = ctx.Queue()
    procs = [ctx.Process(target=workers.add_under_lock, args=(lock, counter, 300)),
             ctx.Process(target=asyncio_workers.tasks_add_under_lock,
                         args=(lock, counter, 20, 15, results))]
    for p in procs:
        p.start()

    async def here():
        async def add():
            for _ in range(15):
                async with lock:
                    value = counter.value
                    await asyncio.sleep(0)
                    counter.value = value + 1
        await asyncio.gather(*(add() for _ in range(20)))

    run(here())
    assert results.get(timeout=120) == "done"
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    assert counter.value == 300 + 20 * 15 + 20 * 15
    assert not lock.locked()


def test_cancellation_at_random_points_loses_no_hold_and_no_permit():
    rng = random.Random(1234)

    async def main():
        lock, sem = interlock.Lock(), interlock.Semaphore(2)
        await asyncio_workers.cancel_at_random_points(lock, sem, 200, 0.002, rng)
        assert not lock.locked()
        assert sem.get_value() == 2
        # A thread waiting beside the tasks still gets what the tasks gave back.
        assert lock.acquire(timeout=5) and sem.acquire(timeout=5)
    run(main())


def test_a_cancelled_task_passes_its_wake_to_a_waiting_thread():
    async def main():
        sem = interlock.Semaphore(0)
        got = []
        thread = threading.Thread(target=lambda: got.append(sem.acquire(timeout=20)))
        thread.start()
        tasks = [asyncio.create_task(sem.acquire_async()) for _ in range(5)]
        await asyncio.sleep(0.2)  # the thread and the tasks' Waker are asleep
        sem.release()
        for t in tasks:
            t.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        taken = sum(1 for r in results if r is True)
        await asyncio.get_running_loop().run_in_executor(None, thread.join, 30)
        assert taken + sum(got) == 1  # the one permit went to someone, never to two
        if not taken:
            assert got == [True]
        assert sem.get_value() == 0
    run(main())


def test_ten_thousand_waiting_tasks_use_a_bounded_number_of_threads():
    async def main():
        locks = [interlock.Lock() for _ in range(10_000)]
        for lock in locks:
            lock.acquire()
        before = os_threads()
        tasks = [asyncio.create_task(lock.acquire_async(timeout=60)) for lock in locks]
        await asyncio.sleep(0.5)
        during = os_threads() - before
        for lock in locks:
            lock.release()
        assert await asyncio.gather(*tasks) == [True] * 10_000
        return during

    during = run(main())
    if interlock._core.FutexRing.open() is not None:
        assert during == 0  # the kernel sleeps on every word: no thread at all
    else:
        capacity = interlock._core.Waker.CAPACITY
        assert during <= -(-10_000 // capacity) + 1  # one thread per 127 words, not per task


def test_several_loops_in_several_threads():
    event = interlock.Event()
    outcomes = []

    def loop_thread():
        outcomes.append(asyncio.run(event.wait_async(30)))

    threads = [threading.Thread(target=loop_thread) for _ in range(4)]
    for t in threads:
        t.start()
    time.sleep(0.3)
    event.set()
    for t in threads:
        t.join(30)
    assert outcomes == [True] * 4


def test_a_forked_child_awaits_with_wakers_of_its_own():
    import multiprocessing as mp

    lock = interlock.Lock()

    async def parent_waits():
        lock.acquire()
        task = asyncio.create_task(lock.acquire_async(timeout=30))
        await asyncio.sleep(0.1)  # the loop's ring, or a Waker thread, watches the lock now
        return task

    async def main():
        task = await parent_waits()
        fork = mp.get_context("fork")
        started, results = fork.Event(), fork.Queue()
        child = fork.Process(target=asyncio_workers.await_lock_and_report,
                             args=(lock, started, results, 30))
        from interlock import _asyncio

        watchers = [w for ws in _asyncio._by_loop.values() for w in ws.wakers]
        threads = sum(isinstance(w, interlock._core.Waker) for w in watchers)
        others = os_threads() - 1 - threads  # threads an earlier test may have left running
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            child.start()  # a Waker thread is paused across the fork (a ring has none)
        # (CPython 3.12+ warns when a multi-threaded process forks; only a process that has
        # no thread but a Waker's can show that the Waker is not one then.)
        assert len(watchers) == 1
        if others == 0:
            assert not [w for w in caught if "multi-threaded" in str(w.message)]
        loop = asyncio.get_running_loop()
        assert await loop.run_in_executor(None, started.wait, 30)
        lock.release()  # the parent's task or the child's task gets it first
        assert await task is True
        lock.release()
        assert await loop.run_in_executor(None, results.get, True, 30) is True
        await loop.run_in_executor(None, child.join, 30)
        assert child.exitcode == 0
    run(main())


def test_tasks_await_a_condition_notified_by_another_process(ctx):
    lock = synchronize.Lock(ctx=ctx)
    cond = synchronize.Condition(lock, ctx=ctx)
    items, ready = ctx.Array("i", [0], lock=False), synchronize.Event(ctx=ctx)
    producer = ctx.Process(target=asyncio_workers.produce_under_condition,
                           args=(cond, items, 5, ready))
    producer.start()

    async def consumer():
        async with cond:
            assert await cond.wait_for_async(lambda: items[0] > 0, timeout=60)
            assert lock.locked()  # held again, by this task's thread
            items[0] -= 1
            return True

    async def main():
        tasks = [asyncio.create_task(consumer()) for _ in range(5)]
        while cond._waiting() < 5:
            await asyncio.sleep(0.01)
        ready.set()
        return await asyncio.gather(*tasks)

    assert run(main()) == [True] * 5
    producer.join(30)
    assert producer.exitcode == 0 and items[0] == 0 and cond._waiting() == 0


def test_a_cancelled_condition_waiter_holds_the_lock_again_before_it_sees_the_error():
    async def main():
        lock = interlock.Lock()
        cond = interlock.Condition(lock)
        seen = []

        async def waiter():
            async with cond:
                try:
                    await cond.wait_async()
                except asyncio.CancelledError:
                    seen.append(lock.locked())
                    raise

        task = asyncio.create_task(waiter())
        while cond._waiting() < 1:
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert seen == [True] and not lock.locked() and cond._waiting() == 0
        async with cond:
            assert await cond.wait_async(0.05) is False  # timeouts return False
            assert lock.locked()
    run(main())


def test_a_condition_needs_its_lock_held_and_a_plain_lock():
    async def main():
        with pytest.raises(AssertionError):
            await interlock.Condition(interlock.Lock()).wait_async(0)
        cond = interlock.Condition()  # over an RLock
        with pytest.raises(TypeError, match="RLock"):
            await cond.wait_async(0)
    run(main())


def test_tasks_and_another_process_meet_at_a_barrier(ctx):
    barrier = synchronize.Barrier(3, ctx=ctx)
    results = ctx.Queue()
    party = ctx.Process(target=workers.barrier_wait, args=(barrier, results, 60))
    party.start()

    async def main():
        return await asyncio.gather(barrier.wait_async(60), barrier.wait_async(60))

    indices = list(run(main()))
    indices.append(results.get(timeout=60))
    party.join(30)
    assert sorted(indices) == [0, 1, 2] and not barrier.broken


def test_a_barrier_wait_that_times_out_or_is_cancelled_breaks_it():
    import threading as th

    async def main():
        barrier = interlock.Barrier(2)
        with pytest.raises(th.BrokenBarrierError):
            await barrier.wait_async(0.1)
        assert barrier.broken
        barrier.reset()
        task = asyncio.create_task(barrier.wait_async())
        while barrier.n_waiting < 1:
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert barrier.broken  # nobody is left waiting for the cancelled party
        ran = []
        barrier = interlock.Barrier(2, action=lambda: ran.append(1))
        assert sorted(await asyncio.gather(barrier.wait_async(5), barrier.wait_async(5))) == [0, 1]
        assert ran == [1]
    run(main())


def test_a_robust_lock_holder_killed_wakes_the_awaiting_task_with_owner_died(ctx):
    lock = synchronize.Lock(robust=True, ctx=ctx)
    held = ctx.Event()
    holder = ctx.Process(target=asyncio_workers.hold_lock_forever, args=(lock, held))
    holder.start()
    assert held.wait(60)

    async def main():
        task = asyncio.create_task(lock.acquire_async(timeout=60))
        await asyncio.sleep(0.3)  # the task waits, its Waker and the death watch asleep
        assert not task.done()
        killed_at = time.monotonic()
        holder.kill()
        with pytest.raises(interlock.OwnerDiedError):
            await task
        return time.monotonic() - killed_at

    detected = run(main())
    holder.join(30)
    assert detected < 3.0  # woken by the death watch, not by a timeout
    assert lock.locked()  # the task holds it, as OwnerDiedError says
    lock.release()
    assert not lock.locked()


def test_under_uvloop(ctx):
    uvloop = pytest.importorskip("uvloop", reason="uvloop is not installed (pip install uvloop)")
    lock, event = synchronize.Lock(ctx=ctx), synchronize.Event(ctx=ctx)
    ready = synchronize.Event(ctx=ctx)
    setter = ctx.Process(target=asyncio_workers.set_event_later, args=(event, ready, 0.1))
    setter.start()

    async def main():
        assert isinstance(asyncio.get_running_loop(), uvloop.Loop)
        lock.acquire()
        waiter = asyncio.create_task(lock.acquire_async(timeout=30))
        await asyncio.sleep(0.05)
        lock.release()
        assert await waiter is True
        lock.release()
        ready.set()
        return await event.wait_async(30)

    assert uvloop.run(main()) is True
    setter.join(30)


def test_a_finished_loop_leaves_no_waker_thread_and_no_descriptor():
    import gc

    def one_loop():
        async def main():
            lock = interlock.Lock()
            lock.acquire()
            task = asyncio.create_task(lock.acquire_async(timeout=10))
            await asyncio.sleep(0.02)  # a Waker thread watches the lock
            lock.release()
            assert await task
        run(main())

    one_loop()
    gc.collect()
    threads, fds = os_threads(), len(os.listdir("/proc/self/fd"))
    for _ in range(20):
        one_loop()
    gc.collect()
    assert os_threads() <= threads and len(os.listdir("/proc/self/fd")) <= fds


@pytest.mark.parametrize("kernel", ["without io_uring", "without io_uring or futex_waitv"])
def test_every_case_holds_on_older_kernels(kernel):
    # Before Linux 6.7 there are no io_uring futex waits: a Waker thread sleeps on up to 127
    # words at once (futex_waitv), and before 5.16 its thread polls the words instead. The
    # environment variables make this kernel behave so; the cases that wait across
    # processes, cancel, or lose a robust holder run again in a child interpreter that way.
    import subprocess
    import sys

    env = dict(os.environ, INTERLOCK_NO_IO_URING="1")
    if "futex_waitv" in kernel:
        env["INTERLOCK_NO_FUTEX_WAITV"] = "1"
    probe = ("from interlock import _core; "
             "print(_core.FutexRing.open() is None, _core.Waker.supported())")
    # A kernel (or qemu-user) without futex_waitv already is the older of the two.
    waitv = interlock._core.Waker.supported() and "futex_waitv" not in kernel
    assert subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          env=env, timeout=60).stdout.split() == ["True", str(waitv)]
    cases = ("thousand_tasks or exclude_each_other or cancellation_at_random or "
             "cancelled_task_passes or condition_notified or meet_at_a_barrier or "
             "robust_lock_holder_killed or ten_thousand or forked_child")
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", __file__, "-k", cases],
        capture_output=True, text=True, timeout=600, cwd=os.path.dirname(__file__), env=env)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert " passed" in out.stdout and "skipped" not in out.stdout, out.stdout[-500:]
