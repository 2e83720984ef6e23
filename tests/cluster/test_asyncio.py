"""Awaiting the cluster's primitives (docs/asyncio.md, "The cluster"), on a real etcd, with
real processes: the cases of tests/test_asyncio.py that concern what a wait does."""

import asyncio
import random
import threading
import time

import pytest

import asyncio_workers
from cluster import cluster_workers as cw
from interlock import OwnerDiedError


def run(coro):
    return asyncio.run(coro)


def test_acquire_async_times_out_while_held_elsewhere_and_the_loop_keeps_running(cluster,
                                                                                 ctx):
    lock = cluster.Lock("busy")
    held = ctx.Event()
    holder = ctx.Process(target=cw.hold, args=(lock, held, 1.5))
    holder.start()
    assert held.wait(60)

    async def main():
        ticks = 0

        async def ticker():
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        tick = asyncio.create_task(ticker())
        assert await lock.acquire_async(timeout=0.3) is False
        assert ticks >= 10  # the loop ran while the task waited
        assert await lock.acquire_async(block=True, timeout=30) is True
        assert lock._is_owned()  # the hold is this (the loop's) thread's
        lock.release()
        assert await lock.acquire_async(timeout=-1) is True  # a negative timeout means zero
        lock.release()
        tick.cancel()

    run(main())
    holder.join(30)
    assert holder.exitcode == 0 and not lock.locked()


def test_an_rlock_refuses_to_be_awaited(cluster):
    async def main():
        with pytest.raises(TypeError, match="RLock"):
            await cluster.RLock("r").acquire_async()
    run(main())


def test_a_thousand_tasks_wake_when_another_process_sets_the_event(cluster, ctx):
    event, ready = cluster.Event("go"), ctx.Event()
    setter = ctx.Process(target=asyncio_workers.set_event_later, args=(event, ready, 0.2))
    setter.start()

    async def main():
        tasks = [asyncio.create_task(event.wait_async(60)) for _ in range(1000)]
        await asyncio.sleep(0.5)
        assert not any(t.done() for t in tasks)
        ready.set()
        return await asyncio.gather(*tasks)

    assert run(main()) == [True] * 1000
    setter.join(30)
    assert setter.exitcode == 0


def test_tasks_and_a_synchronous_process_exclude_each_other(cluster, ctx, tmp_path):
    lock = cluster.Lock("counter")
    path = tmp_path / "counter"
    path.write_text("0")
    child = ctx.Process(target=cw.add_under_lock, args=(lock, str(path), 20))
    child.start()

    async def add():
        for _ in range(4):
            async with lock:
                value = int(path.read_text())
                await asyncio.sleep(0.001)  # another task runs here, and must not get in
                path.write_text(str(value + 1))

    async def main():
        await asyncio.gather(*(add() for _ in range(5)))

    run(main())
    child.join(120)
    assert child.exitcode == 0
    assert path.read_text() == str(20 + 5 * 4)
    assert not lock.locked()


def test_cancellation_at_random_points_loses_no_hold_and_no_permit(cluster):
    rng = random.Random(1234)
    lock, sem = cluster.Lock("cancelled-lock"), cluster.Semaphore("cancelled-sem", 2)

    async def main():
        outcomes = await asyncio_workers.cancel_at_random_points(lock, sem, 12, 0.01, rng)
        # Nothing but cancellations: in particular no OwnerDiedError, which a waiter that
        # left while the lock was handed to it would cause.
        assert all(o is None or isinstance(o, asyncio.CancelledError) for o in outcomes)

    run(main())
    # What a cancelled task's thread took late is given back there, shortly after.
    deadline = time.monotonic() + 10
    while (lock.locked() or sem.get_value() != 2) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not lock.locked()
    assert sem.get_value() == 2
    assert lock.acquire(timeout=5) and sem.acquire(timeout=5)
    lock.release()
    sem.release()


def test_tasks_await_a_condition_notified_by_another_process(cluster, ctx):
    lock = cluster.Lock("cond-lock")
    cond = cluster.Condition("cond", lock)
    items, ready = ctx.Array("i", [0], lock=False), ctx.Event()
    producer = ctx.Process(target=asyncio_workers.produce_under_condition,
                           args=(cond, items, 3, ready))
    producer.start()

    async def consumer():
        async with cond:
            assert await cond.wait_for_async(lambda: items[0] > 0, timeout=60)
            assert lock._is_owned()  # held again, by this task's thread
            items[0] -= 1
            return True

    async def main():
        tasks = [asyncio.create_task(consumer()) for _ in range(3)]
        await asyncio.sleep(0.3)
        ready.set()
        return await asyncio.gather(*tasks)

    assert run(main()) == [True] * 3
    producer.join(30)
    assert producer.exitcode == 0 and items[0] == 0 and not lock.locked()


def test_a_cancelled_condition_waiter_holds_the_lock_again_before_it_sees_the_error(cluster):
    lock = cluster.Lock("cancel-cond-lock")
    cond = cluster.Condition("cancel-cond", lock)

    async def main():
        seen = []

        async def waiter():
            async with cond:
                try:
                    await cond.wait_async()
                except asyncio.CancelledError:
                    seen.append(lock._is_owned())
                    raise

        task = asyncio.create_task(waiter())
        await asyncio.sleep(0.5)  # the waiter's thread is asleep in the wait
        assert not lock.locked()  # given up for the wait
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert seen == [True] and not lock.locked()
        async with cond:
            assert await cond.wait_async(0.05) is False  # timeouts return False
            assert lock._is_owned()
        with pytest.raises(AssertionError):  # the lock not held: NotHeldError
            await cond.wait_async(0)
        with pytest.raises(TypeError, match="RLock"):
            await cluster.Condition("over-rlock").wait_async(0)

    run(main())


def test_tasks_and_another_process_meet_at_a_barrier_and_a_cancelled_wait_breaks_it(cluster,
                                                                                    ctx):
    barrier = cluster.Barrier("meet", 3)
    results = ctx.Queue()
    party = ctx.Process(target=cw.barrier_party, args=(barrier, results, 60))
    party.start()

    async def meet():
        return await asyncio.gather(barrier.wait_async(60), barrier.wait_async(60))

    indices = list(run(meet()))
    indices.append(results.get(timeout=60))
    party.join(30)
    assert sorted(indices) == [0, 1, 2] and not barrier.broken

    pair = cluster.Barrier("cancelled", 2)

    async def cancel_one():
        task = asyncio.create_task(pair.wait_async())
        await asyncio.sleep(0.5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    run(cancel_one())
    deadline = time.monotonic() + 10
    while not pair.broken and time.monotonic() < deadline:  # its thread breaks it, shortly
        time.sleep(0.05)
    assert pair.broken  # nobody is left waiting for the cancelled party


def test_a_killed_holder_gives_owner_died_to_the_awaiting_task(cluster, ctx):
    lock = cluster.Lock("killed")
    held = ctx.Event()
    holder = ctx.Process(target=cw.hold, args=(lock, held, 3600))
    holder.start()
    assert held.wait(60)

    async def main():
        task = asyncio.create_task(lock.acquire_async(timeout=60))
        await asyncio.sleep(0.3)
        assert not task.done()
        holder.kill()
        with pytest.raises(OwnerDiedError):
            await task
        assert lock._is_owned()  # the task holds it, as OwnerDiedError says

    run(main())
    holder.join(30)
    lock.release()
    assert not lock.locked()


def _wait_threads():
    return sum(t.name == "interlock-cluster-await" for t in threading.enumerate())


def test_a_waiting_task_costs_one_thread_until_its_wait_ends(cluster):
    lock = cluster.Lock("threads")
    lock.acquire()

    async def main():
        async def take_in_turn():
            async with lock:
                await asyncio.sleep(0)

        deadline = time.monotonic() + 10  # the earlier tests' threads end first
        while _wait_threads() and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        tasks = [asyncio.create_task(take_in_turn()) for _ in range(5)]
        await asyncio.sleep(0.3)
        during = _wait_threads()
        lock.release()
        await asyncio.gather(*tasks)
        deadline = time.monotonic() + 10
        while _wait_threads() and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        return during, _wait_threads()

    assert run(main()) == (5, 0)
    assert not lock.locked()
