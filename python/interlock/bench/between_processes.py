"""Operations between processes: ping-pong round trips, Barrier(N) rounds, a Lock contended
by N processes, and producer/consumer through a bounded buffer of semaphores.

Children are forked, so every peer's primitives reach them by inheritance.
"""

from __future__ import annotations

import functools
import os
import time
from typing import Any, Callable, Dict, List, Tuple

from .peers import FORK, Peer, Unsupported
from .timing import Row


def process_counts() -> List[int]:
    cores = os.cpu_count() or 1
    return sorted({1, 2, 4, 2 * cores})


Launch = Callable[..., Any]  # launch(target, *args) starts the partner; returns its .join()er


def _spawn(target: Callable[..., None], *args: Any) -> Any:
    child = FORK.Process(target=target, args=args, daemon=True)
    child.start()
    return child


# --- ping-pong --------------------------------------------------------------------------------

def _sem_pong(ping: Any, pong: Any, rounds: int) -> None:
    for _ in range(rounds):
        ping.acquire()
        pong.release()


def _event_pong(ping: Any, pong: Any, rounds: int) -> None:
    for _ in range(rounds):
        ping.wait()
        ping.clear()
        pong.set()


def _cond_pong(cond: Any, turn: Any, rounds: int) -> None:
    for _ in range(rounds):
        with cond:
            while turn.value != 1:
                cond.wait()
            turn.value = 0
            cond.notify()


def semaphore_ping_pong(peer: Peer, rounds: int) -> float:
    ping, pong = peer.make("Semaphore", 0), peer.make("Semaphore", 0)
    child = _spawn(_sem_pong, ping, pong, rounds)
    start = time.perf_counter()
    for _ in range(rounds):
        ping.release()
        pong.acquire()
    elapsed = time.perf_counter() - start
    child.join()
    return elapsed / rounds


def event_ping_pong(peer: Peer, rounds: int, launch: Launch = _spawn) -> float:
    ping, pong = peer.make("Event"), peer.make("Event")
    child = launch(_event_pong, ping, pong, rounds)
    start = time.perf_counter()
    for _ in range(rounds):
        ping.set()
        pong.wait()
        pong.clear()
    elapsed = time.perf_counter() - start
    child.join()
    return elapsed / rounds


def condition_ping_pong(peer: Peer, rounds: int, launch: Launch = _spawn) -> float:
    cond, turn = peer.make("Condition"), FORK.RawValue("i", 0)
    child = launch(_cond_pong, cond, turn, rounds)
    start = time.perf_counter()
    for _ in range(rounds):
        with cond:
            turn.value = 1
            cond.notify()
            while turn.value != 0:
                cond.wait()
    elapsed = time.perf_counter() - start
    child.join()
    return elapsed / rounds


# --- N processes ------------------------------------------------------------------------------

def _contend(lock: Any, rounds: int) -> None:
    for _ in range(rounds):
        lock.acquire()
        lock.release()


def _barrier_party(barrier: Any, rounds: int) -> None:
    for _ in range(rounds):
        barrier.wait()


def _producer(empty: Any, full: Any, rounds: int) -> None:
    for _ in range(rounds):
        empty.acquire()
        full.release()


def _consumer(empty: Any, full: Any, rounds: int) -> None:
    for _ in range(rounds):
        full.acquire()
        empty.release()


def _timed_member(
    index: int, target: Callable[..., None], args: Tuple[Any, ...], ready: Any, go: Any,
    finished: Any,
) -> None:
    with ready.get_lock():
        ready.value += 1
    while not go.value:  # spin: every process starts within microseconds of the others
        pass
    target(*args)
    finished[index] = time.perf_counter()  # CLOCK_MONOTONIC: comparable across processes


def _run_group(targets: List[Tuple[Callable[..., None], Tuple[Any, ...]]]) -> float:
    """Runs every target in its own process, all released at once; returns the wall time from
    the release until the last one finished its work (process exit is not counted)."""
    ready, go = FORK.Value("i", 0), FORK.RawValue("i", 0)
    finished = FORK.RawArray("d", len(targets))
    children = [
        _spawn(_timed_member, i, target, args, ready, go, finished)
        for i, (target, args) in enumerate(targets)
    ]
    while ready.value < len(children):
        time.sleep(0.001)
    start = time.perf_counter()
    go.value = 1
    for child in children:
        child.join()
        if child.exitcode != 0:
            raise RuntimeError(f"a benchmark process failed (exit code {child.exitcode})")
    end: float = max(finished)
    return end - start


def contended_lock(peer: Peer, processes: int, rounds: int) -> float:
    """Seconds per acquire()+release() pair, over all processes."""
    lock = peer.make("Lock")
    elapsed = _run_group([(_contend, (lock, rounds))] * processes)
    return elapsed / (rounds * processes)


def barrier_rounds(peer: Peer, parties: int, rounds: int) -> float:
    """Seconds per Barrier(parties) round."""
    barrier = peer.make("Barrier", parties)
    return _run_group([(_barrier_party, (barrier, rounds))] * parties) / rounds


def producer_consumer(peer: Peer, rounds: int, slots: int = 16) -> float:
    """Seconds per item through a bounded buffer (one producer, one consumer)."""
    empty, full = peer.make("Semaphore", slots), peer.make("Semaphore", 0)
    pair = [(_producer, (empty, full, rounds)), (_consumer, (empty, full, rounds))]
    return _run_group(pair) / rounds


def _contended_call(processes: int, peer: Peer, rounds: int) -> float:
    return contended_lock(peer, processes, 4 * rounds)


def _barrier_call(parties: int, peer: Peer, rounds: int) -> float:
    return barrier_rounds(peer, parties, max(rounds // parties, 10))


def run(peers: Dict[str, Peer], quick: bool) -> List[Row]:
    rounds = 5_000 if quick else 50_000
    trials = 3 if quick else 5
    cross = {name: peer for name, peer in peers.items() if peer.cross_process}
    rows: List[Row] = []

    def measure(row: Row, call: Callable[[Peer, int], float]) -> None:
        usable = {}
        for name, peer in cross.items():
            try:
                call(peer, 10)  # also tells whether the peer has the primitive
                usable[name] = peer
            except Unsupported as exc:
                row.note(name, str(exc))
        for _ in range(trials):
            for name, peer in usable.items():
                row.add(name, call(peer, rounds // 20 if name == "manager" else rounds))
        rows.append(row)

    measure(Row("between processes", "Semaphore ping-pong (round trip)", target=0.3),
            semaphore_ping_pong)
    measure(Row("between processes", "Event ping-pong (round trip)", target=0.1), event_ping_pong)
    measure(Row("between processes", "Condition ping-pong (round trip)", target=0.1),
            condition_ping_pong)
    measure(Row("between processes", "producer/consumer, 16 slots (per item)"),
            producer_consumer)
    most = max(process_counts())
    for n in process_counts():
        target = 0.3 if n == most else None
        measure(Row("N processes", f"Lock contended by {n} (per acquire+release)", target=target),
                functools.partial(_contended_call, n))
    for n in process_counts():
        if n < 2:
            continue
        measure(Row("N processes", f"Barrier({n}) round"), functools.partial(_barrier_call, n))
    return rows
