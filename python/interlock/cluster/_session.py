"""A process's connection to etcd: one client, one lease, one watch stream.

etcd is reached through etcd-sdk-python (``pyetcd``): its endpoint handling and the gRPC
stubs and messages it generates from etcd's API. On top of them this module provides what the
primitives need:

* :meth:`Session.call`: one RPC with a deadline, failing over between endpoints and retrying
  outages until the cluster's timeout, after which it raises ClusterUnavailableError;
* the session's **lease**, granted on first use and kept alive by a thread every TTL/3. Every
  key a process creates for a hold, a wait or an arrival is attached to it, so that all of
  them vanish when the process dies or stays cut off for longer than the TTL. If the lease is
  lost anyway, the session takes a new one and remembers the old one as lost;
* **watches** from a revision, multiplexed on one bidirectional stream (:class:`WatchHub`). A
  broken stream is re-established on another endpoint and every watch resumes from the
  revision after the last one it saw, so no change is ever missed between a check and a
  watch, nor across a reconnection.

Fork. gRPC cannot be used by a forked child while another thread of the parent was inside it,
so before every fork (the ``cluster`` stage of ``interlock._lifecycle``) each session stops
its keep-alive thread and closes its watch stream, and afterwards the parent resumes them
(watches from the revision they had reached). A child never uses its parent's session: the
first cluster call in a new process makes a session of its own, with its own lease, as every
process is its own client.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import os
import queue
import threading
import time
import weakref
from typing import Any, Callable, Dict, Iterator, List, Optional, Set, Tuple

import grpc

from .. import _lifecycle
from ._errors import ClusterError, ClusterUnavailableError, LeaseNotFound

try:
    from pyetcd import etcdrpc
    from pyetcd.client import Endpoint, MultiEndpointEtcd3Client
except ImportError:  # pragma: no cover - the extra is missing (the cause stays chained)
    raise ImportError(
        "interlock.cluster needs an etcd client: pip install 'interlock[cluster]'")

# gRPC codes that mean "try again, maybe elsewhere": the member is down, cut off, stopped,
# electing a leader, or overloaded. Anything else is a refusal.
# One attempt of a call gets at most this share of the cluster's timeout (and at least a
# second): a member that is electing a leader, or stopped, then costs one attempt, after which
# the call is retried on another member, instead of the call's whole time.
ATTEMPT_SHARE = 0.3
RETRYABLE = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED,
             grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.INTERNAL,
             grpc.StatusCode.UNKNOWN, grpc.StatusCode.CANCELLED, grpc.StatusCode.ABORTED}
FAILOVER_RETRY_SECONDS = 5.0  # how soon a failed endpoint is tried again


class Config:
    """What a Cluster was connected with; it identifies the Session of each process."""

    def __init__(self, endpoints: List[Tuple[str, int]], namespace: str, lease_ttl: float,
                 timeout: float, options: Dict[str, Any]) -> None:
        self.endpoints = endpoints
        self.namespace = namespace
        self.lease_ttl = lease_ttl
        self.timeout = timeout
        self.options = options

    def key(self) -> Tuple[Any, ...]:
        return (tuple(self.endpoints), self.namespace, self.lease_ttl, self.timeout,
                tuple(sorted(self.options.items())))

    def make_client(self) -> MultiEndpointEtcd3Client:
        opts = self.options
        secure = opts.get("ca_cert") is not None
        creds = None
        if secure:
            creds = MultiEndpointEtcd3Client.get_secure_creds(
                opts["ca_cert"], opts.get("cert_key"), opts.get("cert_cert"))
        grpc_options = [
            # Notice a silent member (stopped, cut off) within seconds while a call or the
            # watch stream is open. etcd answers pings sent more often than every 5 s, or
            # with no call open, with GOAWAY (--grpc-keepalive-min-time, and no
            # PermitWithoutStream): so every 10 s, and only while calls are open.
            ("grpc.keepalive_time_ms", 10000), ("grpc.keepalive_timeout_ms", 5000),
            ("grpc.http2.max_pings_without_data", 0),
        ]
        endpoints = [Endpoint(host, port, secure=secure, creds=creds,
                              time_retry=FAILOVER_RETRY_SECONDS, opts=grpc_options)
                     for host, port in self.endpoints]
        return MultiEndpointEtcd3Client(endpoints=endpoints, timeout=self.timeout,
                                        user=opts.get("user"), password=opts.get("password"),
                                        failover=True)


class Session:
    """This process's client, lease and watch stream for one Config."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.pid = os.getpid()
        self.closed = False
        self._lock = threading.RLock()
        self._grant_lock = threading.Lock()
        self._client: Optional[MultiEndpointEtcd3Client] = None
        self._ids = itertools.count(1)
        # The lease: its id, when it was last confirmed alive, and leases known to be lost.
        self._lease_id = 0
        self._renewed_at = 0.0
        self._lost_leases: Set[int] = set()
        self._stop = threading.Event()
        self._keepalive_thread: Optional[threading.Thread] = None
        self._paused = False  # between pause() and resume(): no keep-alive may start
        self.watches = WatchHub(self)
        _live_sessions.add(self)

    # ---- RPCs --------------------------------------------------------------------------

    def client(self) -> MultiEndpointEtcd3Client:
        with self._lock:
            if self.closed:
                raise ClusterError("this cluster connection is closed")
            if self._client is None:
                try:
                    self._client = self.config.make_client()
                except grpc.RpcError as exc:
                    raise ClusterUnavailableError(
                        f"cannot authenticate with etcd at {self._where()}: {exc}") from exc
            return self._client

    def _where(self) -> str:
        return ", ".join(f"{host}:{port}" for host, port in self.config.endpoints)

    def stub(self, service: str) -> Any:
        """The stub of `service` ("kv", "lease", "watch") on the endpoint in use."""
        client = self.client()
        for _ in range(2):
            try:
                if service == "watch":
                    return etcdrpc.WatchStub(client.channel)
                return getattr(client, service + "stub")
            except Exception as exc:  # pyetcd.exceptions.NoServerAvailableError
                error = exc
                # Every member failed recently. During a leader election all of them do,
                # through no fault of their own: forget the marks and try them again (a
                # member that is really down costs one attempt each time round).
                with self._lock:
                    for endpoint in client.endpoints.values():
                        endpoint.last_failed = 0
        raise _Unavailable(str(error)) from error

    def call(self, service: str, method: str, request: Any,
             deadline: Optional[float] = None) -> Any:
        """One RPC, retried (on another endpoint when there is one) while etcd is unreachable,
        until the cluster's timeout has passed or `deadline` (a time.monotonic() value) comes;
        then ClusterUnavailableError. Every request sent here must be safe to apply twice (a
        lost reply can hide a write that landed): the primitives make theirs so."""
        end = time.monotonic() + self.config.timeout
        if deadline is not None:
            end = min(end, max(deadline, time.monotonic() + 0.05))
        failure = "no endpoint answered"
        pause = 0.01
        while True:
            remaining = end - time.monotonic()
            if remaining <= 0:
                raise ClusterUnavailableError(
                    f"etcd at {self._where()} did not answer within {self.config.timeout:g} s "
                    f"({failure})")
            attempt = min(remaining, max(1.0, ATTEMPT_SHARE * self.config.timeout))
            used = None
            try:
                with _fork_gate.rpc():
                    stub = self.stub(service)
                    client = self.client()
                    used = client.endpoint_in_use
                    return getattr(stub, method)(request, timeout=attempt,
                                                 metadata=client.metadata,
                                                 credentials=client.call_credentials)
            except _Unavailable as exc:
                failure = str(exc)
            except grpc.RpcError as exc:
                code = exc.code()
                if code not in RETRYABLE:
                    details = exc.details()
                    if code == grpc.StatusCode.NOT_FOUND and "lease not found" in str(details):
                        self._lease_gone()
                        raise LeaseNotFound(f"etcd refused {method}: {details}") from exc
                    raise ClusterError(f"etcd refused {method}: {details}") from exc
                failure = f"{code.name}: {exc.details()}"
                self._endpoint_failed(used)
            time.sleep(min(pause, max(0.0, end - time.monotonic())))
            pause = min(pause * 2, 0.2)

    def _endpoint_in_use(self) -> Any:
        client = self._client
        return client.endpoint_in_use if client is not None else None

    def _endpoint_failed(self, endpoint: Any, from_watch: bool = False) -> None:
        """`endpoint` (the one a call was sent to) did not answer. Calls move away from it,
        unless they already have: a slow attempt that fails late must not mark the member
        that the others moved to meanwhile."""
        with self._lock:
            client = self._client
            if client is None or endpoint is None or len(client.endpoints) < 2:
                return
            endpoint.fail()
            if endpoint is not client.endpoint_in_use and client.endpoint_in_use is not None:
                return  # the others moved on already
            client._clear_old_stubs()
        if not from_watch:
            # The watch stream may sit on the same silent member: move it too (each watch
            # resumes from the revision after the last one it saw).
            self.watches.restart_stream()

    # ---- the lease ----------------------------------------------------------------------

    def lease(self) -> int:
        """The lease that new keys of this process are attached to (granted on first use, and
        again after a loss; one grant at a time, so that no key lands on a lease that nobody
        keeps alive)."""
        with self._grant_lock:
            with self._lock:
                if self._lease_id and self._lease_id not in self._lost_leases:
                    return self._lease_id
            ttl = max(1, round(self.config.lease_ttl))
            sent = time.monotonic()
            response = self.call("lease", "LeaseGrant",
                                 etcdrpc.LeaseGrantRequest(TTL=ttl, ID=0))
            with self._lock:
                self._lease_id = response.ID
                self._renewed_at = sent
                self._start_keepalive()
                return self._lease_id

    def _lease_gone(self) -> None:
        """etcd no longer knows our lease (it expired while this process was stopped or cut
        off, before the keep-alive noticed): the next key goes on a new one."""
        with self._lock:
            if self._lease_id:
                self._lost_leases.add(self._lease_id)

    def lease_alive(self, lease_id: int) -> bool:
        """Whether etcd still has `lease_id` (one call; ClusterUnavailableError if none
        answers): keys on a live lease can only have been deleted by a transaction."""
        response = self.call("lease", "LeaseTimeToLive",
                             etcdrpc.LeaseTimeToLiveRequest(ID=lease_id))
        return bool(response.TTL > 0)

    def lease_lost(self, lease_id: int) -> bool:
        """True when keys on `lease_id` may be gone: etcd said the lease expired, or it has not
        confirmed the lease for longer than its TTL (it may have expired it meanwhile)."""
        with self._lock:
            if lease_id in self._lost_leases:
                return True
            if lease_id != self._lease_id:
                return True
            return time.monotonic() - self._renewed_at > self.config.lease_ttl

    def _start_keepalive(self) -> None:
        # (self._lock held.) Not while paused for a fork: resume() starts it afterwards.
        if self._paused:
            return
        if self._keepalive_thread is None or not self._keepalive_thread.is_alive():
            self._stop.clear()
            self._keepalive_thread = threading.Thread(
                target=self._keep_alive, name="interlock-cluster-lease", daemon=True)
            self._keepalive_thread.start()

    def _keep_alive(self) -> None:
        """Renews the lease every TTL/3, counted from the last renewal (not from the thread's
        start: a fork stops and restarts this thread, and forks may come more often than
        TTL/3); a renewal that fails is tried again at once, on another member."""
        period = self.config.lease_ttl / 3
        retry_at = 0.0
        while True:
            due = max(self._renewed_at + period, retry_at)
            if self._stop.wait(max(0.0, due - time.monotonic())):
                return
            lease_id = self._lease_id
            if not lease_id or lease_id in self._lost_leases:
                retry_at = time.monotonic() + period
                continue
            sent = time.monotonic()  # the lease lives at least TTL from here if renewed
            try:
                # A renewal that a silent member (stopped, cut off) swallows must not cost the
                # lease: each attempt gets a quarter of the period, the next goes elsewhere.
                ttl = self._renew(lease_id, sent + period, attempt=max(0.2, period / 4))
            except (ClusterError, ValueError):
                retry_at = time.monotonic() + min(0.2, period)
                continue
            with self._lock:
                if ttl <= 0:
                    self._lost_leases.add(lease_id)  # expired: its keys are gone
                else:
                    self._renewed_at = sent

    def _renew(self, lease_id: int, deadline: float, attempt: float) -> int:
        request = etcdrpc.LeaseKeepAliveRequest(ID=lease_id)

        def once(stub: Any, **kwargs: Any) -> Any:
            # One request, one answer, then the stream is cancelled: an open stream keeps a
            # gRPC thread polling, and a fork while it polls would leave the child's gRPC
            # unusable (see _ForkGate).
            call = stub.LeaseKeepAlive(iter([request]), **kwargs)
            try:
                for response in call:
                    return response
            finally:
                call.cancel()
            raise grpc.RpcError()

        response = self.call_streaming("lease", once, deadline, attempt)
        return int(response.TTL)

    def call_streaming(self, service: str, use: Callable[..., Any], deadline: float,
                       attempt: float) -> Any:
        """Like call(), for a streaming RPC that `use(stub, timeout=..., metadata=...)` runs:
        each attempt gets at most `attempt` seconds, then the next goes to another member."""
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ClusterUnavailableError("etcd did not answer in time")
            used = None
            try:
                with _fork_gate.rpc():
                    client = self.client()
                    stub = self.stub(service)
                    used = client.endpoint_in_use
                    return use(stub, timeout=min(remaining, attempt), metadata=client.metadata)
            except _Unavailable:
                pass
            except grpc.RpcError:
                self._endpoint_failed(used)
            time.sleep(0.05)

    def revoke(self) -> None:
        """Ends the lease now (closing the cluster): every key of this process goes at once."""
        lease_id = self._lease_id
        if lease_id and lease_id not in self._lost_leases:
            try:
                self.call("lease", "LeaseRevoke", etcdrpc.LeaseRevokeRequest(ID=lease_id),
                          deadline=time.monotonic() + min(self.config.timeout, 2.0))
            except ClusterError:
                pass  # unreachable: the lease will expire by itself
        with self._lock:
            self._lost_leases.add(lease_id)

    def new_id(self) -> str:
        """A key component unique among every key any process ever makes: the lease and a
        counter."""
        return f"{self.lease():x}-{next(self._ids)}"

    def op_id(self) -> str:
        """A value unique to one write, by which a retried write recognises itself."""
        return f"{os.getpid()}-{threading.get_ident()}-{next(self._ids)}-{time.monotonic_ns()}"

    # ---- fork and close -----------------------------------------------------------------

    def pause(self) -> None:
        """Before a fork: no thread of ours may be inside gRPC."""
        # Under the lock, which _start_keepalive holds from making the thread to starting it:
        # a thread granting the lease at this moment cannot leave one made but not started,
        # nor start one after this.
        with self._lock:
            self._paused = True
            self._stop.set()
            thread = self._keepalive_thread
        if thread is not None:
            thread.join(self.config.timeout)
        self.watches.pause()

    def resume(self) -> None:
        """After a fork, in the parent."""
        with self._lock:
            self._paused = False
            if self.closed:
                return
            if self._lease_id:
                self._start_keepalive()
        self.watches.resume()

    def close(self) -> None:
        if self.closed:
            return
        if os.getpid() == self.pid:
            self.revoke()
            self.pause()
        with self._lock:
            self.closed = True
            client, self._client = self._client, None
        if client is not None and os.getpid() == self.pid:
            client.close()
        _live_sessions.discard(self)


class _Unavailable(Exception):
    """No endpoint can be tried right now (all recently failed)."""


# ---- watches ---------------------------------------------------------------------------

class Watch:
    """A standing watch on one key or range: every change made after revision
    ``complete_after`` is (or will be) in ``buffer``, in revision order, until the session
    closes. Waiters share it (see Primitive._wait_for_change); etcd's stream fills it.

    A standing watch is created from "now" (so that etcd serves it at once: a watch that
    starts at a past revision waits for etcd's background catch-up, up to 100 ms) and, after
    a broken stream, is re-created from the revision after the last event it received, so it
    never has a gap. The buffer keeps the latest BUFFER events; a waiter that needs older ones
    is told to look at the state again, never left waiting for a change it missed."""

    BUFFER = 4096

    def __init__(self, hub: "WatchHub", key: bytes, range_end: bytes) -> None:
        self.hub = hub
        self.key = key
        self.range_end = range_end
        self.next_revision = 0  # 0: from now (first creation); else resume from here
        self.watch_id: Optional[int] = None
        self.cond = threading.Condition(threading.Lock())
        self.buffer: "collections.deque[Tuple[int, Any]]" = collections.deque(
            maxlen=self.BUFFER)
        self.complete_after: Optional[int] = None  # None until etcd confirms the watch
        self.dropped_through = 0  # the newest revision that left the buffer
        self.error: Optional[Exception] = None
        self.last_used = time.monotonic()
        self.waiting = 0
        # Who to wake: waiters that want every change, and those that want only changes of
        # some keys (a lock's waiter: its predecessor's key), by key, counted.
        self.wake_all = 0
        self.wake_keys: Dict[bytes, int] = {}

    def add(self, events: List[Any]) -> None:
        """Buffers a response's events and wakes the waiters they may concern (the others
        see them at their next wake-up: they are in the buffer)."""
        with self.cond:
            wake = self.wake_all > 0
            for event in events:
                if len(self.buffer) == self.buffer.maxlen:
                    self.dropped_through = self.buffer[0][0]
                self.buffer.append((event.kv.mod_revision, event))
                wake = wake or event.kv.key in self.wake_keys
            if wake:
                self.cond.notify_all()

    def interested(self, key: Optional[bytes], delta: int) -> None:
        """(cond held) A waiter starts (+1) or stops (-1) wanting changes of `key` (None:
        of every key)."""
        if key is None:
            self.wake_all += delta
            return
        count = self.wake_keys.get(key, 0) + delta
        if count > 0:
            self.wake_keys[key] = count
        else:
            self.wake_keys.pop(key, None)

    def created(self, header_revision: int) -> None:
        with self.cond:
            if self.complete_after is None:
                self.complete_after = header_revision
                self.next_revision = header_revision + 1
            self.error = None
            self.cond.notify_all()

    def restart_from_now(self) -> None:
        """etcd compacted the revisions this watch was to resume from: start over from now;
        waiters look at the state again."""
        with self.cond:
            self.complete_after = None
            self.next_revision = 0
            self.buffer.clear()
            self.cond.notify_all()

    def fail(self, error: Exception) -> None:
        with self.cond:
            self.error = error
            self.cond.notify_all()


class WatchHub:
    """All watches of a session, on one bidirectional Watch stream, re-established (from each
    watch's next revision) whenever it breaks."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self._lock = threading.Lock()
        self._watches: Dict[int, Watch] = {}  # by watch id, once etcd created them
        self._pending: List[Watch] = []  # create requests sent, answers not yet received
        self._all: "weakref.WeakSet[Watch]" = weakref.WeakSet()
        self._standing: Dict[Tuple[bytes, bytes], Watch] = {}
        self._requests: Optional["queue.Queue[Any]"] = None
        self._thread: Optional[threading.Thread] = None
        self._paused = False
        self._down_since: Optional[float] = None
        self._call: Any = None

    MAX_IDLE_WATCHES = 256

    def standing(self, key: bytes, range_end: bytes, deadline: Optional[float]) -> Watch:
        """The standing watch on [key, range_end), created (and confirmed by etcd) on first
        use. Idle ones beyond MAX_IDLE_WATCHES are cancelled, least recently used first."""
        with self._lock:
            w = self._standing.get((key, range_end))
            if w is None:
                w = self._standing[(key, range_end)] = Watch(self, key, range_end)
                self._all.add(w)
                self._ensure_stream()
                self._send_create(w)
                self._evict_idle()
            w.last_used = time.monotonic()
        end = time.monotonic() + self.session.config.timeout
        if deadline is not None:
            end = min(end, deadline)
        with w.cond:
            while w.complete_after is None and w.error is None:
                left = end - time.monotonic()
                if left <= 0:
                    break
                w.cond.wait(min(left, 0.25))
        return w

    def _evict_idle(self) -> None:
        """(lock held)"""
        idle = [w for w in self._standing.values() if not w.waiting]
        if len(idle) <= self.MAX_IDLE_WATCHES:
            return
        idle.sort(key=lambda w: w.last_used)
        for w in idle[:len(idle) - self.MAX_IDLE_WATCHES]:
            del self._standing[(w.key, w.range_end)]
            self._cancel_locked(w)

    def _cancel_locked(self, w: Watch) -> None:
        self._all.discard(w)
        if w in self._pending:
            self._pending.remove(w)
            w.watch_id = -1  # cancel it when its creation is confirmed
        if w.watch_id is not None and w.watch_id in self._watches:
            del self._watches[w.watch_id]
            if self._requests is not None:
                self._requests.put(etcdrpc.WatchRequest(
                    cancel_request=etcdrpc.WatchCancelRequest(watch_id=w.watch_id)))

    def _send_create(self, w: Watch) -> None:
        if self._requests is None:
            return  # sent when the stream comes back
        self._pending.append(w)
        self._requests.put(etcdrpc.WatchRequest(create_request=etcdrpc.WatchCreateRequest(
            key=w.key, range_end=w.range_end, start_revision=w.next_revision)))

    def _ensure_stream(self) -> None:
        if self._thread is not None or self._paused:
            return
        self._requests = queue.Queue()
        self._thread = threading.Thread(target=self._run, args=(self._requests,),
                                        name="interlock-cluster-watch", daemon=True)
        self._thread.start()

    def _run(self, requests: "queue.Queue[Any]") -> None:
        def request_iterator() -> Iterator[Any]:
            while True:
                item = requests.get()
                if item is None:
                    return
                yield item

        call: Any = None
        used: Any = None
        try:
            stub = self.session.stub("watch")
            used = self.session._endpoint_in_use()
            client = self.session.client()
            call = stub.Watch(request_iterator(), metadata=client.metadata)
            with self._lock:
                self._call = call
                if self._paused or self._requests is not requests:
                    call.cancel()  # pause() came before the call existed: it could not
            for response in call:
                self._down_since = None
                self._handle(response)
        except (grpc.RpcError, _Unavailable, ClusterError) as exc:
            cancelled = (isinstance(exc, grpc.RpcError)
                         and exc.code() == grpc.StatusCode.CANCELLED)
            if not cancelled:  # (a cancel is ours: a pause for a fork, or a move)
                self.session._endpoint_failed(used, from_watch=True)
        finally:
            with self._lock:
                stopped_on_purpose = self._paused or self._requests is not requests
                self._thread = None
                self._requests = None
                # Every watch will be created again from its next revision.
                self._pending.clear()
                for w in list(self._watches.values()):
                    w.watch_id = None
                self._watches.clear()
                if not stopped_on_purpose:
                    self._reconnect_later()

    def _reconnect_later(self) -> None:
        """(lock held) The stream broke: tell the watchers if it stays down too long, and
        re-establish it after a short pause."""
        now = time.monotonic()
        if self._down_since is None:
            self._down_since = now
        if now - self._down_since > self.session.config.timeout:
            error = ClusterUnavailableError(
                f"lost the watch stream to etcd for more than {self.session.config.timeout:g} s")
            for w in list(self._all):
                w.fail(error)
            self._down_since = now
        timer = threading.Timer(0.1, self._restart)
        timer.daemon = True
        timer.start()

    def _restart(self) -> None:
        with self._lock:
            if self._paused or self._thread is not None or not self._all:
                return
            self._ensure_stream()
            for w in list(self._all):
                if w.watch_id is None and w not in self._pending:
                    self._send_create(w)

    def _handle(self, response: Any) -> None:
        with self._lock:
            if response.created:
                if not self._pending:
                    return
                w = self._pending.pop(0)
                if w.watch_id == -1:  # cancelled meanwhile
                    if not response.canceled and self._requests is not None:
                        self._requests.put(etcdrpc.WatchRequest(
                            cancel_request=etcdrpc.WatchCancelRequest(
                                watch_id=response.watch_id)))
                    return
                if response.canceled:
                    if response.compact_revision:  # its resume revision is gone: from now
                        w.restart_from_now()
                        self._send_create(w)
                    else:
                        w.fail(ClusterError(f"etcd refused a watch: {response.cancel_reason}"))
                    return
                w.watch_id = response.watch_id
                self._watches[response.watch_id] = w
                w.created(response.header.revision)
                return
            w = self._watches.get(response.watch_id)  # type: ignore[assignment]
            if w is None:
                return
            if response.compact_revision or response.canceled:
                del self._watches[response.watch_id]
                w.watch_id = None
                if response.compact_revision:
                    w.restart_from_now()
                    self._send_create(w)
                return
            if response.events:
                w.next_revision = response.events[-1].kv.mod_revision + 1
                w.add(list(response.events))

    def restart_stream(self) -> None:
        """Drops the stream (if any); it comes back at once, on the endpoint now in use."""
        with self._lock:
            call = getattr(self, "_call", None) if self._thread is not None else None
        if call is not None:
            call.cancel()

    def pause(self) -> None:
        with self._lock:
            self._paused = True
            thread, requests, call = self._thread, self._requests, getattr(self, "_call", None)
            self._requests = None
        if requests is not None:
            requests.put(None)
        if call is not None:
            call.cancel()
        if thread is not None:
            thread.join(self.session.config.timeout)

    def resume(self) -> None:
        with self._lock:
            self._paused = False
            self._thread = None
            self._down_since = None
            self._pending.clear()
            self._watches.clear()
            for w in list(self._all):
                w.watch_id = None
            if self._all:
                self._ensure_stream()
                for w in list(self._all):
                    self._send_create(w)


# ---- fork: no thread may be inside gRPC -----------------------------------------------

class _ForkGate:
    """Keeps fork() and gRPC calls apart.

    gRPC's own fork handlers make a forked child able to open new channels, but only when no
    other thread is inside a gRPC call at the moment of the fork (otherwise they are skipped
    and the child's gRPC hangs). Every unary call and keep-alive enters the gate; before a
    fork, the long-lived streams are stopped (Session.pause) and the gate closes: new calls
    wait, and the fork waits for the calls in flight, each bounded by its attempt's
    deadline."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._inside = 0
        self._closed = False

    @contextlib.contextmanager
    def rpc(self) -> Iterator[None]:
        with self._cond:
            while self._closed:
                self._cond.wait()
            self._inside += 1
        try:
            yield
        finally:
            with self._cond:
                self._inside -= 1
                if not self._inside:
                    self._cond.notify_all()

    def close(self, wait: float) -> None:
        with self._cond:
            self._closed = True
            self._cond.wait_for(lambda: not self._inside, wait)

    def open(self) -> None:
        with self._cond:
            self._closed = False
            self._cond.notify_all()


_fork_gate = _ForkGate()
_live_sessions: "weakref.WeakSet[Session]" = weakref.WeakSet()


def _before_fork() -> None:
    longest = 0.0
    for session in list(_live_sessions):
        if session.pid == os.getpid() and not session.closed:
            session.pause()
            longest = max(longest, session.config.timeout)
    if longest:
        _fork_gate.close(wait=max(1.0, ATTEMPT_SHARE * longest) + 1.0)


def _after_fork_in_parent() -> None:
    _fork_gate.open()
    for session in list(_live_sessions):
        if session.pid == os.getpid():
            session.resume()


def _after_fork_in_child() -> None:
    global _fork_gate, _sessions_lock
    _fork_gate = _ForkGate()
    _sessions_lock = threading.Lock()  # another thread may have held it at the fork
    # The parent's sessions belong to the parent: forget them without touching gRPC.
    for session in list(_live_sessions):
        session.closed = True
        session._client = None
    _live_sessions.clear()


_lifecycle.register("cluster", before=_before_fork, after_in_parent=_after_fork_in_parent,
                    after_in_child=_after_fork_in_child)


_sessions: Dict[Tuple[Any, ...], Session] = {}
_sessions_lock = threading.Lock()


def session_for(config: Config) -> Session:
    """This process's session for `config` (made on first use in each process)."""
    key = config.key()
    with _sessions_lock:
        session = _sessions.get(key)
        if session is None or session.closed or session.pid != os.getpid():
            session = _sessions[key] = Session(config)
        return session


def drop_session(config: Config) -> None:
    with _sessions_lock:
        session = _sessions.pop(config.key(), None)
    if session is not None and session.pid == os.getpid():
        session.close()
