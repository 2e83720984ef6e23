"""A process's connection to one etcd cluster: what it was connected with (:class:`Config`),
and the :class:`Session` that puts together its transport (:mod:`._transport`), its lease
(:mod:`._lease`) and its standing watches (:mod:`._watch`).

Every process has sessions of its own, made on first use: a child never uses its parent's
(:mod:`._fork`), as every process is its own etcd client with its own lease.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import threading
import time
from typing import Any, Dict, List, Optional, Set, Tuple

from . import _wire
from ._errors import AuthenticationError, ClusterError, LeaseNotFound
from ._lease import Lease
from ._transport import Credentials, Transport, tls_context
from ._watch import WatchHub

TLS_OPTIONS = ("ca_cert", "cert_key", "cert_cert")


class Config:
    """What a Cluster was connected with; it identifies the Session of each process.
    `options` holds the TLS files' paths and the user name; the password is kept apart, so
    that what identifies a connection (and travels in its pickles) never holds it."""

    def __init__(self, endpoints: List[Tuple[str, int]], namespace: str, lease_ttl: float,
                 timeout: float, options: Dict[str, Any],
                 password: Optional[str] = None) -> None:
        self.endpoints = endpoints
        self.namespace = namespace
        self.lease_ttl = lease_ttl
        self.timeout = timeout
        self.options = options
        self.password = password

    def key(self) -> Tuple[Any, ...]:
        """What identifies the connection: everything but the password."""
        return (tuple(self.endpoints), self.namespace, self.lease_ttl, self.timeout,
                tuple(sorted(self.options.items())))

    def session_key(self) -> Tuple[Any, ...]:
        """What identifies this process's session: the connection and (a digest of) the
        password, so that a connect() with another password gets a session of its own."""
        digest = None
        if self.password is not None:
            digest = hashlib.sha256(self.password.encode()).hexdigest()
        return self.key() + (digest,)

    def make_transport(self) -> Transport:
        user = self.options.get("user")
        if user is not None and self.password is None:
            raise AuthenticationError(
                f"no password for etcd user {user!r} in this process: a cluster primitive "
                f"that arrives in a pickle carries no password (only a child that "
                f"multiprocessing starts receives it); call interlock.cluster.connect() with "
                f"the user and password in this process first, or set "
                f"INTERLOCK_ETCD_PASSWORD")
        tls = None
        if self.options.get("ca_cert") is not None:
            tls = tls_context(self.options["ca_cert"], self.options.get("cert_cert"),
                              self.options.get("cert_key"))
        credentials = None
        if user is not None and self.password is not None:
            credentials = Credentials(user, self.password)
        return Transport(self.endpoints, self.timeout, credentials, tls, self.namespace)


class Session:
    """This process's transport, lease and standing watches for one Config."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.pid = os.getpid()
        self.closed = False
        self.transport = config.make_transport()
        self._lease = Lease(self.transport, config.lease_ttl, config.timeout)
        self.watches = WatchHub(self.transport, config.timeout)
        self._ids = itertools.count(1)
        # The per-owner keys that a thread of this process holds or waits with (is_stray).
        self._keys_lock = threading.Lock()
        self._keys_in_use: Set[bytes] = set()

    # ---- requests -------------------------------------------------------------------------

    def call(self, path: str, body: _wire.Json, deadline: Optional[float] = None) -> _wire.Json:
        """One request under the retry policy (ClusterUnavailableError when no member answers
        within the cluster's timeout, or by `deadline`). A key refused because its lease has
        expired (LeaseNotFound) makes the next key go on a new lease."""
        if self.closed:
            raise ClusterError("this cluster connection is closed")
        try:
            return self.transport.call(path, body, deadline)
        except LeaseNotFound:
            self._lease.gone()
            raise

    def txn(self, body: _wire.Json, deadline: Optional[float] = None) -> _wire.Txn:
        return _wire.Txn(self.call("/v3/kv/txn", body, deadline))

    def range(self, key: bytes, range_end: bytes = b"", **options: Any) -> List[_wire.KeyValue]:
        answer = self.call("/v3/kv/range", _wire.range_request(key, range_end, **options))
        return [_wire.KeyValue.decode(kv) for kv in answer.get("kvs", [])]

    # ---- the lease ------------------------------------------------------------------------

    def lease(self) -> int:
        """The lease that new keys of this process are attached to."""
        return self._lease.current()

    def lease_alive(self, lease_id: int) -> bool:
        return self._lease.alive(lease_id)

    def lease_lost(self, lease_id: int) -> bool:
        return self._lease.lost(lease_id)

    def revoke(self) -> None:
        """Ends this process's lease now, releasing everything it holds on the cluster."""
        self._lease.revoke()

    # ---- keys in use, and strays ----------------------------------------------------------

    def use_key(self, key: bytes) -> None:
        """A thread of this process is about to create `key` (named by new_id()) and will hold
        or wait with it; call before sending the request that creates it."""
        with self._keys_lock:
            self._keys_in_use.add(key)

    def drop_key(self, key: bytes) -> None:
        """This process no longer holds or waits with `key` (deleted, or never created)."""
        with self._keys_lock:
            self._keys_in_use.discard(key)

    def is_stray(self, key: bytes) -> bool:
        """Whether `key` is a stray: named by this process (its id begins with one of our
        leases) but held or awaited by no thread of it. A stray is a late copy of a request:
        an attempt that timed out on a stopped or cut-off member, which that member applies
        when it comes back, after the call has been answered elsewhere and its key has gone.
        Nothing will ever delete it but its lease, so the process whose key it names
        deletes it when it sees it."""
        owner = key.rsplit(b"/", 1)[-1].split(b"-", 1)[0]
        try:
            lease = int(owner, 16)
        except ValueError:
            return False
        with self._keys_lock:
            return lease in self._lease.granted and key not in self._keys_in_use

    def strays_possible(self) -> bool:
        """Whether a stray of this process may exist: false until a transaction's attempt
        ends without etcd's answer (only such an attempt can land late). Until then the
        primitives skip their reads of the keys named on this process's leases."""
        return self.transport.unanswered_txn

    def new_id(self) -> str:
        """A key component unique among every key any process ever makes: the lease and a
        counter."""
        return f"{self.lease():x}-{next(self._ids)}"

    def op_id(self) -> str:
        """A value unique to one write, by which a retried write recognises itself."""
        return f"{os.getpid()}-{threading.get_ident()}-{next(self._ids)}-{time.monotonic_ns()}"

    # ---- the end --------------------------------------------------------------------------

    def close(self) -> None:
        """Revokes the lease (releasing everything this process holds on the cluster), closes
        the watches and the connections. In a forked child, only forgets them (_fork)."""
        if self.closed:
            return
        self.closed = True
        if os.getpid() != self.pid:
            return
        self._lease.close()
        self.watches.close()
        self.transport.close()


_sessions: Dict[Tuple[Any, ...], Session] = {}
_sessions_lock = threading.Lock()


def session_for(config: Config) -> Session:
    """This process's session for `config` (made on first use in each process)."""
    key = config.session_key()
    with _sessions_lock:
        session = _sessions.get(key)
        if session is None or session.closed or session.pid != os.getpid():
            session = _sessions[key] = Session(config)
        return session


def drop_session(config: Config) -> None:
    with _sessions_lock:
        session = _sessions.pop(config.session_key(), None)
    if session is not None and session.pid == os.getpid():
        session.close()


def forget_all_in_child() -> None:
    """(A forked child, by _fork.) The parent's sessions are the parent's: the child drops
    them without touching their connections (their sockets are closed in the child alone when
    collected), and makes its own on first use."""
    global _sessions_lock
    _sessions_lock = threading.Lock()  # another thread may have held it at the fork
    for session in list(_sessions.values()):
        session.closed = True
    _sessions.clear()
