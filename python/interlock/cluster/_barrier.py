"""Barrier on etcd.

Protocol. ``gen`` holds the current round's number and how the previous round ended
({"gen": N, "via": "round" | "reset"}); ``broken`` exists while the barrier is broken. A party
arrives in round N with one transaction: if gen still holds the value it last saw and broken
is absent, it puts a key of its own ``a/<N>/<id>`` on its lease, reads the round's keys in
creation order, and counts itself by writing ``n/<N>`` (whose version is then the number of
arrivals; a retried arrival whose first attempt landed is not counted twice, as its key
exists), and reads the count; otherwise it reads gen and broken and tries again. An arrival
that finds more arrivals than keys up to its own knows that a party of the round is gone
(its lease ended before this arrival, so the watch will not show it): it breaks the
barrier. Its index is its key's place in creation order (arrival order, unique in the round,
with no conflict between arrivals). The same transaction clears round N - 1's keys, which
nobody needs any more.

The arrival that makes the count ``parties`` ends the round:

* with no action, in the arrival's own transaction: a nested comparison of ``n/<N>``'s
  version (etcd compares against the state before the transaction) moves gen to N + 1 on
  "round". A round then costs one transaction per party and nothing more. (If a party's key
  had vanished before this arrival, the count check above breaks the barrier, and the
  waiters see the deletion come before the move of gen: nobody is released.)
* with an action, the last party runs it first, then, in one transaction that compares every
  party's key with the revision it was created at, moves gen to N + 1 and deletes the round's
  keys. A party that finds the round already full waits for the next.

Every other party watches the primitive from the revision at which it arrived, and takes the
changes in revision order:

* gen moved on "round": released, return the index;
* gen moved on "reset", or broken appeared: BrokenBarrierError;
* a key of one of the round's parties deleted before gen moved: that party's lease expired
  (it died, or was cut off): the barrier breaks, for everyone, within the lease TTL.

A timeout, an exception from the action, or an interrupted wait (Ctrl-C) breaks the barrier,
as threading.Barrier does; abort() breaks it; reset() starts a new round marked "reset".
"""

from __future__ import annotations

import json
import threading
from typing import Any, Callable, Dict, List, Optional, Tuple

from ._awaitable import BarrierAsync
from ._errors import LeaseNotFound
from ._keys import DELETE, OLDEST_FIRST, PUT, prefix_end
from ._primitive import Primitive, deadline_of, get_prefix, load_json
from ._wire import Op, compare, delete, get, put, txn_op


class Barrier(BarrierAsync, Primitive):
    """A barrier shared by every process that asks for its name: see multiprocessing.Barrier.
    ``wait(timeout=None)`` returns a distinct index in range(parties); ``action`` runs in one
    party per round before any is released; ``abort()``, ``reset()``, ``broken``,
    ``n_waiting`` and ``parties`` as in threading.Barrier. A party whose process dies while
    waiting breaks the barrier for the others (BrokenBarrierError) within the lease TTL."""

    kind = "Barrier"

    def __init__(self, cluster: Any, name: str, parties: int,
                 action: Optional[Callable[[], Any]] = None,
                 timeout: Optional[float] = None) -> None:
        super().__init__(cluster, name)
        if isinstance(parties, bool) or not isinstance(parties, int):
            raise TypeError(f"parties must be an int, not {type(parties).__name__}")
        if parties < 1:
            raise ValueError("parties must be > 0")
        if action is not None and not callable(action):
            raise TypeError(f"action must be callable or None, not {type(action).__name__}")
        if timeout is not None:
            deadline_of(timeout)  # validates it
        self._parties = parties
        self._action = action
        self._timeout = timeout
        self._gen_seen: Optional[bytes] = None  # gen's value when last seen: a hint
        self._register()

    def _params(self) -> Dict[str, Any]:
        return {"parties": self._parties}

    def __reduce__(self) -> Tuple[Any, ...]:
        from ._primitive import _rebuild

        return (_rebuild_barrier, (_rebuild, self._cluster, self.name,
                                   self._parties, self._action, self._timeout))

    @property
    def parties(self) -> int:
        return self._parties

    # ---- state --------------------------------------------------------------------------

    def _look(self) -> Tuple[int, bytes, bool, List[Any], int]:
        """(round, gen's raw value, broken, this round's keys in creation order, revision)."""
        t = self._read(get(self._key("gen")), get(self._key("broken")),
                       get_prefix(self._key("a", ""), keys_only=True, **OLDEST_FIRST))
        raw = t.value(0) or b""
        gen = _round_of(raw)
        mine = self._round_prefix(gen)
        slots = [kv for kv in t.kvs(2) if kv.key.startswith(mine)]
        return gen, raw, bool(t.kvs(1)), slots, t.revision

    def _round_prefix(self, gen: int) -> bytes:
        return self._key("a", str(gen), "")

    @property
    def broken(self) -> bool:
        return bool(self._read(get(self._key("broken"))).kvs(0))

    @property
    def n_waiting(self) -> int:
        gen, _, broken, slots, _ = self._look()
        return 0 if broken else min(len(slots), self._parties)

    def abort(self) -> None:
        self._txn([], [put(self._key("broken"), b"1")])

    def reset(self) -> None:
        while True:
            gen, raw, _, _, _ = self._look()
            t = self._txn([compare(self._key("gen"), "VALUE", "EQUAL", raw) if raw else
                           compare(self._key("gen"), "CREATE", "EQUAL", 0)],
                          [put(self._key("gen"), self._gen_record(gen + 1, "reset")),
                           delete(self._key("broken")),
                           *self._clear_round(gen)])
            if t.succeeded:
                return

    def _gen_record(self, gen: int, via: str) -> bytes:
        return json.dumps({"gen": gen, "via": via}).encode()

    def _clear_round(self, gen: int) -> List[Any]:
        """Deletes round `gen`'s keys: its arrivals and their count."""
        if gen < 0:
            return []
        slots = self._round_prefix(gen)
        return [delete(slots, prefix_end(slots)), delete(self._key("n", str(gen)))]

    def _count_arrival(self, key: bytes, gen: int) -> Op:
        """Counts the arrival of `key` in round `gen`, unless it was counted already (a retry
        whose first attempt landed). Without an action, the arrival that makes the count
        `parties` also ends the round: its nested transaction moves gen on (both compare
        against the state before the whole transaction)."""
        count = self._key("n", str(gen))
        counted = [put(count, b"")]
        if self._action is None:
            counted.append(txn_op([compare(count, "VERSION", "EQUAL", self._parties - 1)],
                                  [put(self._key("gen"), self._gen_record(gen + 1, "round"))]))
        return txn_op([compare(key, "CREATE", "EQUAL", 0)], counted)

    def _gen_unchanged(self, raw: bytes) -> Any:
        return (compare(self._key("gen"), "VALUE", "EQUAL", raw) if raw else
                compare(self._key("gen"), "CREATE", "EQUAL", 0))

    # ---- waiting ------------------------------------------------------------------------

    def wait(self, timeout: Optional[float] = None) -> int:
        if timeout is None:
            timeout = self._timeout
        deadline = deadline_of(timeout)
        session = self._session()
        gen_key, broken_key = self._key("gen"), self._key("broken")
        while True:
            raw = self._gen_seen
            if raw is None:
                _, raw, broken, _, _ = self._look()
                if broken:
                    raise threading.BrokenBarrierError
            gen = _round_of(raw)
            key = self._round_prefix(gen) + session.new_id().encode()
            try:
                t = self._txn([self._gen_unchanged(raw), compare(broken_key, "CREATE", "EQUAL", 0)],
                              [put(key, b"", session.lease()),
                               get_prefix(self._round_prefix(gen), keys_only=True,
                                          **OLDEST_FIRST),
                               self._count_arrival(key, gen),
                               get(self._key("n", str(gen))),
                               *self._clear_round(gen - 1)],
                              [get(gen_key), get(broken_key)])
            except LeaseNotFound:
                continue  # refused whole: again, on a new lease
            if not t.succeeded:
                self._gen_seen = t.value(0) or b""
                if t.kvs(1):
                    raise threading.BrokenBarrierError
                continue  # a round ended, or the barrier was reset, since we last looked
            arrived = t.kvs(1)
            index = [kv.key for kv in arrived].index(key)
            counted, count = t.results[2], t.kvs(3)
            ended = counted.succeeded and self._action is None and counted.results[1].succeeded
            if ended:
                self._gen_seen = self._gen_record(gen + 1, "round")  # our arrival ended it
            if index < self._parties and (count[0].version if count else 0) != index + 1:
                # More arrivals than keys before ours: a party of this round is gone (its
                # lease ended), before we came, so we are not told of it by the watch.
                self._break()
                raise threading.BrokenBarrierError
            if ended:
                return index
            if index < self._parties:
                break
            # The round is full and its last party is finishing it: wait for the next. (Our
            # key stays until that party deletes the round's keys: deleting it now would look
            # like a party gone to the round's waiters.)
            seen = t.revision
            while True:
                moved = self._wait_for_change(gen_key, b"", seen, deadline)
                if moved is False:
                    self._break()
                    raise threading.BrokenBarrierError
                now, raw_now, _, _, seen = self._look()
                if moved or now != gen:
                    self._gen_seen = raw_now
                    break
        try:
            if index == self._parties - 1:
                self._finish_round(gen, raw, arrived[:self._parties])
            else:
                self._await_round(gen, arrived[:index], self._parties - 1 - index,
                                  t.revision, deadline)
        except threading.BrokenBarrierError:
            raise  # broken already (whoever decided it has broken it)
        except BaseException:
            self._break()  # nobody waits for a party that left on an exception (Ctrl-C, the
            raise          # action's own), as threading.Barrier
        return index

    def _finish_round(self, gen: int, raw: bytes, parties: List[Any]) -> None:
        """The last party's part: every party's key was there when it arrived; the action runs,
        and the round ends only if none of them has vanished meanwhile."""
        if self._action is not None:
            self._action()
        record = self._gen_record(gen + 1, "round")
        t = self._txn([self._gen_unchanged(raw),
                       compare(self._key("broken"), "CREATE", "EQUAL", 0),
                       *(compare(kv.key, "CREATE", "EQUAL", kv.create_revision)
                         for kv in parties)],
                      [put(self._key("gen"), record), *self._clear_round(gen)],
                      [get(self._key("gen")), get(self._key("broken"))])
        if t.succeeded:
            self._gen_seen = record
            return
        if (t.value(0) or b"") == raw and not t.kvs(1):
            self._break()  # a party's key vanished: it is gone, the round cannot complete
        raise threading.BrokenBarrierError  # broken, reset, or a party gone

    def _await_round(self, gen: int, older: List[Any], newer: int, revision: int,
                     deadline: Optional[float]) -> None:
        """Waits for the round to end. The round's parties are the keys `older` than ours and
        the next `newer` keys created after ours (the watch shows their creation in order);
        the deletion of any of them, before gen moves, is a party gone."""
        gen_key, broken_key = self._key("gen"), self._key("broken")
        slots = self._round_prefix(gen)
        parties = {kv.key for kv in older}
        later = [newer]
        outcome: List[str] = []

        def decide(events: List[Any]) -> bool:
            # In revision order: what comes first decides. Changes made in the transaction
            # that moves gen (the round's keys deleted with it) come after the move.
            moves = [e for e in events if e.kv.key == gen_key and e.type == PUT
                     and _round_of(e.kv.value) > gen]
            moved_at = moves[0].kv.mod_revision if moves else None
            for e in events:
                if moved_at is not None and e.kv.mod_revision >= moved_at:
                    break
                if e.kv.key == broken_key and e.type == PUT:
                    outcome.append("broken")
                    return True
                if not e.kv.key.startswith(slots):
                    continue
                if e.type == PUT and e.kv.version == 1 and later[0] > 0:
                    parties.add(e.kv.key)  # a party that arrived after us
                    later[0] -= 1
                elif e.type == DELETE and e.kv.key in parties:
                    outcome.append("party gone")  # its key vanished before the round ended
                    return True
            if moves:
                self._gen_seen = moves[0].kv.value
                record = load_json(moves[0].kv.value, {})
                outcome.append("released" if record.get("via") == "round" else "reset")
                return True
            return False

        prefix = self._prefix
        while not outcome:
            if self._wait_for_change(prefix, prefix_end(prefix), revision, deadline,
                                     decide) is False:
                self._break()  # timed out: the barrier breaks, as threading.Barrier's does
                raise threading.BrokenBarrierError
            if outcome:
                break
            # The changes since `revision` cannot all be seen: judge from the state itself.
            now, raw, broken, present, revision = self._look()
            if now > gen:
                self._gen_seen = raw
                outcome.append("released" if load_json(raw, {}).get("via") == "round"
                               else "reset")
            elif broken:
                outcome.append("broken")
            elif not parties <= {kv.key for kv in present}:
                outcome.append("party gone")
            else:  # the round's parties: its first keys in creation order
                parties = {kv.key for kv in present[:self._parties]}
                later[0] = self._parties - len(parties)
        if outcome[0] == "party gone":
            self._break()
        if outcome[0] != "released":
            raise threading.BrokenBarrierError

    def _break(self) -> None:
        try:
            self.abort()
        except Exception:
            pass

    def __repr__(self) -> str:
        where = f"<interlock.cluster.Barrier {self.name!r} at {id(self):#x}"
        try:
            if self.broken:
                return f"{where}: broken>"
            return f"{where}: waiters={self.n_waiting}/{self.parties}>"
        except Exception:
            return f"{where}>"


def _round_of(raw: bytes) -> int:
    """The round number in gen's raw value (0 before the first round)."""
    return int(load_json(raw, {"gen": 0})["gen"])


def _rebuild_barrier(rebuild: Any, cluster: Any, name: str, parties: int, action: Any,
                     timeout: Any) -> Barrier:
    barrier = rebuild(cluster, "Barrier", name, {"parties": parties})
    barrier._action, barrier._timeout = action, timeout
    return barrier  # type: ignore[no-any-return]
