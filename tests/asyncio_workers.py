"""Child-process bodies of the asyncio tests (importable by spawn and forkserver children)."""

import asyncio
import time


def set_event_later(event, ready, delay):
    """Waits for `ready` (the parent's tasks are all waiting), then sets `event` after
    `delay` seconds."""
    ready.wait(60)
    time.sleep(delay)
    event.set()


def tasks_add_under_lock(lock, counter, tasks, rounds, results):
    """`tasks` asyncio tasks of this process each add 1 to `counter`, `rounds` times, under
    `async with lock`, awaiting inside the critical section so that tasks interleave."""
    async def add():
        for _ in range(rounds):
            async with lock:
                value = counter.value
                await asyncio.sleep(0)
                counter.value = value + 1

    async def main():
        await asyncio.gather(*(add() for _ in range(tasks)))

    asyncio.run(main())
    results.put("done")


def await_lock_and_report(lock, started, results, timeout):
    """Awaits `lock` in a task of this process's own event loop, and reports the outcome."""
    async def main():
        task = asyncio.create_task(lock.acquire_async(timeout=timeout))
        await asyncio.sleep(0.1)
        started.set()
        return await task

    got = asyncio.run(main())
    results.put(got)
    if got:
        lock.release()


def produce_under_condition(cond, items, n, ready):
    """Appends n items to the shared array `items` (length in items[0]), notifying one
    waiter for each, once `ready` says the consumers wait."""
    ready.wait(60)
    for i in range(n):
        with cond:
            items[0] += 1
            cond.notify()
        time.sleep(0.01)


def hold_lock_forever(lock, held):
    """Takes `lock`, says so, and sleeps until killed."""
    lock.acquire()
    held.set()
    time.sleep(3600)


async def cancel_at_random_points(lock, sem, rounds, pause, rng):
    """`rounds` times, six tasks each take `lock` or `sem` with ``async with`` and keep it
    for a random while (up to `pause` seconds), and three of them are cancelled at a random
    point. Returns every task's outcome: None, or the exception it ended with."""
    outcomes = []
    for _ in range(rounds):
        async def use(primitive):
            async with primitive:
                await asyncio.sleep(rng.random() * pause)

        tasks = [asyncio.create_task(use(rng.choice([lock, sem]))) for _ in range(6)]
        await asyncio.sleep(rng.random() * pause * 1.5)
        for t in rng.sample(tasks, 3):
            t.cancel()
        outcomes += await asyncio.gather(*tasks, return_exceptions=True)
    return outcomes
