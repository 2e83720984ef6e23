"""What every cluster primitive shares: its keys, its `meta` record, transactions, waiting on a
watch, and pickling."""

from __future__ import annotations

import json
import threading
import time
import weakref
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Sequence, Tuple

from .. import _lifecycle
from . import _keys
from ._async import check_abandoned
from ._errors import ClusterError
from ._session import Session
from ._wire import Cmp, Op, Txn, compare, get, put, txn_request

if TYPE_CHECKING:
    from . import Cluster


def get_prefix(prefix: bytes, **options: Any) -> Op:
    """A range read of every key under `prefix`."""
    return get(prefix, _keys.prefix_end(prefix), **options)


FOREVER = 3.0e7  # seconds; "no timeout" in the waits below


def deadline_of(timeout: Optional[float]) -> Optional[float]:
    """The monotonic deadline of a `timeout` in multiprocessing's sense (None: none; a
    negative timeout means zero)."""
    if timeout is None:
        return None
    if isinstance(timeout, (str, bytes, bytearray)):  # float() would parse them
        raise TypeError(f"must be real number, not {type(timeout).__name__}")
    seconds = float(timeout)
    if seconds != seconds:
        raise ValueError("timeout must be a number, not NaN")
    return time.monotonic() + max(0.0, min(seconds, FOREVER))


def remaining(deadline: Optional[float]) -> Optional[float]:
    return None if deadline is None else max(0.0, deadline - time.monotonic())


# ---- the primitives' base ----------------------------------------------------------------

class Primitive:
    """A named primitive of a Cluster. Subclasses set `kind` and `_params()`."""

    kind = ""

    def __init__(self, cluster: "Cluster", name: str, prefix: Optional[bytes] = None) -> None:
        self._cluster = cluster
        self.name = _keys.check_name(name)
        ns = cluster.namespace
        self._prefix = prefix or f"/{ns}/{self.name}/".encode()
        self._local = threading.Lock()  # guards this process's view of its holds
        _live_primitives.add(self)

    # -- identity, creation ---------------------------------------------------------------

    def _params(self) -> Dict[str, Any]:
        return {}

    def _register(self) -> None:
        """Creates the meta record, or checks that the existing one is this kind with these
        parameters (ValueError otherwise)."""
        key = self._key("meta")
        mine = _keys.encode_meta(self.kind, self._params())
        txn = self._txn([compare(key, "CREATE", "EQUAL", 0)], [put(key, mine)], [get(key)])
        if not txn.succeeded:
            theirs = txn.value(0) or b""
            if theirs != mine:
                raise ValueError(
                    f"{self.name!r} in namespace {self._cluster.namespace!r} is already a "
                    f"{_keys.describe_meta(theirs)}, not a {_keys.describe_meta(mine)}")

    def _key(self, *parts: str) -> bytes:
        return self._prefix + "/".join(parts).encode()

    def _marker(self, key: bytes) -> bytes:
        """The ``r/<owner>`` key that says `key`'s hold was released on its owner's behalf."""
        return self._key("r", _keys.owner_of(key))

    # -- talking to etcd -------------------------------------------------------------------

    def _session(self) -> Session:
        return self._cluster._session()

    def _txn(self, compares: Sequence[Cmp], success: Sequence[Op],
             failure: Sequence[Op] = (), deadline: Optional[float] = None) -> Txn:
        return self._session().txn(txn_request(compares, success, failure), deadline)

    def _read(self, *ops: Op, deadline: Optional[float] = None) -> Txn:
        """Several reads at one revision (a transaction with no comparison)."""
        return self._txn([], ops, deadline=deadline)

    def _wait_for_change(self, key: bytes, range_end: bytes, after: int,
                         deadline: Optional[float],
                         done: Callable[[List[Any]], bool] = lambda events: True,
                         wake_on: Optional[bytes] = None) -> Optional[bool]:
        """Sleeps until a change to [key, range_end) made after revision `after` for which
        `done(events)` is true (True), or the deadline (False); None when the changes since
        `after` cannot all be seen (a new watch, or a buffer overrun): the caller then looks
        at the state again and waits from that revision. So no change is missed between a
        read at revision `after` and this wait: the session's standing watch on the range
        holds every change after the revision at which etcd confirmed it (Watch).
        Interruptible (KeyboardInterrupt) in the main thread: it sleeps in slices of 0.25 s.
        With `wake_on`, only changes of that key wake it early (`done` must be false for the
        others: it sees them at its next wake-up)."""
        watch = self._session().watches.standing(key, range_end, deadline)
        with watch.cond:
            watch.waiting += 1
            watch.interested(wake_on, +1)
            try:
                while True:
                    new = watch.changes_after(after)
                    if new is None:
                        return None
                    if new:
                        after = new[-1].kv.mod_revision
                        if done(new):
                            return True
                        continue
                    left = remaining(deadline)
                    if left is not None and left <= 0:
                        return False
                    check_abandoned()  # an awaiting task was cancelled (_async.py)
                    watch.cond.wait(0.25 if left is None else min(left, 0.25))
            finally:
                watch.interested(wake_on, -1)
                watch.waiting -= 1
                watch.last_used = time.monotonic()

    def _forget_holds(self) -> None:
        """In a forked child: the parent's holds are not the child's (as a fork child of
        CPython's does not own its parent's locks). Subclasses that keep holds clear them."""
        self._local = threading.Lock()

    # -- pickling --------------------------------------------------------------------------

    def __reduce__(self) -> Tuple[Any, ...]:
        return (_rebuild, (self._cluster, type(self).__name__, self.name, self._params()))

    def __repr__(self) -> str:
        return f"<interlock.cluster.{type(self).__name__} {self.name!r}>"


_live_primitives: "weakref.WeakSet[Primitive]" = weakref.WeakSet()


def _forget_holds_in_child() -> None:
    for primitive in list(_live_primitives):
        primitive._forget_holds()


_lifecycle.register("cluster_holds", after_in_child=_forget_holds_in_child)


def _rebuild(cluster: "Cluster", kind: str, name: str, params: Dict[str, Any]) -> Primitive:
    """Unpickling: the same primitive, through this process's connection to the cluster."""
    primitive: Primitive = cluster._cached(kind, name, **params)
    return primitive


def load_json(raw: Optional[bytes], default: Any) -> Any:
    if not raw:
        return default
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise ClusterError(f"corrupted value in etcd: {raw[:60]!r}") from exc
