"""RWLock on etcd: a reader-writer lock shared by every process that asks for its name.

Protocol (one queue, as ZooKeeper's shared-lock recipe):

* To acquire, a thread puts a key ``q/<owner-id>`` on its process's lease, with the value
  ``r`` (read) or ``w`` (write), and reads the queue in the same transaction. Keys are ordered
  by create revision, which etcd assigns in increasing order.
* A **reader** holds once no older ``w`` key is left; a **writer** once no older key at all
  is left. So readers behind nothing but readers share, a writer excludes everyone, and a
  waiting writer holds back every reader that came after it (``prefer="writers"``: writers are
  never starved, and each side is served in order of arrival).
* A waiter watches only the key it waits for: a writer the newest older key, a reader the
  newest older ``w`` key. Its deletion (or, for a reader, its change to ``r`` by a downgrade)
  sends the waiter to read the queue again; no other change wakes it.
* The ``writer`` record says what the last writer did: ``held`` by key K while K writes,
  ``released`` once it released or downgraded, ``reported`` once a loss was reported. A writer
  that vanished (its lease expired: the process died or was cut off) leaves ``held`` behind
  with its key gone. The next acquirer, reader or writer, sees that record once it holds:
  a writer replaces it with its own ``held`` in the transaction that records its hold, a
  reader replaces it with ``reported`` by a compare on the record's revision, so exactly one
  acquirer gets OwnerDiedError (holding what it asked for). A vanished reader is just gone.
* Releasing deletes the key, after comparing its create revision: a process only ever
  deletes its own. A downgrade rewrites the writer's own key to ``r`` (same create revision,
  so the same place in the queue) and writes ``released`` in one transaction: no writer can
  come between, and the readers that waited for that key see the change and enter.
* A waiter that times out reads the queue once more: holding by then, it keeps the hold;
  otherwise it deletes its key. A waiter interrupted by an exception deletes its key.
* The **fencing token** of a write hold is its key's create revision: greater than that of
  every earlier hold.

The holds of this process are kept per thread: a thread's read holds are one key and a
depth (a nested read never waits, as with the local RWLock), so misuse is detected.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any, Dict, List, Optional, Tuple

from .. import OwnerDiedError
from .._rwlock_views import RWLockExtras

from ._errors import LeaseNotFound, LockLostError
from ._keys import DELETE, prefix_end
from ._lock import _block_flag, _Hold
from ._primitive import Primitive, deadline_of, get_prefix, load_json
from ._wire import compare, delete, get, put

_READ, _WRITE = b"r", b"w"


def check_prefer(prefer: Any) -> str:
    if not isinstance(prefer, str):
        raise TypeError(f"prefer must be a str, not {type(prefer).__name__}")
    if prefer == "readers":
        raise ValueError("a cluster RWLock serves readers and writers in order of arrival "
                         "(prefer='writers'); prefer='readers' is only local")
    if prefer != "writers":
        raise ValueError(f"prefer must be 'writers', not {prefer!r}")
    return prefer


def _blocker(mark: bytes, older: List[Any]) -> Any:
    """The key a `mark` waiter waits for among the `older` keys, or None: it holds."""
    if mark == _READ:
        older = [kv for kv in older if kv.value == _WRITE]
    return max(older, key=lambda kv: kv.create_revision) if older else None


def _holding_reads(queue: List[Any]) -> List[Any]:
    """The read keys of a queue that hold: those with no older write key."""
    first_writer = min((kv.create_revision for kv in queue if kv.value == _WRITE),
                       default=None)
    return [kv for kv in queue if kv.value == _READ and
            (first_writer is None or kv.create_revision < first_writer)]


class RWLock(RWLockExtras, Primitive):
    """A reader-writer lock shared by every process that asks for its name, with the API of
    :class:`interlock.RWLock`: ``read_lock()``/``write_lock()`` views, ``acquire_read``,
    ``release_read``, ``acquire_write``, ``release_write``, ``downgrade()``. Holds are on the
    process's lease: a dead or cut-off holder's come back, and the next acquirer after a lost
    write hold gets OwnerDiedError holding what it asked for. ``token`` is the fencing token
    of this process's write hold."""

    kind = "RWLock"
    robust = True  # leases give back the holds of dead holders

    def __init__(self, cluster: Any, name: str, prefer: str = "writers",
                 prefix: Optional[bytes] = None, register: bool = True) -> None:
        self.prefer = check_prefer(prefer)
        super().__init__(cluster, name, prefix)
        self._reads: Dict[int, List[Any]] = {}  # thread id -> [_Hold, depth]
        self._write: Optional[_Hold] = None
        if register:
            self._register()

    def _params(self) -> Dict[str, Any]:
        return {"prefer": self.prefer}

    def _forget_holds(self) -> None:
        super()._forget_holds()
        self._reads, self._write = {}, None

    def _queue(self) -> bytes:
        return self._key("q", "")

    # ---- acquiring ----------------------------------------------------------------------

    def acquire_read(self, block: bool = True, timeout: Optional[float] = None) -> bool:
        """Takes a read hold (nested reads of one thread never wait); a bool, as
        ``Lock.acquire``."""
        blocking, deadline = _block_flag(block), deadline_of(timeout)
        me = threading.get_ident()
        with self._local:
            entry = self._reads.get(me)
            if entry is not None:
                entry[1] += 1
                return True
        taken = self._take(_READ, deadline if blocking else time.monotonic())
        if taken is None:
            return False
        with self._local:
            self._reads[me] = [taken[0], 1]
        if taken[1]:
            self._raise_owner_died("read")
        return True

    def acquire_write(self, block: bool = True, timeout: Optional[float] = None) -> bool:
        """Takes the write hold; a bool, as ``Lock.acquire``. A thread that already holds the
        lock waits for itself, as a Lock acquired twice does."""
        blocking, deadline = _block_flag(block), deadline_of(timeout)
        taken = self._take(_WRITE, deadline if blocking else time.monotonic())
        if taken is None:
            return False
        with self._local:
            self._write = taken[0]
        if taken[1]:
            self._raise_owner_died("write")
        return True

    def _raise_owner_died(self, side: str) -> None:
        raise OwnerDiedError(
            f"a writer of cluster RWLock {self.name!r} vanished while holding it (its process "
            f"died or lost its lease); the caller now holds the {side} lock, and the state it "
            "protects may need repair")

    def _take(self, mark: bytes, deadline: Optional[float]) -> Optional[Tuple[_Hold, bool]]:
        """Joins the queue and waits for its turn: (the hold, whether a lost write hold is
        this acquirer's to report), or None when the deadline passed first."""
        session = self._session()
        queue, writer = self._queue(), self._key("writer")
        while True:
            lease = session.lease()
            key = self._key("q", session.new_id())
            try:
                t = self._txn([compare(key, "CREATE", "EQUAL", 0)],
                              [put(key, mark, lease), get_prefix(queue), get(writer)],
                              [get(key), get_prefix(queue), get(writer)])
            except LeaseNotFound:
                continue  # refused whole: again, on a new lease
            # A retried transaction whose first attempt landed finds its key there.
            revision = t.revision if t.succeeded else t.kvs(0)[0].create_revision
            older = [kv for kv in t.kvs(1) if kv.create_revision < revision]
            try:
                turn = self._await_turn(key, revision, mark, older, t.revision, deadline)
            except BaseException:
                self._leave(key, revision)  # Ctrl-C, or the cluster became unreachable
                raise
            if turn is None:
                return None
            if turn is False:
                continue  # our key vanished with our lease: again, on a new one
            hold = _Hold(key, revision, lease)
            died = self._record_hold(mark, hold, turn if turn is not True else t.kvs(2))
            if died is not None:
                return hold, died
            # The key went between our turn and the record: the lease was lost. Again.

    def _await_turn(self, key: bytes, revision: int, mark: bytes, older: List[Any],
                    seen: int, deadline: Optional[float]) -> Any:
        """Waits until no key that `key` waits for is left. Returns True (our turn, the
        writer record as the joining transaction read it stands), the writer record's kvs as
        of the look that found our turn, False (our key is gone) or None (timed out; our key
        is deleted)."""
        queue, writer = self._queue(), self._key("writer")
        record: Any = True
        while True:
            blocker = _blocker(mark, older)
            if blocker is None:
                return record
            if deadline is not None and deadline <= time.monotonic():
                self._leave(key, revision)
                return None

            def moved(events: List[Any], watched: bytes = blocker.key) -> bool:
                return any(e.kv.key == watched and
                           (e.type == DELETE or (mark == _READ and e.kv.value == _READ))
                           for e in events)

            done = self._wait_for_change(queue, prefix_end(queue), seen, deadline, moved,
                                         wake_on=blocker.key)
            look = self._read(get_prefix(queue, max_create_revision=revision - 1),
                              get(writer), get(key))
            if not look.kvs(2):
                return False
            older, seen, record = look.kvs(0), look.revision, look.kvs(1)
            if done is False and _blocker(mark, older) is not None:
                self._leave(key, revision)  # timed out, and still waiting
                return None

    def _record_hold(self, mark: bytes, hold: _Hold, record: List[Any]) -> Optional[bool]:
        """Once a hold is ours: whether it must report a lost write hold (see the protocol),
        or None when our key is gone already."""
        writer = self._key("writer")
        if mark == _WRITE:
            t = self._txn([compare(hold.key, "CREATE", "EQUAL", hold.revision)],
                          [put(writer, self._writer_record(hold.key, "held"), previous=True)])
            if not t.succeeded:
                return None
            previous = load_json(t.value(0), {})
            return bool(previous.get("state") == "held" and
                        previous.get("key") != hold.key.decode())
        if not record or load_json(record[0].value, {}).get("state") != "held":
            return False
        # Only a vanished writer's record says "held" while we read (see the protocol).
        vanished = load_json(record[0].value, {}).get("key", "")
        t = self._txn([compare(writer, "MOD", "EQUAL", record[0].mod_revision)],
                      [put(writer, self._writer_record(vanished.encode(), "reported"))])
        return bool(t.succeeded)

    def _writer_record(self, key: bytes, state: str) -> bytes:
        return json.dumps({"key": key.decode(), "state": state}).encode()

    def _leave(self, key: bytes, revision: int) -> None:
        """Gives up a place in the queue (best effort: the lease removes it otherwise)."""
        try:
            self._txn([compare(key, "CREATE", "EQUAL", revision)], [delete(key)])
        except Exception:
            pass

    # ---- releasing ----------------------------------------------------------------------

    def release_read(self) -> None:
        """Gives back one read hold of the calling thread: ValueError when nobody holds a
        read, AssertionError when others do but this thread does not."""
        me = threading.get_ident()
        with self._local:
            entry = self._reads.get(me)
            if entry is not None:
                entry[1] -= 1
                if entry[1] > 0:
                    return
                del self._reads[me]
        if entry is None:
            if self._readers() == 0:
                raise ValueError("release_read() of an RWLock that no one holds for reading")
            raise AssertionError("attempt to release a read hold the thread does not have")
        self._give_back(entry[0], [delete(entry[0].key)])

    def release_write(self) -> None:
        """Gives back the write hold: ValueError when no writer holds, AssertionError when
        another thread or process does."""
        hold = self._take_write_hold()
        self._give_back(hold, [delete(hold.key), self._released()])

    def downgrade(self) -> None:
        """Turns the calling thread's write hold into a read hold, atomically: no writer can
        enter between, and readers waiting for this writer enter at once."""
        hold = self._take_write_hold()
        with self._local:
            self._reads[hold.thread] = [hold, 1]
        self._give_back(hold, [put(hold.key, _READ, keep_lease=True), self._released()])

    def _released(self) -> Any:
        return put(self._key("writer"), self._writer_record(b"", "released"))

    def _take_write_hold(self) -> _Hold:
        with self._local:
            hold = self._write
            if hold is not None and hold.thread == threading.get_ident():
                self._write = None
                return hold
        if hold is None and not self._write_locked():
            raise ValueError("release of an RWLock's write hold that no one holds")
        raise AssertionError("attempt to release a write hold held by another thread")

    def _give_back(self, hold: _Hold, ops: List[Any]) -> None:
        t = self._txn([compare(hold.key, "CREATE", "EQUAL", hold.revision)], ops)
        if t.succeeded or self._session().lease_alive(hold.lease):
            # (Our key is gone but our lease lives: a transaction deleted it, which is our
            # own earlier attempt whose reply was lost.)
            return
        with self._local:
            self._reads.pop(hold.thread, None)
        raise LockLostError(
            f"a hold on cluster RWLock {self.name!r} was lost (this process's lease expired); "
            "others may hold the lock now, and nothing was released")

    # ---- state --------------------------------------------------------------------------

    def _snapshot(self) -> List[Any]:
        queue = self._queue()
        return self._read(get_prefix(queue)).kvs(0)

    def _readers(self) -> int:
        """How many read holds (one per thread) are held, in every process: a snapshot."""
        return len(_holding_reads(self._snapshot()))

    def _write_locked(self) -> bool:
        queue = self._snapshot()
        return bool(queue) and min(queue, key=lambda kv: kv.create_revision).value == _WRITE

    def _waiting_writers(self) -> int:
        writers = sum(1 for kv in self._snapshot() if kv.value == _WRITE)
        return writers - (1 if self._write_locked() else 0)

    def _owns_write(self) -> bool:
        hold = self._write
        return hold is not None and hold.thread == threading.get_ident()

    def _own_reads(self) -> int:
        entry = self._reads.get(threading.get_ident())
        return int(entry[1]) if entry is not None else 0

    @property
    def token(self) -> Optional[int]:
        """The fencing token of this process's write hold (its key's create revision), or
        None when this process does not write."""
        hold = self._write
        return hold.revision if hold is not None else None

    @property
    def lost(self) -> bool:
        """True when this process holds the lock but a hold may have been lost: etcd said its
        lease expired, or has not confirmed it for longer than its TTL."""
        with self._local:
            holds = [e[0] for e in self._reads.values()] + (
                [self._write] if self._write is not None else [])
        return any(self._session().lease_lost(h.lease) for h in holds)

    def __repr__(self) -> str:
        if self._owns_write():
            state = "writer=this thread"
        elif self._write is not None:
            state = "writer=this process"
        else:
            state = f"reads held here={sum(e[1] for e in list(self._reads.values()))}"
        return f"<interlock.cluster.RWLock {self.name!r} ({state}, prefer={self.prefer!r})>"
