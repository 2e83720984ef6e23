"""A multiprocessing program switched to interlock by one line: ``interlock.install()``.

Everything below that line is plain multiprocessing: a Pool, a Queue, a JoinableQueue, a
shared Value and a Barrier. Run it with a start method: ``python examples/drop_in.py spawn``.
"""

import multiprocessing
import sys

import interlock

interlock.install()  # the one line: multiprocessing now hands out interlock's primitives


def square(x: int) -> int:
    return x * x


def worker(
    index: int,
    barrier: "multiprocessing.synchronize.Barrier",
    total: "multiprocessing.sharedctypes.Synchronized[int]",
    results: "multiprocessing.Queue[tuple[int, str]]",
    tasks: "multiprocessing.JoinableQueue[int]",
) -> None:
    barrier.wait()  # every worker starts together
    while True:
        item = tasks.get()
        if item < 0:
            tasks.task_done()
            break
        with total.get_lock():
            total.value += item
        tasks.task_done()
    # A child sees the same choice as its parent: its own new primitives are interlock's too.
    results.put((index, type(multiprocessing.Lock()).__module__))


def main(method: str) -> None:
    multiprocessing.set_start_method(method)
    with multiprocessing.Pool(2) as pool:
        assert pool.map(square, range(10)) == [x * x for x in range(10)]

    workers = 3
    barrier = multiprocessing.Barrier(workers)
    total = multiprocessing.Value("i", 0)
    results: "multiprocessing.Queue[tuple[int, str]]" = multiprocessing.Queue()
    tasks: "multiprocessing.JoinableQueue[int]" = multiprocessing.JoinableQueue()
    procs = [
        multiprocessing.Process(target=worker, args=(i, barrier, total, results, tasks))
        for i in range(workers)
    ]
    for p in procs:
        p.start()
    for n in range(1, 101):
        tasks.put(n)
    for _ in procs:
        tasks.put(-1)
    tasks.join()
    reports = sorted(results.get(timeout=60) for _ in procs)
    for p in procs:
        p.join(60)
        assert p.exitcode == 0, p.exitcode

    assert total.value == 5050, total.value
    assert [module for _, module in reports] == ["interlock.synchronize"] * workers, reports
    assert type(total.get_lock()).__module__ == "interlock.synchronize"
    print(f"{method}: pool, queues, value and barrier all ran on interlock; total={total.value}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "spawn")
