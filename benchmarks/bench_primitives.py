"""Per-primitive speed of interlock against CPython's multiprocessing (and threading), measured
side by side in one run. Every figure is the median over repeats; the ratio column is
interlock / multiprocessing from the same run (lower is better).

Run:  python benchmarks/bench_primitives.py [--quick] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import resource
import statistics
import sys
import threading
import time
import timeit

import interlock

FORK = mp.get_context("fork")


class Peer:
    """How to build each primitive for one implementation."""

    def __init__(self, name, module):
        self.name = name
        self.m = module

    def __getattr__(self, item):
        return getattr(self.m, item)


INTERLOCK = Peer("interlock", interlock)
MULTIPROCESSING = Peer("multiprocessing", FORK)
THREADING = Peer("threading", threading)


def per_call(stmt, setup_globals, number, repeats):
    """Median and spread (min..max) of seconds per execution of `stmt`."""
    timer = timeit.Timer(stmt, globals=setup_globals)
    samples = [t / number for t in timer.repeat(repeat=repeats, number=number)]
    return samples


# --- one-process operations -----------------------------------------------------------------

def uncontended(peer, what, number, repeats):
    if what == "acquire+release":
        lock = peer.Lock()
        return per_call("a(); r()", {"a": lock.acquire, "r": lock.release}, number, repeats)
    if what == "with lock":
        return per_call("with l: pass", {"l": peer.Lock()}, number, repeats)
    if what == "acquire(timeout=1.0)+release":
        lock = peer.Lock()
        return per_call("a(timeout=1.0); r()", {"a": lock.acquire, "r": lock.release}, number,
                        repeats)
    if what == "Event.is_set()":
        return per_call("f()", {"f": peer.Event().is_set}, number, repeats)
    if what == "Event.set()+clear()":
        e = peer.Event()
        return per_call("s(); c()", {"s": e.set, "c": e.clear}, number, repeats)
    if what == "with cond: notify_all()":
        return per_call("with c: c.notify_all()", {"c": peer.Condition()}, number, repeats)
    if what == "create Lock":
        return per_call("L()", {"L": peer.Lock}, max(number // 50, 200), repeats)
    if what == "create Condition":
        return per_call("C()", {"C": peer.Condition}, max(number // 100, 100), repeats)
    raise ValueError(what)


# --- two-process operations -----------------------------------------------------------------

def _sem_pong(ping, pong, rounds):
    for _ in range(rounds):
        ping.acquire()
        pong.release()


def _event_pong(ping, pong, rounds):
    for _ in range(rounds):
        ping.wait()
        ping.clear()
        pong.set()


def _cond_pong(cond, turn, rounds):
    for _ in range(rounds):
        with cond:
            while turn.value != 1:
                cond.wait()
            turn.value = 0
            cond.notify()


def _barrier_party(barrier, rounds):
    for _ in range(rounds):
        barrier.wait()


def _contend(lock, start, rounds):
    start.value += 1
    while start.value < 2:  # spin so that both processes start within microseconds
        pass
    for _ in range(rounds):
        lock.acquire()
        lock.release()


def _spawn(target, *args):
    p = FORK.Process(target=target, args=args)
    p.start()
    return p


def two_process(peer, what, rounds):
    """Seconds per round trip (ping-pong), per round (Barrier) or per acquire+release
    (contended Lock)."""
    if what == "Semaphore ping-pong":
        ping, pong = peer.Semaphore(0), peer.Semaphore(0)
        p = _spawn(_sem_pong, ping, pong, rounds)
        t0 = time.perf_counter()
        for _ in range(rounds):
            ping.release()
            pong.acquire()
        elapsed = time.perf_counter() - t0
    elif what == "Event ping-pong":
        ping, pong = peer.Event(), peer.Event()
        p = _spawn(_event_pong, ping, pong, rounds)
        t0 = time.perf_counter()
        for _ in range(rounds):
            ping.set()
            pong.wait()
            pong.clear()
        elapsed = time.perf_counter() - t0
    elif what == "Condition ping-pong":
        cond, turn = peer.Condition(), FORK.RawValue("i", 0)
        p = _spawn(_cond_pong, cond, turn, rounds)
        t0 = time.perf_counter()
        for _ in range(rounds):
            with cond:
                turn.value = 1
                cond.notify()
                while turn.value != 0:
                    cond.wait()
        elapsed = time.perf_counter() - t0
    elif what == "Barrier(2) round":
        barrier = peer.Barrier(2)
        p = _spawn(_barrier_party, barrier, rounds)
        t0 = time.perf_counter()
        for _ in range(rounds):
            barrier.wait()
        elapsed = time.perf_counter() - t0
    elif what == "Lock contended by 2 processes":
        lock, start = peer.Lock(), FORK.Value("i", 0)
        p = _spawn(_contend, lock, start, rounds)
        while start.value < 1:  # the child is ready and spinning
            pass
        t0 = time.perf_counter()
        _contend(lock, start, rounds)
        p.join()
        elapsed = (time.perf_counter() - t0) / 2
    else:
        raise ValueError(what)
    p.join()
    return elapsed / rounds


def _blocked_waiter(lock, out):
    before = resource.getrusage(resource.RUSAGE_SELF)
    lock.acquire(timeout=1.0)
    after = resource.getrusage(resource.RUSAGE_SELF)
    out.put((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime))


def waiter_cpu(peer):
    """CPU seconds burned by a process blocked for 1 s in Lock.acquire(timeout=1.0)."""
    lock, out = peer.Lock(), FORK.SimpleQueue()
    lock.acquire()
    p = _spawn(_blocked_waiter, lock, out)
    cpu = out.get()
    p.join()
    return cpu


# --- the table ----------------------------------------------------------------------------

ONE_PROCESS = [
    ("acquire+release", 0.6, True),
    ("with lock", 0.35, True),
    ("acquire(timeout=1.0)+release", 0.5, False),
    ("create Lock", 0.05, False),
    ("Event.is_set()", 0.1, True),
    ("Event.set()+clear()", 0.1, True),
    ("with cond: notify_all()", 0.2, True),
    ("create Condition", 0.02, False),
]
TWO_PROCESS = [
    ("Semaphore ping-pong", 0.3),
    ("Lock contended by 2 processes", 0.3),
    ("Event ping-pong", 0.1),
    ("Condition ping-pong", 0.1),
    ("Barrier(2) round", 0.1),
]


def fmt_time(seconds):
    if seconds < 1e-6:
        return f"{seconds * 1e9:7.1f} ns"
    if seconds < 1e-3:
        return f"{seconds * 1e6:7.2f} us"
    return f"{seconds * 1e3:7.2f} ms"


def run(quick):
    number = 20_000 if quick else 200_000
    repeats = 5 if quick else 9
    rounds = 5_000 if quick else 50_000
    trials = 3 if quick else 5
    rows = []
    for what, target, has_threading in ONE_PROCESS:
        samples = {INTERLOCK.name: [], MULTIPROCESSING.name: [], THREADING.name: []}
        peers = [INTERLOCK, MULTIPROCESSING] + ([THREADING] if has_threading else [])
        for _ in range(repeats):  # interleave peers so drift hits all of them alike
            for peer in peers:
                samples[peer.name] += uncontended(peer, what, number, 1)
        rows.append(_row(what, target, samples))
    for what, target in TWO_PROCESS:
        samples = {INTERLOCK.name: [], MULTIPROCESSING.name: []}
        for _ in range(trials):
            for peer in (INTERLOCK, MULTIPROCESSING):
                samples[peer.name].append(two_process(peer, what, rounds))
        rows.append(_row(what, target, samples))
    cpu = {peer.name: [waiter_cpu(peer)] for peer in (INTERLOCK, MULTIPROCESSING)}
    rows.append(_row("CPU of a waiter blocked 1 s", None, cpu))
    return rows


def _row(what, target, samples):
    med = {k: statistics.median(v) for k, v in samples.items() if v}
    spread = {k: (min(v), max(v)) for k, v in samples.items() if v}
    ratio = med["interlock"] / med["multiprocessing"] if med["multiprocessing"] else None
    return {"operation": what, "median": med, "spread": spread, "ratio": ratio, "target": target}


def call_floor(number, repeats):
    """Seconds for two calls of a no-op C method: what any acquire()+release() pair costs in
    interpreter overhead alone, before it does any work."""
    f = ().__len__
    return statistics.median(per_call("f(); f()", {"f": f}, number, repeats))


def print_table(rows, out=sys.stdout):
    head = (f"{'operation':34} {'interlock':>11} {'multiproc.':>11} {'threading':>11} "
            f"{'ratio':>7} {'target':>7}  ok")
    print(head, file=out)
    print("-" * len(head), file=out)
    for r in rows:
        med = r["median"]
        th = fmt_time(med["threading"]) if "threading" in med else " " * 10
        target = f"{r['target']:.2f}x" if r["target"] else ""
        ok = "" if r["target"] is None else ("yes" if r["ratio"] <= r["target"] else "NO")
        print(f"{r['operation']:34} {fmt_time(med['interlock']):>11} "
              f"{fmt_time(med['multiprocessing']):>11} {th:>11} {r['ratio']:6.3f}x "
              f"{target:>7}  {ok}", file=out)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer iterations (a smoke run)")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = parser.parse_args(argv)
    rows = run(args.quick)
    floor = call_floor(20_000 if args.quick else 200_000, 5 if args.quick else 9)
    print(f"# {platform.python_implementation()} {platform.python_version()}, "
          f"{os.cpu_count()} CPUs, {platform.machine()}, {'quick' if args.quick else 'full'} run")
    print_table(rows)
    print(f"# interpreter floor: two no-op C method calls take {fmt_time(floor).strip()}, "
          f"i.e. {floor / rows[0]['median']['multiprocessing']:.2f}x of multiprocessing's "
          "acquire+release")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"python": platform.python_version(), "cpus": os.cpu_count(),
                       "call_floor": floor, "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
