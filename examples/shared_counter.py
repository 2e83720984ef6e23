"""Four processes add to one shared counter under an interlock Lock.

Run: python examples/shared_counter.py
"""

import multiprocessing as mp
from ctypes import c_int

import interlock
from interlock.synchronize import Lock


def work(lock: Lock, counter: "mp.sharedctypes.Synchronized[int] | c_int", rounds: int) -> None:
    for _ in range(rounds):
        with lock:  # interlock.Lock: the same API as multiprocessing.Lock
            counter.value += 1  # a read-modify-write that needs the lock


def main() -> None:
    lock = interlock.Lock()
    counter = mp.Value("i", 0, lock=False)
    rounds, workers = 10_000, 4
    procs = [mp.Process(target=work, args=(lock, counter, rounds)) for _ in range(workers)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    assert counter.value == rounds * workers, counter.value
    print(f"counter = {counter.value} (expected {rounds * workers}); lock = {lock!r}")


if __name__ == "__main__":
    main()
