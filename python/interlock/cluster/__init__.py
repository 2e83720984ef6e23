"""interlock.cluster: multiprocessing's primitives across hosts, on etcd.

    >>> from interlock import cluster                                        # doctest: +SKIP
    >>> with cluster.connect(["10.0.0.1:2379", "10.0.0.2:2379"]) as c:       # doctest: +SKIP
    ...     with c.Lock("inventory"):
    ...         ...

Every process that asks for the same name in the same namespace gets the same primitive. The
primitives behave as multiprocessing's (docs/cluster.md lists the few differences), and they
hold up when a process dies or is cut off: everything a process holds or waits with is
attached to its etcd lease, which expires with it. See docs/cluster.md.
"""

from __future__ import annotations

import json
import threading
import weakref
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

from . import _keys
from ._errors import ClusterError, ClusterUnavailableError, LockLostError, NotHeldError
from ._session import Config, drop_session, session_for, Session

__all__ = ["connect", "Cluster", "ClusterError", "ClusterUnavailableError", "LockLostError",
           "NotHeldError"]

DEFAULT_TIMEOUT = 10.0
Endpoints = Union[str, Sequence[str]]


def _parse_endpoints(endpoints: Any) -> List[Tuple[str, int]]:
    if isinstance(endpoints, str):
        endpoints = [endpoints]
    if not isinstance(endpoints, (list, tuple)):
        raise TypeError(f"endpoints must be a list of 'host:port' strings, not "
                        f"{type(endpoints).__name__}")
    if not endpoints:
        raise ValueError("endpoints must name at least one etcd member")
    parsed = []
    for endpoint in endpoints:
        if not isinstance(endpoint, str):
            raise TypeError(f"an endpoint must be a 'host:port' str, not "
                            f"{type(endpoint).__name__}")
        text = endpoint
        for scheme in ("http://", "https://"):
            if text.startswith(scheme):
                text = text[len(scheme):]
        host, sep, port = text.rpartition(":")
        host = host.strip("[]")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"endpoint {endpoint!r} is not 'host:port'")
        parsed.append((host, int(port)))
    return parsed


def _positive(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{what} must be a number of seconds, not {type(value).__name__}")
    seconds = float(value)
    if not (0 < seconds < 1e7):
        raise ValueError(f"{what} must be a positive number of seconds, not {value!r}")
    return seconds


def connect(endpoints: Endpoints, *, namespace: str = "interlock", lease_ttl: float = 10.0,
            timeout: float = DEFAULT_TIMEOUT, user: Optional[str] = None,
            password: Optional[str] = None, ca_cert: Optional[str] = None,
            cert_key: Optional[str] = None, cert_cert: Optional[str] = None) -> "Cluster":
    """Connects to the etcd cluster at ``endpoints`` (``["host:port", ...]``) and returns a
    :class:`Cluster`, after checking that a member answers (ClusterUnavailableError when none
    does within ``timeout``).

    ``namespace`` keeps this program's primitives apart from others'. ``lease_ttl`` is how long
    a process may be silent (dead, stopped or cut off) before everything it holds is released
    for others: see docs/cluster.md on sizing it. ``timeout`` bounds how long any call waits
    for the cluster while it is unreachable. ``user``/``password`` log in to etcd;
    ``ca_cert`` (with ``cert_key`` and ``cert_cert`` for client certificates) turns on TLS.
    """
    config = Config(_parse_endpoints(endpoints), _keys.check_namespace(namespace),
                    _positive(lease_ttl, "lease_ttl"), _positive(timeout, "timeout"),
                    {k: v for k, v in (("user", user), ("password", password),
                                       ("ca_cert", ca_cert), ("cert_key", cert_key),
                                       ("cert_cert", cert_cert)) if v is not None})
    if config.lease_ttl < 2:
        raise ValueError("lease_ttl must be at least 2 seconds (etcd's minimum lease)")
    cluster = Cluster(config)
    cluster.ping()
    return cluster


class Cluster:
    """A connection to an etcd cluster, and the factory of its named primitives.

    It is a context manager: closing it revokes this process's lease, which releases
    everything the process holds and withdraws everything it waits for. Each process that
    uses a Cluster (a child that received a primitive, say) has a connection and a lease of
    its own."""

    def __init__(self, config: Config) -> None:
        self._config = config
        self._closed = False
        self._made: "weakref.WeakValueDictionary[Tuple[Any, ...], Any]" = (
            weakref.WeakValueDictionary())
        self._made_lock = threading.Lock()

    # ---- identity -------------------------------------------------------------------------

    @property
    def endpoints(self) -> List[str]:
        return [f"{host}:{port}" for host, port in self._config.endpoints]

    @property
    def namespace(self) -> str:
        return self._config.namespace

    @property
    def lease_ttl(self) -> float:
        return self._config.lease_ttl

    @property
    def timeout(self) -> float:
        return self._config.timeout

    def _state(self) -> Tuple[Any, ...]:
        return self._config.key()

    def __reduce__(self) -> Tuple[Any, ...]:
        return (_cluster_from_state, (self._state(),))

    def __repr__(self) -> str:
        return (f"<interlock.cluster.Cluster {','.join(self.endpoints)} "
                f"namespace={self.namespace!r}>")

    # ---- connection -----------------------------------------------------------------------

    def _session(self) -> Session:
        if self._closed:
            raise ClusterError("this cluster connection is closed")
        return session_for(self._config)

    def ping(self) -> None:
        """Checks that a member answers (ClusterUnavailableError otherwise)."""
        from pyetcd import etcdrpc

        self._session().call("kv", "Range", etcdrpc.RangeRequest(
            key=f"/{self.namespace}/".encode(), limit=1, keys_only=True))

    def close(self) -> None:
        """Revokes this process's lease and closes its connection (idempotent)."""
        if not self._closed:
            self._closed = True
            drop_session(self._config)

    def __enter__(self) -> "Cluster":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ---- the factories --------------------------------------------------------------------

    def _make(self, kind: str, name: str, **params: Any) -> Any:
        from ._barrier import Barrier
        from ._condition import Condition
        from ._event import Event
        from ._lock import Lock, RLock
        from ._semaphore import BoundedSemaphore, Semaphore

        classes: Dict[str, Callable[..., Any]] = {
            "Lock": Lock, "RLock": RLock, "Semaphore": Semaphore,
            "BoundedSemaphore": BoundedSemaphore, "Condition": Condition, "Event": Event,
            "Barrier": Barrier}
        made = classes[kind](self, name, **params)
        return made

    def _cached(self, kind: str, name: str, **params: Any) -> Any:
        """One object per primitive and process (so that, for instance, an RLock unpickled twice
        is one RLock); parameters that differ from its own raise ValueError as usual."""
        key = (kind, name, json.dumps(params, sort_keys=True, default=id))
        with self._made_lock:
            found = self._made.get(key)
        if found is not None:
            return found
        made = self._make(kind, name, **params)
        with self._made_lock:
            return self._made.setdefault(key, made)

    def Lock(self, name: str) -> Any:  # noqa: N802 (multiprocessing's names)
        """The cluster lock called ``name``: see :class:`interlock.cluster._lock.Lock`."""
        return self._cached("Lock", name)

    def RLock(self, name: str) -> Any:  # noqa: N802
        """The cluster recursive lock called ``name``."""
        return self._cached("RLock", name)

    def Semaphore(self, name: str, value: int = 1) -> Any:  # noqa: N802
        """The cluster semaphore called ``name``, made with ``value`` permits if new."""
        return self._cached("Semaphore", name, value=value)

    def BoundedSemaphore(self, name: str, value: int = 1) -> Any:  # noqa: N802
        """The cluster bounded semaphore called ``name``."""
        return self._cached("BoundedSemaphore", name, value=value)

    def Condition(self, name: str, lock: Optional[Any] = None) -> Any:  # noqa: N802
        """The cluster condition called ``name``, over ``lock`` (a cluster Lock or RLock) or,
        when None, an RLock of its own."""
        return self._make("Condition", name, lock=lock)

    def Event(self, name: str) -> Any:  # noqa: N802
        """The cluster event called ``name``."""
        return self._cached("Event", name)

    def Barrier(self, name: str, parties: int, action: Optional[Callable[[], Any]] = None,
                timeout: Optional[float] = None) -> Any:  # noqa: N802
        """The cluster barrier called ``name``, for ``parties`` parties."""
        return self._make("Barrier", name, parties=parties, action=action, timeout=timeout)

    def delete(self, name: str) -> None:
        """Forgets the primitive called ``name``: deletes every key it has in etcd. Processes
        still using it see a new, empty primitive of no kind."""
        from ._primitive import delete

        prefix = f"/{self.namespace}/{_keys.check_name(name)}/".encode()
        from pyetcd import etcdrpc

        self._session().call("kv", "Txn", etcdrpc.TxnRequest(
            compare=[], success=[delete(prefix, _keys.prefix_end(prefix))], failure=[]))


_clusters: Dict[Tuple[Any, ...], Cluster] = {}
_clusters_lock = threading.Lock()


def _cluster_from_state(state: Tuple[Any, ...]) -> Cluster:
    """The Cluster a pickled primitive belongs to, in this process (one per connection)."""
    with _clusters_lock:
        cluster = _clusters.get(state)
        if cluster is None or cluster._closed:
            endpoints, namespace, lease_ttl, timeout, options = state
            cluster = _clusters[state] = Cluster(
                Config(list(endpoints), namespace, lease_ttl, timeout, dict(options)))
        return cluster
