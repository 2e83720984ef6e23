"""interlock.FileLock against the popular file-lock libraries (filelock, fasteners,
portalocker), side by side in one run: uncontended cost, hand-off latency between two
processes, throughput with N contending processes, and CPU burned while waiting.

Peers missing from the machine are skipped with a note (install them with
``pip install .[bench]``).

Run:  python benchmarks/bench_file_lock.py [--quick]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import time

FORK = mp.get_context("fork")


def _interlock(path):
    import interlock

    lock = interlock.FileLock(path)
    return lock.acquire, lock.release


def _filelock(path):
    import filelock

    lock = filelock.FileLock(path)
    return lock.acquire, lock.release


def _fasteners(path):
    import fasteners

    lock = fasteners.InterProcessLock(path)
    return lock.acquire, lock.release


def _portalocker(path):
    import portalocker

    lock = portalocker.Lock(path, timeout=600)
    return lock.acquire, lock.release


PEERS = {"interlock": _interlock, "filelock": _filelock, "fasteners": _fasteners,
         "portalocker": _portalocker}


def available():
    out = {}
    for name, make in PEERS.items():
        try:
            with tempfile.TemporaryDirectory() as d:
                acquire, release = make(os.path.join(d, "probe"))
                acquire()
                release()
            out[name] = make
        except ImportError as exc:
            print(f"# skipped {name}: {exc}", file=sys.stderr)
    return out


def uncontended(make, path, n):
    acquire, release = make(path)
    t0 = time.perf_counter()
    for _ in range(n):
        acquire()
        release()
    return (time.perf_counter() - t0) / n


def _holder(make, path, rounds, held, next_round, released_at):
    acquire, release = make(path)
    for _ in range(rounds):
        acquire()
        held.set()
        time.sleep(0.05)  # by now the other process is blocked in acquire()
        released_at.value = time.monotonic()
        release()
        next_round.wait()
        next_round.clear()


def handoff(make, path, rounds):
    """Seconds from the holder's release() to the blocked waiter's acquire() returning."""
    held, next_round, released_at = FORK.Event(), FORK.Event(), FORK.Value("d", 0.0)
    p = FORK.Process(target=_holder, args=(make, path, rounds, held, next_round, released_at))
    p.start()
    acquire, release = make(path)
    samples = []
    for _ in range(rounds):
        held.wait()
        held.clear()
        acquire()
        samples.append(time.monotonic() - released_at.value)
        release()
        next_round.set()
    p.join()
    return samples


def _contender(make, path, seconds, start, done):
    acquire, release = make(path)
    start.wait()
    deadline = time.monotonic() + seconds
    count = 0
    while time.monotonic() < deadline:
        acquire()
        release()
        count += 1
    with done.get_lock():
        done.value += count


def throughput(make, path, procs, seconds):
    """Acquire+release pairs per second with `procs` processes contending for `seconds`."""
    start, done = FORK.Event(), FORK.Value("q", 0)
    ps = [FORK.Process(target=_contender, args=(make, path, seconds, start, done))
          for _ in range(procs)]
    for p in ps:
        p.start()
    time.sleep(0.2)
    t0 = time.perf_counter()
    start.set()
    for p in ps:
        p.join()
    return done.value / (time.perf_counter() - t0)


def _hold_for(make, path, seconds, held):
    acquire, release = make(path)
    acquire()
    held.set()
    time.sleep(seconds)
    release()


def waiting_cpu(make, path, seconds=1.0):
    """CPU seconds this process burns while blocked for `seconds` in acquire()."""
    held = FORK.Event()
    p = FORK.Process(target=_hold_for, args=(make, path, seconds, held))
    p.start()
    held.wait()
    acquire, release = make(path)
    before = time.process_time()
    acquire()
    cpu = time.process_time() - before
    release()
    p.join()
    return cpu


def fmt(seconds):
    if seconds < 1e-3:
        return f"{seconds * 1e6:8.1f} us"
    return f"{seconds * 1e3:8.2f} ms"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    peers = available()
    n = 2_000 if args.quick else 20_000
    rounds = 5 if args.quick else 20
    contend_seconds = 1.0 if args.quick else 3.0
    print(f"# file locks, {os.cpu_count()} CPUs, {'quick' if args.quick else 'full'} run")
    print(f"{'peer':12} {'uncontended':>12} {'hand-off med':>13} {'hand-off max':>13} "
          f"{'2 procs/s':>10} {'4 procs/s':>10} {'CPU waiting 1s':>15}")
    for name, make in peers.items():
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "lock")
            u = uncontended(make, path, n if name == "interlock" else n // 10)
            h = handoff(make, path, rounds)
            t2 = throughput(make, path, 2, contend_seconds)
            t4 = throughput(make, path, 4, contend_seconds)
            cpu = waiting_cpu(make, path)
        print(f"{name:12} {fmt(u):>12} {fmt(statistics.median(h)):>13} {fmt(max(h)):>13} "
              f"{t2:10.0f} {t4:10.0f} {fmt(cpu):>15}")


if __name__ == "__main__":
    main()
