"""The cluster group: interlock.cluster on real etcd servers (one member and three, on
loopback, data on disk), side by side with the stdlib's cross-host option (a SyncManager served
over TCP), kazoo's Lock (and its ReadLock and WriteLock beside the RWLock rows) on a real
ZooKeeper (Debian's zookeeper package, started standalone) and redis-py's Lock on a real
redis-server, each when installed. Each row's ratio
divides interlock.cluster's figure by etcd's own put latency measured in the same run
("etcd put"): the round trip every replicated write costs.

The floor rows measure, with etcd alone, the least each operation can cost: two minimal
transactions for an uncontended acquire+release; for a contended Lock, the least fair-queue
protocol (join, hear the predecessor's deletion, delete), through interlock's own transport
and through etcd's gRPC API (etcd-sdk-python); a Barrier round's one write per party; an
Event round trip's writes in sequence."""

from __future__ import annotations

import multiprocessing as mp
import shutil
import statistics
import subprocess
import tempfile
import time
import uuid
from typing import Any, Callable, Dict, List, Optional, Set, Tuple

from .timing import Row

GROUP = "cluster (per operation)"


# ---- workers (module level: spawn children import them) ---------------------------------

def _handoff_worker(lock: Any, me: int, last: Any, stamp: Any, rounds: int, out: Any) -> None:
    """Acquire and release `rounds` times; each acquisition that follows the other process's
    release reports how long after that release it came (time.monotonic is system-wide)."""
    lags = []
    for _ in range(rounds):
        lock.acquire()
        now = time.monotonic()
        if last.value not in (-1, me):
            lags.append(now - stamp.value)
        last.value = me
        time.sleep(0.002)  # let the other process queue up
        stamp.value = time.monotonic()
        lock.release()
    out.put(lags)


def _contend_worker(lock: Any, start: Any, seconds: float, out: Any) -> None:
    start.wait()
    end = time.monotonic() + seconds
    n = 0
    while time.monotonic() < end:
        lock.acquire()
        lock.release()
        n += 1
    out.put(n)


def _barrier_worker(barrier: Any, rounds: int, out: Any) -> None:
    barrier.wait()
    t = time.monotonic()
    for _ in range(rounds):
        barrier.wait()
    out.put((time.monotonic() - t) / rounds)


def _barrier_floor_worker(endpoints: List[str], me: int, parties: int, rounds: int,
                          ready: Any, out: Any) -> None:
    """The least a Barrier round can cost on etcd: each party writes one key (its arrival) and
    waits until its watch has delivered every party's key for the round. Nothing is read,
    compared or cleaned up."""
    from .. import cluster as cl
    from ..cluster import _wire

    c = cl.connect(endpoints, namespace=_fresh())
    session = c._session()
    prefix = b"/bench/barrier-floor/"
    watch = session.watches.standing(prefix, prefix[:-1] + b"0", None)
    watch.interested(None, +1)
    seen_through = watch.gap_free_after or 0
    arrived: Dict[int, int] = {}
    ready.wait()
    t = time.monotonic()
    for r in range(rounds):
        session.call("/v3/kv/put", {"key": _wire.b64(prefix + b"%d/%d" % (r, me)),
                                    "value": _wire.b64(b"")})
        with watch.cond:
            while arrived.get(r, 0) < parties:
                new = watch.changes_after(seen_through)
                for event in new or ():
                    seen_through = event.kv.mod_revision
                    round_of = int(event.kv.key[len(prefix):].split(b"/")[0])
                    arrived[round_of] = arrived.get(round_of, 0) + 1
                if arrived.get(r, 0) < parties:
                    watch.cond.wait(1)
    out.put((time.monotonic() - t) / rounds)
    c.close()


def _contend_floor_worker(endpoints: List[str], queue: bytes, start: Any, seconds: float,
                          out: Any) -> None:
    """The least a fair lock on etcd can do per acquire+release under contention: one
    transaction joins the queue (a key on the lease, and a read of the newest key before it),
    the watch delivers that key's deletion, and one more transaction deletes ours. No holder
    record, no death detection, no strays, no timeouts. The watch is the process's standing
    watch on the queue, as a cluster Lock's."""
    from .. import cluster as cl
    from ..cluster import _keys, _wire

    c = cl.connect(endpoints, namespace=_fresh())
    session = c._session()
    end_of_queue = _keys.prefix_end(queue)
    watch = session.watches.standing(queue, end_of_queue, None)
    lease = session.lease()
    start.wait()
    end = time.monotonic() + seconds
    n = 0
    while time.monotonic() < end:
        key = queue + session.new_id().encode()
        joined = session.txn(_wire.txn_request([], [
            _wire.get(queue, end_of_queue, keys_only=True, limit=1, **_keys.NEWEST_FIRST),
            _wire.put(key, b"", lease)]))
        before = joined.kvs(0)[0].key if joined.kvs(0) else None
        seen, predecessor = joined.revision, before
        with watch.cond:
            watch.interested(predecessor, +1)
            while before is not None:
                new = watch.changes_after(seen)
                if new is None:  # overrun: ask etcd whether the predecessor is still there
                    with _unlocked(watch.cond):
                        look = session.txn(_wire.txn_request([], [_wire.get(before)]))
                    seen = look.revision
                    before = before if look.kvs(0) else None
                    continue
                for event in new:
                    if event.type == _keys.DELETE and event.kv.key == before:
                        before = None
                if new:
                    seen = new[-1].kv.mod_revision
                elif before is not None:
                    watch.cond.wait(1)
            watch.interested(predecessor, -1)
        session.txn(_wire.txn_request([], [_wire.delete(key)]))
        n += 1
    out.put(n)
    c.close()


def _contend_floor_grpc_worker(endpoints: List[str], queue: bytes, start: Any, seconds: float,
                               out: Any) -> None:
    """_contend_floor_worker's protocol through etcd's gRPC API (etcd-sdk-python on grpcio),
    with no gateway in between: what etcd itself allows."""
    import threading

    from pyetcd import etcdrpc
    from pyetcd.client import Endpoint, MultiEndpointEtcd3Client
    from pyetcd.events import DeleteEvent

    from ..cluster import _keys

    client = MultiEndpointEtcd3Client(
        [Endpoint(h, int(p), secure=False) for h, p in (e.rsplit(":", 1) for e in endpoints)],
        timeout=10, failover=True)
    lease = client.lease(30)
    gone: Set[bytes] = set()
    cond = threading.Condition()

    def on_change(response: Any) -> None:
        if isinstance(response, Exception):
            return
        with cond:
            gone.update(e.key for e in response.events if isinstance(e, DeleteEvent))
            cond.notify_all()

    client.add_watch_prefix_callback(queue, on_change)
    newest = etcdrpc.RequestOp(request_range=etcdrpc.RangeRequest(
        key=queue, range_end=_keys.prefix_end(queue), limit=1, keys_only=True,
        sort_order=etcdrpc.RangeRequest.DESCEND, sort_target=etcdrpc.RangeRequest.CREATE))
    start.wait()
    end = time.monotonic() + seconds
    n = 0
    while time.monotonic() < end:
        key = queue + b"%x-%d" % (lease.id, n)
        joined = client.kvstub.Txn(etcdrpc.TxnRequest(success=[newest, etcdrpc.RequestOp(
            request_put=etcdrpc.PutRequest(key=key, value=b"", lease=lease.id))]), 10)
        kvs = joined.responses[0].response_range.kvs
        if kvs:
            with cond:
                while kvs[0].key not in gone:
                    cond.wait(1)
                gone.clear()  # older deletions are of keys before ours: none is waited for
        client.kvstub.Txn(etcdrpc.TxnRequest(success=[etcdrpc.RequestOp(
            request_delete_range=etcdrpc.DeleteRangeRequest(key=key))]), 10)
        n += 1
    out.put(n)
    client.close()


class _unlocked:
    """Releases a held lock for the length of a with block."""

    def __init__(self, lock: Any) -> None:
        self.lock = lock

    def __enter__(self) -> None:
        self.lock.release()

    def __exit__(self, *exc: Any) -> None:
        self.lock.acquire()


def _pong_worker(ping: Any, pong: Any, rounds: int) -> None:
    for _ in range(rounds):
        ping.wait()
        ping.clear()
        pong.set()


# ---- the peers -------------------------------------------------------------------------

class _RemoteLock:
    """A peer's lock that each process opens for itself (kazoo and redis-py clients cannot be
    pickled): it pickles as its address and connects on first use in each process."""

    def __init__(self, kind: str, address: str, name: str, recipe: str = "Lock") -> None:
        # recipe (ZooKeeper): kazoo's Lock, ReadLock or WriteLock.
        self.kind, self.address, self.name, self.recipe = kind, address, name, recipe
        self._lock: Any = None

    def __getstate__(self) -> Tuple[str, str, str, str]:
        return self.kind, self.address, self.name, self.recipe

    def __setstate__(self, state: Tuple[str, str, str, str]) -> None:
        self.kind, self.address, self.name, self.recipe = state
        self._lock = None

    def _open(self) -> Any:
        if self._lock is None:
            if self.kind == "zookeeper":
                from kazoo.client import KazooClient

                _quiet_kazoo()
                client = KazooClient(hosts=self.address)
                client.start(timeout=30)
                self._lock = getattr(client, self.recipe)(f"/interlock-bench/{self.name}")
            else:
                import redis

                host, port = self.address.rsplit(":", 1)
                self._lock = redis.Redis(host=host, port=int(port)).lock(self.name, timeout=60)
        return self._lock

    def acquire(self) -> bool:
        return bool(self._open().acquire())

    def release(self) -> None:
        self._open().release()


def _quiet_kazoo() -> None:
    """kazoo logs every refused connection while ZooKeeper starts: keep the table readable."""
    import logging

    logging.getLogger("kazoo").setLevel(logging.CRITICAL)


def _zookeeper_server() -> Optional[Tuple[Any, str, str]]:
    """A standalone ZooKeeper (Debian's jars) on a free loopback port, data on disk."""
    import glob
    import os

    java = shutil.which("java")
    jars = glob.glob("/usr/share/java/zookeeper*.jar")
    try:
        import kazoo  # noqa: F401
    except ImportError:
        return None
    if java is None or not jars:
        return None
    from ..cluster.testing import _free_ports

    port = _free_ports(1)[0]
    home = tempfile.mkdtemp(prefix="zookeeper-bench-")
    with open(os.path.join(home, "zoo.cfg"), "w") as cfg:
        cfg.write(f"tickTime=2000\ndataDir={home}/data\nclientPort={port}\n"
                  "clientPortAddress=127.0.0.1\nadmin.enableServer=false\n")
    proc = subprocess.Popen(
        [java, "-cp", f"{home}:/etc/zookeeper/conf:/usr/share/java/*",
         "org.apache.zookeeper.server.ZooKeeperServerMain", os.path.join(home, "zoo.cfg")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    from kazoo.client import KazooClient

    _quiet_kazoo()
    client = KazooClient(hosts=f"127.0.0.1:{port}")
    try:
        client.start(timeout=30)
    except Exception:
        proc.kill()
        proc.wait()
        shutil.rmtree(home, ignore_errors=True)
        return None
    client.stop()
    client.close()
    return proc, f"127.0.0.1:{port}", home


def _redis_server() -> Optional[Tuple[Any, Any]]:
    binary = shutil.which("redis-server")
    try:
        import redis  # noqa: F401
    except ImportError:
        return None
    if binary is None:
        return None
    from ..cluster.testing import _free_ports

    port = _free_ports(1)[0]
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no"], stdout=subprocess.DEVNULL)
    import redis as r

    client = r.Redis(host="127.0.0.1", port=port)
    for _ in range(100):
        try:
            client.ping()
            return proc, client
        except r.ConnectionError:
            time.sleep(0.05)
    proc.kill()
    return None


def _fresh() -> str:
    return f"l-{uuid.uuid4().hex}"


def etcd_missing() -> Optional[str]:
    """Why the groups that start etcd servers cannot run here (no cluster extra, no etcd
    program), or None when they can."""
    try:
        from ..cluster.testing import etcd_binary
        etcd_binary()
    except (ImportError, FileNotFoundError) as exc:
        return str(exc)
    return None


def samples(fn: Callable[[], None], n: int) -> List[float]:
    """`n` timings of fn() in seconds."""
    samples = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t)
    return samples


def _uncontended(row: Row, peer: str, lock: Any, n: int) -> None:
    def once() -> None:
        lock.acquire()
        lock.release()
    once()
    for sample in samples(once, n):
        row.add(peer, sample)


def _handoff(row: Row, peer: str, ctx: Any, make_lock: Callable[[], Any], rounds: int) -> None:
    lock = make_lock()
    last, stamp, out = ctx.Value("i", -1), ctx.Value("d", 0.0), ctx.Queue()
    procs = [ctx.Process(target=_handoff_worker, args=(lock, me, last, stamp, rounds, out))
             for me in (0, 1)]
    for p in procs:
        p.start()
    lags = out.get(timeout=600) + out.get(timeout=600)
    for p in procs:
        p.join(60)
    for lag in lags:
        row.add(peer, lag)


def _contended(row: Row, peer: str, ctx: Any, make_lock: Callable[[], Any], n: int,
               seconds: float) -> None:
    _contenders(row, peer, ctx, _contend_worker, (make_lock(),), n, seconds)


def _contended_floor(row: Row, ctx: Any, endpoints: List[str], n: int, seconds: float,
                     worker: Callable[..., None] = _contend_floor_worker) -> None:
    queue = f"/bench/contend-floor/{uuid.uuid4().hex}/".encode()
    _contenders(row, "etcd put", ctx, worker, (endpoints, queue), n, seconds)


def _contenders(row: Row, peer: str, ctx: Any, worker: Callable[..., None],
                args: Tuple[Any, ...], n: int, seconds: float) -> None:
    """`n` processes run worker(*args, start, seconds, out) at once; `peer`'s figure is the
    time per acquire+release of all of them together."""
    start, out = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=worker, args=args + (start, seconds, out)) for _ in range(n)]
    for p in procs:
        p.start()
    time.sleep(1.0)  # every worker connected and waiting
    start.set()
    total = sum(out.get(timeout=seconds + 600) for _ in procs)
    for p in procs:
        p.join(60)
    if total:
        row.add(peer, seconds / total)


def _barrier_rounds(row: Row, peer: str, ctx: Any, make: Callable[[int], Any], rounds: int) -> None:
    barrier, out = make(4), ctx.Queue()
    procs = [ctx.Process(target=_barrier_worker, args=(barrier, rounds, out)) for _ in range(4)]
    for p in procs:
        p.start()
    per_round = [out.get(timeout=600) for _ in procs]
    for p in procs:
        p.join(60)
    row.add(peer, statistics.median(per_round))


def _barrier_floor(row: Row, ctx: Any, endpoints: List[str], rounds: int) -> None:
    ready, out = ctx.Barrier(4), ctx.Queue()
    procs = [ctx.Process(target=_barrier_floor_worker, args=(endpoints, me, 4, rounds, ready,
                                                             out)) for me in range(4)]
    for p in procs:
        p.start()
    per_round = [out.get(timeout=600) for _ in procs]
    for p in procs:
        p.join(60)
    row.add("etcd put", statistics.median(per_round))


def _event_ping_pong(row: Row, peer: str, ctx: Any, make: Callable[[], Any], rounds: int) -> None:
    ping, pong = make(), make()
    child = ctx.Process(target=_pong_worker, args=(ping, pong, rounds + 1))
    child.start()
    ping.set()  # warm-up round
    pong.wait()
    pong.clear()
    for _ in range(rounds):
        t = time.perf_counter()
        ping.set()
        pong.wait()
        pong.clear()
        row.add(peer, time.perf_counter() - t)
    child.join(60)


# ---- the group ---------------------------------------------------------------------------

def run(quick: bool, notes: List[str]) -> List[Row]:
    missing = etcd_missing()
    if missing is not None:
        notes.append(f"cluster group skipped: {missing}")
        return []
    from .. import cluster as cl
    from ..cluster.testing import EtcdCluster
    ctx = mp.get_context("spawn")
    n = 30 if quick else 300
    rounds = 20 if quick else 200
    seconds = 1.0 if quick else 5.0
    sizes = (2, 4) if quick else (2, 4, 16)
    rows: List[Row] = []

    def row(operation: str, target: Optional[float] = None) -> Row:
        r = Row(GROUP, operation, target=target)
        r.baseline = "etcd put"
        rows.append(r)
        return r

    try:
        import pyetcd  # noqa: F401  (the gRPC floor's client: the bench extra)
        grpc_client = True
    except ImportError:
        grpc_client = False
        notes.append("cluster group: etcd-sdk-python is missing; the contended Lock's floor "
                     "through gRPC is not measured (pip install '.[bench]')")
    manager = ctx.Manager()  # a SyncManager: one server process, reached over a socket
    redis_server = _redis_server()
    if redis_server is None:
        notes.append("cluster group: redis-server or the redis package is missing; its "
                     "column is empty (apt-get install redis-server; pip install redis)")
    zookeeper = _zookeeper_server()
    if zookeeper is None:
        notes.append("cluster group: ZooKeeper (Debian's zookeeper package and java) or kazoo "
                     "is missing; its column is empty")
    others: List[Tuple[str, str]] = []  # (peer, address) of the peers measured beside etcd x1
    if zookeeper is not None:
        others.append(("zookeeper", zookeeper[1]))
    if redis_server is not None:
        port = redis_server[1].connection_pool.connection_kwargs["port"]
        others.append(("redis", f"127.0.0.1:{port}"))
    try:
        for members in (1, 3):
            where = f"etcd x{members}"
            with EtcdCluster(members=members) as etcd:
                c = cl.connect(etcd.endpoints, namespace=f"bench-{uuid.uuid4().hex[:8]}")
                try:
                    put_row = row(f"etcd put, one round trip ({where})")
                    from ..cluster import _wire

                    session = c._session()

                    def put() -> None:
                        session.call("/v3/kv/put", {"key": _wire.b64(b"/bench/put"),
                                                    "value": _wire.b64(b"x")})
                    put()
                    baseline = samples(put, n)
                    for s in baseline:
                        put_row.add("etcd put", s)

                    # The floor of acquire+release: two write transactions as small as a
                    # lock's can be (join an empty queue with a key on the lease; delete it
                    # if it is still ours), in the "etcd put" column of its own row.
                    floor_row = row(f"etcd floor of acquire+release: two minimal "
                                    f"transactions ({where})")
                    lease = session.lease()
                    queue = b"/bench/floor/"

                    def floor() -> None:
                        key = queue + uuid.uuid4().hex.encode()
                        empty = _wire.compare(queue, "CREATE", "EQUAL", 0,
                                              range_end=b"/bench/floor0")
                        taken = session.txn(_wire.txn_request(
                            [empty], [_wire.put(key, b"", lease)]))
                        ours = _wire.compare(key, "CREATE", "EQUAL", taken.revision)
                        session.txn(_wire.txn_request([ours], [_wire.delete(key)]))
                    floor()
                    for s in samples(floor, n):
                        floor_row.add("etcd put", s)

                    def also_put(r: Row) -> None:
                        for s in baseline:
                            r.add("etcd put", s)

                    r = row(f"Lock acquire()+release(), uncontended ({where})", target=2.0)
                    also_put(r)
                    _uncontended(r, "interlock", c.Lock(f"u-{uuid.uuid4().hex}"), n)
                    if members == 1:
                        _uncontended(r, "manager", manager.Lock(), n)
                        for peer, address in others:
                            _uncontended(r, peer, _RemoteLock(peer, address, _fresh()), n)

                    r = row(f"Lock hand-off between 2 processes ({where})", target=3.0)
                    also_put(r)
                    _handoff(r, "interlock", ctx, lambda: c.Lock(f"h-{uuid.uuid4().hex}"),
                             rounds)
                    if members == 1:
                        _handoff(r, "manager", ctx, manager.Lock, rounds)
                        for peer, address in others:
                            _handoff(r, peer, ctx,
                                     lambda: _RemoteLock(peer, address, _fresh()), rounds)

                    for side, recipe in (("read", "ReadLock"), ("write", "WriteLock")):
                        r = row(f"RWLock {side} acquire()+release(), uncontended ({where})")
                        also_put(r)
                        rw = c.RWLock(f"rw-{uuid.uuid4().hex}")
                        _uncontended(r, "interlock",
                                     rw.read_lock() if side == "read" else rw.write_lock(), n)
                        if members == 1 and zookeeper is not None:
                            _uncontended(r, "zookeeper",
                                         _RemoteLock("zookeeper", zookeeper[1], _fresh(),
                                                     recipe), n)

                    for procs in sizes:
                        _contended_floor(row(f"etcd floor of a contended Lock, {procs} "
                                             f"processes: join, hear the predecessor's "
                                             f"deletion, delete ({where})"),
                                         ctx, etcd.endpoints, procs, seconds)
                        if grpc_client:
                            _contended_floor(row(f"the same floor through etcd's gRPC API, "
                                                 f"{procs} processes ({where})"),
                                             ctx, etcd.endpoints, procs, seconds,
                                             _contend_floor_grpc_worker)
                        r = row(f"Lock contended by {procs} processes, per acquire+release "
                                f"({where})")
                        also_put(r)
                        _contended(r, "interlock", ctx,
                                   lambda: c.Lock(f"c-{uuid.uuid4().hex}"), procs, seconds)
                        if members == 1:
                            _contended(r, "manager", ctx, manager.Lock, procs, seconds)
                            for peer, address in others:
                                _contended(r, peer, ctx,
                                           lambda: _RemoteLock(peer, address, _fresh()),
                                           procs, seconds)

                    _barrier_floor(row(f"etcd floor of a Barrier(4) round: each party's "
                                       f"one write, seen by all four ({where})"),
                                   ctx, etcd.endpoints, max(10, rounds // 2))
                    r = row(f"Barrier(4) round ({where})", target=4.0)
                    also_put(r)
                    _barrier_rounds(r, "interlock", ctx,
                                    lambda k: c.Barrier(f"b-{uuid.uuid4().hex}", k),
                                    max(10, rounds // 2))
                    if members == 1:
                        _barrier_rounds(r, "manager", ctx, manager.Barrier, max(10, rounds // 2))

                    # The floor of a ping-pong round trip: the writes its critical path
                    # sends to etcd one after the other (each side's set, then, once the
                    # other side has seen it, that side's clear), without the two watch
                    # deliveries between them. The waits' reads are off that path.
                    floor_row = row(f"etcd floor of an Event round trip: four writes in "
                                    f"sequence ({where})")
                    flag, sets = b"/bench/event/flag", b"/bench/event/sets"

                    def event_floor() -> None:
                        for _ in range(2):
                            session.txn(_wire.txn_request([], [_wire.put(flag, b"1"),
                                                               _wire.put(sets, b"")]))
                            session.txn(_wire.txn_request([], [_wire.put(flag, b"0")]))
                    event_floor()
                    for s in samples(event_floor, n // 2):
                        floor_row.add("etcd put", s)

                    r = row(f"Event ping-pong, round trip ({where})", target=4.0)
                    also_put(r)
                    _event_ping_pong(r, "interlock", ctx,
                                     lambda: c.Event(f"e-{uuid.uuid4().hex}"), rounds)
                    if members == 1:
                        _event_ping_pong(r, "manager", ctx, manager.Event, rounds)
                finally:
                    c.close()
    finally:
        manager.shutdown()
        if redis_server is not None:
            redis_server[1].close()
            redis_server[0].kill()
            redis_server[0].wait()
        if zookeeper is not None:
            zookeeper[0].kill()
            zookeeper[0].wait()
            shutil.rmtree(zookeeper[2], ignore_errors=True)
    return rows
