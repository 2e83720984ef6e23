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
import os
import threading
import weakref
from multiprocessing import context as _mp_context
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

from . import _fork  # noqa: F401 (registers the fork steps)
from . import _keys
from ._errors import (AuthenticationError, ClusterError, ClusterUnavailableError,
                      LockLostError, NotHeldError, PermissionDeniedError)
from ._session import Config, drop_session, session_for, Session

__all__ = ["connect", "Cluster", "ClusterError", "ClusterUnavailableError", "LockLostError",
           "NotHeldError", "AuthenticationError", "PermissionDeniedError"]

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


def _optional_str(value: Any, what: str) -> Optional[str]:
    if value is not None and not isinstance(value, (str, os.PathLike)):
        raise TypeError(f"{what} must be a str, not {type(value).__name__}")
    return None if value is None else os.fspath(value)


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
    for the cluster while it is unreachable. ``user`` and ``password`` log in to etcd
    (AuthenticationError, a PermissionError, when etcd refuses them). ``ca_cert`` (the CA
    that signed the members' certificates) turns on TLS; ``cert_cert`` and ``cert_key`` add a
    client certificate. See docs/cluster.md, "Security", for what travels in pickles.
    """
    for name, value in (("user", user), ("password", password)):
        _optional_str(value, name)
    if (user is None) != (password is None):
        raise ValueError("user and password go together: give both or neither")
    given = (("user", user), ("ca_cert", ca_cert), ("cert_key", cert_key),
             ("cert_cert", cert_cert))
    options = {k: _optional_str(v, k) for k, v in given if v is not None}
    if (cert_key is None) != (cert_cert is None):
        raise ValueError("cert_cert and cert_key go together: give both or neither")
    if cert_cert is not None and ca_cert is None:
        raise ValueError("a client certificate needs TLS: give ca_cert too")
    config = Config(_parse_endpoints(endpoints), _keys.check_namespace(namespace),
                    _positive(lease_ttl, "lease_ttl"), _positive(timeout, "timeout"),
                    options, password)
    if config.lease_ttl < 2:
        raise ValueError("lease_ttl must be at least 2 seconds (etcd's minimum lease)")
    cluster = Cluster(config)
    try:
        cluster.ping()
    except BaseException:
        cluster.close()
        raise
    if password is not None:
        _remember_password(config, password)
    return cluster


# The passwords this process was given, by (endpoints, user): a primitive that arrives here in
# a pickle, which carries none, takes its password from here (see Cluster.__reduce__).
_passwords: Dict[Tuple[Any, ...], str] = {}
_passwords_lock = threading.Lock()


def _remember_password(config: Config, password: str) -> None:
    with _passwords_lock:
        _passwords[(tuple(config.endpoints), config.options.get("user"))] = password


def _known_password(endpoints: Sequence[Tuple[str, int]], user: str) -> Optional[str]:
    """The password for `user` at `endpoints` in this process: one given to connect() (or
    received from the parent that started this process), else INTERLOCK_ETCD_PASSWORD when
    INTERLOCK_ETCD_USER is unset or names the same user."""
    with _passwords_lock:
        known = _passwords.get((tuple(endpoints), user))
    if known is not None:
        return known
    if os.environ.get("INTERLOCK_ETCD_USER", user) == user:
        return os.environ.get("INTERLOCK_ETCD_PASSWORD")
    return None


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
        """What identifies the connection; never the password."""
        return self._config.key()

    def __reduce__(self) -> Tuple[Any, ...]:
        # The password travels only to a child that multiprocessing is starting (as the local
        # primitives travel only then): any other pickle (a task's arguments, a queue, a
        # file) carries none, and the process that unpickles it supplies its own.
        spawning = _mp_context.get_spawning_popen() is not None
        return (_cluster_from_state, (self._state(),
                                      self._config.password if spawning else None))

    def __repr__(self) -> str:
        return (f"<interlock.cluster.Cluster {','.join(self.endpoints)} "
                f"namespace={self.namespace!r}>")

    # ---- connection -----------------------------------------------------------------------

    def _session(self) -> Session:
        if self._closed:
            raise ClusterError("this cluster connection is closed")
        return session_for(self._config)

    def ping(self) -> None:
        """Checks that a member answers, and that this user may read the namespace
        (ClusterUnavailableError, AuthenticationError or PermissionDeniedError otherwise)."""
        prefix = f"/{self.namespace}/".encode()
        self._session().range(prefix, _keys.prefix_end(prefix), limit=1, keys_only=True)

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
        from ._rwlock import RWLock
        from ._semaphore import BoundedSemaphore, Semaphore

        classes: Dict[str, Callable[..., Any]] = {
            "Lock": Lock, "RLock": RLock, "Semaphore": Semaphore,
            "BoundedSemaphore": BoundedSemaphore, "Condition": Condition, "Event": Event,
            "Barrier": Barrier, "RWLock": RWLock}
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

    def RWLock(self, name: str, prefer: str = "writers") -> Any:  # noqa: N802
        """The cluster reader-writer lock called ``name``: see
        :class:`interlock.cluster._rwlock.RWLock`. Readers and writers are served in order of
        arrival, so ``prefer`` is ``"writers"`` only (ValueError otherwise)."""
        from ._rwlock import check_prefer
        return self._cached("RWLock", name, prefer=check_prefer(prefer))

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
        from ._wire import delete, txn_request

        prefix = f"/{self.namespace}/{_keys.check_name(name)}/".encode()
        self._session().txn(txn_request([], [delete(prefix, _keys.prefix_end(prefix))]))


_clusters: Dict[Tuple[Any, ...], Cluster] = {}
_clusters_lock = threading.Lock()


def _cluster_from_state(state: Tuple[Any, ...], password: Optional[str] = None) -> Cluster:
    """The Cluster a pickled primitive belongs to, in this process (one per connection). A
    password comes along only to a child that multiprocessing started; otherwise this
    process's own is used (_known_password), and without one, the first request raises
    AuthenticationError."""
    endpoints, namespace, lease_ttl, timeout, options = state
    user = dict(options).get("user")
    if password is not None:
        config = Config(list(endpoints), namespace, lease_ttl, timeout, dict(options), password)
        _remember_password(config, password)
    elif user is not None:
        password = _known_password(endpoints, user)
    with _clusters_lock:
        cluster = _clusters.get(state)
        if cluster is None or cluster._closed or (
                password is not None and cluster._config.password is None):
            cluster = _clusters[state] = Cluster(
                Config(list(endpoints), namespace, lease_ttl, timeout, dict(options), password))
        return cluster
