"""Condition on etcd.

Protocol. A waiter, holding the condition's lock, puts a key ``w/<owner-id>`` on its lease
(value empty: waiting), releases the lock (every RLock level), and watches its own key from the
revision of that put: notify writes "n" into it. notify(n), by the lock's holder, reads the
waiting keys in the order they were created and marks the n oldest "n", each conditional on
still being empty (a waiter may be leaving at that moment; the notifier then looks again). A
waiter that times out removes its key, conditional on it still being empty; if it was marked
meanwhile, the notify counts as delivered to it and wait() returns True. Either way it takes
the lock back before returning, as threading.Condition does.

notify() never waits for anyone, and a waiter whose process dies vanishes with its lease, so
it can never be counted, nor block or absorb a notify.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Dict, Optional, TypeVar

from .. import OwnerDiedError
from ._awaitable import ConditionAsync
from ._errors import LeaseNotFound, NotHeldError
from ._keys import DELETE, OLDEST_FIRST, prefix_end
from ._lock import Lock, RLock
from ._primitive import Primitive, deadline_of, get_prefix, remaining
from ._wire import compare, delete, get, put

_T = TypeVar("_T")


def _rebuild_condition(cluster: Any, name: str, lock: Optional[Lock]) -> "Condition":
    return cluster.Condition(name, lock)  # type: ignore[no-any-return]


class _Counter:
    """A read-only counter with a semaphore's get_value() (see Condition)."""

    def __init__(self, get_value: Callable[[], int]) -> None:
        self.get_value = get_value


class Condition(ConditionAsync, Primitive):
    """A condition variable shared by every process that asks for its name: see
    multiprocessing.Condition. ``lock`` is a cluster Lock or RLock of the same cluster; when
    None, the condition has an RLock of its own. ``wait``, ``wait_for``, ``notify(n=1)`` and
    ``notify_all`` raise NotHeldError (a RuntimeError and an AssertionError) when the calling
    thread does not hold the lock."""

    kind = "Condition"

    def __init__(self, cluster: Any, name: str, lock: Optional[Lock] = None) -> None:
        super().__init__(cluster, name)
        if lock is None:
            lock = RLock(cluster, name, prefix=self._key("lock", ""), register=False)
            self._lock_name: Optional[str] = None
        elif isinstance(lock, Lock):
            if lock._cluster._state() != cluster._state():
                raise ValueError("the lock of a cluster Condition must belong to the same "
                                 "cluster and namespace")
            self._lock_name = lock.name
        else:
            raise TypeError(f"Condition() needs a cluster Lock or RLock, not "
                            f"{type(lock).__name__}")
        self._lock = lock
        self._register()

    def _params(self) -> Dict[str, Any]:
        return {"lock": self._lock_name}

    def __reduce__(self) -> Any:
        lock = self._lock if self._lock_name is not None else None  # a given lock travels too
        return (_rebuild_condition, (self._cluster, self.name, lock))

    # ---- the lock -----------------------------------------------------------------------

    def acquire(self, block: bool = True, timeout: Optional[float] = None) -> bool:
        return self._lock.acquire(block, timeout)

    def release(self) -> None:
        self._lock.release()

    def __enter__(self) -> bool:
        return self._lock.__enter__()

    def __exit__(self, *exc: Any) -> None:
        self._lock.__exit__(*exc)

    def _check_owned(self, what: str) -> None:
        if not self._lock._is_owned():
            raise NotHeldError(f"cannot {what} on un-acquired lock")

    # ---- waiting ------------------------------------------------------------------------

    def wait(self, timeout: Optional[float] = None) -> bool:
        self._check_owned("wait")
        deadline = deadline_of(timeout)
        session = self._session()
        waiting = self._key("w", "")
        key = self._key("w", session.new_id())
        while True:
            try:
                t = self._txn([compare(key, "CREATE", "EQUAL", 0)],
                              [put(key, b"", session.lease())], [get(key)])
                break
            except LeaseNotFound:
                continue  # refused whole: again, on a new lease
        revision = t.revision if t.succeeded else t.kvs(0)[0].create_revision
        saved = self._lock._release_save()
        try:
            after = revision
            while remaining(deadline) != 0:
                changed = self._wait_for_change(
                    waiting, prefix_end(waiting), after, deadline,
                    lambda events: any(e.kv.key == key and (e.type == DELETE or e.kv.value == b"n")
                                       for e in events))
                if changed is not None:
                    break
                look = self._read(get(key))  # the watch cannot vouch for the past: look
                if look.value(0) != b"":
                    break  # marked (or gone)
                after = look.revision
        finally:
            # Leave: remove the key unless a notify marked it meanwhile (then it was ours).
            try:
                gone = self._txn([compare(key, "VALUE", "EQUAL", b"")], [delete(key)],
                                 [get(key), delete(key)])
                notified = not gone.succeeded and gone.value(0) == b"n"
            finally:
                died = self._lock._acquire_restore(saved)
        if died:
            raise OwnerDiedError(
                f"the holder of the lock of cluster condition {self.name!r} vanished while "
                "holding it; wait() took it back, and the state it protects may need repair")
        return notified

    def wait_for(self, predicate: Callable[[], _T], timeout: Optional[float] = None) -> _T:
        """Wait until ``predicate()`` is true, or the timeout passes; return its last value."""
        result = predicate()
        end = None if timeout is None else time.monotonic() + timeout
        while not result:
            if end is None:
                self.wait()
            else:
                left = end - time.monotonic()
                if left <= 0:
                    break
                self.wait(left)
            result = predicate()
        return result

    # ---- notifying ----------------------------------------------------------------------

    def notify(self, n: int = 1) -> None:
        self._check_owned("notify")
        waiting = self._key("w", "")
        left = int(n)
        while left > 0:
            t = self._read(get_prefix(waiting, **OLDEST_FIRST))
            candidates = [kv for kv in t.kvs(0) if kv.value == b""][:left]
            if not candidates:
                return
            marked = self._txn([compare(kv.key, "VALUE", "EQUAL", b"") for kv in candidates],
                               [put(kv.key, b"n", keep_lease=True) for kv in candidates])
            if marked.succeeded:
                left -= len(candidates)
            # else one of them left meanwhile: look again

    def notify_all(self) -> None:
        self.notify(1 << 31)

    def notifyAll(self) -> None:  # noqa: N802 (threading's old name)
        self.notify_all()

    # ---- views of CPython's private counters, which CPython's own tests read -----------

    def _waiters(self) -> int:
        waiting = self._key("w", "")
        return len(self._read(get(waiting, prefix_end(waiting), keys_only=True)).kvs(0))

    def _notified(self) -> int:
        waiting = self._key("w", "")
        return sum(kv.value == b"n" for kv in self._read(get_prefix(waiting)).kvs(0))

    @property
    def _sleeping_count(self) -> _Counter:
        return _Counter(self._waiters)

    @property
    def _woken_count(self) -> _Counter:
        return _Counter(lambda: 0)

    @property
    def _wait_semaphore(self) -> _Counter:
        return _Counter(self._notified)

    def __repr__(self) -> str:
        return f"<interlock.cluster.Condition {self.name!r}>"
