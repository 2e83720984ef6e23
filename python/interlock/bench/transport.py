"""The ``transport`` group: the two ways to reach etcd from Python, side by side on the same
etcd cluster (1 and 3 members) in one run.

* ``gateway``: etcd's JSON gateway over HTTP, interlock.cluster's own transport (h11 on
  kept-alive connections for requests, one stream per watch read by one thread);
* ``grpc``: etcd's gRPC API through etcd-sdk-python (``pyetcd``) and grpcio, the transport
  interlock.cluster used before.

Measured: the latency of a put, of a transaction, of a watch delivery (from the put's start to
the watcher's wake-up) and of a lease keep-alive; what a fork does to each (a forked child
makes a request of its own while the parent has a watch stream open and a thread inside a
request, with no gate around the fork); and the install weight of each (the size of the
installed distributions). Ratio = gateway / gRPC. Whether each installs on free-threaded
CPython is not something one interpreter can measure; docs/cluster.md records it.
"""

from __future__ import annotations

import functools
import importlib.metadata
import os
import signal
import threading
import time
import uuid
from typing import Any, Callable, List, Optional, Tuple

from .cluster import etcd_missing, samples
from .timing import Row

GROUP = "transport"
GATEWAY, GRPC = "gateway", "grpc"
# What each transport installs beyond the standard library (their dependencies included).
DISTRIBUTIONS = {GATEWAY: ["h11"], GRPC: ["etcd-sdk-python", "grpcio", "protobuf"]}
FORK_TIMEOUT = 10.0


def install_bytes(names: List[str]) -> Optional[int]:
    """The size on disk of the installed distributions `names`; None if one is missing."""
    total = 0
    for name in names:
        try:
            dist = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            return None
        for file in dist.files or []:
            path = file.locate()
            if os.path.isfile(path):
                total += os.path.getsize(path)
    return total


class _Gateway:
    """interlock.cluster's transport, used directly."""

    def __init__(self, endpoints: List[str]) -> None:
        from ..cluster._session import Config, Session

        config = Config([(h, int(p)) for h, p in (e.rsplit(":", 1) for e in endpoints)],
                        f"bench-{uuid.uuid4().hex[:8]}", 10.0, 10.0, {})
        self.session = Session(config)
        self.lease_id = self.session.lease()

    def put(self, key: bytes) -> None:
        from ..cluster import _wire

        self.session.call("/v3/kv/put", {"key": _wire.b64(key), "value": "eA=="})

    def txn(self, key: bytes) -> None:
        from ..cluster import _wire as w

        self.session.txn(w.txn_request([w.compare(key, "MOD", "GREATER", -1)],
                                       [w.put(key, b"y")]))

    def keep_alive(self) -> None:
        self.session.call("/v3/lease/keepalive", {"ID": str(self.lease_id)})

    def watcher(self, key: bytes) -> Callable[[], None]:
        """Starts watching `key`; a function that blocks until its next change arrives."""
        watch = self.session.watches.standing(key, b"", None)
        seen = [watch.gap_free_after or 0]

        def next_change() -> None:
            with watch.cond:
                while True:
                    new = watch.changes_after(seen[0])
                    if new:
                        seen[0] = new[-1].kv.mod_revision
                        return
                    watch.cond.wait(1)
        watch.interested(None, +1)
        return next_change

    def close(self) -> None:
        self.session.close()


class _Grpc:
    """etcd-sdk-python's client on grpcio."""

    def __init__(self, endpoints: List[str]) -> None:
        from pyetcd.client import Endpoint, MultiEndpointEtcd3Client

        self.client = MultiEndpointEtcd3Client(
            [Endpoint(h, int(p), secure=False) for h, p in (e.rsplit(":", 1) for e in endpoints)],
            timeout=10, failover=True)
        self.lease = self.client.lease(10)

    def put(self, key: bytes) -> None:
        self.client.put(key, b"x")

    def txn(self, key: bytes) -> None:
        t = self.client.transactions
        self.client.transaction(compare=[t.mod(key) > -1], success=[t.put(key, b"y")],
                                failure=[])

    def keep_alive(self) -> None:
        for _ in self.client.refresh_lease(self.lease.id):
            break

    def watcher(self, key: bytes) -> Callable[[], None]:
        arrived = threading.Semaphore(0)
        self.client.add_watch_callback(key, lambda response: arrived.release())

        def next_change() -> None:
            arrived.acquire(timeout=10)
        return next_change

    def close(self) -> None:
        self.client.close()


def _clients(endpoints: List[str], notes: List[str]) -> List[Tuple[str, Any]]:
    made: List[Tuple[str, Any]] = [(GATEWAY, _Gateway(endpoints))]
    try:
        made.append((GRPC, _Grpc(endpoints)))
    except ImportError:
        notes.append("transport group: etcd-sdk-python/grpcio is not installed, so the gRPC "
                     "column is empty (pip install .[bench])")
    return made


def _samples(fn: Callable[[], None], n: int) -> List[float]:
    fn()  # a first call sets up what the others reuse (connections, a watch)
    return samples(fn, n)


def fork_outcome(name: str, client: Any, endpoints: List[str]) -> Tuple[str, float]:
    """Forks while `client` has a watch stream open and another thread is inside a request,
    with nothing stopping either; the child makes a client of its own and puts one key.
    ("ok", seconds the child took) or ("hung", FORK_TIMEOUT) if it had to be killed, or
    ("failed", seconds)."""
    stop = threading.Event()
    key = f"/bench/fork-{uuid.uuid4().hex[:8]}".encode()
    next_change = client.watcher(key)

    def busy() -> None:
        while not stop.is_set():
            client.put(key)
            next_change()
    thread = threading.Thread(target=busy, daemon=True)
    thread.start()
    time.sleep(0.2)
    start = time.monotonic()
    pid = os.fork()
    if pid == 0:  # the child: a fresh client, one request
        code = 1
        try:
            child = (_Gateway if name == GATEWAY else _Grpc)(endpoints)
            child.put(key + b"-child")
            code = 0
        finally:
            os._exit(code)
    try:
        while time.monotonic() - start < FORK_TIMEOUT:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                took = time.monotonic() - start
                return ("ok" if os.waitstatus_to_exitcode(status) == 0 else "failed"), took
            time.sleep(0.01)
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        return "hung", FORK_TIMEOUT
    finally:
        stop.set()
        thread.join(15)


def run(quick: bool, notes: List[str]) -> List[Row]:
    missing = etcd_missing()
    if missing is not None:
        notes.append(f"transport group skipped: {missing}")
        return []
    from ..cluster.testing import EtcdCluster

    n = 50 if quick else 500
    rows: List[Row] = []

    def row(operation: str, unit: str = "s") -> Row:
        r = Row(GROUP, operation, unit=unit)
        r.baseline, r.subject = GRPC, GATEWAY
        rows.append(r)
        return r

    for members in (1, 3):
        where = f"etcd x{members}"
        with EtcdCluster(members=members) as etcd:
            clients = _clients(etcd.endpoints, notes)
            try:
                calls = (("put", "put", (b"/bench/put",)),
                         ("transaction (compare, put)", "txn", (b"/bench/txn",)),
                         ("lease keep-alive", "keep_alive", ()))
                for what, method, arguments in calls:
                    r = row(f"{what} ({where})")
                    for name, client in clients:
                        call = functools.partial(getattr(client, method), *arguments)
                        for s in _samples(call, n):
                            r.add(name, s)
                r = row(f"watch delivery: put to the watcher's wake-up ({where})")
                for name, client in clients:
                    key = f"/bench/watched-{name}".encode()
                    next_change = client.watcher(key)

                    def delivery(c: Any = client, k: bytes = key,
                                 wait: Callable[[], None] = next_change) -> None:
                        c.put(k)
                        wait()
                    for s in _samples(delivery, n):
                        r.add(name, s)
                if members == 1:
                    r = row("a forked child's first request, with no fork gate (etcd x1)")
                    trials = 3 if quick else 10
                    for name, client in clients:
                        outcomes = []
                        for _ in range(trials):
                            outcome, took = fork_outcome(name, client, etcd.endpoints)
                            r.add(name, took)
                            outcomes.append(outcome)
                        summary = ", ".join(f"{outcomes.count(o)} {o}"
                                            for o in ("ok", "failed", "hung") if o in outcomes)
                        r.note(name, f"{summary} of {trials}")
                        notes.append(f"transport group: fork with a watch open and a request "
                                     f"in flight, no gate: {name}: {summary} of {trials}")
            finally:
                for _, client in clients:
                    client.close()
    r = row("install weight (the distributions it needs)", unit="B")
    for name, dists in DISTRIBUTIONS.items():
        size = install_bytes(dists)
        if size is not None:
            r.add(name, size)
    return rows
