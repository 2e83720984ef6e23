"""Semaphore and BoundedSemaphore on etcd.

Protocol. A permit that a process holds is a key ``h/<owner-id>`` on its lease, so the permit
returns by itself when the process dies or is cut off. ``total`` counts the permits in
existence: those held plus those free; the value is ``total - (number of h/ keys)``.

* acquire: read total and the holders at one revision r; if a permit is free, put a holder key
  in a transaction that compares total's mod revision and that no holder key was modified
  after r (a new holder would have been), so two processes can never take the last permit.
  Otherwise watch the whole primitive from r + 1 and look again.
* release: give back one of this process's own permits (delete its key); else, since any
  process may release a semaphore, another process's (delete the oldest holder key, leaving a
  marker on its lease so that its owner's later release does not count as lost); else, when
  nobody holds a permit, add one to total, in a transaction that compares total's mod
  revision and that no holder key exists. A BoundedSemaphore refuses (ValueError) a release
  that would take the value past its initial value, checked inside that same transaction.
* total's value carries the id of the call that last wrote it, so a retried write that finds
  its own id knows it landed.
"""

from __future__ import annotations

import json
import operator
from typing import Any, Dict, List, Optional, Tuple

from ._awaitable import SemaphoreAsync
from ._errors import LeaseNotFound, LockLostError
from ._keys import OLDEST_FIRST, prefix_end
from ._lock import _block_flag
from ._primitive import Primitive, deadline_of, get_prefix, load_json, remaining
from ._wire import compare, delete, get, put

SEM_VALUE_MAX = 2147483647


def _initial_value(value: Any) -> int:
    number = operator.index(value)
    if number < 0:
        raise ValueError("semaphore initial value must be >= 0")
    if number > SEM_VALUE_MAX:
        raise OverflowError(f"semaphore value must be <= SEM_VALUE_MAX ({SEM_VALUE_MAX})")
    return number


class Semaphore(SemaphoreAsync, Primitive):
    """A counting semaphore shared by every process that asks for its name: see
    multiprocessing.Semaphore. ``acquire(block=True, timeout=None)``, ``release(n=1)``,
    ``get_value()`` and the context manager protocol. A permit held by a process that dies
    returns to the semaphore when its lease expires."""

    kind = "Semaphore"
    bounded = False

    def __init__(self, cluster: Any, name: str, value: int = 1) -> None:
        super().__init__(cluster, name)
        self._value = _initial_value(value)
        self._holds: List[Tuple[bytes, int, int]] = []  # this process's permits: key, rev, lease
        self._register()
        self._txn([compare(self._key("total"), "CREATE", "EQUAL", 0)],
                  [put(self._key("total"), self._total_record(self._value, ""))])

    def _params(self) -> Dict[str, Any]:
        return {"value": self._value}

    def _forget_holds(self) -> None:
        super()._forget_holds()
        self._holds = []

    def _total_record(self, n: int, op: str) -> bytes:
        return json.dumps({"n": n, "op": op}).encode()

    def _state(self) -> Tuple[int, int, int, List[Any], int]:
        """(total, its mod revision, the number of permits held, the holder keys, revision)."""
        holders = self._key("h", "")
        t = self._read(get(self._key("total")), get_prefix(holders, **OLDEST_FIRST))
        total_kvs = t.kvs(0)
        total = load_json(total_kvs[0].value, {}).get("n", self._value) if total_kvs else 0
        mod = total_kvs[0].mod_revision if total_kvs else 0
        return int(total), mod, len(t.kvs(1)), t.kvs(1), t.revision

    # ---- acquire ------------------------------------------------------------------------

    def acquire(self, block: bool = True, timeout: Optional[float] = None) -> bool:
        if not _block_flag(block):
            timeout = 0
        deadline = deadline_of(timeout)
        session = self._session()
        holders = self._key("h", "")
        while True:
            total, mod, held, _, revision = self._state()
            if total - held > 0:
                key = self._key("h", session.new_id())
                lease = session.lease()
                try:
                    t = self._txn(
                        [compare(self._key("total"), "MOD", "EQUAL", mod),
                         compare(holders, "MOD", "LESS", revision + 1,
                                 range_end=prefix_end(holders))],
                        [put(key, b"", lease)], [get(key)])
                except LeaseNotFound:
                    continue  # refused whole: again, on a new lease
                if t.succeeded or t.kvs(0):  # (a retried put finds its own key)
                    revision_taken = t.revision if t.succeeded else t.kvs(0)[0].create_revision
                    with self._local:
                        self._holds.append((key, revision_taken, lease))
                    return True
                continue  # someone else took or gave one meanwhile: look again
            if remaining(deadline) == 0:
                return False
            if self._wait_for_change(self._prefix, prefix_end(self._prefix), revision,
                                     deadline) is False:
                return False

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()

    # ---- release ------------------------------------------------------------------------

    def release(self, n: int = 1) -> None:
        count = operator.index(n)
        if count < 1:
            raise ValueError("n must be one or more")
        if self.bounded:
            total, _, held, _, _ = self._state()
            if total - held + count > self._value:
                raise ValueError("semaphore or lock released too many times")
        for _ in range(count):
            self._release_one()

    def _release_one(self) -> None:
        with self._local:
            mine = self._holds.pop() if self._holds else None
        if mine is not None:
            key, revision, _ = mine
            marker = self._marker(key)
            t = self._txn([compare(key, "CREATE", "EQUAL", revision)], [delete(key)],
                          [get(marker)])
            if t.succeeded:
                return
            if not t.kvs(0):
                raise LockLostError(
                    f"a permit of cluster semaphore {self.name!r} held by this process was "
                    "lost (its lease expired, and the permit returned); nothing was released")
            self._txn([], [delete(marker)])  # given back on our behalf: this is a new release
        self._release_for_anyone()

    def _release_for_anyone(self) -> None:
        total_key = self._key("total")
        holders = self._key("h", "")
        op = self._session().op_id()
        while True:
            total, mod, held, keys, _ = self._state()
            if held:
                # Give back the oldest permit held by another process, on its behalf.
                oldest = keys[0]
                t = self._txn([compare(oldest.key, "CREATE", "EQUAL", oldest.create_revision)],
                              [delete(oldest.key),
                               put(self._marker(oldest.key), op.encode(), oldest.lease)])
                if t.succeeded:
                    return
                continue
            if self.bounded and total + 1 > self._value:
                raise ValueError("semaphore or lock released too many times")
            if total + 1 > SEM_VALUE_MAX:
                raise ValueError("semaphore or lock released too many times")
            t = self._txn(
                [compare(total_key, "MOD", "EQUAL", mod),
                 compare(holders, "CREATE", "EQUAL", 0, range_end=prefix_end(holders))],
                [put(total_key, self._total_record(total + 1, op))], [get(total_key)])
            if t.succeeded or load_json(t.value(0), {}).get("op") == op:
                return

    # ---- state --------------------------------------------------------------------------

    def get_value(self) -> int:
        """The number of permits available now (a linearizable snapshot)."""
        total, _, held, _, _ = self._state()
        return max(0, total - held)

    @property
    def maxvalue(self) -> int:
        return self._value if self.bounded else SEM_VALUE_MAX

    def __repr__(self) -> str:
        return f"<interlock.cluster.{type(self).__name__} {self.name!r}>"


class BoundedSemaphore(Semaphore):
    """A semaphore that refuses to be released above its initial value (ValueError): see
    multiprocessing.BoundedSemaphore."""

    kind = "BoundedSemaphore"
    bounded = True
