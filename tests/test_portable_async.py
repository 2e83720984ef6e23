"""The portable backend's coroutine methods (interlock._portable_async): the same results as
the native ones, with the wait in an executor thread. They run on every system, so these
tests use the portable classes directly, whichever backend is in use."""

import asyncio
import threading
import time

import pytest

import interlock
import workers
from interlock import _portable_sync as portable


def run(coro):
    return asyncio.run(coro)


def test_lock_acquire_async_times_out_and_takes_a_released_lock():
    async def main():
        lock = portable.Lock()
        assert await lock.acquire_async() is True
        assert await lock.acquire_async(False) is False
        start = time.monotonic()
        assert await lock.acquire_async(timeout=0.2) is False
        assert 0.15 < time.monotonic() - start < 5
        threading.Timer(0.1, lock.release).start()
        assert await lock.acquire_async(timeout=10) is True
        lock.release()
        async with lock:
            assert lock.locked()
        assert not lock.locked()
    run(main())


def test_a_cancelled_wait_leaves_nothing_taken():
    async def main():
        lock, sem = portable.Lock(), portable.Semaphore(0)
        lock.acquire()
        tasks = [asyncio.create_task(lock.acquire_async()),
                 asyncio.create_task(sem.acquire_async())]
        await asyncio.sleep(0.05)
        lock.release()
        sem.release()
        for t in tasks:
            t.cancel()
        outcomes = await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.sleep(2 * 0.1 + 0.1)  # the threads' next slice has passed
        # Whatever the tasks' threads took before or after the cancellation came back, unless
        # the task itself returned holding it.
        if outcomes[0] is True:
            lock.release()
        if outcomes[1] is True:
            sem.release()
        assert not lock.locked() and sem.get_value() == 1
    run(main())


def test_event_wait_async_and_the_rlock_refusal():
    async def main():
        event = portable.Event()
        assert await event.wait_async(0.05) is False
        threading.Timer(0.1, event.set).start()
        assert await event.wait_async(10) is True
        with pytest.raises(TypeError, match="owned by a thread"):
            await portable.RLock().acquire_async()
    run(main())


def test_condition_wait_async_is_notified_times_out_and_owns_its_lock():
    async def main():
        cond = portable.Condition(portable.Lock())
        async with cond:
            assert await cond.wait_async(0.05) is False
            assert cond._lock._semlock._is_mine()  # held again, by the loop's thread

        def notifier():
            with cond:
                cond.notify()
        async with cond:
            threading.Timer(0.1, notifier).start()
            assert await cond.wait_async(10) is True
            cond.notify()  # the task's thread holds it: no AssertionError
        with pytest.raises(AssertionError, match="must acquire"):
            await cond.wait_async(0)
        with pytest.raises(TypeError, match="over a Lock"):
            await portable.Condition().wait_async(0)  # over an RLock
    run(main())


def test_condition_wait_for_async_between_tasks_and_a_thread():
    async def main():
        cond, items = portable.Condition(portable.Lock()), []

        async def consumer():
            async with cond:
                assert await cond.wait_for_async(lambda: len(items) >= 3, 10)
                return list(items)

        def producer():
            for i in range(3):
                time.sleep(0.02)
                with cond:
                    items.append(i)
                    cond.notify_all()
        tasks = [asyncio.create_task(consumer()) for _ in range(3)]
        await asyncio.sleep(0.05)
        threading.Thread(target=producer).start()
        assert await asyncio.gather(*tasks) == [[0, 1, 2]] * 3
        async with cond:
            assert await cond.wait_for_async(lambda: False, 0.05) is False
    run(main())


def test_a_cancelled_condition_waiter_holds_the_lock_and_passes_its_notify_on():
    async def main():
        cond = portable.Condition(portable.Lock())
        seen = []

        async def waiter(name):
            async with cond:
                try:
                    seen.append((name, await cond.wait_async(10)))
                except asyncio.CancelledError:
                    seen.append((name, "cancelled", cond._lock._semlock._is_mine()))
                    raise
        first = asyncio.create_task(waiter("first"))
        await asyncio.sleep(0.1)
        second = asyncio.create_task(waiter("second"))
        await asyncio.sleep(0.1)
        with cond:
            cond.notify(1)  # one wake-up, which the first may have consumed ...
        first.cancel()  # ... before it learns that it is cancelled
        await asyncio.gather(first, return_exceptions=True)
        # Whichever of the two the notify reached, the second is woken by it.
        assert await asyncio.wait_for(second, 10) is None
        assert sorted(seen) == [("first", "cancelled", True), ("second", True)]
        assert not cond._lock.locked()
    run(main())


def test_barrier_wait_async_with_tasks_and_a_thread_then_a_timeout_breaks_it():
    async def main():
        barrier = portable.Barrier(3)
        out = []
        thread = threading.Thread(target=lambda: out.append(barrier.wait(10)))
        thread.start()
        indices = await asyncio.gather(barrier.wait_async(10), barrier.wait_async(10))
        thread.join(10)
        assert sorted(indices + out) == [0, 1, 2]
        with pytest.raises(threading.BrokenBarrierError):
            await barrier.wait_async(0.1)  # alone: the timeout breaks it
        assert barrier.broken
        barrier.reset()
        task = asyncio.create_task(barrier.wait_async())
        await asyncio.sleep(0.1)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        assert task.cancelled() and barrier.broken  # a cancelled party breaks the round
    run(main())


def test_barrier_wait_async_runs_the_action_once_per_round():
    async def main():
        calls = []
        barrier = portable.Barrier(2, action=lambda: calls.append(1))
        for _ in range(3):
            assert sorted(await asyncio.gather(barrier.wait_async(10),
                                               barrier.wait_async(10))) == [0, 1]
        assert len(calls) == 3 and not barrier.broken
    run(main())


def _notify_when_told(cond, go):
    go.wait(30)
    with cond:
        cond.notify_all()


def test_tasks_and_another_process_share_a_condition_and_a_barrier(ctx):
    if interlock.native and ctx.get_start_method() != "fork":
        pytest.skip("the portable classes pickle as interlock.synchronize's, which are the "
                    "native ones here (CI's portable lane runs every start method)")

    async def main():
        cond, go = portable.Condition(portable.Lock(ctx=ctx), ctx=ctx), ctx.Event()
        barrier, results = portable.Barrier(3, ctx=ctx), ctx.Queue()
        notifier = ctx.Process(target=_notify_when_told, args=(cond, go))
        party = ctx.Process(target=workers.barrier_wait, args=(barrier, results, 30))
        notifier.start()
        party.start()

        async def waiter():
            async with cond:
                return await cond.wait_async(30)
        waiters = [asyncio.create_task(waiter()) for _ in range(2)]
        await asyncio.sleep(0.3)
        go.set()
        assert await asyncio.gather(*waiters) == [True, True]
        ours = await asyncio.gather(barrier.wait_async(30), barrier.wait_async(30))
        theirs = results.get(timeout=30)
        assert sorted(ours + [theirs]) == [0, 1, 2]
        for p in (notifier, party):
            p.join(30)
            assert p.exitcode == 0
    run(main())
