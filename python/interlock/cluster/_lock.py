"""Lock and RLock on etcd.

Protocol (a fair queue, as etcd's own mutex recipe, with hand-offs that cost no transaction
of the new owner):

* To acquire, a process puts a key ``q/<owner-id>`` on its lease. Keys are ordered by their
  create revision, which etcd assigns in increasing order: the key with the lowest one is the
  **owner**; the lock is locked exactly while the queue is not empty.
* The ``holder`` record says how the last change of owner came about: ``held`` by a key that
  took a free lock, ``released`` by a key that left no waiter, or ``handed`` by a key that
  released while others waited (the oldest of them owns the lock from that revision on).
* Acquiring a free lock is one transaction: "if the queue is empty, put my key and write
  `held` (returning the record it replaced); else put my key (unless the call may not wait)
  and return the newest key before it". A replaced record that is not ``released`` means the
  last owner vanished while holding the lock (its lease expired: its process died or was cut
  off): the new owner holds the lock and gets OwnerDiedError, as with a local robust lock.
* A waiter watches the deletion of its predecessor (the key just before its own: no
  thundering herd, only that key's changes wake it) from the revision of its transaction. If
  the record was written ``handed`` (or ``released``) by that key in the same revision, the
  predecessor was the owner and released: the waiter owns the lock, with no further request.
  A deletion without it (a waiter that left, or a lease that expired) sends the waiter to look
  at the queue again.
* Releasing deletes the owner's key and writes ``released`` or ``handed`` (whether other keys
  remain decides, inside the same transaction), after comparing the key's create revision, so
  a process can only ever delete its own hold. If the key is gone, the hold was lost (its
  lease expired) and release() raises LockLostError, changing nothing.
* A waiter that times out leaves the queue only if an older key remains (one transaction);
  if none does, the lock was handed to it and the acquisition succeeds. A waiter interrupted
  by an exception (Ctrl-C, a cancelled awaiting task) leaves the same way, and if the lock
  was handed to it, releases it as a holder does: the next waiter sees a release, not a
  death.
* A look (also taken when the watch cannot vouch for every change since the last one: a new
  watch, or an overrun) reads the newest older key, which becomes the predecessor, and the
  record. With no older key left the waiter owns the lock, and the record tells whether the
  owner before it released: ``held`` by another key, or ``handed`` before the waiter joined,
  means that owner vanished; ``handed`` after it joined was meant for it if no key older than
  it existed at that revision (a read at that revision), otherwise for an owner who since
  vanished.
* multiprocessing lets any process release a Lock: releasing one this process does not hold
  deletes the current owner's key, writes the record the same way, and leaves a marker
  ``r/<key>`` on the owner's lease, by which the owner later tells "released on my behalf"
  from "lost".
* A **stray** (a join that a stopped member applies late, after its call was answered
  elsewhere: see Session.is_stray) is taken out by its own process when it joins, looks,
  sees the key arrive on its watch, or releases (the join, the look and the release each
  read the keys named on its lease in the same request), as an interrupted waiter leaves.
  Only a transaction whose attempt got no answer can land late, so those reads are made
  only once the process has had one (Session.strays_possible); the watch's check costs no
  request and is always made.
* The **fencing token** of a hold is its key's create revision: every acquisition's is
  greater than any earlier one's.

Every write can be retried after a lost reply: puts are conditional on the key's absence,
deletes on its create revision, and the holder record carries the releasing call's id. A
retried release that finds its key gone, no marker, and its lease still alive (asked of etcd)
knows the key went by its own first attempt: a key on a live lease only goes by a transaction.
"""

from __future__ import annotations

import multiprocessing
import operator
import threading
import time
from typing import Any, List, Optional, Tuple

from .. import OwnerDiedError

from .._async_common import RLockAsync
from ._async import finishing
from ._awaitable import LockAsync
from ._errors import ClusterError, LeaseNotFound, LockLostError
from ._keys import DELETE, NEWEST_FIRST, OLDEST_FIRST, PUT, HolderRecord, prefix_end
from ._primitive import Primitive, deadline_of, get_prefix
from ._wire import compare, delete, get, put, txn_op

# What a waiter's turn came to (see Lock._await_turn).
_CLEAN, _DIED, _REQUEUE, _LOOK = "clean", "died", "requeue", "look"


def _let_go_by(raw: bytes, key: bytes) -> bool:
    """Whether a holder record's raw value says `key` released the lock or handed it on."""
    record = HolderRecord.parse(raw)
    return record is not None and record.let_go_by(key)


class _Hold:
    """This process's hold: its key, that key's create revision (the fencing token), the lease
    it is on, and the thread that took it."""

    __slots__ = ("key", "revision", "lease", "thread")

    def __init__(self, key: bytes, revision: int, lease: int) -> None:
        self.key = key
        self.revision = revision
        self.lease = lease
        self.thread = threading.get_ident()


def _block_flag(block: Any) -> bool:
    # multiprocessing's acquire takes an int-like `block` (TypeError otherwise).
    return bool(operator.index(block)) if not isinstance(block, bool) else block


class Lock(LockAsync, Primitive):
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

    def _record(self, key: bytes, state: str, op: str = "") -> bytes:
        """The holder record: `state` ("held", "released" or "handed") by `key`."""
        return HolderRecord(key.decode(), state, op).encode()

    def _owner_died(self, previous: Optional[bytes], mine: bytes) -> bool:
        """Whether the record a free lock's taker replaced says its last owner vanished."""
        record = HolderRecord.parse(previous)
        return bool(record and record.state != "released" and record.key != mine.decode())

    def _take(self, deadline: Optional[float]) -> Optional[Tuple[_Hold, bool]]:
        """One transaction takes a free lock (writing the holder record, and reading the one it
        replaces), or joins the queue and returns every key before ours; then the waiter
        follows the queue's changes until no older key is left."""
        session = self._session()
        blocking = deadline is None or deadline > time.monotonic()
        while True:
            lease = session.lease()
            key = self._key("q", session.new_id())
            session.use_key(key)
            kept = False
            try:
                taken = self._join(key, lease, blocking, deadline)
                kept = taken is not None and taken is not _REQUEUE
            except LeaseNotFound:
                continue  # refused whole: again, on a new lease
            finally:
                if not kept:
                    session.drop_key(key)
            if taken is not _REQUEUE:
                return taken  # type: ignore[no-any-return]
            self._txn([], [delete(self._marker(key))])

    def _join(self, key: bytes, lease: int, blocking: bool, deadline: Optional[float]) -> Any:
        """_take's one round with `key`: the hold and whether its owner died, None (not
        taken), or _REQUEUE (the key was lost while it waited)."""
        queue = self._queue()
        holder = self._key("holder")
        own = self._own(key)
        sweep = self._session().strays_possible()
        t = self._txn(
            [compare(queue, "CREATE", "EQUAL", 0, range_end=prefix_end(queue))],
            [put(key, b"", lease), put(holder, self._record(key, "held"), previous=True)],
            [get_prefix(queue, keys_only=True, limit=1, **NEWEST_FIRST), get(key)]
            + ([put(key, b"", lease)] if blocking else [])
            + ([get_prefix(own, keys_only=True)] if sweep else []))
        if t.succeeded:  # our key was created at the transaction's revision
            return _Hold(key, t.revision, lease), self._owner_died(t.value(1), key)
        mine = t.kvs(1)
        if mine:
            # A retried transaction whose first attempt landed: our key is in the queue
            # (and its predecessor unknown: a look finds it).
            revision, before = mine[0].create_revision, None
        elif not blocking:
            return None
        else:
            revision, before = t.revision, t.kvs(0)[0].key
        if sweep and self._delete_strays(t.kvs(3 if blocking else 2)):
            before = None  # the predecessor may have been one: look
        try:
            outcome = self._await_turn(key, revision, before, t.revision, deadline)
        except BaseException:
            # Ctrl-C, a cancelled awaiting task, or the cluster became unreachable.
            self._leave_or_pass_on(key, revision, lease)
            raise
        if outcome is None:
            return None  # timed out
        if outcome == _REQUEUE:
            return _REQUEUE
        return _Hold(key, revision, lease), outcome == _DIED

    def _own(self, key: bytes) -> bytes:
        """The prefix of every queue key named on the lease that named `key`."""
        return self._key("q", key.rsplit(b"/", 1)[1].split(b"-", 1)[0].decode() + "-")

    def _delete_strays(self, kvs: List[Any]) -> bool:
        """Takes the strays among `kvs` (queue keys: see Session.is_stray) out of the queue,
        each only if it is still the key that was read, as an interrupted waiter leaves: a
        stray that owns the lock releases it (writing the record), so that the next waiter
        is not told of an owner that died. True if there were any."""
        session = self._session()
        strays = [kv for kv in kvs if session.is_stray(kv.key)]
        for kv in strays:
            self._leave_or_pass_on(kv.key, kv.create_revision, kv.lease)
        return bool(strays)

    def _await_turn(self, key: bytes, revision: int, before: Optional[bytes], seen: int,
                    deadline: Optional[float]) -> Any:
        """Waits until no key older than ours is left, watching `before` (our predecessor as
        of revision `seen`; None: unknown). Returns _CLEAN or _DIED (we own the lock; its
        last owner released it, or vanished), _REQUEUE (our key is gone: our lease was lost)
        or None (timed out, out of the queue)."""
        holder = self._key("holder")
        outcome: List[Any] = []
        strays: List[Any] = []
        session = self._session()

        def follow(events: List[Any]) -> bool:
            # Events come in revision order, a transaction's together.
            strays.extend(e.kv for e in events if e.type == PUT and e.kv.key != holder
                          and session.is_stray(e.kv.key))
            predecessor = before
            if predecessor is None:
                return bool(strays)
            for e in events:
                if e.type == DELETE and e.kv.key == predecessor:
                    handed = any(r.kv.key == holder and r.type == PUT and
                                 r.kv.mod_revision == e.kv.mod_revision and
                                 _let_go_by(r.kv.value, predecessor) for r in events)
                    outcome.append(_CLEAN if handed else _LOOK)
                    return True
            return bool(strays)

        while True:
            if before is not None:
                outcome.clear()
                done = self._wait_for_change(holder, prefix_end(self._queue()), seen, deadline,
                                             follow, wake_on=before)
                if strays:
                    self._delete_strays(strays)
                    strays.clear()
                if done and outcome and outcome[0] == _CLEAN:
                    return _CLEAN
                if done is False and self._leave_unless_owner(key, revision):
                    return None  # timed out, and an older key remained
            # Look: our predecessor left or vanished, the watch cannot vouch for every change
            # since `seen`, or the deadline passed with the lock ours.
            # The look also reads the queue keys named on our lease: a stray that landed
            # behind us before this read, and after the join's own read of them, is seen
            # by neither the watch (which starts after this read) nor the older keys.
            q = self._queue()
            sweep = session.strays_possible()
            look = self._read(get_prefix(q, keys_only=True, max_create_revision=revision - 1),
                              get(holder), get(key),
                              *([get_prefix(self._own(key), keys_only=True)] if sweep else []))
            if not look.kvs(2):
                return _REQUEUE
            older = look.kvs(0)
            if sweep:
                self._delete_strays([kv for kv in look.kvs(3) if kv.create_revision > revision])
            if self._delete_strays(older):
                continue  # look again
            if not older:
                return _DIED if self._died_before(look.kvs(1), key, revision) else _CLEAN
            before = max(older, key=lambda kv: kv.create_revision).key
            seen = look.revision

    def _died_before(self, record_kvs: List[Any], key: bytes, revision: int) -> bool:
        """We own the lock and learnt it from a look, not from the change itself: did the
        owner before us vanish while holding it? (See the protocol above.)"""
        if not record_kvs:
            return False
        record = HolderRecord.parse(record_kvs[0].value) or HolderRecord("", "")
        state, written = record.state, record_kvs[0].mod_revision
        if record.key == key.decode() or state == "released":
            return False
        if state == "held" or written < revision:
            return True  # its owner (not us: we were not in the queue yet) left no record
        try:  # handed on after we joined: to us, unless a key older than ours was still there
            q = self._queue()
            # (etcd counts a range before it applies max_create_revision: read the keys.)
            at = self._session().range(q, prefix_end(q), max_create_revision=revision - 1,
                                       revision=written, keys_only=True)
        except ClusterError:
            return False  # that revision was compacted away: nothing says the owner died
        return bool(at)

    def _leave_unless_owner(self, key: bytes, revision: int) -> bool:
        """A timed-out waiter leaves the queue if an older key remains (True); if none does,
        the lock is ours and it stays (False)."""
        q = self._queue()
        t = self._txn([compare(key, "CREATE", "EQUAL", revision),
                       compare(q, "CREATE", "GREATER", revision - 1, range_end=prefix_end(q))],
                      [], [txn_op([compare(key, "CREATE", "EQUAL", revision)],
                                  [delete(key)])])
        return not t.succeeded  # left (or our key was gone already)

    def _leave_or_pass_on(self, key: bytes, revision: int, lease: int) -> None:
        """An interrupted waiter's exit: it leaves the queue if an older key remains; if none
        does, the lock was handed to it while it waited, and it releases it as a holder does
        (writing the record), so that the next waiter is not told of a holder that died.
        Best effort: the lease removes the key otherwise."""
        try:
            if not self._leave_unless_owner(key, revision):
                self._release_hold(_Hold(key, revision, lease))
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
        try:
            self._give_back(hold)
        finally:
            self._session().drop_key(hold.key)  # given back, lost, or abandoned: not ours

    def _give_back(self, hold: _Hold) -> None:
        op = self._session().op_id()
        holder = self._key("holder")
        marker = self._marker(hold.key)
        sweep = self._session().strays_possible()
        t = self._txn([compare(hold.key, "CREATE", "EQUAL", hold.revision)],
                      [self._give_up(hold.key, hold.revision, op)]
                      + ([get_prefix(self._own(hold.key), keys_only=True)] if sweep else []),
                      [get(marker), get(holder)])
        if t.succeeded:
            # A stray that landed while we held the lock may be next in the queue: the lock
            # was just handed to it, and it passes it on.
            if sweep:
                self._delete_strays(t.kvs(1))
            return
        if t.kvs(0):  # another process released it on our behalf meanwhile
            self._txn([], [delete(marker)])
            self._release_for_someone()
            return
        record = HolderRecord.parse(t.value(1))
        if record is not None and record.op == op:
            return  # our own release, whose reply was lost
        if self._session().lease_alive(hold.lease):
            # Our key is gone but our lease is not: a transaction deleted it, and with no
            # marker that is our own release whose reply was lost (the record it wrote has
            # been replaced since by the next owner's release).
            return
        raise LockLostError(
            f"the hold on cluster lock {self.name!r} was lost (this process's lease expired); "
            "another process may hold the lock now, and nothing was released")

    def _give_up(self, key: bytes, revision: int, op: str) -> Any:
        """The owner's key `key` deleted, and the record written: "released" if no other key
        is in the queue (every key's create revision is at most ours), "handed" if one is."""
        q, holder = self._queue(), self._key("holder")
        return txn_op([compare(q, "CREATE", "LESS", revision + 1, range_end=prefix_end(q))],
                      [delete(key), put(holder, self._record(key, "released", op))],
                      [delete(key), put(holder, self._record(key, "handed", op))])

    def _release_for_someone(self) -> None:
        """release() by a process that does not hold the lock: multiprocessing allows it."""
        queue = self._queue()
        holder = self._key("holder")
        op = self._session().op_id()
        while True:
            t = self._read(get_prefix(queue, limit=1, **OLDEST_FIRST), get(holder))
            if not t.kvs(0):
                record = HolderRecord.parse(t.value(1))
                if record is not None and record.op == op:
                    return  # our retried release had landed
                raise ValueError("semaphore or lock released too many times")
            owner = t.kvs(0)[0]
            done = self._txn(
                [compare(owner.key, "CREATE", "EQUAL", owner.create_revision)],
                [self._give_up(owner.key, owner.create_revision, op),
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
        # multiprocessing's format (CPython 3.13's tests check it): the owner is named when it
        # is the calling thread; another holder is "SomeOtherThread" (of this process) or
        # "SomeOtherProcess" (read from etcd). The name is in the `name` attribute.
        try:
            hold = self._hold
            if hold is not None and hold.thread == threading.get_ident():
                owner = _this_thread()
            elif hold is not None:
                owner = "SomeOtherThread"
            else:
                owner = "SomeOtherProcess" if self.locked() else "None"
        except Exception:  # noqa: B902 -- a repr must not raise (the cluster may be away)
            owner = "unknown"
        return f"<Lock(owner={owner})>"


class RLock(RLockAsync, Lock):
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
        # multiprocessing's format, as Lock's.
        try:
            if self._owner == threading.get_ident():
                owner, count = _this_thread(), str(self._depth)
            elif self._hold is not None:
                owner, count = "SomeOtherThread", "nonzero"
            elif self.locked():
                owner, count = "SomeOtherProcess", "nonzero"
            else:
                owner, count = "None", "0"
        except Exception:  # noqa: B902 -- a repr must not raise
            owner, count = "unknown", "unknown"
        return f"<RLock({owner}, {count})>"


def _this_thread() -> str:
    """How multiprocessing names the calling thread as an owner: the process's name, and the
    thread's after a '|' unless it is the main thread."""
    name = multiprocessing.current_process().name
    if threading.current_thread().name != "MainThread":
        name += "|" + threading.current_thread().name
    return name


def _acquire_uninterrupted(lock: Lock) -> bool:
    """Takes the lock back however long it takes (Condition.wait must return holding it, even
    when interrupted); a KeyboardInterrupt that arrives meanwhile is raised afterwards.
    Returns True when the previous holder had died (the caller raises OwnerDiedError)."""
    interrupted: Optional[BaseException] = None
    died = False
    with finishing():  # a cancelled awaiting task's wait takes the lock back too (_async.py)
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
