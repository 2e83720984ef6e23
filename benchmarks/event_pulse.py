"""How often a set() that a clear() follows at once is lost by Event.wait().

threading's documentation promises that wait() returns True if the flag was set at any moment
after the wait started. A pulse ``e.set(); e.clear()`` (a heartbeat, a broadcast "tick") relies
on it. This script counts the waits that returned False although a pulse came while they were
asleep, for threading.Event, multiprocessing.Event and interlock.Event, the way a user would
try it: waiters are started, given time to fall asleep, then the Event is pulsed once.

  threads:   each round starts 5 waiter threads with wait(0.5), sleeps 20 ms, pulses;
  processes: each round starts 4 waiter processes (fork) with wait(5), sleeps 300 ms, pulses.

Run:  python benchmarks/event_pulse.py [--rounds-threads 20] [--rounds-processes 20]

It prints counts, never asserts: the tests (tests/test_event.py) check the guarantee
deterministically, without relying on sleeps.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import threading
import time

FORK = mp.get_context("fork")


def _thread_round(event, waiters: int) -> int:
    results: list[bool] = []
    lock = threading.Lock()

    def wait() -> None:
        r = event.wait(0.5)
        with lock:
            results.append(r)

    threads = [threading.Thread(target=wait) for _ in range(waiters)]
    for t in threads:
        t.start()
    time.sleep(0.02)
    event.set()
    event.clear()
    for t in threads:
        t.join()
    return results.count(False)


def _wait_in_child(event, queue) -> None:
    queue.put(event.wait(5))


def _process_round(event, waiters: int) -> int:
    queue = FORK.SimpleQueue()
    procs = [FORK.Process(target=_wait_in_child, args=(event, queue)) for _ in range(waiters)]
    for p in procs:
        p.start()
    time.sleep(0.3)
    event.set()
    event.clear()
    results = [queue.get() for _ in procs]
    for p in procs:
        p.join()
    return results.count(False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds-threads", type=int, default=20)
    parser.add_argument("--rounds-processes", type=int, default=20)
    args = parser.parse_args()

    import interlock.synchronize

    thread_peers = {
        "threading.Event": threading.Event,
        "multiprocessing.Event": FORK.Event,
        "interlock.Event": interlock.Event,
    }
    print(f"threads: {args.rounds_threads} rounds x 5 waiters, wait(0.5), pulse after 20 ms")
    for name, factory in thread_peers.items():
        event = factory()
        lost = sum(_thread_round(event, 5) for _ in range(args.rounds_threads))
        print(f"  {name:24} {lost} of {5 * args.rounds_threads} returned False")

    process_peers = {
        "multiprocessing.Event": FORK.Event,
        "interlock.Event": lambda: interlock.synchronize.Event(ctx=FORK),
    }
    print(f"processes: {args.rounds_processes} rounds x 4 waiters, wait(5), pulse after 300 ms")
    for name, factory in process_peers.items():
        event = factory()
        lost = sum(_process_round(event, 4) for _ in range(args.rounds_processes))
        print(f"  {name:24} {lost} of {4 * args.rounds_processes} returned False")


if __name__ == "__main__":
    main()
