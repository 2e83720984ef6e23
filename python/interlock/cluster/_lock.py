"""Lock and RLock on etcd.

Protocol (a fair queue, as etcd's own mutex recipe):

* To acquire, a process puts a key ``q/<owner-id>`` on its lease. Keys are ordered by their
  create revision, which etcd assigns in increasing order: the key with the lowest one is the
  **owner**; the lock is locked exactly while the queue is not empty. A waiter watches the
  deletion of the key just before its own (never the whole queue), starting from the
  revision at which it looked, so a deletion between its look and its watch is not missed.
* When its key becomes the lowest, the owner confirms in one transaction that no older key
  exists (a comparison over the whole queue: every create revision greater than its own
  minus one) and swaps the ``holder`` record: it reads the previous owner's record and writes
  its own. A previous record that names another key and was never marked released means the
  previous owner vanished while holding the lock: its lease expired because its process died
  or was cut off. The new owner then holds the lock and gets OwnerDiedError, as with a local
  robust lock.
* Releasing deletes the owner's key and marks the holder record released, in one
  transaction that compares the key's create revision first, so a process can only ever
  delete its own hold. If the key is gone, the hold was lost (its lease expired) and
  release() raises LockLostError, changing nothing.
* Acquiring a free lock is one transaction: "if the queue is empty, put my key and swap the
  holder record; else put my key (unless the call may not wait) and tell me the newest key
  before it". A hand-off costs the releaser's transaction, one watch event and the new
  owner's confirming transaction.
* multiprocessing lets any process release a Lock: releasing one this process does not hold
  deletes the current owner's key, marks the holder record released, and leaves a marker
  ``r/<key>`` on the owner's lease, by which the owner later tells "released on my behalf"
  from "lost".
* The **fencing token** of a hold is its key's create revision: every acquisition's is
  greater than any earlier one's.

Every write can be retried after a lost reply: puts are conditional on the key's absence,
deletes on its create revision, and the holder record carries the releasing call's id.
"""

from __future__ import annotations

import json
import operator
import threading
import time
from typing import Any, Callable, List, Optional, Tuple

from .. import OwnerDiedError
from ._errors import LeaseNotFound, LockLostError
from ._keys import prefix_end
from ._primitive import (Primitive, compare, deadline_of, delete, get, get_prefix, load_json,
                         put)


class _Hold:
    """This process's hold: its key, that key's create revision (the fencing token), the lease
    it is on, and the thread that took it."""

    __slots__ = ("key", "revision", "lease", "thread")

    def __init__(self, key: bytes, revision: int, lease: int) -> None:
        self.key = key
        self.revision = revision
        self.lease = lease
        self.thread = threading.get_ident()


def _deleted(key: bytes) -> Callable[[List[Any]], bool]:
    """Whether a batch of watch events deletes `key`."""
    return lambda events: any(e.type == 1 and e.kv.key == key for e in events)


def _block_flag(block: Any) -> bool:
    # multiprocessing's acquire takes an int-like `block` (TypeError otherwise).
    return bool(operator.index(block)) if not isinstance(block, bool) else block


class Lock(Primitive):
    """A lock shared by every process that asks for its name: see multiprocessing.Lock.

    ``acquire(block=True, timeout=None)``, ``release()``, ``locked()``, the context manager
    protocol, ``token`` (the fencing token of this process's hold) and ``lost`` (whether that
    hold may have been lost). Any process may release it; releasing it while unlocked raises
    ValueError."""

    kind = "Lock"

    def __init__(self, cluster: Any, name: str, prefix: Optional[bytes] = None,
                 register: bool = True) -> None:
        super().__init__(cluster, name, prefix)
        self._hold: Optional[_Hold] = None
        if register:
            self._register()

    def _forget_holds(self) -> None:
        super()._forget_holds()
        self._hold = None

    # ---- acquiring ----------------------------------------------------------------------

    def acquire(self, block: bool = True, timeout: Optional[float] = None) -> bool:
        if not _block_flag(block):
            timeout = 0
        deadline = deadline_of(timeout)
        taken = self._take(deadline)
        if taken is None:
            return False
        hold, owner_died = taken
        with self._local:
            self._hold = hold
        if owner_died:
            raise OwnerDiedError(
                f"the previous holder of cluster lock {self.name!r} vanished while holding "
                "it (its process died or lost its lease); the lock is now held by the caller, "
                "and the state it protects may need repair")
        return True

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()

    def _queue(self) -> bytes:
        return self._key("q", "")

    def _holder_record(self, key: bytes, released: bool, op: str = "") -> bytes:
        return json.dumps({"key": key.decode(), "released": released, "op": op}).encode()

    def _owner_died(self, previous: Optional[bytes], mine: bytes) -> bool:
        record = load_json(previous, None)
        return bool(record and not record.get("released") and
                    record.get("key") != mine.decode())

    def _take(self, deadline: Optional[float]) -> Optional[Tuple[_Hold, bool]]:
        """One transaction takes a free lock (and swaps the holder record: a put that returns
        the value it replaced); on a held lock the same transaction joins the queue (unless
        the call may not wait) and returns the key just before ours, whose deletion is then
        watched from that revision on. After it, one transaction confirms ownership, or names
        the new predecessor."""
        session = self._session()
        queue = self._queue()
        holder = self._key("holder")
        blocking = deadline is None or deadline > time.monotonic()
        while True:
            lease = session.lease()
            key = self._key("q", session.new_id())
            try:
                t = self._txn(
                    [compare(queue, "CREATE", "EQUAL", 0, range_end=prefix_end(queue))],
                    [put(key, b"", lease),
                     put(holder, self._holder_record(key, False), previous=True)],
                    [get_prefix(queue, limit=1, sort_target=2, sort_order=2),  # CREATE, DESC
                     get(key)] + ([put(key, b"", lease)] if blocking else []))
            except LeaseNotFound:
                continue  # refused whole: again, on a new lease
            if t.succeeded:  # our key was created at the transaction's revision
                return _Hold(key, t.revision, lease), self._owner_died(t.value(1), key)
            last, mine = t.kvs(0), t.kvs(1)
            if mine:
                # A retried transaction whose first attempt landed: our key is in the queue.
                revision, before, seen = mine[0].create_revision, None, t.revision
                if not blocking:  # it landed as the success branch: the lock is ours
                    return _Hold(key, revision, lease), False
            elif not blocking:
                return None
            else:
                revision, before, seen = t.revision, last[0].key, t.revision
            try:
                while True:
                    if before is not None and self._wait_for_change(
                            queue, prefix_end(queue), seen, deadline,
                            _deleted(before)) is False:
                        self._leave(key, revision)
                        return None
                    # No older key left: we own the lock. Confirm, and swap the holder record;
                    # or learn the key now just before ours.
                    c = self._txn(
                        [compare(key, "CREATE", "EQUAL", revision),
                         compare(queue, "CREATE", "GREATER", revision - 1,
                                 range_end=prefix_end(queue))],
                        [put(holder, self._holder_record(key, False), previous=True)],
                        [get_prefix(queue, max_create_revision=revision - 1, limit=1,
                                    sort_target=2, sort_order=2), get(key)])
                    if c.succeeded:
                        return _Hold(key, revision, lease), self._owner_died(c.value(0), key)
                    if not c.kvs(1):
                        break  # our key is gone (our lease was lost): queue up again
                    before, seen = c.kvs(0)[0].key, c.revision
            except BaseException:
                self._leave(key, revision)  # Ctrl-C, or the cluster became unreachable
                raise
            self._txn([], [delete(self._marker(key))])

    def _leave(self, key: bytes, revision: int) -> None:
        """Gives up a place in the queue (best effort: the lease removes it otherwise)."""
        try:
            self._txn([compare(key, "CREATE", "EQUAL", revision)], [delete(key)])
        except Exception:
            pass

    # ---- releasing ----------------------------------------------------------------------

    def release(self) -> None:
        with self._local:
            hold, self._hold = self._hold, None
        if hold is None:
            self._release_for_someone()
            return
        self._release_hold(hold)

    def _release_hold(self, hold: _Hold) -> None:
        op = self._session().op_id()
        holder = self._key("holder")
        marker = self._marker(hold.key)
        t = self._txn([compare(hold.key, "CREATE", "EQUAL", hold.revision)],
                      [delete(hold.key), put(holder, self._holder_record(hold.key, True, op))],
                      [get(marker), get(holder)])
        if t.succeeded:
            return
        if t.kvs(0):  # another process released it on our behalf meanwhile
            self._txn([], [delete(marker)])
            self._release_for_someone()
            return
        record = load_json(t.value(1), {})
        if record.get("op") == op:
            return  # our own release, whose reply was lost
        raise LockLostError(
            f"the hold on cluster lock {self.name!r} was lost (this process's lease expired); "
            "another process may hold the lock now, and nothing was released")

    def _marker(self, key: bytes) -> bytes:
        return self._key("r", key.rsplit(b"/", 1)[1].decode())

    def _release_for_someone(self) -> None:
        """release() by a process that does not hold the lock: multiprocessing allows it."""
        queue = self._queue()
        holder = self._key("holder")
        op = self._session().op_id()
        while True:
            t = self._read(get_prefix(queue, limit=1, sort_target=2, sort_order=1), get(holder))
            if not t.kvs(0):
                record = load_json(t.value(1), {})
                if record.get("op") == op:
                    return  # our retried release had landed
                raise ValueError("semaphore or lock released too many times")
            owner = t.kvs(0)[0]
            done = self._txn(
                [compare(owner.key, "CREATE", "EQUAL", owner.create_revision)],
                [delete(owner.key), put(holder, self._holder_record(owner.key, True, op)),
                 put(self._marker(owner.key), op.encode(), owner.lease)])
            if done.succeeded:
                return

    # ---- state --------------------------------------------------------------------------

    def locked(self) -> bool:
        """True if anyone holds the lock (a linearizable snapshot)."""
        queue = self._queue()
        return bool(self._read(get_prefix(queue, limit=1, keys_only=True)).kvs(0))

    @property
    def token(self) -> Optional[int]:
        """The fencing token of this process's hold (its create revision in etcd), or None when
        this process does not hold the lock. Each acquisition's token is greater than every
        earlier one's: hand it to the storage the lock protects, and have that storage refuse
        writes that carry a smaller token than one it has seen."""
        hold = self._hold
        return hold.revision if hold is not None else None

    @property
    def lost(self) -> bool:
        """True when this process holds the lock but its hold may have been lost: etcd said
        its lease expired, or has not confirmed the lease for longer than its TTL."""
        hold = self._hold
        return hold is not None and self._session().lease_lost(hold.lease)

    def _is_owned(self) -> bool:
        hold = self._hold
        return hold is not None and hold.thread == threading.get_ident()

    def _release_save(self) -> Any:
        self.release()
        return None

    def _acquire_restore(self, saved: Any) -> bool:
        return _acquire_uninterrupted(self)

    def __repr__(self) -> str:
        owner = "this process" if self._hold is not None else "None"
        return f"<interlock.cluster.Lock {self.name!r} (owner={owner})>"


class RLock(Lock):
    """A recursive lock shared by every process that asks for its name: see
    multiprocessing.RLock. The owning thread may acquire it again and must release it once
    per acquisition; a release by any other thread or process raises AssertionError."""

    kind = "RLock"

    def __init__(self, cluster: Any, name: str, prefix: Optional[bytes] = None,
                 register: bool = True) -> None:
        super().__init__(cluster, name, prefix, register)
        self._owner: Optional[int] = None
        self._depth = 0

    def _forget_holds(self) -> None:
        super()._forget_holds()
        self._owner, self._depth = None, 0

    def acquire(self, block: bool = True, timeout: Optional[float] = None) -> bool:
        me = threading.get_ident()
        if self._owner == me:
            self._depth += 1
            return True
        try:
            got = super().acquire(block, timeout)
        except OwnerDiedError:
            self._owner, self._depth = me, 1
            raise
        if got:
            self._owner, self._depth = me, 1
        return got

    def release(self) -> None:
        if self._owner != threading.get_ident():
            raise AssertionError("attempt to release recursive lock not owned by thread")
        self._depth -= 1
        if self._depth > 0:
            return
        self._owner = None
        with self._local:
            hold, self._hold = self._hold, None
        if hold is not None:
            self._release_hold(hold)

    def _is_owned(self) -> bool:
        return self._owner == threading.get_ident()

    def _release_save(self) -> Any:
        depth = self._depth
        self._depth = 1
        self.release()
        return depth

    def _acquire_restore(self, saved: Any) -> bool:
        died = _acquire_uninterrupted(self)
        self._depth = int(saved)
        return died

    def _count(self) -> int:
        return self._depth if self._owner == threading.get_ident() else 0

    def __repr__(self) -> str:
        if self._owner == threading.get_ident():
            owner, count = "this thread", str(self._depth)
        else:
            owner, count = ("another thread", "nonzero") if self._hold else ("None", "0")
        return f"<interlock.cluster.RLock {self.name!r} ({owner}, {count})>"


def _acquire_uninterrupted(lock: Lock) -> bool:
    """Takes the lock back however long it takes (Condition.wait must return holding it, even
    when interrupted); a KeyboardInterrupt that arrives meanwhile is raised afterwards.
    Returns True when the previous holder had died (the caller raises OwnerDiedError)."""
    interrupted: Optional[BaseException] = None
    died = False
    while True:
        try:
            lock.acquire()
            break
        except OwnerDiedError:
            died = True
            break
        except KeyboardInterrupt as exc:
            interrupted = exc
    if interrupted is not None:
        raise interrupted
    return died
